using System.Globalization;
using Kafka.Reliable.Idempotency.Tests.Infrastructure;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>
/// The crash test of batch handlers: a consumer in a child process writes its batches (one multi-row INSERT each) in the
/// store's transaction and is killed with SIGKILL several times: at a random point, and inside an open batch transaction
/// (rows inserted, not committed); after a final clean run, every record has exactly one row.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class BatchCrashTests(BrokerFixture broker, PostgresServer postgres)
{
    private const int Records = 20_000;
    private const int Partitions = 4;
    private const int Kills = 4;
    private const int MaxSize = 500;

    [Theory]
    [InlineData("pg")]
    [InlineData("sqlite")]
    public async Task Transactional_KilledFourTimesDuringBatches_TwiceInsideAnOpenBatchTransaction_EveryRecordHasExactlyOneRow(string store)
    {
        var output = TestContext.Current.TestOutputHelper!;
        await using var database = await EffectsDatabase.CreateAsync(store, postgres);
        var topic = broker.CreateTopic(Partitions);
        var group = "batch-crash-" + Guid.NewGuid().ToString("N")[..8];
        await BatchStoreConsumer.ProduceIdsAsync(broker.Cluster, topic, [.. Enumerable.Range(0, Records)]);
        var seed = Environment.TickCount;
        var random = new Random(seed);
        output.WriteLine($"{store}: {Records} records over {Partitions} partitions, batches of up to {MaxSize}; kill points drawn with seed {seed}");
        long Rows() => database.CountAsync().GetAwaiter().GetResult().Rows;

        // Each child stops making progress by itself a little after its kill point (--hold-after: later batches wait inside
        // their transactions), so that a slow poll here never lets it run to the end before the last kill.
        for (var kill = 1; kill <= Kills; kill++)
        {
            var insideATransaction = kill % 2 == 0;
            var before = Rows();
            var budget = random.Next(300, 1200);
            using var child = StartChild(database, topic, group, holdAfter: insideATransaction ? budget : budget + 2000);
            await Eventually.TrueAsync(
                () => child.Process.HasExited || child.Held.Count > 0 || (!insideATransaction && Rows() >= before + budget),
                insideATransaction ? $"a batch waits inside its transaction after {budget} records, before kill {kill}" : $"the consumer commits rows up to {before + budget} before kill {kill}",
                TimeSpan.FromSeconds(120),
                child.Describe);
            Assert.False(child.Process.HasExited, $"the consumer exited by itself before kill {kill}: {child.Describe()}");
            await child.KillAsync();

            var held = child.Held.ToList();
            var rows = await database.ReadAsync();
            var survived = rows.Count(r => held.Any(h => h.Call == r.Call));
            output.WriteLine(held.Count == 0
                ? $"kill {kill} (SIGKILL) at a random point, with {rows.Count} rows committed"
                : $"kill {kill} (SIGKILL) inside {held.Count} open batch transaction(s) ({string.Join(", ", held.Select(h => $"{h.Count} records of partition {h.Partition} @{h.FirstOffset}..{h.LastOffset}"))}), with {rows.Count} rows committed");
            Assert.True(survived == 0, $"expected none of the rows inserted by the batches killed inside their transactions to survive; {survived} did");
            Assert.True(rows.Count < Records, $"expected records left after kill {kill}; all {Records} have rows");
        }

        using (var final = StartChild(database, topic, group, holdAfter: null))
        {
            await Eventually.TrueAsync(
                () => Rows() >= Records && broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records,
                "the final run writes every row and commits every record",
                TimeSpan.FromSeconds(120),
                () => $"rows {Rows()}, committed {string.Join(", ", broker.Cluster.GetCommittedOffsets(group, topic).OrderBy(c => c.Key).Select(c => $"{c.Key}:{c.Value}"))}; {final.Describe()}");
            await final.TerminateAsync();
            Assert.True(final.Process.ExitCode == 0, $"expected the final run to stop cleanly (exit code 0), seen {final.Process.ExitCode}: {final.Describe()}");
        }

        var effects = await database.ReadAsync();
        var batches = effects.GroupBy(r => r.Call).Select(g => g.Count()).ToList();
        output.WriteLine($"{store}: records {Records}, kills {Kills}, rows {effects.Count}, distinct ids {effects.Select(r => r.Id).Distinct().Count()}, {batches.Count} batches committed (largest {batches.Max()})");
        EffectChecks.ExactlyOnce(effects, Enumerable.Range(0, Records));
        Assert.True(batches.Max() > 1, $"expected batches of more than one record; the largest committed batch had {batches.Max()}");
    }

    private CrashHostProcess StartChild(EffectsDatabase database, string topic, string group, int? holdAfter) =>
        CrashHostProcess.Start([
            broker.Cluster.BootstrapServers, topic, group, database.Store, database.Connection, "Sequential", "--batch", MaxSize.ToString(CultureInfo.InvariantCulture),
            .. holdAfter is { } after ? new[] { "--hold-after", after.ToString(CultureInfo.InvariantCulture) } : []]);
}
