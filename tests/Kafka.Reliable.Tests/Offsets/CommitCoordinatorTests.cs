using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Offsets;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Offsets;

/// <summary>Watermark commits of the poll thread, against a scripted client (no librdkafka).</summary>
public sealed class CommitCoordinatorTests
{
    [Fact]
    public void Commit_OnlyPartitionsWhoseWatermarkMoved_AreCommittedAtTheirWatermark()
    {
        var context = IdleWorkers.Context();
        var partitions = new AssignedPartitions();
        using var moved = Add(partitions, context, 0, records: 3, done: 2);
        using var still = Add(partitions, context, 1, records: 2, done: 0);
        var (client, calls) = ScriptedClient.Create<IConsumer<byte[]?, byte[]?>>();
        var commits = new CommitCoordinator(context, partitions);

        Assert.True(commits.Commit(client, partitions.Workers));

        var commit = Assert.Single(calls, c => c.Method == nameof(IConsumer<byte[]?, byte[]?>.Commit));
        var offsets = (IEnumerable<TopicPartitionOffset>)commit.Args[0]!;
        Assert.Equal([new TopicPartitionOffset("t", 0, 2)], offsets);
        Assert.Equal(2, moved.LastCommitted);
        Assert.Equal(-1, still.LastCommitted);

        // Nothing moved since: nothing to commit, and no call.
        Assert.True(commits.Commit(client, partitions.Workers));
        Assert.Single(calls, c => c.Method == nameof(IConsumer<byte[]?, byte[]?>.Commit));
    }

    [Fact]
    public void Commit_BrokerRefusesOnePartition_MarksOnlyTheOthersCommittedAndReportsFailure()
    {
        var context = IdleWorkers.Context();
        var partitions = new AssignedPartitions();
        using var accepted = Add(partitions, context, 0, records: 2, done: 2);
        using var refused = Add(partitions, context, 1, records: 2, done: 1);
        var (client, _) = ScriptedClient.Create<IConsumer<byte[]?, byte[]?>>((method, args) => method == nameof(IConsumer<byte[]?, byte[]?>.Commit)
            ? (true, new TopicPartitionOffsetException(
            [
                new TopicPartitionOffsetError(new TopicPartitionOffset("t", 0, 2), new Error(ErrorCode.NoError)),
                new TopicPartitionOffsetError(new TopicPartitionOffset("t", 1, 1), new Error(ErrorCode.RebalanceInProgress)),
            ]))
            : (false, null));
        var commits = new CommitCoordinator(context, partitions);

        Assert.False(commits.Commit(client, partitions.Workers), "a commit with a refused partition should report failure so that it is retried");
        Assert.Equal(2, accepted.LastCommitted);
        Assert.Equal(-1, refused.LastCommitted);
    }

    [Fact]
    public void Commit_Transactional_NeverCommitsOutsideATransaction()
    {
        var context = IdleWorkers.Context(o => o.Commit.Strategy = CommitStrategy.Transactional);
        var partitions = new AssignedPartitions();
        using var worker = Add(partitions, context, 0, records: 2, done: 2);
        var (client, calls) = ScriptedClient.Create<IConsumer<byte[]?, byte[]?>>();
        var commits = new CommitCoordinator(context, partitions);

        Assert.True(commits.Commit(client, partitions.Workers));

        Assert.DoesNotContain(calls, c => c.Method == nameof(IConsumer<byte[]?, byte[]?>.Commit));
        Assert.Equal(2, worker.LastCommitted);
    }

    [Fact]
    public void Commit_WithAStoreThatKeepsOffsets_CommitsOnlyWhatTheStoreRecorded_SoAResetIsAlwaysRecognized()
    {
        var context = IdleWorkers.Context();
        var partitions = new AssignedPartitions();
        using var worker = Add(partitions, context, 0, records: 3, done: 3);
        var (client, calls) = ScriptedClient.Create<IConsumer<byte[]?, byte[]?>>();
        var store = new RecordingStore { Down = true };
        var commits = new CommitCoordinator(context, partitions);
        commits.RecordIn(store);
        commits.Assigned(new TopicPartition("t", 0), -1);

        // The store is down: the watermark (3) is handed to it, but nothing it has not recorded reaches the group, and the
        // commit reports itself not done, so that the scheduler tries again soon.
        Assert.False(commits.Commit(client, partitions.Workers, flush: true), "a commit held back for the store should report itself not done");
        Assert.DoesNotContain(calls, c => c.Method == nameof(IConsumer<byte[]?, byte[]?>.Commit));
        Assert.Equal(-1, worker.LastCommitted);

        // Back up: the next commit hands it over again; once recorded, the group gets it.
        store.Down = false;
        Assert.True(commits.Commit(client, partitions.Workers, flush: true));
        Assert.Equal([3L], store.Recorded);
        var commit = Assert.Single(calls, c => c.Method == nameof(IConsumer<byte[]?, byte[]?>.Commit));
        Assert.Equal([new TopicPartitionOffset("t", 0, 3)], (IEnumerable<TopicPartitionOffset>)commit.Args[0]!);
    }

    /// <summary>A store that keeps offsets, and can be down.</summary>
    private sealed class RecordingStore : Kafka.Reliable.Idempotency.IStoredOffsets
    {
        public bool Down { get; set; }

        public List<long> Recorded { get; } = [];

        public IReadOnlyList<Kafka.Reliable.Idempotency.StoredOffset> GetStoredOffsets(string groupId, IReadOnlyList<TopicPartition> partitions) => [];

        public ValueTask RecordCommittedAsync(string groupId, IReadOnlyList<TopicPartitionOffset> committed, CancellationToken cancellationToken)
        {
            if (Down)
            {
                throw new InvalidOperationException("store down");
            }

            Recorded.AddRange(committed.Select(c => c.Offset.Value));
            return ValueTask.CompletedTask;
        }
    }

    private static PartitionWorker Add(AssignedPartitions partitions, ConsumerContext context, int partition, int records, int done)
    {
        var worker = IdleWorkers.Worker(context, partition);
        partitions.TryAdd(worker);
        for (var offset = 0; offset < records; offset++)
        {
            worker.Enqueue(IdleWorkers.Record(partition, offset, 10));
        }

        IdleWorkers.Complete(worker, done);
        return worker;
    }
}
