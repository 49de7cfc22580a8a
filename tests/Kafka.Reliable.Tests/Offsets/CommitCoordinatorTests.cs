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
