using System.Globalization;
using System.Text;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Idempotency.Tests.Infrastructure;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>
/// Batch handlers with a transactional store (SQLite, PostgreSQL): one database transaction per batch holds the handler's
/// rows (one multi-row INSERT per batch), the idempotency records of the batch's messages and the partition's stored offset.
/// </summary>
public sealed class BatchExactlyOnceTests(BrokerFixture broker, PostgresServer postgres)
{
    public static TheoryData<string> Stores => ["pg", "sqlite"];

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task TransactionalStore_2000RecordsOn2Partitions_OneInsertPerBatch_EveryRecordHasExactlyOneRow_AndTheOffsetsReachTheEnd(string store)
    {
        const int Records = 2000;
        const int MaxSize = 100;
        var topic = broker.CreateTopic(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var positions = await BatchStoreConsumer.ProduceIdsAsync(broker.Cluster, topic, [.. Enumerable.Range(0, Records)]);
        await using var database = await EffectsDatabase.CreateAsync(store, postgres);
        var ends = broker.Cluster.GetHighWatermarks(topic);

        await using (var consumer = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, configure: o => o.Batch.MaxSize = MaxSize))
        {
            await Eventually.TrueAsync(
                () => Committed(group, topic).SequenceEqual(ends.OrderBy(e => e.Key)),
                $"the group's committed offsets reach the partitions' ends ({Describe(ends)})",
                state: () => $"committed {Describe(broker.Cluster.GetCommittedOffsets(group, topic))}, rows {database.CountAsync().GetAwaiter().GetResult()}; {consumer.Logs.Dump(20)}");
        }

        var rows = await database.ReadAsync();
        EffectChecks.ExactlyOnce(rows, Enumerable.Range(0, Records));
        var misplaced = rows.Where(r => positions[r.Id] != (r.Partition, r.Offset)).Take(10).ToList();
        Assert.True(misplaced.Count == 0, $"expected each row to name its record's partition and offset; these do not: {string.Join(", ", misplaced)}");

        // One INSERT per handler call: the rows of a call are one batch, of one partition, in consecutive offsets.
        var calls = rows.GroupBy(r => r.Call).Select(g => g.OrderBy(r => r.Offset).ToList()).ToList();
        Assert.All(calls, call => Assert.True(
            call.All(r => r.Partition == call[0].Partition) && call.Select((r, i) => r.Offset - i).Distinct().Count() == 1 && call.Count <= MaxSize,
            $"expected the rows of one call to be at most {MaxSize} consecutive records of one partition; call {call[0].Call} wrote {string.Join(", ", call.Select(r => $"{r.Partition}@{r.Offset}"))}"));
        Assert.True(calls.Count(c => c.Count > 1) >= 2, $"expected batches of more than one message; batch sizes seen: {string.Join(", ", calls.Select(c => c.Count))}");
        TestContext.Current.TestOutputHelper!.WriteLine(
            $"{store}: {Records} records in {calls.Count} batches (sizes {string.Join(", ", calls.Select(c => c.Count))}); stored offsets {Describe(await database.StoredOffsetsAsync(group, topic))}");
    }

    /// <summary>
    /// As if the process had died after its database commits and before its Kafka commits (the group's offsets back at 0,
    /// and no commit recorded by the store): the restart starts each partition from the offset stored with the effects, which
    /// must be past the last batch committed, as it is past the last message with a message handler
    /// (RedeliveryTests.TransactionalStoreWithOffsets_StartsFromTheStoredOffsets_WhenTheyAreAheadOfTheGroup).
    /// </summary>
    [Theory]
    [MemberData(nameof(Stores))]
    public async Task StoredOffset_AfterTheLastBatchCommitted_IsThePartitionsEnd_SoARestartAfterACrashReadsNoBatchAgain(string store)
    {
        const int Records = 300;
        var topic = broker.CreateTopic(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await BatchStoreConsumer.ProduceIdsAsync(broker.Cluster, topic, [.. Enumerable.Range(0, Records)]);
        await using var database = await EffectsDatabase.CreateAsync(store, postgres);
        static void Configure(ReliableConsumerOptions o)
        {
            o.Batch.MaxSize = 100;
            o.Batch.Linger = TimeSpan.FromSeconds(5);
        }

        await using (var first = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, configure: Configure))
        {
            await Eventually.TrueAsync(() => broker.Cluster.GetCommittedOffsets(group, topic)[0] == Records, "the first run commits every record", state: () => first.Logs.Dump(20));
        }

        var stored = await database.StoredOffsetsAsync(group, topic);
        StoreConsumer.ResetOffsets(broker.Cluster.BootstrapServers, topic, group, 1);
        await database.ExecuteAsync("UPDATE kafka_reliable_idempotency_offsets SET committed_offset = -1");

        var handler = new BatchEffectWriter(database);
        await using (var second = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, handler, Configure))
        {
            await Eventually.TrueAsync(() => second.Logs.CountOf(404) + second.Logs.CountOf(410) >= 1, "the partition starts from the offset stored with the effects (404)", state: () => second.Logs.Dump());
            await Eventually.TrueAsync(() => broker.Cluster.GetCommittedOffsets(group, topic)[0] == Records, "the second run commits the partition to its end", state: () => second.Logs.Dump());
            var duplicates = second.SumOf(233, "Count") + second.Logs.CountOf(212);
            Assert.True(
                stored.GetValueOrDefault(0, -1) == Records && duplicates == 0,
                $"expected the stored offset after the last batch to be the partition's end ({Records}), so that the restart reads nothing again; " +
                $"stored {stored.GetValueOrDefault(0, -1)}, and the restart read {duplicates} record(s) again as duplicates; {second.Logs.Dump(10)}");
        }

        Assert.Empty(handler.Calls);
        EffectChecks.ExactlyOnce(await database.ReadAsync(), Enumerable.Range(0, Records));
    }

    /// <summary>
    /// The group's offsets are reset to 0 after a first run, and new records follow, each with an old one produced again
    /// beside it (its idempotency key is its id): every batch of the second run holds messages handled before, which the
    /// store leaves out of the batch, so the handler sees each new message once and never an old one.
    /// </summary>
    [Theory]
    [MemberData(nameof(Stores))]
    public async Task RedeliveredBatches_MessagesHandledBefore_AreLeftOut_TheHandlerNeverSeesThemAgain_AndRowsStayExactlyOnce(string store)
    {
        const int First = 600;
        const int New = 400;
        var topic = broker.CreateTopic(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await BatchStoreConsumer.ProduceIdsAsync(broker.Cluster, topic, [.. Enumerable.Range(0, First)]);
        await using var database = await EffectsDatabase.CreateAsync(store, postgres);
        static void ById(IReliableConsumerBuilder<int> b) => b.WithIdempotencyKey(static (id, _) => id.ToString(CultureInfo.InvariantCulture));
        static void Configure(ReliableConsumerOptions o)
        {
            o.Batch.MaxSize = 64;
            o.Batch.Linger = TimeSpan.FromSeconds(1);
        }

        var firstHandler = new BatchEffectWriter(database);
        await using (var first = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, firstHandler, Configure, ById))
        {
            await Eventually.TrueAsync(() => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == First, $"the first run commits its {First} records", state: () => first.Logs.Dump(20));
        }

        // New ids First.., each followed (same partition) by an id of the first run produced again.
        var second = Enumerable.Range(First, New).SelectMany(id => new[] { id, id - First }).ToList();
        await BatchStoreConsumer.ProduceIdsAsync(broker.Cluster, topic, second, key: id => id < First ? id + First : id);
        StoreConsumer.ResetOffsets(broker.Cluster.BootstrapServers, topic, group, 2);
        var total = First + second.Count;

        var handler = new BatchEffectWriter(database);
        long duplicates;
        await using (var again = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, handler, Configure, ById))
        {
            await Eventually.TrueAsync(
                () => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == total,
                $"the second run commits all {total} records (the {First} read again, the {New} new ones and the {New} produced again)",
                state: () => again.Logs.Dump(20));
            Assert.True(again.Logs.CountOf(410) == 2, $"expected both partitions to start from the reset offsets (log 410 twice), seen {again.Logs.CountOf(410)}; {again.Logs.Dump()}");
            duplicates = again.SumOf(233, "Count") + again.Logs.CountOf(212);
        }

        var seen = handler.Calls.SelectMany(c => c.Ids).ToList();
        var old = seen.Where(id => id < First).Distinct().Order().ToList();
        Assert.True(old.Count == 0, $"expected the handler of the second run never to see a message handled before; it saw {old.Count}: {string.Join(", ", old.Take(20))}");
        Assert.True(
            seen.Order().SequenceEqual(Enumerable.Range(First, New)),
            $"expected the handler of the second run to see each of the {New} new messages once; it saw {seen.Count} messages, {seen.Distinct().Count()} distinct");
        Assert.True(handler.Calls.All(c => c.Outcome == "ok"), $"expected no batch to fail; outcomes: {string.Join(", ", handler.Calls.Select(c => c.Outcome).Distinct())}");

        // A batch with messages left out has gaps in its offsets, where the messages handled before were.
        Assert.True(
            handler.Calls.Any(c => c.Ids.Count > 1 && c.Offsets[^1] - c.Offsets[0] >= c.Ids.Count),
            $"expected batches of new messages with the messages handled before left out (gaps in their offsets); batches: {string.Join("; ", handler.Calls.Select(c => $"{c.Partition}@{c.Offsets[0]}..{c.Offsets[^1]} x{c.Ids.Count}"))}");
        Assert.True(
            duplicates >= First + New,
            $"expected the {First} messages read again and the {New} produced again to be counted as duplicates (logs 233 and 212); counted {duplicates}");
        EffectChecks.ExactlyOnce(await database.ReadAsync(), Enumerable.Range(0, First + New));
    }

    /// <summary>
    /// A handler that writes its rows and then fails the batch (it throws a fatal exception, or reports the poison message
    /// with <see cref="MessageBatch{TMessage}.Fail"/>): each failed attempt is rolled back with its rows, the batch is handled
    /// again without the poison (bisected, or without the reported message), and the poison alone is dead-lettered.
    /// </summary>
    [Theory]
    [InlineData("pg", "throw")]
    [InlineData("pg", "fail")]
    [InlineData("sqlite", "throw")]
    [InlineData("sqlite", "fail")]
    public async Task PoisonInABatch_FailedAttemptsAreRolledBack_OnlyThePoisonIsDeadLettered_EveryOtherRecordHasExactlyOneRow(string store, string failure)
    {
        const int Records = 400;
        int[] poison = [37, 250, 251];
        var topic = broker.CreateTopic(2);
        broker.Cluster.CreateTopic(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await BatchStoreConsumer.ProduceIdsAsync(broker.Cluster, topic, [.. Enumerable.Range(0, Records)]);
        await using var database = await EffectsDatabase.CreateAsync(store, postgres);
        var handler = new BatchEffectWriter(database)
        {
            AfterInsert = (batch, _) =>
            {
                for (var i = 0; i < batch.Count; i++)
                {
                    if (poison.Contains(batch[i].Message))
                    {
                        var error = new NonRetryableException($"message {batch[i].Message} is poison (in a batch of {batch.Count})");
                        if (failure == "throw")
                        {
                            throw error;
                        }

                        batch.Fail(i, error);
                    }
                }

                return ValueTask.CompletedTask;
            },
        };

        List<Confluent.Kafka.ConsumeResult<byte[]?, byte[]?>> deadLetters;
        await using (var consumer = await BatchStoreConsumer.StartAsync(broker.Cluster.BootstrapServers, topic, group, database, handler, o =>
        {
            o.Batch.MaxSize = 100;
            o.Batch.Linger = TimeSpan.FromSeconds(1);
        }))
        {
            await Eventually.TrueAsync(
                () => broker.Cluster.GetCommittedOffsets(group, topic).Values.Sum() == Records,
                "every record, the poison included, is done and committed",
                state: () => consumer.Logs.Dump(20));
            deadLetters = BatchStoreConsumer.ReadAll(broker.Cluster.BootstrapServers, topic + ".dlq", 1, expected: poison.Length);
            Assert.True(
                consumer.Logs.CountOf(failure == "throw" ? 231 : 232) >= poison.Length - 1,
                $"expected the failing batches to be {(failure == "throw" ? "isolated (log 231)" : "reported (log 232)")}; {consumer.Logs.Dump()}");
        }

        Assert.Equal(poison, deadLetters.Select(d => int.Parse(Encoding.ASCII.GetString(d.Message.Value!), CultureInfo.InvariantCulture)).Order());
        Assert.All(deadLetters, d => Assert.Equal(typeof(NonRetryableException).FullName, Header(d, DeadLetterHeaders.ExceptionType)));
        Assert.All(deadLetters, d => Assert.True(
            int.Parse(Header(d, DeadLetterHeaders.FailedInBatch), CultureInfo.InvariantCulture) >= 2,
            $"expected the dead letter of {Encoding.ASCII.GetString(d.Message.Value!)} to name the batch it failed in; {DeadLetterHeaders.FailedInBatch}: {Header(d, DeadLetterHeaders.FailedInBatch)}"));

        // The failed attempts had written rows for healthy records too: none of them survived.
        var failed = handler.Calls.Where(c => c.Outcome != "ok").ToList();
        var healthyInFailed = failed.SelectMany(c => c.Ids).Where(id => !poison.Contains(id)).Distinct().Count();
        Assert.True(healthyInFailed > 0, $"expected failed attempts holding healthy records (their rows then rolled back); failed calls: {string.Join("; ", failed.Select(c => $"{c.Ids.Count} ids, {c.Outcome}"))}");
        EffectChecks.ExactlyOnce(await database.ReadAsync(), Enumerable.Range(0, Records).Except(poison));
        TestContext.Current.TestOutputHelper!.WriteLine(
            $"{store}, {failure}: {failed.Count} failed attempts with {healthyInFailed} healthy records rolled back; {handler.Calls.Count} calls in all");
    }

    private IEnumerable<KeyValuePair<int, long>> Committed(string group, string topic) => broker.Cluster.GetCommittedOffsets(group, topic).OrderBy(c => c.Key);

    private static string Describe(IReadOnlyDictionary<int, long> offsets) => string.Join(", ", offsets.OrderBy(o => o.Key).Select(o => $"{o.Key}:{o.Value}"));

    private static string Header(Confluent.Kafka.ConsumeResult<byte[]?, byte[]?> record, string key) =>
        record.Message.Headers.TryGetLastBytes(key, out var value) ? Encoding.UTF8.GetString(value) : "(none)";
}
