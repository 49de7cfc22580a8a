using System.Collections.Concurrent;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Consuming;

public sealed class GroupAndLifecycleTests(KafkaBrokerFixture broker)
{
    [Theory]
    [InlineData("cooperative-sticky")]
    [InlineData("range")]
    [InlineData("consumer-protocol")]
    public async Task TwoConsumers_OneGroup_SplitPartitions_StoppingOneHandsItsPartitionsOverWithNothingLost(string assignmentStrategy)
    {
        const int Partitions = 6;
        var topic = await broker.CreateTopicAsync(Partitions);
        var group = "g-" + Guid.NewGuid().ToString("N");
        void Configure(ReliableConsumerOptions o)
        {
            if (assignmentStrategy == "consumer-protocol")
            {
                // KIP-848: the broker assigns, incrementally.
                o.GroupProtocol = GroupProtocol.Consumer;
            }
            else
            {
                o.KafkaSettings["partition.assignment.strategy"] = assignmentStrategy;
            }
        }

        await using var a = await TestConsumer.StartAsync(broker, topic, group, configure: Configure);
        await Eventually.TrueAsync(() => a.Logs.CountOf(400) > 0, "the first consumer gets partitions");
        await using var b = await TestConsumer.StartAsync(broker, topic, group, configure: Configure);

        // Produce in rounds until both members have handled records: that proves the partitions are split.
        var produced = 0;
        while (a.Handler.Handled.Count == 0 || b.Handler.Handled.Count == 0 || produced < 600)
        {
            await broker.ProduceAsync(topic, TestConsumer.Events(60, Partitions, firstId: produced));
            produced += 60;
            await Eventually.TrueAsync(() => a.Handler.Handled.Count + b.Handler.Handled.Count >= produced - 60, "the previous round is handled");
            Assert.True(produced < 60_000, "the second member never received partitions");
        }

        await a.StopAsync();
        await broker.ProduceAsync(topic, TestConsumer.Events(600, Partitions, firstId: produced));
        produced += 600;

        var all = () => a.Handler.Handled.Concat(b.Handler.Handled).Select(h => h.Id).Distinct().Count();
        await Eventually.TrueAsync(() => all() == produced, $"all {produced} records are handled by the two members", state: () => $"{all()} handled");
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, Partitions).SequenceEqual(broker.GetHighWatermarks(topic, Partitions)), "the remaining member commits every partition to its high watermark");
        Assert.True(b.Handler.Handled.Select(h => h.Partition).Distinct().Count() == Partitions, "the remaining member took over every partition");

        // Revoked partitions are drained and committed before they are released, so on a real broker no record is handled
        // twice. The embedded broker refuses commits while a rebalance is in progress (Kafka accepts them from the current
        // generation), so there the next owner may repeat records: at-least-once, which the assertions above hold to, and
        // the library says so in its log.
        var ids = a.Handler.Handled.Concat(b.Handler.Handled).Select(h => h.Id).ToList();
        if (broker.Embedded is null || assignmentStrategy == "consumer-protocol")
        {
            Assert.True(ids.Count == ids.Distinct().Count(), $"{ids.Count - ids.Distinct().Count()} records were handled twice. A: {a.Logs.Dump(40)}");
        }
        else if (ids.Count != ids.Distinct().Count())
        {
            Assert.True(a.Logs.CountOf(403) + b.Logs.CountOf(403) > 0, "records were repeated after a revoke without the refused commit being reported");
        }
    }

    [Theory]
    [InlineData(GroupProtocol.Classic)]
    [InlineData(GroupProtocol.Consumer)]
    public async Task SlowHandler_LongerThanMaxPollInterval_MemberIsNotEvicted(GroupProtocol protocol)
    {
        using var speaking = TestConsumer.UseProtocol(protocol);
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(5, 1));
        var handler = new RecordingHandler
        {
            // Each handler call outlasts max.poll.interval.ms (3 s) by far. (3 s, not less: a loaded CI machine must not miss a
            // heartbeat or a poll by accident, which would end the session for a reason other than the one under test.)
            Behavior = (_, context, ct) => context.Offset < 2 ? new ValueTask(Task.Delay(TimeSpan.FromSeconds(7), ct)) : ValueTask.CompletedTask,
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.KafkaSettings["session.timeout.ms"] = "3000";
            o.KafkaSettings["heartbeat.interval.ms"] = "500";
            o.KafkaSettings["max.poll.interval.ms"] = "3000";
        });
        await Eventually.TrueAsync(() => handler.Handled.Count >= 5, "the 5 records are handled");
        await consumer.StopAsync();

        Assert.Equal([0L, 1, 2, 3, 4], handler.Handled.Select(h => h.Offset));
        Assert.Equal(1, consumer.Logs.CountOf(400));
        Assert.Equal(0, consumer.Logs.CountOf(402));
        Assert.DoesNotContain(consumer.Logs.GetSnapshot(), e => e.Message.Contains("max.poll.interval", StringComparison.OrdinalIgnoreCase));
    }

    [Theory]
    [InlineData(GroupProtocol.Classic)]
    [InlineData(GroupProtocol.Consumer)]
    public async Task HostShutdown_WithRecordsInFlight_DrainsCommitsAndLeaves_RestartResumesWithoutLossOrRepeat(GroupProtocol protocol)
    {
        using var speaking = TestConsumer.UseProtocol(protocol);
        var topic = await broker.CreateTopicAsync(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(400, 2));
        using var inFlight = new SemaphoreSlim(0);
        using var release = new SemaphoreSlim(0);
        var handler = new RecordingHandler
        {
            Behavior = async (_, context, ct) =>
            {
                if (context.Offset == 50)
                {
                    inFlight.Release();
                    await release.WaitAsync(CancellationToken.None);
                }
            },
        };

        var first = await TestConsumer.StartAsync(broker, topic, group, handler);
        await inFlight.WaitAsync(TestContext.Current.CancellationToken);
        await inFlight.WaitAsync(TestContext.Current.CancellationToken);
        var stopping = first.StopAsync();
        await Eventually.TrueAsync(() => first.Logs.CountOf(101) > 0, "the consumer starts stopping");
        Assert.False(stopping.IsCompleted, "shutdown waits for the in-flight records");
        release.Release(2);
        await stopping;
        first.Host.Dispose();

        var firstRun = handler.Handled.ToList();
        Assert.Contains(firstRun, h => h.Offset == 50 && h.Partition == 0);
        Assert.Contains(firstRun, h => h.Offset == 50 && h.Partition == 1);
        Assert.Equal(1, first.Logs.CountOf(102));
        var committed = broker.GetCommittedOffsets(group, topic, 2);
        foreach (var partition in new[] { 0, 1 })
        {
            Assert.Equal(firstRun.Where(h => h.Partition == partition).Max(h => h.Offset) + 1, committed[partition]);
        }

        var rest = new RecordingHandler();
        await using var second = await TestConsumer.StartAsync(broker, topic, group, rest);
        await Eventually.TrueAsync(() => firstRun.Count + rest.Handled.Count >= 400, "the restarted consumer handles the rest", state: () => $"{firstRun.Count} + {rest.Handled.Count}");
        await second.StopAsync();

        Assert.Empty(firstRun.Select(h => h.Id).Intersect(rest.Handled.Select(h => h.Id)));
        Assert.Equal(Enumerable.Range(0, 400), firstRun.Concat(rest.Handled).Select(h => h.Id).Order());
    }

    [Theory]
    [InlineData(GroupProtocol.Classic)]
    [InlineData(GroupProtocol.Consumer)]
    public async Task Shutdown_HandlerOutlivesTimeout_IsCancelledAndItsRecordIsNotCommitted(GroupProtocol protocol)
    {
        using var speaking = TestConsumer.UseProtocol(protocol);
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(10, 1));
        var cancelled = new TaskCompletionSource();
        using var inFlight = new SemaphoreSlim(0);
        var handler = new RecordingHandler
        {
            Behavior = async (_, context, ct) =>
            {
                if (context.Offset == 4)
                {
                    inFlight.Release();
                    try
                    {
                        await Task.Delay(Timeout.Infinite, ct);
                    }
                    catch (OperationCanceledException)
                    {
                        cancelled.TrySetResult();
                        throw;
                    }
                }
            },
        };

        var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o => o.ShutdownTimeout = TimeSpan.FromMilliseconds(300));
        await inFlight.WaitAsync(TestContext.Current.CancellationToken);
        await consumer.StopAsync();
        consumer.Host.Dispose();
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

        Assert.Equal(4, broker.GetCommittedOffsets(group, topic, 1)[0]);
        Assert.Equal(1, consumer.Logs.CountOf(103));
    }
}
