using Kafka.Reliable.Idempotency.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>
/// The headline test of G3: a consumer in a child process writes one effect per record, in the idempotency store's
/// transaction, and is killed with SIGKILL at random points; after a final clean run, every record has exactly one effect.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class CrashTests(BrokerFixture broker, PostgresServer postgres)
{
    private const int Records = 20_000;
    private const int Partitions = 4;
    private const int Kills = 5;

    /// <summary>
    /// Every dispatch mode: under ByKey and Unordered later records commit their transactions while earlier ones still run, so
    /// the offset stored with the effects must never pass an unfinished record (it once did, and a kill then lost records).
    /// </summary>
    [Theory]
    [InlineData(DispatchMode.Sequential)]
    [InlineData(DispatchMode.ByKey)]
    [InlineData(DispatchMode.Unordered)]
    public async Task PostgreSqlTransactional_KilledFiveTimesDuring20000Records_EveryRecordHasExactlyOneEffect(DispatchMode dispatch)
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync(TestContext.Current.CancellationToken);
            await using var create = new NpgsqlCommand("CREATE TABLE effects (id integer NOT NULL, partition integer NOT NULL, record_offset bigint NOT NULL)", connection);
            await create.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }

        await RunAsync("pg", connectionString, dispatch, GroupProtocol.Classic, async () =>
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var count = new NpgsqlCommand("SELECT count(*), count(DISTINCT id) FROM effects", connection);
            await using var reader = await count.ExecuteReaderAsync();
            await reader.ReadAsync();
            return (reader.GetInt64(0), reader.GetInt64(1));
        });
    }

    [Theory]
    [InlineData(DispatchMode.Sequential, GroupProtocol.Classic)]
    [InlineData(DispatchMode.ByKey, GroupProtocol.Classic)]
    [InlineData(DispatchMode.Unordered, GroupProtocol.Classic)]
    [InlineData(DispatchMode.ByKey, GroupProtocol.Consumer)]
    public async Task SqliteTransactional_KilledFiveTimesDuring20000Records_EveryRecordHasExactlyOneEffect(DispatchMode dispatch, GroupProtocol protocol)
    {
        var path = Path.Combine(Path.GetTempPath(), $"kafka-reliable-crash-{Guid.NewGuid():N}.db");
        try
        {
            await using (var connection = new SqliteConnection($"Data Source={path}"))
            {
                await connection.OpenAsync(TestContext.Current.CancellationToken);
                await using var create = new SqliteCommand("PRAGMA journal_mode = WAL; CREATE TABLE effects (id INTEGER NOT NULL, partition INTEGER NOT NULL, record_offset INTEGER NOT NULL)", connection);
                await create.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
            }

            await RunAsync("sqlite", path, dispatch, protocol, async () =>
            {
                await using var connection = new SqliteConnection($"Data Source={path};Pooling=false");
                await connection.OpenAsync();
                await using var count = new SqliteCommand("SELECT count(*), count(DISTINCT id) FROM effects", connection);
                await using var reader = await count.ExecuteReaderAsync();
                await reader.ReadAsync();
                return (reader.GetInt64(0), reader.GetInt64(1));
            });
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (var file in new[] { path, path + "-wal", path + "-shm" })
            {
                File.Delete(file);
            }
        }
    }

    private async Task RunAsync(string store, string connection, DispatchMode dispatch, GroupProtocol protocol, Func<Task<(long Total, long Distinct)>> countEffects)
    {
        var output = TestContext.Current.TestOutputHelper!;
        var topic = broker.CreateTopic(Partitions);
        var group = "crash-" + Guid.NewGuid().ToString("N")[..8];
        await StoreConsumer.ProduceIdsAsync(broker.Cluster, topic, Enumerable.Range(0, Records));
        var seed = Environment.TickCount;
        var random = new Random(seed);
        output.WriteLine($"{store}, {dispatch}, {protocol} protocol: {Records} records over {Partitions} partitions; kill points drawn with seed {seed}");

        for (var kill = 1; kill <= Kills; kill++)
        {
            using var child = StartChild(store, topic, group, connection, dispatch, protocol);
            var (before, _) = await countEffects();
            var target = Math.Min(before + random.Next(200, 2500), Records - 1);
            await Eventually.TrueAsync(
                () => child.Process.HasExited || countEffects().GetAwaiter().GetResult().Total >= target,
                $"the consumer writes effects up to {target} before kill {kill}",
                TimeSpan.FromSeconds(120),
                child.Describe);
            Assert.False(child.Process.HasExited, $"the consumer exited by itself before kill {kill}: {child.Describe()}");
            await child.KillAsync();
            var (total, _) = await countEffects();
            output.WriteLine($"kill {kill} (SIGKILL) with {total} effects written");
        }

        using (var final = StartChild(store, topic, group, connection, dispatch, protocol))
        {
            await Eventually.TrueAsync(
                () => countEffects().GetAwaiter().GetResult().Total >= Records && broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records,
                "the final run writes every effect and commits every record",
                TimeSpan.FromSeconds(300),
                () => $"effects {countEffects().GetAwaiter().GetResult().Total}, committed {string.Join(", ", broker.Cluster.GetCommittedOffsets(group, topic).OrderBy(c => c.Key).Select(c => $"{c.Key}:{c.Value}"))}; {final.Describe()}");
            await final.TerminateAsync();
            Assert.True(final.Process.ExitCode == 0, $"the final run stops cleanly: {final.Describe()}");
        }

        var (effects, distinct) = await countEffects();
        var duplicates = effects - distinct;
        var losses = Records - distinct;
        output.WriteLine($"{store}, {dispatch}: records {Records}, kills {Kills}, effects {effects}, duplicates {duplicates}, losses {losses}");
        Assert.Equal(0, duplicates);
        Assert.Equal(0, losses);
    }

    private CrashHostProcess StartChild(string store, string topic, string group, string connection, DispatchMode dispatch, GroupProtocol protocol) =>
        CrashHostProcess.Start(broker.Cluster.BootstrapServers, topic, group, store, connection, dispatch.ToString(), "--group-protocol", protocol.ToString());
}
