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
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new RecordingHandler
        {
            // The first record waits: the partition's buffer fills behind it and the partition is paused.
            Behavior = async (message, _, ct) =>
            {
                if (message.Id == 0)
                {
                    await release.Task.WaitAsync(ct);
                }
            },
        };

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
}
