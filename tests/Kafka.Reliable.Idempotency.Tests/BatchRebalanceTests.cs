using Kafka.Reliable.Idempotency.Tests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>
/// Batches in flight (waiting inside their transaction, rows inserted and not committed) when the group rebalances or the
/// host stops: each batch either completes within the drain or is rolled back, and its records are then handled once more,
/// by the partition's next owner or after a restart; every record ends with exactly one row.
/// </summary>
public sealed class BatchRebalanceTests(BrokerFixture broker, PostgresServer postgres)
{
    /// <summary>
    /// A second member joins while a batch of every partition waits at a gate inside its transaction. Released during the
    /// revoke drain, the batches commit and the new owner starts after them; released only after the revoke timeout, the
    /// revoked partitions' batches are cancelled and rolled back, and the new owner handles their records.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task SecondMemberJoinsWhileBatchesWaitInsideTheirTransactions_EveryRecordHasExactlyOneRow_NothingIsLost(bool releasedDuringTheDrain)
    {
        const int Records = 2000;
        const int Partitions = 4;
        var topic = broker.CreateTopic(Partitions);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await BatchStoreConsumer.ProduceIdsAsync(broker.Cluster, topic, [.. Enumerable.Range(0, Records)]);
        await using var database = await EffectsDatabase.CreateAsync("pg", postgres);
        var gate = new BatchGate();
        var firstHandler = new BatchEffectWriter(database) { AfterInsert = gate.WaitAsync };
        var secondHandler = new BatchEffectWriter(database);
        void Configure(ReliableConsumerOptions o)
        {
            o.Batch.MaxSize = 100;
            o.RevokeTimeout = releasedDuringTheDrain ? TimeSpan.FromSeconds(90) : TimeSpan.FromSeconds(2);
        }

        var first = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, firstHandler, Configure, minimumLevel: LogLevel.Debug);
        try
        {
            await Eventually.TrueAsync(() => gate.Waiting == Partitions, $"a batch of each of the {Partitions} partitions waits at the gate inside its transaction", state: () => $"{gate.Waiting} waiting; {first.Logs.Dump(20)}");
            await using var second = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, secondHandler, Configure);
            await Eventually.TrueAsync(() => first.Logs.CountOf(407) >= 1, "the first member starts draining the partitions the rebalance revokes (log 407)", state: () => first.Logs.Dump(20));
            if (releasedDuringTheDrain)
            {
                Assert.True(gate.Waiting == Partitions, $"expected every gated batch still in flight when the revoke drain starts; {gate.Waiting} of {Partitions} are");
                Assert.True((await database.CountAsync()).Rows == 0, "expected no row committed while every batch waits at the gate");
            }
            else
            {
                await Eventually.TrueAsync(() => first.Logs.CountOf(103) >= 1, "the revoke drain times out and cancels the revoked partitions' batches (log 103)", state: () => first.Logs.Dump(20));
            }

            gate.Open();
            await Eventually.TrueAsync(
                () => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records && database.CountAsync().GetAwaiter().GetResult().Ids == Records,
                $"every one of the {Records} records has a row and is committed",
                state: () => $"rows {database.CountAsync().GetAwaiter().GetResult()}, committed {broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum()}; first: {first.Logs.Dump(15)}{Environment.NewLine}second: {second.Logs.Dump(15)}");
            Assert.True(first.Logs.CountOf(401) >= 1, $"expected the first member to finish the revoke (log 401); {first.Logs.Dump(20)}");
        }
        finally
        {
            gate.Open();
            await first.DisposeAsync();
        }

        var rows = await database.ReadAsync();
        EffectChecks.ExactlyOnce(rows, Enumerable.Range(0, Records));
        var moved = secondHandler.Calls.Select(c => c.Partition).Distinct().Order().ToList();
        Assert.True(moved.Count > 0, "expected the second member to handle batches of the partitions it was given");
        var callsOfSecond = secondHandler.Succeeded.Select(c => c.Call).ToHashSet();
        var heldOfMoved = gate.Held.Where(h => moved.Contains(h.Partition)).ToList();
        Assert.True(heldOfMoved.Count > 0, $"expected gated batches on the partitions that moved ({string.Join(", ", moved)}); gated: {string.Join(", ", gate.Held.Select(h => h.Partition))}");
        var heldIds = heldOfMoved.SelectMany(h => h.Ids).ToList();
        var writtenBySecond = rows.Where(r => heldIds.Contains(r.Id) && callsOfSecond.Contains(r.Call)).Select(r => r.Id).ToList();
        if (releasedDuringTheDrain)
        {
            // The batches completed within the drain: the new owner started after them.
            Assert.True(writtenBySecond.Count == 0, $"expected the gated batches of the moved partitions to be committed by the first member; the second wrote {writtenBySecond.Count} of their {heldIds.Count} rows");
            Assert.True(firstHandler.Calls.All(c => c.Outcome == "ok"), $"expected no batch of the first member cancelled; outcomes: {string.Join(", ", firstHandler.Calls.Select(c => c.Outcome))}");
        }
        else
        {
            // Cancelled and rolled back: the new owner handled their records again, and only its rows remain.
            var cancelled = firstHandler.Calls.Where(c => c.Outcome != "ok").ToList();
            Assert.True(
                cancelled.Count == heldOfMoved.Count && cancelled.All(c => c.Outcome is nameof(TaskCanceledException) or nameof(OperationCanceledException)),
                $"expected the {heldOfMoved.Count} gated batch(es) of the moved partitions cancelled; calls of the first member that did not succeed: {string.Join(", ", cancelled.Select(c => $"partition {c.Partition}: {c.Outcome}"))}");
            Assert.True(
                writtenBySecond.Count == heldIds.Count,
                $"expected every record of the rolled-back batches to be written by the second member; it wrote {writtenBySecond.Count} of {heldIds.Count}");
        }
    }

    /// <summary>
    /// The host is stopped while a batch waits at a gate inside its transaction. Released during the shutdown drain, the
    /// batch commits before the consumer leaves; never released, it is cancelled when the drain times out and rolled back.
    /// Either way the group's committed offsets match the rows, and a restart handles the rest, each record once.
    /// </summary>
    [Theory]
    [InlineData("pg", true)]
    [InlineData("pg", false)]
    [InlineData("sqlite", true)]
    [InlineData("sqlite", false)]
    public async Task HostStoppedWhileABatchWaitsInsideItsTransaction_ItCompletesInTheDrainOrIsRolledBack_ARestartHandlesTheRestExactlyOnce(string store, bool releasedDuringTheDrain)
    {
        const int Records = 1000;
        const int GateAfter = 200;
        var topic = broker.CreateTopic(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await BatchStoreConsumer.ProduceIdsAsync(broker.Cluster, topic, [.. Enumerable.Range(0, Records)]);
        await using var database = await EffectsDatabase.CreateAsync(store, postgres);
        var gate = new BatchGate();
        var inserted = 0;
        var firstHandler = new BatchEffectWriter(database)
        {
            // The first batches pass; from the 200th record on, every batch waits at the gate after its INSERT.
            AfterInsert = (batch, ct) => Interlocked.Add(ref inserted, batch.Count) - batch.Count >= GateAfter ? gate.WaitAsync(batch, ct) : ValueTask.CompletedTask,
        };
        void Configure(ReliableConsumerOptions o)
        {
            o.Batch.MaxSize = 50;
            o.ShutdownTimeout = releasedDuringTheDrain ? TimeSpan.FromSeconds(90) : TimeSpan.FromSeconds(2);
        }

        var first = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, firstHandler, Configure);
        try
        {
            await Eventually.TrueAsync(() => gate.Waiting >= 1, "a batch waits at the gate inside its transaction", state: () => first.Logs.Dump(20));
            var stopping = first.StopAsync();
            await Eventually.TrueAsync(() => first.Logs.CountOf(101) >= 1, "the host starts stopping and drains its partitions (log 101)", state: () => first.Logs.Dump(20));
            if (releasedDuringTheDrain)
            {
                Assert.True(gate.Waiting >= 1, "expected the gated batch still in flight when the drain starts");
                gate.Open();
            }

            await stopping.WaitAsync(TimeSpan.FromSeconds(120), TestContext.Current.CancellationToken);
            Assert.True(
                first.Logs.CountOf(103) == (releasedDuringTheDrain ? 0 : 1),
                $"expected the drain {(releasedDuringTheDrain ? "to finish in time" : "to time out (log 103)")}; log 103 seen {first.Logs.CountOf(103)} time(s); {first.Logs.Dump(20)}");
        }
        finally
        {
            gate.Open();
            await first.DisposeAsync();
        }

        var afterStop = await database.ReadAsync();
        var held = gate.Held.ToList();
        Assert.True(held.Count >= 1, "expected at least one batch to have waited at the gate");
        var heldIds = held.SelectMany(h => h.Ids).ToHashSet();
        var heldWithRows = afterStop.Count(r => heldIds.Contains(r.Id));
        if (releasedDuringTheDrain)
        {
            Assert.True(heldWithRows == heldIds.Count, $"expected the {heldIds.Count} records of the gated batches committed during the drain; {heldWithRows} have rows");
        }
        else
        {
            Assert.True(heldWithRows == 0, $"expected the gated batches rolled back when the drain timed out; {heldWithRows} of their {heldIds.Count} records have rows");
            Assert.True(
                firstHandler.Calls.Where(c => c.Outcome != "ok").All(c => c.Outcome is nameof(TaskCanceledException) or nameof(OperationCanceledException)),
                $"expected the unfinished batches cancelled; outcomes: {string.Join(", ", firstHandler.Calls.Select(c => c.Outcome))}");
        }

        // Never more committed than applied (see ShutdownDrainTimesOut_... for the records applied and not committed).
        var committed = Committed(group, topic);
        Assert.True(committed <= afterStop.Count, $"expected the group's committed offsets to cover no record without a row after the stop: {afterStop.Count} rows, {committed} committed");
        Assert.True(afterStop.Count < Records, $"expected records left for the restart; {afterStop.Count} of {Records} have rows");

        var secondHandler = new BatchEffectWriter(database);
        await using (var second = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, secondHandler, o => o.Batch.MaxSize = 50))
        {
            await Eventually.TrueAsync(
                () => Committed(group, topic) == Records,
                $"the restart commits all {Records} records",
                state: () => $"rows {database.CountAsync().GetAwaiter().GetResult()}; {second.Logs.Dump(20)}");
        }

        EffectChecks.ExactlyOnce(await database.ReadAsync(), Enumerable.Range(0, Records));
        var before = afterStop.Select(r => r.Id).ToHashSet();
        var again = secondHandler.Calls.SelectMany(c => c.Ids).Where(before.Contains).Distinct().Count();
        Assert.True(again == 0, $"expected the restart never to hand the handler a record committed before the stop; it handed {again}");
        Assert.True(
            secondHandler.Succeeded.SelectMany(c => c.Ids).Order().SequenceEqual(Enumerable.Range(0, Records).Where(id => !before.Contains(id))),
            "expected the restart to handle each record not committed before the stop, once");
    }

    /// <summary>
    /// The shutdown drain times out while a batch still holds its transaction: the records done before it (on its partition
    /// and on the others) have their rows, and their offsets must still be committed to the group when the consumer leaves,
    /// as ReliableConsumerOptions.ShutdownTimeout says ("cancels them, commits what is done, and leaves the group").
    /// </summary>
    [Theory]
    [InlineData("pg")]
    [InlineData("sqlite")]
    public async Task ShutdownDrainTimesOut_WhileABatchHoldsItsTransaction_TheRecordsDoneBeforeAreCommitted(string store)
    {
        const int Records = 400;
        const int GateAfter = 200;
        var topic = broker.CreateTopic(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await BatchStoreConsumer.ProduceIdsAsync(broker.Cluster, topic, [.. Enumerable.Range(0, Records)]);
        await using var database = await EffectsDatabase.CreateAsync(store, postgres);
        var gate = new BatchGate();
        var inserted = 0;
        var handler = new BatchEffectWriter(database)
        {
            AfterInsert = (batch, ct) => Interlocked.Add(ref inserted, batch.Count) - batch.Count >= GateAfter ? gate.WaitAsync(batch, ct) : ValueTask.CompletedTask,
        };

        var consumer = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, handler, o =>
        {
            o.Batch.MaxSize = 50;
            o.ShutdownTimeout = TimeSpan.FromSeconds(2);
        }, minimumLevel: LogLevel.Debug);
        try
        {
            await Eventually.TrueAsync(() => gate.Waiting >= 1, "a batch waits at the gate inside its transaction", state: () => consumer.Logs.Dump(20));
            await consumer.StopAsync();
        }
        finally
        {
            gate.Open();
            await consumer.DisposeAsync();
        }

        var rows = await database.ReadAsync();
        var done = rows.GroupBy(r => r.Partition).ToDictionary(g => g.Key, g => g.Max(r => r.Offset) + 1);
        var committed = broker.Cluster.GetCommittedOffsets(group, topic).ToDictionary(c => c.Key, c => Math.Max(c.Value, 0));
        Assert.True(consumer.Logs.CountOf(103) == 1, $"expected the shutdown drain to time out (log 103); {consumer.Logs.Dump(20)}");
        Assert.True(
            done.All(d => committed.GetValueOrDefault(d.Key) == d.Value),
            $"expected each partition committed up to its last record with a row ({Describe(done)}); committed {Describe(committed)}. " +
            $"The consumer's logs from the stop on:{Environment.NewLine}{string.Join(Environment.NewLine, consumer.Logs.GetSnapshot().SkipWhile(r => r.Id.Id != 101).Where(r => r.Id.Id != 502).Select(r => $"{r.Timestamp:HH:mm:ss.fff} [{r.Level} {r.Id.Id}] {r.Message}"))}");
    }

    /// <summary>The sum of the group's committed offsets, a partition without a commit counting as 0.</summary>
    private long Committed(string group, string topic) => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum(v => Math.Max(v, 0));

    private static string Describe(IReadOnlyDictionary<int, long> offsets) => string.Join(", ", offsets.OrderBy(o => o.Key).Select(o => $"{o.Key}:{o.Value}"));
}
