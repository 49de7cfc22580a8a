using System.Globalization;
using System.Text;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Batching;

/// <summary>
/// Batches across partitions (<see cref="BatchOptions.AcrossPartitions"/>): a batch holds the records of several partitions,
/// each partition's together and in offset order, and each partition has its records in one batch at a time.
/// </summary>
public sealed class BatchAcrossPartitionsTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task ManyQuietPartitions_FillOneBatch_EachPartitionsRecordsTogetherInOffsetOrder_EveryRecordOnce_AndCommitted()
    {
        const int Partitions = 8;
        const int Records = 160;
        var topic = await broker.CreateTopicAsync(Partitions);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(Records, Partitions));

        // The linger waits for a full batch (every record), however the broker spreads its fetches over the partitions.
        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, configure: o =>
        {
            o.Batch.AcrossPartitions = true;
            o.Batch.MaxSize = Records;
            o.Batch.Linger = TimeSpan.FromSeconds(20);
            o.PartitionBufferSize = 50;
        });
        await Eventually.TrueAsync(() => consumer.Handler.Handled.Count >= Records, $"all {Records} records are handled", state: () => $"{consumer.Handler.Handled.Count} handled; {consumer.Logs.Dump(10)}");
        await Eventually.TrueAsync(
            () => broker.GetCommittedOffsets(group, topic, Partitions).Values.All(o => o == Records / Partitions), "every partition is committed to its end",
            state: () => string.Join(", ", broker.GetCommittedOffsets(group, topic, Partitions)));
        await consumer.StopAsync();

        var calls = consumer.Handler.Calls.ToList();
        Assert.Equal(Enumerable.Range(0, Records), consumer.Handler.Handled.Order());
        Assert.True(
            calls.Count == 1 && calls[0].Partitions.Distinct().Count() == Partitions,
            $"expected one batch of every partition's records; batches: {string.Join("; ", calls.Select(c => $"{c.Ids.Count} records of partitions {string.Join(',', c.Partitions.Distinct())}"))}");
        AssertPartitionsTogetherInOffsetOrder(calls, Partitions, Records / Partitions);
    }

    /// <summary>
    /// Batches bounded by MaxSize across partitions, under a steady load with no linger: each partition's records still arrive
    /// in offset order over the batches (one slice of a partition at a time), and every record is handled once. A partition
    /// buffers at most 16 records here, so a batch of 64 fills from several (a busy partition with a large buffer fills a
    /// batch alone).
    /// </summary>
    [Fact]
    public async Task UnderLoad_WithoutLinger_BatchesStayWithinMaxSize_AndEachPartitionKeepsItsOffsetOrderAcrossBatches()
    {
        const int Partitions = 6;
        const int Records = 3000;
        var topic = await broker.CreateTopicAsync(Partitions);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(Records, Partitions));

        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, configure: o =>
        {
            o.Batch.AcrossPartitions = true;
            o.Batch.MaxSize = 64;
            o.PartitionBufferSize = 16;
        });
        await Eventually.TrueAsync(
            () => broker.GetCommittedOffsets(group, topic, Partitions).Values.All(o => o == Records / Partitions), "every partition is committed to its end",
            state: () => $"{consumer.Handler.Handled.Count} handled; committed {string.Join(", ", broker.GetCommittedOffsets(group, topic, Partitions))}");
        await consumer.StopAsync();

        var calls = consumer.Handler.Calls.ToList();
        Assert.Equal(Enumerable.Range(0, Records), consumer.Handler.Handled.Order());
        Assert.All(calls, call => Assert.InRange(call.Ids.Count, 1, 64));
        Assert.True(calls.Any(c => c.Partitions.Distinct().Count() > 1), "expected some batch to hold records of several partitions");
        AssertPartitionsTogetherInOffsetOrder(calls, Partitions, Records / Partitions);
    }

    /// <summary>
    /// A batch across partitions that fails for good is bisected like any batch: only the records that fail alone are
    /// dead-lettered, each naming the size of the batch it failed in, and every other record of every partition is handled
    /// once, in offset order within its partition.
    /// </summary>
    [Fact]
    public async Task FailingBatchAcrossPartitions_IsBisected_OnlyThePoisonOfEachPartitionIsDeadLettered()
    {
        const int Partitions = 4;
        const int Records = 120;
        var topic = await broker.CreateTopicAsync(Partitions);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(Records, Partitions));
        int[] poison = [9, 42, 43, 118];
        var handler = new RecordingBatchHandler
        {
            Behavior = (batch, _) => batch.Any(item => poison.Contains(item.Message.Id))
                ? throw new NonRetryableException($"the batch holds a poison record ({batch.Count} records)")
                : ValueTask.CompletedTask,
        };

        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.Batch.AcrossPartitions = true;
            o.Batch.MaxSize = Records;
            o.Batch.Linger = TimeSpan.FromSeconds(20);
        });
        var deadLetters = broker.ReadAll(topic + ".dlq", 1, expected: poison.Length);
        await Eventually.TrueAsync(
            () => broker.GetCommittedOffsets(group, topic, Partitions).Values.All(o => o == Records / Partitions), "every partition is committed to its end",
            state: () => $"{handler.Handled.Count} handled; {consumer.Logs.Dump(20)}");
        await consumer.StopAsync();

        Assert.Equal(Enumerable.Range(0, Records).Where(id => !poison.Contains(id)), handler.Handled.Order());
        var deadIds = deadLetters.Select(d => (Partition: int.Parse(Header(d, DeadLetterHeaders.OriginalPartition), CultureInfo.InvariantCulture), Offset: long.Parse(Header(d, DeadLetterHeaders.OriginalOffset), CultureInfo.InvariantCulture)))
            .Select(p => (int)(p.Offset * Partitions) + p.Partition).Order();
        Assert.Equal(poison, deadIds);
        Assert.All(deadLetters, d => Assert.Equal(Records.ToString(CultureInfo.InvariantCulture), Header(d, DeadLetterHeaders.FailedInBatch)));
        var succeeded = handler.Calls.Where(c => c.Succeeded).ToList();
        AssertPartitionsTogetherInOffsetOrder(succeeded, Partitions, Records / Partitions, except: poison);
    }

    /// <summary>Each batch has each partition's records together, in offset order, and over the batches each partition's offsets run from 0 to its end.</summary>
    private static void AssertPartitionsTogetherInOffsetOrder(IReadOnlyList<BatchCall> calls, int partitions, int perPartition, int[]? except = null)
    {
        foreach (var call in calls)
        {
            var runs = call.Partitions.Where((p, i) => i == 0 || call.Partitions[i - 1] != p).ToList();
            Assert.True(runs.Count == runs.Distinct().Count(), $"expected each partition's records together in a batch; partitions in order: {string.Join(',', call.Partitions)}");
        }

        for (var partition = 0; partition < partitions; partition++)
        {
            var offsets = calls.SelectMany(c => c.Partitions.Zip(c.Offsets)).Where(po => po.First == partition).Select(po => po.Second).ToList();
            var expected = Enumerable.Range(0, perPartition).Select(i => (long)i).Where(o => except is null || !except.Contains((int)o * partitions + partition));
            Assert.True(expected.SequenceEqual(offsets), $"expected partition {partition}'s records in offset order, each once, over the batches; got {string.Join(',', offsets)}");
        }
    }

    private static string Header(Confluent.Kafka.ConsumeResult<byte[]?, byte[]?> record, string key) =>
        Encoding.UTF8.GetString(record.Message.Headers.GetLastBytes(key));
}
