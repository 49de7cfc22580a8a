using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Idempotency.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>
/// Retry tiers under SIGKILL (docs/failure-handling.md, "Retry tiers"): a consumer in a child process, whose records of one key
/// fail, kills itself right after a record of that key was parked behind its key, then right after the key's failed record
/// moved to its next tier (its new copy written, the old one not yet superseded); after a clean run with the dependency back,
/// every record has exactly one effect (the SQLite store is transactional) and the key's records were applied in offset order.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class RetryTierCrashTests(BrokerFixture broker)
{
    private const int Records = 2000;
    private const int Partitions = 2;
    private const string FailingKey = "k7";

    [Theory]
    [InlineData(DispatchMode.Sequential)]
    [InlineData(DispatchMode.ByKey)]
    public async Task KilledWhileRecordsMoveIntoAndBetweenTiers_LosesNothing_DuplicatesNothing_AndKeepsTheKeysOrder(DispatchMode dispatch)
    {
        var output = TestContext.Current.TestOutputHelper!;
        var path = Path.Combine(Path.GetTempPath(), $"kafka-reliable-tiers-{Guid.NewGuid():N}.db");
        var failing = path + ".failing";
        try
        {
            await using (var connection = new SqliteConnection($"Data Source={path}"))
            {
                await connection.OpenAsync(TestContext.Current.CancellationToken);
                await using var create = new SqliteCommand(
                    "PRAGMA journal_mode = WAL; CREATE TABLE effects (seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER NOT NULL, partition INTEGER NOT NULL, record_offset INTEGER NOT NULL)",
                    connection);
                await create.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
            }

            var topic = broker.CreateTopic(Partitions);
            broker.Cluster.CreateTopic(topic + ".retry", Partitions);
            broker.Cluster.CreateTopic(topic + ".dlq", 1);
            var group = "tiers-" + Guid.NewGuid().ToString("N")[..8];
            await broker.Cluster.ProduceAllAsync(topic, Enumerable.Range(0, Records).Select(id => new Message<byte[]?, byte[]?>
            {
                Key = Encoding.UTF8.GetBytes($"k{id % 100}"),
                Value = Encoding.ASCII.GetBytes(id.ToString(CultureInfo.InvariantCulture)),
            }), TestContext.Current.CancellationToken);
            await File.WriteAllTextAsync(failing, "down", TestContext.Current.CancellationToken);

            // 242: a record parked behind its key (its copy acknowledged); 241: a failed record parked or moved to its next tier.
            foreach (var (killEvent, count) in new[] { ("242", 5), ("241", 2) })
            {
                using var child = Start(topic, group, path, dispatch, failing, "--kill-on-event", killEvent, "--kill-count", count.ToString(CultureInfo.InvariantCulture));
                await Eventually.TrueAsync(() => child.Process.HasExited, $"the consumer kills itself at event {killEvent} #{count}", TimeSpan.FromSeconds(120), child.Describe);
                Assert.Contains($"killing at event {killEvent} #{count}", child.Describe(), StringComparison.Ordinal);
                output.WriteLine($"killed at event {killEvent} #{count} with {(await CountAsync(path)).Total} effects written");
            }

            File.Delete(failing);
            using (var final = Start(topic, group, path, dispatch, failing))
            {
                await Eventually.TrueAsync(
                    () => CountAsync(path).GetAwaiter().GetResult().Total >= Records && broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records,
                    "the final run writes every effect and commits every record",
                    TimeSpan.FromSeconds(180),
                    () => $"effects {CountAsync(path).GetAwaiter().GetResult().Total}; {final.Describe()}");
                await Eventually.TrueAsync(
                    () => broker.Cluster.GetHighWatermarks(topic + ".retry") is var retryEnds && broker.Cluster.GetCommittedOffsets(group, topic + ".retry").All(c => c.Value == retryEnds[c.Key]),
                    "the retry topic is committed to its end: nothing is parked any more",
                    TimeSpan.FromSeconds(60),
                    final.Describe);
                await final.TerminateAsync();
                Assert.True(final.Process.ExitCode == 0, $"the final run stops cleanly: {final.Describe()}");
            }

            var (effects, distinct) = await CountAsync(path);
            var order = await FailingKeyOrderAsync(path);
            output.WriteLine($"{dispatch}: records {Records}, effects {effects}, distinct {distinct}; {FailingKey}'s effects in order: {string.Join(", ", order)}");
            Assert.Equal(0, effects - distinct);
            Assert.Equal(Records, distinct);
            Assert.Equal(Enumerable.Range(0, Records / 100).Select(i => (i * 100) + 7), order);
            Assert.Equal(0, broker.Cluster.GetHighWatermarks(topic + ".dlq")[0]);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (var file in new[] { path, path + "-wal", path + "-shm", failing })
            {
                File.Delete(file);
            }
        }
    }

    private CrashHostProcess Start(string topic, string group, string path, DispatchMode dispatch, string failing, params string[] more) =>
        CrashHostProcess.Start([broker.Cluster.BootstrapServers, topic, group, "sqlite", path, dispatch.ToString(), "--retry-tiers", "100", "--fail-key", FailingKey, "--fail-while", failing, .. more]);

    private static async Task<(long Total, long Distinct)> CountAsync(string path)
    {
        await using var connection = new SqliteConnection($"Data Source={path};Pooling=false");
        await connection.OpenAsync();
        await using var count = new SqliteCommand("SELECT count(*), count(DISTINCT id) FROM effects", connection);
        await using var reader = await count.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    private static async Task<List<int>> FailingKeyOrderAsync(string path)
    {
        await using var connection = new SqliteConnection($"Data Source={path};Pooling=false");
        await connection.OpenAsync();
        await using var select = new SqliteCommand("SELECT id FROM effects WHERE id % 100 = 7 ORDER BY seq", connection);
        await using var reader = await select.ExecuteReaderAsync();
        var ids = new List<int>();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetInt32(0));
        }

        return ids;
    }
}
