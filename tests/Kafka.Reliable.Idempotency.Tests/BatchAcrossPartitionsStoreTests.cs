using Kafka.Reliable.Idempotency.Tests.Infrastructure;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>
/// Batches across partitions (<see cref="BatchOptions.AcrossPartitions"/>) with a transactional store: one database
/// transaction holds the rows of several partitions' records, their idempotency records and the stored offset of each of
/// those partitions.
/// </summary>
public sealed class BatchAcrossPartitionsStoreTests(BrokerFixture broker, PostgresServer postgres)
{
    /// <summary>
    /// Every record gets exactly one row, and each partition's stored offset reaches its end. Then, as if the process had died
    /// after its database commits and before its Kafka commits (the group's offsets back at 0 and no commit recorded), the
    /// restart starts every partition from its stored offset and reads nothing again: the one commit of a batch stored the
    /// offset of each of its partitions.
    /// </summary>
    [Theory]
    [InlineData("pg")]
    [InlineData("sqlite")]
    public async Task OneTransactionPerBatchOfSeveralPartitions_EveryRecordHasExactlyOneRow_AndEachPartitionsStoredOffsetReachesItsEnd(string store)
    {
        const int Records = 1200;
        const int Partitions = 6;
        var topic = broker.CreateTopic(Partitions);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await BatchStoreConsumer.ProduceIdsAsync(broker.Cluster, topic, [.. Enumerable.Range(0, Records)]);
        await using var database = await EffectsDatabase.CreateAsync(store, postgres);
        var ends = broker.Cluster.GetHighWatermarks(topic);
        static void Configure(ReliableConsumerOptions o)
        {
            o.Batch.AcrossPartitions = true;
            o.Batch.MaxSize = 300;
            o.Batch.Linger = TimeSpan.FromSeconds(5);
            o.PartitionBufferSize = 100;
        }

        await using (var first = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, configure: Configure))
        {
            await Eventually.TrueAsync(
                () => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records, $"the group's committed offsets reach the partitions' ends",
                state: () => $"committed {broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum()}, rows {database.CountAsync().GetAwaiter().GetResult()}; {first.Logs.Dump(20)}");
        }

        var rows = await database.ReadAsync();
        EffectChecks.ExactlyOnce(rows, Enumerable.Range(0, Records));
        var calls = rows.GroupBy(r => r.Call).ToList();
        Assert.True(
            calls.Any(c => c.Select(r => r.Partition).Distinct().Count() > 1),
            $"expected a batch of several partitions' records; partitions per batch: {string.Join(", ", calls.Select(c => c.Select(r => r.Partition).Distinct().Count()))}");
        foreach (var call in calls)
        {
            foreach (var partition in call.GroupBy(r => r.Partition))
            {
                var offsets = partition.Select(r => r.Offset).Order().ToList();
                Assert.True(
                    offsets.Select((o, i) => o - i).Distinct().Count() == 1,
                    $"expected a batch to hold consecutive records of each of its partitions; call {call.Key} has partition {partition.Key} at {string.Join(',', offsets)}");
            }
        }

        var stored = await database.StoredOffsetsAsync(group, topic);
        Assert.True(
            ends.All(e => stored.GetValueOrDefault(e.Key, -1) == e.Value),
            $"expected each partition's stored offset at its end ({string.Join(", ", ends.OrderBy(e => e.Key).Select(e => $"{e.Key}:{e.Value}"))}); stored {string.Join(", ", stored.OrderBy(s => s.Key).Select(s => $"{s.Key}:{s.Value}"))}");

        StoreConsumer.ResetOffsets(broker.Cluster.BootstrapServers, topic, group, Partitions);
        await database.ExecuteAsync("UPDATE kafka_reliable_idempotency_offsets SET committed_offset = -1");
        var handler = new BatchEffectWriter(database);
        await using (var second = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, handler, Configure))
        {
            await Eventually.TrueAsync(() => second.Logs.CountOf(404) + second.Logs.CountOf(410) >= Partitions, "every partition starts from the offset stored with the effects (404)", state: () => second.Logs.Dump());
            await Eventually.TrueAsync(() => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records, "the second run commits every partition to its end", state: () => second.Logs.Dump());
            Assert.True(second.SumOf(233, "Count") + second.Logs.CountOf(212) == 0, $"expected the restart to read nothing again; {second.Logs.Dump(10)}");
        }

        Assert.Empty(handler.Calls);
        EffectChecks.ExactlyOnce(await database.ReadAsync(), Enumerable.Range(0, Records));
    }

    /// <summary>
    /// A second member joins while a batch of every partition's records waits at a gate inside its transaction, and is released
    /// only after the revoke timeout: the batch is cancelled and rolled back; the records of the partitions that moved are
    /// handled by the new owner, and those of the partitions the first member kept go back to their workers, which offer them
    /// again. Every record ends with exactly one row and is committed.
    /// </summary>
    [Fact]
    public async Task SecondMemberJoinsWhileABatchOfEveryPartitionWaitsInItsTransaction_TheBatchIsRolledBack_EveryRecordHasExactlyOneRow()
    {
        const int Records = 800;
        const int Partitions = 4;
        var topic = broker.CreateTopic(Partitions);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await BatchStoreConsumer.ProduceIdsAsync(broker.Cluster, topic, [.. Enumerable.Range(0, Records)]);
        await using var database = await EffectsDatabase.CreateAsync("pg", postgres);
        var gate = new BatchGate();
        var firstHandler = new BatchEffectWriter(database) { AfterInsert = gate.WaitAsync };
        var secondHandler = new BatchEffectWriter(database);
        static void Configure(ReliableConsumerOptions o)
        {
            o.Batch.AcrossPartitions = true;
            o.Batch.MaxSize = Records;
            o.Batch.Linger = TimeSpan.FromSeconds(10);
            o.PartitionBufferSize = Records;
            o.RevokeTimeout = TimeSpan.FromSeconds(2);
        }

        var first = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, firstHandler, Configure);
        try
        {
            await Eventually.TrueAsync(() => gate.Waiting == 1, "a batch waits at the gate inside its transaction", state: () => $"{gate.Waiting} waiting; {first.Logs.Dump(20)}");
            var held = gate.Held.Single();
            Assert.True(held.Ids.Count == Records, $"expected the gated batch to hold every partition's records ({Records}); it holds {held.Ids.Count}");
            await using var second = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, secondHandler, Configure);
            await Eventually.TrueAsync(() => first.Logs.CountOf(103) >= 1, "the revoke drain times out and cancels the batch (log 103)", state: () => first.Logs.Dump(20));
            gate.Open();
            await Eventually.TrueAsync(
                () => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records && database.CountAsync().GetAwaiter().GetResult().Ids == Records,
                $"every one of the {Records} records has a row and is committed",
                state: () => $"rows {database.CountAsync().GetAwaiter().GetResult()}, committed {broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum()}; first: {first.Logs.Dump(15)}{Environment.NewLine}second: {second.Logs.Dump(15)}");
        }
        finally
        {
            gate.Open();
            await first.DisposeAsync();
        }

        EffectChecks.ExactlyOnce(await database.ReadAsync(), Enumerable.Range(0, Records));
        Assert.True(
            firstHandler.Calls.First().Outcome is nameof(TaskCanceledException) or nameof(OperationCanceledException),
            $"expected the gated batch cancelled; outcomes of the first member: {string.Join(", ", firstHandler.Calls.Select(c => c.Outcome))}");
        Assert.True(secondHandler.Succeeded.Any(), "expected the second member to handle the records of the partitions it was given");
        Assert.True(firstHandler.Succeeded.Any(), "expected the first member to handle again the records of the partitions it kept");
    }
}
