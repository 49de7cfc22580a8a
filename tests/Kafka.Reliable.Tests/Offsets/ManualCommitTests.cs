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
