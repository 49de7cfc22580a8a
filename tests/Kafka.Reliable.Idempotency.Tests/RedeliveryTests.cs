using Kafka.Reliable.Idempotency.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>The same records delivered again (the group's offsets reset, the consumer restarted) produce no second effect (G2).</summary>
public sealed class RedeliveryTests(BrokerFixture broker, PostgresServer postgres, RedisServer redis)
{
    private const int Records = 300;
    private const int Partitions = 3;

    public static TheoryData<string> DurableStores => ["sqlite", "sqlite-transactional", "postgresql", "postgresql-transactional", "redis"];

    [Theory]
    [MemberData(nameof(DurableStores))]
    public async Task RedeliveredRecords_AreSkippedAsDuplicates_AcrossARestart(string store)
    {
        var topic = broker.CreateTopic(Partitions);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await StoreConsumer.ProduceIdsAsync(broker.Cluster, topic, Enumerable.Range(0, Records));
        var useStore = await StoreAsync(store);
        var handler = new EffectCounter();

        await using (var first = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, useStore))
        {
            await Eventually.TrueAsync(() => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records, "the first run commits every record");
        }

        Assert.Equal(Records, handler.Total);
        StoreConsumer.ResetOffsets(broker.Cluster.BootstrapServers, topic, group, Partitions);

        await using (var second = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, useStore))
        {
            await Eventually.TrueAsync(() => second.Logs.CountOf(212) >= Records, $"the second run skips the {Records} redelivered records as duplicates", state: () => second.Logs.Dump());
            await Eventually.TrueAsync(() => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records, "the second run commits every record again");
        }

        Assert.Equal(Records, handler.Effects.Count);
        Assert.All(handler.Effects, e => Assert.True(e.Value == 1, $"message {e.Key} had {e.Value} effects"));
    }

    [Fact]
    public async Task TransactionalStoreWithOffsets_StartsFromTheStoredOffsets_WhenTheyAreAheadOfTheGroup()
    {
        var (topic, group, connectionString, handler, UseStore) = await FirstTransactionalRunAsync();

        // As if the process had died after its database commits and before its Kafka commits: the group's offsets are
        // behind, and so are the commits the store recorded (it records a commit only once Kafka took it).
        StoreConsumer.ResetOffsets(broker.Cluster.BootstrapServers, topic, group, Partitions);
        await ExecuteAsync(connectionString, "UPDATE kafka_reliable_idempotency_offsets SET committed_offset = -1");

        await using var second = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, UseStore);
        await Eventually.TrueAsync(() => second.Logs.CountOf(404) >= Partitions, "each partition starts from the offset stored with the effects", state: () => second.Logs.Dump());
        await StoreConsumer.ProduceIdsAsync(broker.Cluster, topic, Enumerable.Range(Records, 30));
        await Eventually.TrueAsync(() => handler.Total == Records + 30, "the records produced since are handled");

        Assert.Equal(0, second.Logs.CountOf(212));
        Assert.All(handler.Effects, e => Assert.True(e.Value == 1, $"message {e.Key} had {e.Value} effects"));
    }

    /// <summary>
    /// An operator resets the group's offsets back (to replay a topic): the store's offsets, ahead of the group's, must not
    /// silently undo it. The group's offset is behind the last one the consumer committed, which the store recorded, so the
    /// consumer starts from the group's offset (records applied already are skipped as duplicates by their keys) and
    /// forgets the stored offsets. The same rule covers a topic deleted and created again (Kafka drops its group offsets).
    /// </summary>
    [Fact]
    public async Task TransactionalStoreWithOffsets_GroupOffsetsResetBack_TheResetIsHonoured_NotUndoneByTheStoredOffsets()
    {
        var (topic, group, connectionString, handler, UseStore) = await FirstTransactionalRunAsync();

        StoreConsumer.ResetOffsets(broker.Cluster.BootstrapServers, topic, group, Partitions);

        await using var second = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, UseStore);
        await Eventually.TrueAsync(() => second.Logs.CountOf(410) >= Partitions, "each partition starts from the group's reset offset", state: () => second.Logs.Dump());
        await Eventually.TrueAsync(() => second.Logs.CountOf(212) >= Records, "the records read again are skipped as duplicates", state: () => second.Logs.Dump());
        await Eventually.TrueAsync(() => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records, "every partition is committed to its end again");

        Assert.Equal(0, second.Logs.CountOf(404));
        Assert.Equal(Records, handler.Effects.Count);
        Assert.All(handler.Effects, e => Assert.True(e.Value == 1, $"message {e.Key} had {e.Value} effects"));
    }

    /// <summary>A first run with the transactional PostgreSQL store (offsets kept with the effects) that commits every record.</summary>
    private async Task<(string Topic, string Group, string ConnectionString, EffectCounter Handler, Action<IReliableConsumerBuilder<int>> UseStore)> FirstTransactionalRunAsync()
    {
        var topic = broker.CreateTopic(Partitions);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await StoreConsumer.ProduceIdsAsync(broker.Cluster, topic, Enumerable.Range(0, Records));
        var connectionString = await postgres.CreateDatabaseAsync();
        var handler = new EffectCounter();
        void UseStore(IReliableConsumerBuilder<int> b) => b.UsePostgreSqlIdempotency(connectionString, o => o.Transactional = true);

        await using (var first = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, UseStore))
        {
            await Eventually.TrueAsync(() => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records, "the first run commits every record");
        }

        return (topic, group, connectionString, handler, UseStore);
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new Npgsql.NpgsqlConnection(connectionString);
        await connection.OpenAsync(TestContext.Current.CancellationToken);
        await using var command = new Npgsql.NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
    }

    private async Task<Action<IReliableConsumerBuilder<int>>> StoreAsync(string store)
    {
        switch (store)
        {
            case "sqlite":
            case "sqlite-transactional":
                var path = Path.Combine(Path.GetTempPath(), $"kafka-reliable-{Guid.NewGuid():N}.db");
                var transactional = store.EndsWith("transactional", StringComparison.Ordinal);
                return b => b.UseSqliteIdempotency(path, o => (o.Transactional, o.StoreOffsets) = (transactional, false));
            case "postgresql":
            case "postgresql-transactional":
                var connectionString = await postgres.CreateDatabaseAsync();
                var pgTransactional = store.EndsWith("transactional", StringComparison.Ordinal);
                return b => b.UsePostgreSqlIdempotency(connectionString, o => (o.Transactional, o.StoreOffsets) = (pgTransactional, false));
            default:
                var prefix = $"redelivery-{Guid.NewGuid():N}:";
                return b => b.UseRedisIdempotency(redis.Configuration, o => o.KeyPrefix = prefix);
        }
    }
}
