using System.Diagnostics.Metrics;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Diagnostics;

public sealed class MetricsTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task KnownWorkload_CountsAreExact_FollowTheConventions_AndLagReachesZero()
    {
        var topic = await broker.CreateTopicAsync(2);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var records = TestConsumer.Events(100, 2).ToList();
        records[10] = (0, "k", "not json");
        records[21] = (1, "k", "[1]");
        await broker.ProduceAsync(topic, records);
        using var meters = new TestMeters();
        var consumed = meters.Collect<long>("messaging.client.consumed.messages");
        var processDuration = meters.Collect<double>("messaging.process.duration");
        var operationDuration = meters.Collect<double>("messaging.client.operation.duration");
        var processed = meters.Collect<long>("kafka.reliable.records.processed");
        var failed = meters.Collect<long>("kafka.reliable.records.failed");
        var retried = meters.Collect<long>("kafka.reliable.records.retried");
        var deadLettered = meters.Collect<long>("kafka.reliable.records.dead_lettered");
        var duplicates = meters.Collect<long>("kafka.reliable.records.duplicates");
        var handlerDuration = meters.Collect<double>("kafka.reliable.handler.duration");
        var rebalanced = meters.Collect<long>("kafka.reliable.rebalance.partitions");
        var commitFailures = meters.Collect<long>("kafka.reliable.commit.failures");
        var lag = meters.Collect<long>("kafka.reliable.consumer.lag");
        var handler = new RecordingHandler
        {
            // Five records fail once, transiently.
            Behavior = (message, context, _) => message.Id % 20 == 3 && context.Attempt == 1 ? throw new TimeoutException("once") : ValueTask.CompletedTask,
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, meters: meters);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2).Values.Sum() == 100, "every record is committed");
        await Eventually.TrueAsync(
            () => lag.LatestPerPartition() is { Count: 2 } latest && latest.Values.All(v => v == 0),
            "the lag of both partitions is observed at 0",
            state: () => string.Join(", ", lag.LatestPerPartition().Select(l => $"{l.Key}={l.Value}")));

        Assert.Equal(98, processed.Sum());
        Assert.Equal(7, failed.Sum());
        Assert.Equal(5, retried.Sum());
        Assert.Equal(2, deadLettered.Sum());
        Assert.Equal(0, duplicates.Sum());
        Assert.Equal(105, handlerDuration.Count());
        Assert.Equal(2, rebalanced.Sum());
        Assert.Equal("{partition}", rebalanced.Instrument!.Unit);
        Assert.Equal(0, commitFailures.Sum());

        // The conventions' instruments: one delivery and one processing per record, the two poison records with error.type.
        var server = BootstrapServer.Parse(broker.BootstrapServers)!.Value;
        Assert.Equal(100, consumed.Sum());
        var processing = processDuration.GetMeasurementSnapshot();
        Assert.Equal(100, processing.Count);
        Assert.Equal(2, processing.Count(m => m.Tags.ContainsKey("error.type")));
        Assert.All(processing, m =>
        {
            Assert.True(m.Value >= 0, $"a duration is never negative ({m.Value})");
            Assert.Equal("kafka", m.Tags["messaging.system"]);
            Assert.Equal("process", m.Tags["messaging.operation.name"]);
            Assert.Equal("process", m.Tags["messaging.operation.type"]);
            Assert.Equal(topic, m.Tags["messaging.destination.name"]);
            Assert.Contains((string)m.Tags["messaging.destination.partition.id"]!, new[] { "0", "1" });
            Assert.Equal(group, m.Tags["messaging.consumer.group.name"]);
            Assert.Equal(server.Address, m.Tags["server.address"]);
            Assert.Equal(server.Port, m.Tags["server.port"]);
        });
        Assert.Equal(50, processing.Count(m => (string?)m.Tags["messaging.destination.partition.id"] == "0"));
        Assert.All(consumed.GetMeasurementSnapshot(), m => Assert.Equal("process", m.Tags["messaging.operation.name"]));

        var commits = operationDuration.GetMeasurementSnapshot();
        Assert.True(commits.Count >= 1, "commits are timed");
        Assert.All(commits, m =>
        {
            Assert.Equal("commit", m.Tags["messaging.operation.name"]);
            Assert.Equal("settle", m.Tags["messaging.operation.type"]);
            Assert.Equal(topic, m.Tags["messaging.destination.name"]);
            Assert.False(m.Tags.ContainsKey("error.type"), "no commit failed");
        });

        // Seconds, with the conventions' bucket boundaries, so that the values do not all land in the SDK's first bucket.
        double[] buckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
        foreach (var histogram in new[] { processDuration.Instrument, operationDuration.Instrument, handlerDuration.Instrument })
        {
            var advised = Assert.IsType<Histogram<double>>(histogram);
            Assert.Equal("s", advised.Unit);
            Assert.Equal(buckets, advised.Advice?.HistogramBucketBoundaries);
        }
    }

    [Fact]
    public async Task BufferedRecords_HoldAtMostTheBuffer_BehindASlowRecord_AndDrainToZero()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(200, 1));
        using var meters = new TestMeters();
        var buffered = meters.Collect<long>("kafka.reliable.records.buffered");
        // The first record waits: the partition's buffer fills behind it and the partition is paused.
        var (handler, release) = FirstRecordWaits();

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, configure: o => o.PartitionBufferSize = 16, meters: meters);
        await Eventually.TrueAsync(
            () => buffered.LatestPerPartition().GetValueOrDefault("0") == 16,
            "the partition holds a full buffer (16 records) behind the waiting record",
            state: () => string.Join(", ", buffered.LatestPerPartition().Select(b => $"p{b.Key}={b.Value}")));

        release.SetResult();
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 200, "every record is committed");
        await Eventually.TrueAsync(
            () => buffered.LatestPerPartition().GetValueOrDefault("0", -1) == 0,
            "nothing is buffered once every record is done");
        Assert.Equal(16, buffered.Max());
    }

    [Theory]
    [InlineData(10_000, 300)]
    [InlineData(100_000, 40)]
    public async Task BufferedBytes_StayWithinTheByteBudget_BehindASlowRecord_AndDrainToZero(int valueBytes, int count)
    {
        const long Budget = 1024 * 1024;
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var padding = new string('x', valueBytes - 40);
        await broker.ProduceAsync(topic, Enumerable.Range(0, count).Select(id =>
            (0, (string?)"k", (string?)$$"""{"Id":{{id}},"Key":"k","Pad":"{{padding}}"}""")));
        using var meters = new TestMeters();
        var buffered = meters.Collect<long>("kafka.reliable.records.buffered");
        var bufferedBytes = meters.Collect<long>("kafka.reliable.records.buffered.size");
        var paused = meters.Collect<long>("kafka.reliable.partitions.paused");
        // The first record waits: the partition's buffer fills behind it, by bytes long before PartitionBufferSize records.
        var (handler, release) = FirstRecordWaits();

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, configure: o => o.MaxBufferedBytes = Budget, meters: meters);
        await Eventually.TrueAsync(
            () =>
            {
                // Observes the three gauges at once: what the records count and the pauses were when the bytes were read.
                meters.Observe();
                return bufferedBytes.LatestPerPartition().GetValueOrDefault("0") >= Budget && paused.Max() == 1;
            },
            "the partition is paused once its buffered bytes reach the budget (one partition: all of it)",
            state: () => $"buffered {bufferedBytes.Max()} bytes, {buffered.Max()} records, paused {paused.Max()}");

        release.SetResult();
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == count, $"every record is committed ({count})");
        await Eventually.TrueAsync(
            () =>
            {
                meters.Observe();
                return bufferedBytes.LatestPerPartition().GetValueOrDefault("0", -1) == 0;
            },
            "no byte is buffered once every record is done");

        // Paused at the first record that reaches the budget: at most the budget plus that record (and its overhead).
        var most = bufferedBytes.Max();
        Assert.True(most >= Budget, $"the buffer reached the budget of {Budget} bytes before the pause (most seen: {most})");
        Assert.True(most < Budget + valueBytes + 1024, $"the buffer held at most the budget of {Budget} bytes plus one record of ~{valueBytes} bytes; it held {most}");
        Assert.True(buffered.Max() < count, "the pause came before every record was buffered");
        Assert.Equal(count, handler.Handled.Select(h => h.Id).Distinct().Count());
    }

    /// <summary>A handler whose record 0 waits until <c>release</c> is set; every other record is handled at once.</summary>
    private static (RecordingHandler Handler, TaskCompletionSource Release) FirstRecordWaits()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new RecordingHandler
        {
            Behavior = async (message, _, ct) =>
            {
                if (message.Id == 0)
                {
                    await release.Task.WaitAsync(ct);
                }
            },
        };
        return (handler, release);
    }
}
