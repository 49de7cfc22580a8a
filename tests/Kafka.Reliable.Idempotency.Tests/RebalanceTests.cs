using Kafka.Reliable.Idempotency.Tests.Infrastructure;

namespace Kafka.Reliable.Idempotency.Tests;

public sealed class RebalanceTests(BrokerFixture broker, PostgresServer postgres)
{
    [Theory]
    [InlineData(GroupProtocol.Classic)]
    [InlineData(GroupProtocol.Consumer)]
    public async Task TwoConsumersOfOneGroup_WithARebalanceInTheMiddle_AndASharedStore_NoRecordHasTwoEffects(GroupProtocol protocol)
    {
        using var speaking = StoreConsumer.UseProtocol(protocol);
        const int Records = 3000;
        var topic = broker.CreateTopic(4);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await StoreConsumer.ProduceIdsAsync(broker.Cluster, topic, Enumerable.Range(0, Records));
        var connectionString = await postgres.CreateDatabaseAsync();
        void UseStore(IReliableConsumerBuilder<int> b) => b.UsePostgreSqlIdempotency(connectionString);

        // One handler for both members: its counts are the effects the shared store must keep single.
        var handler = new EffectCounter { Behavior = (_, _, ct) => new ValueTask(Task.Delay(1, ct)) };
        var first = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, UseStore);
        await Eventually.TrueAsync(() => handler.Total >= 400, "the first member is under way");

        await using var second = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, UseStore);
        await Eventually.TrueAsync(() => second.Logs.CountOf(400) >= 1, "the second member gets partitions", state: () => second.Logs.Dump());
        await Eventually.TrueAsync(() => handler.Total >= 1500, "both members are under way");
        await first.DisposeAsync();

        await Eventually.TrueAsync(() => handler.Effects.Count == Records, "every record is handled", state: () => second.Logs.Dump());
        await Eventually.TrueAsync(() => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records, "every record is committed");

        var repeated = handler.Effects.Where(e => e.Value > 1).Select(e => e.Key).ToList();
        Assert.True(repeated.Count == 0, $"{repeated.Count} records had two effects: {string.Join(", ", repeated.Take(20))}");
        TestContext.Current.TestOutputHelper!.WriteLine(
            $"records {Records}, effects {handler.Total}, redeliveries skipped as duplicates by the second member: {second.Logs.CountOf(212)}, by the first: {first.Logs.CountOf(212)}");
    }
}
