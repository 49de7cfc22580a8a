using System.Collections.Concurrent;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Consuming;

public sealed class FailureAndOrderTests(KafkaBrokerFixture broker)
{
    /// <summary>
    /// seeds/004's bug: a failed record followed by successful ones let the next commit pass the failed record, which was lost.
    /// Here record 5 fails twice then succeeds; the committed offset never passes 5 until 5 is done, and nothing is lost.
    /// </summary>
    [Theory]
    [InlineData(CommitStrategy.PerMessage)]
    [InlineData(CommitStrategy.Periodic)]
    public async Task FailingRecord_FailsTwiceThenSucceeds_CommitNeverPassesItAndNothingIsLost(CommitStrategy strategy)
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(21, 1));
        var committedDuringFailures = new ConcurrentQueue<long>();
        var handler = new RecordingHandler
        {
            Behavior = async (message, context, _) =>
            {
                if (context.Offset == 5 && context.Attempt <= 2)
                {
                    if (context.Attempt == 2)
                    {
                        // Give the commit machinery every chance to commit past 5 if it were going to.
                        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 5, "records 0-4 are committed");
                    }

                    committedDuringFailures.Enqueue(broker.GetCommittedOffsets(group, topic, 1)[0]);
                    throw new InvalidOperationException($"load of order {message.Id} failed (attempt {context.Attempt})");
                }
            },
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.Commit.Strategy = strategy;
            o.Commit.Interval = TimeSpan.FromMilliseconds(50);
        });
        await Eventually.TrueAsync(() => handler.Handled.Count >= 21, "all 21 records are handled");
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 21, "the committed offset reaches 21");
        await consumer.StopAsync();

        Assert.Equal(Enumerable.Range(0, 21).Select(i => (long)i), handler.Handled.Select(h => h.Offset));
        Assert.Equal([1, 2, 3], handler.Attempts.Where(a => a.Offset == 5).Select(a => a.Attempt));
        Assert.Equal(2, committedDuringFailures.Count);
        Assert.All(committedDuringFailures, c => Assert.True(c <= 5, $"the committed offset was {c} while record 5 was failing"));
        Assert.True(consumer.Logs.CountOf(200) >= 2, "each failed attempt is logged");
    }

    /// <summary>
    /// G1 where it can actually be broken: with concurrent dispatch, later records of the partition finish while an earlier one
    /// is still failing, so a commit of "last done + 1" would pass the unfinished record. Partition 1 serves as the clock: a
    /// record of it produced after records 6-20 of partition 0 are done is committed in a commit round that saw them done.
    /// </summary>
    [Theory]
    [InlineData(DispatchMode.ByKey, CommitStrategy.PerMessage)]
    [InlineData(DispatchMode.ByKey, CommitStrategy.Periodic)]
    [InlineData(DispatchMode.Unordered, CommitStrategy.PerMessage)]
    [InlineData(DispatchMode.Unordered, CommitStrategy.Periodic)]
    public async Task ConcurrentDispatch_LaterRecordsDoneWhileAnEarlierOneFails_CommitStaysAtTheUnfinishedRecord(DispatchMode mode, CommitStrategy strategy)
    {
        var topic = await broker.CreateTopicAsync(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(21, 1));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new RecordingHandler
        {
            Behavior = async (message, context, _) =>
            {
                if (context.Partition == 0 && context.Offset == 5 && !release.Task.IsCompleted)
                {
                    await release.Task;
                    throw new TimeoutException($"load of order {message.Id} failed (attempt {context.Attempt})");
                }
            },
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.Dispatch = mode;
            o.MaxInFlight = 32;
            o.Commit.Strategy = strategy;
            o.Commit.Interval = TimeSpan.FromMilliseconds(50);
        });
        await Eventually.TrueAsync(() => handler.Handled.Count(h => h.Partition == 0) == 20, "every record of partition 0 but record 5 is handled");
        await broker.ProduceAsync(topic, TestConsumer.Events(1, 1, firstId: 100).Select(e => (1, e.Key, e.Value)));
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2)[1] == 1, "partition 1's record is committed: a commit round ran after records 6-20 were done");

        Assert.Equal(5, broker.GetCommittedOffsets(group, topic, 2)[0]);

        release.SetResult();
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2)[0] == 21, "partition 0 is committed to its end once record 5 succeeds on its retry");
        Assert.Equal(Enumerable.Range(0, 21).Select(i => (long)i), handler.Handled.Where(h => h.Partition == 0).Select(h => h.Offset).Order());
        Assert.Equal([1, 2], handler.Attempts.Where(a => a.Partition == 0 && a.Offset == 5).Select(a => a.Attempt));
    }

    [Fact]
    public async Task FailingRecord_BlocksOnlyItsOwnPartition()
    {
        var topic = await broker.CreateTopicAsync(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(200, 2));
        using var release = new SemaphoreSlim(0);
        var handler = new RecordingHandler
        {
            Behavior = async (message, context, ct) =>
            {
                if (context.Partition == 0 && context.Offset == 3)
                {
                    await release.WaitAsync(ct);
                }
            },
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler);
        await Eventually.TrueAsync(() => handler.Handled.Count(h => h.Partition == 1) == 100, "partition 1 is handled completely while partition 0 is held");
        Assert.Equal(3, handler.Handled.Count(h => h.Partition == 0));
        release.Release();
        await Eventually.TrueAsync(() => handler.Handled.Count == 200, "partition 0 finishes once released");
    }

    [Fact]
    public async Task SmallBuffer_LongBacklog_PausesAndResumesWithoutLossOrReorder()
    {
        var topic = await broker.CreateTopicAsync(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(1200, 2));

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, configure: o => { o.PartitionBufferSize = 16; });
        await Eventually.TrueAsync(() => consumer.Handler.Handled.Count >= 1200, "1200 records are handled", state: () =>
            $"{consumer.Handler.Handled.Count} handled; last offset per partition: {string.Join(", ", consumer.Handler.Handled.GroupBy(h => h.Partition).Select(g => $"{g.Key}:{g.Max(h => h.Offset)}"))}; " +
            $"paused {consumer.Logs.CountOf(201)}, resumed {consumer.Logs.CountOf(202)}; {consumer.Logs.Dump(12)}");
        await consumer.StopAsync();

        Assert.Equal(Enumerable.Range(0, 1200), consumer.Handler.Handled.Select(h => h.Id).Order());
        foreach (var partition in consumer.Handler.Handled.GroupBy(h => h.Partition))
        {
            Assert.Equal(partition.Select(h => h.Offset).Order(), partition.Select(h => h.Offset));
        }

        Assert.True(consumer.Logs.CountOf(201) > 0, "a partition with a full buffer is paused");
        Assert.True(consumer.Logs.CountOf(202) > 0, "a paused partition is resumed once drained");
        Assert.Equal(broker.GetHighWatermarks(topic, 2), broker.GetCommittedOffsets(group, topic, 2));
    }
}
