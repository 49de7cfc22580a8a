using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Idempotency.Tests.Infrastructure;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>
/// The proof of retry tiers that keep key order (docs/failure-handling.md, "Retry tiers"): one key's dependency is down for a
/// long time while 10,000 records of 1,000 keys flow, across a restart and a rebalance; every other key is handled meanwhile,
/// the failing key's records are handled in offset order once it is back, and nothing is lost or handled twice.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class RetryTierProofTests(BrokerFixture broker, PostgresServer postgres)
{
    private const int Records = 10_000;
    private const int Keys = 1_000;
    private const int FailingKey = 7;

    [Theory]
    [InlineData(DispatchMode.ByKey)]
    [InlineData(DispatchMode.Sequential)]
    public async Task OneKeyDownForLong_OtherKeysFlow_ItsRecordsFollowInOrder_AcrossARestartAndARebalance_WithNoLossAndNoDuplicate(DispatchMode dispatch)
    {
        var output = TestContext.Current.TestOutputHelper!;
        var topic = broker.CreateTopic(4);
        broker.Cluster.CreateTopic(topic + ".retry", 4);
        broker.Cluster.CreateTopic(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.Cluster.ProduceAllAsync(topic, Enumerable.Range(0, Records).Select(id => new Message<byte[]?, byte[]?>
        {
            Key = Encoding.ASCII.GetBytes($"k{id % Keys}"),
            Value = Encoding.ASCII.GetBytes(id.ToString(CultureInfo.InvariantCulture)),
        }), TestContext.Current.CancellationToken);
        var connectionString = await postgres.CreateDatabaseAsync();
        void UseStore(IReliableConsumerBuilder<int> b) => b.UsePostgreSqlIdempotency(connectionString);

        var down = true;
        var failingKeyOrder = new ConcurrentQueue<int>();
        var handler = new EffectCounter
        {
            Behavior = (id, _, _) =>
            {
                if (id % Keys == FailingKey)
                {
                    if (Volatile.Read(ref down))
                    {
                        throw new TimeoutException($"the dependency of key k{FailingKey} is down");
                    }

                    failingKeyOrder.Enqueue(id);
                }

                return ValueTask.CompletedTask;
            },
        };
        void Configure(ReliableConsumerOptions o)
        {
            o.Dispatch = dispatch;
            o.Retry.MaxAttempts = 2;
            o.RetryTiers.Enabled = true;

            // About 200 seconds of tiers: the key stays down far longer than the test needs to get everything else through.
            o.RetryTiers.Delays.Add(TimeSpan.FromMilliseconds(100));
            o.RetryTiers.Delays.Add(TimeSpan.FromMilliseconds(200));
            for (var i = 0; i < 98; i++)
            {
                o.RetryTiers.Delays.Add(TimeSpan.FromSeconds(2));
            }
        }

        int OthersHandled() => handler.Effects.Count(e => e.Key % Keys != FailingKey);
        var first = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, UseStore, Configure);
        await Eventually.TrueAsync(() => handler.Total >= 2500, "the first run is under way");

        // A restart in the middle: the new run learns the parked key from the retry topic.
        await first.DisposeAsync();
        var restarted = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, UseStore, Configure);
        await Eventually.TrueAsync(() => handler.Total >= 5000, "the restarted run is under way");
        // Waited for, not read at once: the other partitions can reach the total before the parked key's lot is rebuilt (a CI run
        // read the log too early).
        await Eventually.TrueAsync(
            () => restarted.Logs.GetSnapshot().Any(r => r.Id.Id == 245 && !r.Message.Contains(": 0 record", StringComparison.Ordinal)),
            "the restarted run rebuilds a lot with the parked key's records from the retry topic (245)",
            state: () => restarted.Logs.Dump());

        // A rebalance in the middle: a second member takes some partitions, and their parked records.
        await using var second = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, UseStore, Configure);
        await Eventually.TrueAsync(() => second.Logs.CountOf(400) >= 1, "the second member gets partitions", state: () => second.Logs.Dump());
        await Eventually.TrueAsync(
            () => OthersHandled() == Records - (Records / Keys),
            "every record of the 999 healthy keys is handled while k7 is down",
            TimeSpan.FromSeconds(150),
            () => $"{OthersHandled()} handled");
        Assert.Empty(failingKeyOrder);
        var parkedLogs = restarted.Logs.CountOf(241) + second.Logs.CountOf(241) + first.Logs.CountOf(241);

        Volatile.Write(ref down, false);
        await Eventually.TrueAsync(() => handler.Effects.Count == Records, "k7's records are handled once its dependency is back", TimeSpan.FromSeconds(60), () => $"{handler.Effects.Count} handled");
        await Eventually.TrueAsync(
            () => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records,
            "every record is committed");
        await Eventually.TrueAsync(
            () => broker.Cluster.GetHighWatermarks(topic + ".retry") is var retryEnds && broker.Cluster.GetCommittedOffsets(group, topic + ".retry").All(c => c.Value == retryEnds[c.Key]),
            "the retry topic is committed to its end");
        await restarted.DisposeAsync();

        var repeated = handler.Effects.Where(e => e.Value > 1).Select(e => e.Key).ToList();
        output.WriteLine(
            $"{dispatch}: records {Records}, effects {handler.Total}, k7 parked/moved {parkedLogs} times, retry topic records {broker.Cluster.GetHighWatermarks(topic + ".retry").Values.Sum()}, k7 in order: {string.Join(", ", failingKeyOrder)}");
        Assert.True(repeated.Count == 0, $"{repeated.Count} records had two effects: {string.Join(", ", repeated.Take(20))}");
        Assert.Equal(Enumerable.Range(0, Records / Keys).Select(i => (i * Keys) + FailingKey), failingKeyOrder);
        Assert.Equal(0, broker.Cluster.GetHighWatermarks(topic + ".dlq")[0]);
    }
}
