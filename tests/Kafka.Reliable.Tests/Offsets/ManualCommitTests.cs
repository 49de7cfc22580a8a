using Kafka.Reliable.Idempotency;
using System.Collections.Concurrent;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Offsets;

public sealed class ManualCommitTests(KafkaBrokerFixture broker)
{
    [Theory]
    [InlineData(DispatchMode.Sequential)]
    [InlineData(DispatchMode.ByKey)]
    public async Task UnacknowledgedRecord_HoldsTheCommittedOffset_UntilItsDeferredAcknowledgementArrives(DispatchMode dispatch)
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(10, 1));
        var deferred = new ConcurrentDictionary<int, MessageAcknowledgement>();
        var handler = new RecordingHandler
        {
            Behavior = (message, context, _) =>
            {
                if (message.Id == 5)
                {
                    deferred[message.Id] = context.DeferAcknowledgement();
                }
                else
                {
                    context.Acknowledge();
                }

                return ValueTask.CompletedTask;
            },
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.Commit.Strategy = CommitStrategy.Manual;
            o.Commit.Interval = TimeSpan.FromMilliseconds(50);
            o.Dispatch = dispatch;
        });
        await Eventually.TrueAsync(() => handler.Handled.Count == 10, "the 10 records are handled");
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 5, "the records before the unacknowledged one are committed");
        Assert.False(deferred[5].IsAcknowledged);
        Assert.Equal((topic, 0, 5L), (deferred[5].Topic, deferred[5].Partition, deferred[5].Offset));

        deferred[5].Acknowledge();
        deferred[5].Acknowledge();

        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 10, "the acknowledgement releases the partition's watermark");
    }

    [Fact]
    public async Task DeferredAcknowledgementsNeverGiven_WithAnIdempotencyStore_AreHandledAgainAfterARestart_NotSkipped()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(10, 1));
        var store = new InMemoryIdempotencyStore();
        var acknowledge = false;
        var handler = new RecordingHandler
        {
            Behavior = (_, context, _) =>
            {
                // The first run defers every record (a batch written later) and stops before acknowledging any.
                var acknowledgement = context.DeferAcknowledgement();
                if (Volatile.Read(ref acknowledge))
                {
                    acknowledgement.Acknowledge();
                }

                return ValueTask.CompletedTask;
            },
        };
        void Configure(ReliableConsumerOptions o)
        {
            o.Commit.Strategy = CommitStrategy.Manual;
            o.Commit.Interval = TimeSpan.FromMilliseconds(50);
            o.Idempotency.LeaseDuration = TimeSpan.FromSeconds(1);
        }

        await using (var first = await TestConsumer.StartAsync(broker, topic, group, handler, Configure, b => b.UseIdempotencyStore(_ => store)))
        {
            await Eventually.TrueAsync(() => handler.Handled.Count == 10, "the first run handles the 10 records");
        }

        Assert.True(broker.GetCommittedOffsets(group, topic, 1)[0] <= 0, "no record was acknowledged, so nothing is committed");
        Volatile.Write(ref acknowledge, true);

        await using var second = await TestConsumer.StartAsync(broker, topic, group, handler, Configure, b => b.UseIdempotencyStore(_ => store));
        await Eventually.TrueAsync(() => handler.Handled.Count == 20, "the second run handles the 10 unacknowledged records again (their keys were never completed)", state: () => second.Logs.Dump());
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 10, "the acknowledgements complete the keys and the records");
        Assert.Equal(0, second.Logs.CountOf(212));
    }

    [Fact]
    public async Task RecordsThatNeverReachTheHandler_AreDoneWithoutAcknowledgement()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var records = TestConsumer.Events(4, 1).ToList();
        records[1] = (0, "k", "not json");
        await broker.ProduceAsync(topic, records);
        var handler = new RecordingHandler { Behavior = (_, context, _) => { context.Acknowledge(); return ValueTask.CompletedTask; } };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o => o.Commit.Strategy = CommitStrategy.Manual);

        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 4, "the dead-lettered record does not wait for an acknowledgement");
        Assert.Equal([0, 2, 3], handler.Handled.Select(h => h.Id));
    }

    [Fact]
    public void Acknowledge_WithoutTheManualStrategy_SaysWhatToSet()
    {
        var error = Assert.Throws<InvalidOperationException>(() => new MessageContext("c", "g").Acknowledge());
        Assert.Contains("Commit:Strategy = Manual", error.Message, StringComparison.Ordinal);
    }
}
