using System.Collections.Concurrent;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Consuming;

public sealed class RebalanceHookTests(KafkaBrokerFixture broker)
{
    [Theory]
    [InlineData(GroupProtocol.Classic)]
    [InlineData(GroupProtocol.Consumer)]
    public async Task OnAssigned_SeesThePartitions_AndItsSeekDecidesWhereAPartitionStarts(GroupProtocol protocol)
    {
        using var speaking = TestConsumer.UseProtocol(protocol);
        var topic = await broker.CreateTopicAsync(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(20, 2));
        var hooks = new RecordingHooks { SeekOnAssign = (new TopicPartition(topic, 0), 5) };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, customize: b => b.WithRebalanceHandler<RecordingHooks>(), services: s => s.AddSingleton(hooks));
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2).Values.Sum() == 20, "both partitions are committed to their end");

        Assert.Equal([0, 1], hooks.Assigned.Select(p => p.Partition.Value).Order());
        Assert.DoesNotContain(consumer.Handler.Handled, h => h.Partition == 0 && h.Offset < 5);
        Assert.Equal(5, consumer.Handler.Handled.Count(h => h.Partition == 0));
        Assert.Equal(10, consumer.Handler.Handled.Count(h => h.Partition == 1));
    }

    [Theory]
    [InlineData(GroupProtocol.Classic)]
    [InlineData(GroupProtocol.Consumer)]
    public async Task OnRevoked_RunsAfterTheInFlightRecordFinishedAndItsOffsetWasCommitted(GroupProtocol protocol)
    {
        using var speaking = TestConsumer.UseProtocol(protocol);
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(5, 1));
        var inFlight = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new RecordingHandler
        {
            Behavior = async (message, _, _) =>
            {
                if (message.Id == 4)
                {
                    inFlight.SetResult();
                    await release.Task;
                }
            },
        };
        var hooks = new RecordingHooks();
        hooks.OnRevoke = _ => hooks.SeenAtRevoke = (handler.Handled.Count, broker.GetCommittedOffsets(group, topic, 1)[0]);

        var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, customize: b => b.WithRebalanceHandler<RecordingHooks>(), services: s => s.AddSingleton(hooks));
        await inFlight.Task.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        var stopping = consumer.StopAsync();
        await Eventually.TrueAsync(() => consumer.Logs.CountOf(101) > 0, "the consumer starts stopping");
        Assert.Empty(hooks.Revoked);

        release.SetResult();
        await stopping;
        await consumer.DisposeAsync();

        Assert.Equal([0], hooks.Revoked.Select(p => p.Partition.Value));
        Assert.Equal((5, 5L), hooks.SeenAtRevoke);
    }

    public sealed class RecordingHooks : IRebalanceHandler
    {
        public ConcurrentQueue<TopicPartition> Assigned { get; } = new();

        public ConcurrentQueue<TopicPartition> Revoked { get; } = new();

        public (TopicPartition Partition, long Offset)? SeekOnAssign { get; set; }

        public Action<IReadOnlyList<TopicPartition>>? OnRevoke { get; set; }

        public Action<IReadOnlyList<TopicPartition>>? OnLose { get; set; }

        public ConcurrentQueue<TopicPartition> Lost { get; } = new();

        public (int Handled, long Committed) SeenAtRevoke { get; set; }

        public ValueTask OnAssignedAsync(PartitionAssignment assignment, CancellationToken cancellationToken)
        {
            foreach (var partition in assignment.Partitions)
            {
                Assigned.Enqueue(partition);
            }

            if (SeekOnAssign is { } seek && assignment.Partitions.Contains(seek.Partition))
            {
                assignment.Seek(seek.Partition, seek.Offset);
            }

            return ValueTask.CompletedTask;
        }

        public ValueTask OnRevokedAsync(IReadOnlyList<TopicPartition> partitions, CancellationToken cancellationToken)
        {
            OnRevoke?.Invoke(partitions);
            foreach (var partition in partitions)
            {
                Revoked.Enqueue(partition);
            }

            return ValueTask.CompletedTask;
        }

        public ValueTask OnLostAsync(IReadOnlyList<TopicPartition> partitions, CancellationToken cancellationToken)
        {
            OnLose?.Invoke(partitions);
            foreach (var partition in partitions)
            {
                Lost.Enqueue(partition);
            }

            return ValueTask.CompletedTask;
        }
    }
}

public sealed class RevokeDrainTests(KafkaBrokerFixture broker)
{
    [Theory]
    [InlineData(GroupProtocol.Classic)]
    [InlineData(GroupProtocol.Consumer)]
    public async Task Revoke_WithASlowInFlightRecord_WaitsForIt_ThenCommitsItFromTheRevokingMember(GroupProtocol protocol)
    {
        using var speaking = TestConsumer.UseProtocol(protocol);
        var topic = await broker.CreateTopicAsync(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(20, 2));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var blocked = 0;
        var first = new RecordingHandler
        {
            // Offset 3 of each partition is slow on the first member: whichever partition is revoked has a record in flight.
            Behavior = async (_, context, _) =>
            {
                if (context.Offset == 3)
                {
                    Interlocked.Increment(ref blocked);
                    await release.Task;
                }
            },
        };
        var hooks = new RebalanceHookTests.RecordingHooks();
        var slowRecordDoneWhenRevokeHookRan = false;
        hooks.OnRevoke = partitions => slowRecordDoneWhenRevokeHookRan = first.Handled.Any(h => h.Partition == partitions[0].Partition.Value && h.Offset == 3);

        await using var a = await TestConsumer.StartAsync(broker, topic, group, first, customize: b => b.WithRebalanceHandler<RebalanceHookTests.RecordingHooks>(), services: s => s.AddSingleton(hooks));
        await Eventually.TrueAsync(() => Volatile.Read(ref blocked) == 2, "both partitions have their slow record in flight");

        await using var b = await TestConsumer.StartAsync(broker, topic, group);
        await Eventually.TrueAsync(() => a.Logs.CountOf(407) >= 1, "the first member starts revoking a partition for the second", state: () => a.Logs.Dump());
        Assert.Empty(hooks.Revoked);

        release.SetResult();
        await Eventually.TrueAsync(() => !hooks.Revoked.IsEmpty, "the revoke completes once the slow record is done");
        var revoked = Assert.Single(hooks.Revoked).Partition.Value;
        Assert.True(slowRecordDoneWhenRevokeHookRan, "the slow record was finished before the partition was released");

        await Eventually.TrueAsync(
            () => broker.GetCommittedOffsets(group, topic, 2).SequenceEqual(broker.GetHighWatermarks(topic, 2)),
            "both partitions are committed to their end by their owners");

        // On a real broker, the revoking member's commit covers the slow record, so its next owner never handles it. The
        // embedded broker refuses commits during a rebalance (see GroupAndLifecycleTests): there, the refusal is reported and
        // the next owner handles the record again, at least once.
        var repeated = b.Handler.Handled.Any(h => h.Partition == revoked && h.Offset <= 3);
        if (broker.Embedded is null)
        {
            Assert.False(repeated, "the next owner handled a record the revoking member had committed");
        }
        else if (repeated)
        {
            Assert.True(a.Logs.CountOf(403) > 0, "the next owner repeated records without the refused commit being reported");
        }
    }
}
