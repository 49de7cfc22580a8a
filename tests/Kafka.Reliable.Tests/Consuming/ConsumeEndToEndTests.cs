using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Consuming;

public sealed class ConsumeEndToEndTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task Consume_10000RecordsOver6Partitions_EachHandledOnceInOrderAndCommittedAtHighWatermarks()
    {
        const int Count = 10_000;
        const int Partitions = 6;
        var topic = await broker.CreateTopicAsync(Partitions);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(Count, Partitions));

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group);
        await Eventually.TrueAsync(() => consumer.Handler.Handled.Count >= Count, $"{Count} records are handled", state: () => $"{consumer.Handler.Handled.Count} handled");
        await consumer.StopAsync();

        var handled = consumer.Handler.Handled.ToList();
        Assert.Equal(Count, handled.Count);
        Assert.Equal(Enumerable.Range(0, Count), handled.Select(h => h.Id).Order());
        foreach (var partition in handled.GroupBy(h => h.Partition))
        {
            var offsets = partition.Select(h => h.Offset).ToList();
            Assert.True(offsets.SequenceEqual(offsets.Order()), $"partition {partition.Key} was handled out of offset order");
        }

        Assert.DoesNotContain(handled, h => h.Thread.StartsWith("kafka-reliable:", StringComparison.Ordinal));
        var high = broker.GetHighWatermarks(topic, Partitions);
        var committed = broker.GetCommittedOffsets(group, topic, Partitions);
        Assert.Equal(high, committed);
        Assert.Equal(Count, high.Values.Sum());
    }

    [Fact]
    public async Task SecondRun_SameGroup_ReadsOnlyWhatWasProducedSince()
    {
        var topic = await broker.CreateTopicAsync(3);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(300, 3));

        await using (var first = await TestConsumer.StartAsync(broker, topic, group))
        {
            await Eventually.TrueAsync(() => first.Handler.Handled.Count >= 300, "the first run handles the 300 records");
            await first.StopAsync();
            Assert.Equal(Enumerable.Range(0, 300), first.Handler.Handled.Select(h => h.Id).Order());
        }

        await broker.ProduceAsync(topic, TestConsumer.Events(120, 3, firstId: 300));
        await using var second = await TestConsumer.StartAsync(broker, topic, group);
        await Eventually.TrueAsync(() => second.Handler.Handled.Count >= 120, "the second run handles the 120 new records");
        await second.StopAsync();

        Assert.Equal(Enumerable.Range(300, 120), second.Handler.Handled.Select(h => h.Id).Order());
        Assert.Equal(broker.GetHighWatermarks(topic, 3), broker.GetCommittedOffsets(group, topic, 3));
    }

    [Fact]
    public async Task StartPositionLatest_NewGroup_SkipsTheBacklogAndReadsNewRecords()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(50, 1));

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, configure: o => o.StartPosition = StartPosition.Latest);
        await Eventually.TrueAsync(() => consumer.Logs.CountOf(400) > 0, "the partition is assigned");

        // The assignment is known, but the position is resolved on the first fetch: keep producing until new records arrive.
        var nextId = 50;
        while (consumer.Handler.Handled.Count == 0)
        {
            await broker.ProduceAsync(topic, TestConsumer.Events(1, 1, firstId: nextId++));
            await Task.Delay(50, TestContext.Current.CancellationToken);
            if (nextId > 1000)
            {
                Assert.Fail("no record produced after joining was handled");
            }
        }

        Assert.All(consumer.Handler.Handled, h => Assert.True(h.Id >= 50, $"record {h.Id} of the backlog was read"));
    }
}
