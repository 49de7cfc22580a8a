using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Idempotency;
using Kafka.Reliable.Offsets;
using Kafka.Reliable.Rebalance;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Rebalance;

/// <summary>The rebalance callbacks of the poll thread, against a scripted client (no librdkafka).</summary>
public sealed class RebalanceCoordinatorTests
{
    [Fact]
    public async Task OnAssignedThenOnRevoked_IncrementalCallbacks_TouchOnlyThePartitionsNamed()
    {
        var (coordinator, partitions, _) = Create(IdleWorkers.Context());
        var (client, calls) = ScriptedClient.Create<IConsumer<byte[]?, byte[]?>>();

        coordinator.OnAssigned(client, [new TopicPartition("t", 0), new TopicPartition("t", 1)]);
        var first = partitions.Snapshot.Single(w => w.TopicPartition.Partition.Value == 0);
        coordinator.OnAssigned(client, [new TopicPartition("t", 2), new TopicPartition("t", 0)]);

        Assert.Equal([0, 1, 2], partitions.Snapshot.Select(w => w.TopicPartition.Partition.Value).Order());
        Assert.Same(first, partitions.Snapshot.Single(w => w.TopicPartition.Partition.Value == 0));

        // Partition 1 has a record done: revoking it commits its watermark, and leaves partitions 0 and 2 alone.
        Assert.True(partitions.TryGet("t", 1, out var revoked));
        revoked.Enqueue(IdleWorkers.Record(1, 0, 10));
        revoked.Tracker.MarkDone(revoked.Tracker.HeadSequence);
        coordinator.OnRevoked(client, [new TopicPartitionOffset("t", 1, Offset.Unset)]);

        Assert.Equal([0, 2], partitions.Snapshot.Select(w => w.TopicPartition.Partition.Value).Order());
        var commit = Assert.Single(calls, c => c.Method == nameof(IConsumer<byte[]?, byte[]?>.Commit));
        Assert.Equal([new TopicPartitionOffset("t", 1, 1)], (IEnumerable<TopicPartitionOffset>)commit.Args[0]!);
        await revoked.Completion.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.True(revoked.IsAborted, "a revoked partition's worker should be ended");
    }

    [Fact]
    public void OnLost_RecordsDone_CommitsNothing()
    {
        var (coordinator, partitions, _) = Create(IdleWorkers.Context());
        var (client, calls) = ScriptedClient.Create<IConsumer<byte[]?, byte[]?>>();
        coordinator.OnAssigned(client, [new TopicPartition("t", 0)]);
        Assert.True(partitions.TryGet("t", 0, out var worker));
        worker.Enqueue(IdleWorkers.Record(0, 0, 10));
        worker.Tracker.MarkDone(worker.Tracker.HeadSequence);

        coordinator.OnLost([new TopicPartitionOffset("t", 0, Offset.Unset)]);

        Assert.Empty(partitions.Snapshot);
        Assert.DoesNotContain(calls, c => c.Method == nameof(IConsumer<byte[]?, byte[]?>.Commit));
        Assert.True(worker.IsAborted, "a lost partition's records should be aborted");
    }

    [Fact]
    public void OnAssigned_StoreAheadOfTheGroup_StartsFromTheStoredOffset_AndAGroupMovedBackWins()
    {
        var context = IdleWorkers.Context();
        var store = new Stored(
            new StoredOffset(new TopicPartition("t", 0), nextOffset: 50, lastCommitted: 40),
            new StoredOffset(new TopicPartition("t", 1), nextOffset: 90, lastCommitted: 80));
        context.StoredOffsets = store;
        var (coordinator, _, _) = Create(context);
        var (client, _) = ScriptedClient.Create<IConsumer<byte[]?, byte[]?>>((method, _) => method == nameof(IConsumer<byte[]?, byte[]?>.Committed)
            ? (true, new List<TopicPartitionOffset> { new("t", 0, 40), new("t", 1, 5) })
            : (false, null));

        var start = coordinator.OnAssigned(client, [new TopicPartition("t", 0), new TopicPartition("t", 1)]);

        // Partition 0: the store applied records up to 49 after the group's last commit (40): start after them. Partition 1:
        // the group's offset (5) is behind the last one this consumer committed (80), so someone reset it: the group wins.
        Assert.Equal(50, start.Single(o => o.Partition.Value == 0).Offset.Value);
        Assert.Equal(Offset.Unset, start.Single(o => o.Partition.Value == 1).Offset);
    }

    private static (RebalanceCoordinator Coordinator, AssignedPartitions Partitions, CommitCoordinator Commits) Create(ConsumerContext context)
    {
        var partitions = new AssignedPartitions();
        var commits = new CommitCoordinator(context, partitions);
        var coordinator = new RebalanceCoordinator(context, new Done(), partitions, new FlowControl(context), commits);
        return (coordinator, partitions, commits);
    }

    private sealed class Done : Kafka.Reliable.Pipeline.IRecordProcessor
    {
        public ValueTask<Kafka.Reliable.Pipeline.ProcessingOutcome> ProcessAsync(MessageContext context, CancellationToken cancellationToken) =>
            ValueTask.FromResult(Kafka.Reliable.Pipeline.ProcessingOutcome.Success);
    }

    private sealed class Stored(params StoredOffset[] offsets) : IStoredOffsets
    {
        public IReadOnlyList<StoredOffset> GetStoredOffsets(string groupId, IReadOnlyList<TopicPartition> partitions) => offsets;
    }
}
