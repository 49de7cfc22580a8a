using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Diagnostics;

public sealed class MetricsTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task KnownWorkload_CountsAreExact_AndLagReachesZero()
    {
        var topic = await broker.CreateTopicAsync(2);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var records = TestConsumer.Events(100, 2).ToList();
        records[10] = (0, "k", "not json");
        records[21] = (1, "k", "[1]");
        await broker.ProduceAsync(topic, records);
        using var metrics = new GroupMetrics(group);
        var handler = new RecordingHandler
        {
            // Five records fail once, transiently.
            Behavior = (message, context, _) => message.Id % 20 == 3 && context.Attempt == 1 ? throw new TimeoutException("once") : ValueTask.CompletedTask,
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2).Values.Sum() == 100, "every record is committed");
        await Eventually.TrueAsync(
            () => metrics.Lag() is { Count: 2 } lag && lag.Values.All(v => v == 0),
            "the lag of both partitions is observed at 0",
            state: () => string.Join(", ", metrics.Lag().Select(l => $"{l.Key}={l.Value}")));

        Assert.Equal(98, metrics.Sum("kafka.reliable.records.processed"));
        Assert.Equal(7, metrics.Sum("kafka.reliable.records.failed"));
        Assert.Equal(5, metrics.Sum("kafka.reliable.records.retried"));
        Assert.Equal(2, metrics.Sum("kafka.reliable.records.dead_lettered"));
        Assert.Equal(0, metrics.Sum("kafka.reliable.records.duplicates"));
        Assert.Equal(105, metrics.Count("kafka.reliable.handler.duration"));
        Assert.Equal(2, metrics.Sum("kafka.reliable.rebalances"));
        Assert.True(metrics.Count("kafka.reliable.commit.duration") >= 1, "commits are timed");
        Assert.Equal(0, metrics.Sum("kafka.reliable.commit.failures"));
    }

    [Fact]
    public async Task BufferedRecords_HoldAtMostTheBuffer_BehindASlowRecord_AndDrainToZero()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(200, 1));
        using var metrics = new GroupMetrics(group);
        // The first record waits: the partition's buffer fills behind it and the partition is paused.
        var (handler, release) = FirstRecordWaits();

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, configure: o => o.PartitionBufferSize = 16);
        await Eventually.TrueAsync(
            () => metrics.LatestPerPartition("kafka.reliable.records.buffered").GetValueOrDefault("0") == 16,
            "the partition holds a full buffer (16 records) behind the waiting record",
            state: () => string.Join(", ", metrics.LatestPerPartition("kafka.reliable.records.buffered").Select(b => $"p{b.Key}={b.Value}")));

        release.SetResult();
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 200, "every record is committed");
        await Eventually.TrueAsync(
            () => metrics.LatestPerPartition("kafka.reliable.records.buffered").GetValueOrDefault("0", -1) == 0,
            "nothing is buffered once every record is done");
        Assert.Equal(16, metrics.Max("kafka.reliable.records.buffered"));
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
        using var metrics = new GroupMetrics(group);
        // The first record waits: the partition's buffer fills behind it, by bytes long before PartitionBufferSize records.
        var (handler, release) = FirstRecordWaits();

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, configure: o => o.MaxBufferedBytes = Budget);
        await Eventually.TrueAsync(
            () => metrics.LatestPerPartition("kafka.reliable.records.buffered.size").GetValueOrDefault("0") >= Budget && metrics.Max("kafka.reliable.partitions.paused") == 1,
            "the partition is paused once its buffered bytes reach the budget (one partition: all of it)",
            state: () => $"buffered {metrics.Max("kafka.reliable.records.buffered.size")} bytes, {metrics.Max("kafka.reliable.records.buffered")} records, paused {metrics.Max("kafka.reliable.partitions.paused")}");

        release.SetResult();
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == count, $"every record is committed ({count})");
        await Eventually.TrueAsync(
            () => metrics.LatestPerPartition("kafka.reliable.records.buffered.size").GetValueOrDefault("0", -1) == 0,
            "no byte is buffered once every record is done");

        // Paused at the first record that reaches the budget: at most the budget plus that record (and its overhead).
        var most = metrics.Max("kafka.reliable.records.buffered.size");
        Assert.True(most >= Budget, $"the buffer reached the budget of {Budget} bytes before the pause (most seen: {most})");
        Assert.True(most < Budget + valueBytes + 1024, $"the buffer held at most the budget of {Budget} bytes plus one record of ~{valueBytes} bytes; it held {most}");
        Assert.True(metrics.Max("kafka.reliable.records.buffered") < count, "the pause came before every record was buffered");
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
