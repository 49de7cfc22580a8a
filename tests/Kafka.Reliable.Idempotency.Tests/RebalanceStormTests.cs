using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Idempotency.Tests.Infrastructure;

namespace Kafka.Reliable.Idempotency.Tests;

[Collection(HeavyTests.Name)]
public sealed class RebalanceStormTests(BrokerFixture broker, PostgresServer postgres)
{
    [Theory]
    [InlineData(GroupProtocol.Classic)]
    [InlineData(GroupProtocol.Consumer)]
    public async Task ThreeMembersJoiningAndLeaving_While30000RecordsAreConsumed_NothingLost_NoTwoEffects_PerKeyOrderKept(GroupProtocol protocol)
    {
        using var speaking = StoreConsumer.UseProtocol(protocol);
        const int Records = 30_000;
        const int Keys = 300;
        const int Partitions = 6;
        var topic = broker.CreateTopic(Partitions);
        var group = "storm-" + Guid.NewGuid().ToString("N")[..8];
        await broker.Cluster.ProduceAllAsync(topic, Enumerable.Range(0, Records).Select(id => new Message<byte[]?, byte[]?>
        {
            Key = Encoding.ASCII.GetBytes($"key-{id % Keys}"),
            Value = Encoding.ASCII.GetBytes(id.ToString(CultureInfo.InvariantCulture)),
        }), TestContext.Current.CancellationToken);
        var connectionString = await postgres.CreateDatabaseAsync();

        // One handler for every member: the effects the shared store must keep single, and their order per key.
        var perKey = new ConcurrentDictionary<int, ConcurrentQueue<int>>();
        var handler = new EffectCounter
        {
            Behavior = async (id, _, ct) =>
            {
                perKey.GetOrAdd(id % Keys, _ => new ConcurrentQueue<int>()).Enqueue(id);
                if (id % 10 == 0)
                {
                    await Task.Delay(1, ct);
                }
            },
        };
        void UseStore(IReliableConsumerBuilder<int> b) => b.UsePostgreSqlIdempotency(connectionString).WithIdempotencyKey(static (id, _) => id.ToString(CultureInfo.InvariantCulture));
        void Configure(ReliableConsumerOptions o)
        {
            o.Dispatch = DispatchMode.ByKey;
            o.MaxInFlight = 20;
            o.PartitionBufferSize = 500;
        }

        Task<StoreConsumer> Start() => StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, UseStore, Configure);
        var members = new List<StoreConsumer> { await Start() };
        var changes = 0;
        var output = TestContext.Current.TestOutputHelper!;
        try
        {
            // Every 2,500 effects, a member joins or leaves, so that there are between one and three at any time.
            while (handler.Effects.Count < Records - 2_500)
            {
                var target = handler.Effects.Count + 2_500;
                await Eventually.TrueAsync(() => handler.Effects.Count >= target, $"the group makes progress up to {target} records", TimeSpan.FromSeconds(120));
                if (members.Count < 3 && (changes % 3 != 2 || members.Count == 1))
                {
                    members.Add(await Start());
                    output.WriteLine($"at {handler.Effects.Count} records: a member joins ({members.Count} now)");
                }
                else
                {
                    var leaving = members[0];
                    members.RemoveAt(0);
                    await leaving.DisposeAsync();
                    output.WriteLine($"at {handler.Effects.Count} records: a member leaves ({members.Count} now)");
                }

                changes++;
            }

            await Eventually.TrueAsync(() => handler.Effects.Count == Records, "every record is handled", TimeSpan.FromSeconds(120));
            await Eventually.TrueAsync(() => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records, "every record is committed", TimeSpan.FromSeconds(120));
        }
        finally
        {
            foreach (var member in members)
            {
                await member.DisposeAsync();
            }
        }

        var repeated = handler.Effects.Where(e => e.Value > 1).Select(e => e.Key).ToList();
        Assert.True(changes >= 6, $"the group changed {changes} times");
        Assert.True(repeated.Count == 0, $"{repeated.Count} records had two effects: {string.Join(", ", repeated.Take(20))}");
        foreach (var (key, ids) in perKey)
        {
            var handled = ids.ToList();
            Assert.True(handled.SequenceEqual(handled.Order()), $"the records of key {key} were applied out of order");
        }

        output.WriteLine($"records {Records}, membership changes {changes}, effects {handler.Total}, records with two effects {repeated.Count}");
    }
}
