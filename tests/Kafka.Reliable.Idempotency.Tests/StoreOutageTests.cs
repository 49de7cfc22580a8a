using Kafka.Reliable.Idempotency.Tests.Infrastructure;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>An idempotency store that cannot be reached is not the records' fault: they wait for it, and none is dead-lettered.</summary>
[Collection(HeavyTests.Name)]
public sealed class StoreOutageTests(BrokerFixture broker)
{
    [Fact]
    public async Task StoreUnreachableForAWhile_RecordsWaitForIt_NoneIsDeadLettered_AndEveryOneIsHandledOnceItIsBack()
    {
        // Found by the torture matrix: healthy records spent their few quick retries on a store outage and were dead-lettered.
        const int Records = 200;
        await using var redis = await RedisServer.StartAsync(FreePort.Next());
        var topic = broker.CreateTopic(2);
        broker.Cluster.CreateTopic(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await StoreConsumer.ProduceIdsAsync(broker.Cluster, topic, Enumerable.Range(0, Records));
        var handler = new EffectCounter();

        // The store goes away before the consumer starts, so that every record meets the outage when it takes its key.
        redis.Pause();
        try
        {
            await using var consumer = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler,
                b => b.UseRedisIdempotency(redis.Configuration), o => o.Retry.MaxAttempts = 2);
            await Eventually.TrueAsync(() => consumer.Logs.CountOf(224) >= 2, "records report that the store cannot be reached", state: () => consumer.Logs.Dump());
            Assert.Equal(0, handler.Total);
            redis.Resume();

            await Eventually.TrueAsync(() => handler.Effects.Count == Records, "every record is handled once the store is back", state: () => consumer.Logs.Dump());
            await Eventually.TrueAsync(() => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records, "every record is committed");
            Assert.Equal(0, consumer.Logs.CountOf(205));
        }
        finally
        {
            redis.Resume();
        }

        Assert.Equal(0, broker.Cluster.GetHighWatermarks(topic + ".dlq")[0]);
        Assert.DoesNotContain(handler.Effects, e => e.Value > 1);
    }
}
