using Kafka.Reliable.Idempotency.Sqlite;
using Kafka.Reliable.Idempotency.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>
/// The offsets the transactional stores keep with the handler's effects. Under ByKey and Unordered dispatch a later record
/// commits its transaction while an earlier one still runs; the stored offset must not pass the earlier one, or a new
/// owner of the partition (after a shutdown timeout, a revoke drain timeout, a lost partition or a crash) starts after it
/// and the record is never handled.
/// </summary>
public sealed class StoredOffsetTests(BrokerFixture broker, PostgresServer postgres)
{
    private const int Records = 21;

    public static TheoryData<string, DispatchMode> Combinations => new()
    {
        { "sqlite", DispatchMode.ByKey },
        { "sqlite", DispatchMode.Unordered },
        { "postgresql", DispatchMode.ByKey },
        { "postgresql", DispatchMode.Unordered },
    };

    [Theory]
    [MemberData(nameof(Combinations))]
    public async Task EarlierRecordStillFailingAtShutdown_LaterOnesStoredTheirOffsets_TheRestartHandlesItAndEveryEffectHappensOnce(string store, DispatchMode dispatch)
    {
        var topic = broker.CreateTopic(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await StoreConsumer.ProduceIdsAsync(broker.Cluster, topic, Enumerable.Range(0, Records));
        var useStore = await StoreAsync(store);
        var dependencyOfRecord0Up = false;
        var handler = new EffectCounter
        {
            // Record 0 fails transiently (its transaction rolls back) until the test says otherwise; it is still retrying
            // when the first consumer stops. (Not a handler that blocks inside its transaction: the SQLite store runs one
            // transaction at a time, so later records would wait for it instead of finishing first.)
            Behavior = (id, _, _) => id == 0 && !Volatile.Read(ref dependencyOfRecord0Up) ? throw new TimeoutException("record 0's dependency is down") : ValueTask.CompletedTask,
        };
        void Configure(ReliableConsumerOptions o)
        {
            o.Dispatch = dispatch;
            o.Retry.MaxAttempts = 1_000_000;
        }

        await using (var first = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, useStore, Configure))
        {
            await Eventually.TrueAsync(() => handler.Total == Records - 1, "records 1-20 are handled while record 0 keeps failing", state: () => first.Logs.Dump());
        }

        Assert.False(handler.Effects.ContainsKey(0), "record 0 never succeeded in the first run");
        Volatile.Write(ref dependencyOfRecord0Up, true);

        await using (var second = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, useStore, Configure))
        {
            await Eventually.TrueAsync(() => handler.Effects.ContainsKey(0), "the restarted consumer handles record 0", state: () => second.Logs.Dump());
            await Eventually.TrueAsync(() => broker.Cluster.GetCommittedOffsets(group, topic)[0] == Records, "the partition is committed to its end", state: () => second.Logs.Dump());
        }

        Assert.Equal(Records, handler.Effects.Count);
        Assert.All(handler.Effects, e => Assert.True(e.Value == 1, $"message {e.Key} had {e.Value} effects"));
    }

    /// <summary>
    /// The store is down while partitions are assigned: reading the offsets it keeps fails inside the rebalance. That is a
    /// transient outage, not a reason to stop the host: the partitions start from the group's committed offsets, and records
    /// applied already are skipped as duplicates.
    /// </summary>
    [Fact]
    public async Task StoreDownWhileOffsetsAreReadOnAssignment_TheConsumerGoesOn_FromTheGroupsOffsets_AndEveryEffectHappensOnce()
    {
        var topic = broker.CreateTopic(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await StoreConsumer.ProduceIdsAsync(broker.Cluster, topic, Enumerable.Range(0, 40));
        var path = Path.Combine(Path.GetTempPath(), $"kafka-reliable-{Guid.NewGuid():N}.db");
        var options = new SqliteIdempotencyOptions { ConnectionString = $"Data Source={path}", Transactional = true, StoreOffsets = true };
        var handler = new EffectCounter();
        var outage = new OffsetsOutage();
        void UseStore(IReliableConsumerBuilder<int> b) => b.UseTransactionalIdempotencyStore(_ => outage.Wrap(new SqliteIdempotencyStore(options)));

        await using (var first = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, UseStore))
        {
            await Eventually.TrueAsync(() => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == 40, "the first run commits every record");
        }

        // As if the process had died after its database commits and before its Kafka commits; then the store is down at assignment.
        StoreConsumer.ResetOffsets(broker.Cluster.BootstrapServers, topic, group, 2);
        outage.Down = true;
        await using var second = await StoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, handler, UseStore);
        await Eventually.TrueAsync(() => second.Logs.CountOf(409) >= 1, "the consumer says that it could not read the stored offsets", state: () => second.Logs.Dump());
        await StoreConsumer.ProduceIdsAsync(broker.Cluster, topic, Enumerable.Range(40, 10));
        await Eventually.TrueAsync(() => handler.Total == 50 && broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == 50,
            "the records produced since are handled, and every partition is committed to its end", state: () => second.Logs.Dump());

        Assert.True(second.Host.Services.GetService(typeof(Microsoft.Extensions.Hosting.IHostApplicationLifetime)) is Microsoft.Extensions.Hosting.IHostApplicationLifetime { ApplicationStopping.IsCancellationRequested: false }, "the host keeps running");
        Assert.Equal(0, second.Logs.CountOf(104) + second.Logs.CountOf(105));
        Assert.True(second.Logs.CountOf(212) >= 40, "the records applied in the first run are skipped as duplicates");
        Assert.All(handler.Effects, e => Assert.True(e.Value == 1, $"message {e.Key} had {e.Value} effects"));
    }

    /// <summary>A transactional store whose stored offsets cannot be read while <see cref="Down"/> is set, as if its database were down.</summary>
    private sealed class OffsetsOutage
    {
        public volatile bool Down;

        public ITransactionalIdempotencyStore Wrap(SqliteIdempotencyStore store) => new Store(store, this);

        private sealed class Store(SqliteIdempotencyStore inner, OffsetsOutage outage) : ITransactionalIdempotencyStore, IStoredOffsets
        {
            public ValueTask<IdempotencyTransaction?> BeginTransactionAsync(string key, MessageContext context, CancellationToken cancellationToken) =>
                inner.BeginTransactionAsync(key, context, cancellationToken);

            public IReadOnlyList<StoredOffset> GetStoredOffsets(string groupId, IReadOnlyList<Confluent.Kafka.TopicPartition> partitions) =>
                outage.Down ? throw new SqliteException("unable to open database file", 14) : inner.GetStoredOffsets(groupId, partitions);

            public ValueTask RecordCommittedAsync(string groupId, IReadOnlyList<Confluent.Kafka.TopicPartitionOffset> committed, CancellationToken cancellationToken) =>
                inner.RecordCommittedAsync(groupId, committed, cancellationToken);
        }
    }

    private async Task<Action<IReliableConsumerBuilder<int>>> StoreAsync(string store)
    {
        if (store == "sqlite")
        {
            var path = Path.Combine(Path.GetTempPath(), $"kafka-reliable-{Guid.NewGuid():N}.db");
            return b => b.UseSqliteIdempotency(path, o => (o.Transactional, o.StoreOffsets) = (true, true));
        }

        var connectionString = await postgres.CreateDatabaseAsync();
        return b => b.UsePostgreSqlIdempotency(connectionString, o => (o.Transactional, o.StoreOffsets) = (true, true));
    }
}
