using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Idempotency;
using Kafka.Reliable.Offsets;
using Kafka.Reliable.Pipeline;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Rebalance;

/// <summary>
/// Serves the client's rebalance callbacks, on the poll thread inside the rebalance (G6): on assignment, a worker per new
/// partition and where each starts (the group's offset, or the store's when it is ahead); on revocation, drain the
/// partitions' in-flight records (bounded by the revoke timeout), commit their watermarks and run the user's hook before
/// the partitions go; on loss, abort them without committing anything, as another member may own them already. Under
/// cooperative rebalancing only the partitions added or revoked are touched, in any number of callbacks per rebalance.
/// </summary>
internal sealed class RebalanceCoordinator(
    ConsumerContext context, IRecordProcessor processor, AssignedPartitions partitions, FlowControl flow, CommitCoordinator commits)
{
    private ILogger Logger => context.Logger;

    private string Name => context.Name;

    private ReliableConsumerOptions Options => context.Options;

    /// <summary>Starts a worker per newly assigned partition and returns where each partition starts.</summary>
    public List<TopicPartitionOffset> OnAssigned(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> assigned)
    {
        commits.OnAssigned();
        foreach (var partition in assigned)
        {
            if (partitions.Contains(partition))
            {
                continue;
            }

            var worker = new PartitionWorker(partition, context, processor);
            if (context.RetryTiers is { } retryTiers)
            {
                // Its parked keys are read from its retry partition before its first record is dispatched.
                worker.Lot = new RetryTiers.ParkingLot(context, processor, worker);
                retryTiers.Attach(worker.Lot);
            }

            partitions.TryAdd(worker);
            flow.Assigned(partition);
            context.StartPartitionWorker(worker);
        }

        context.MemberId = consumer.MemberId;
        Log.PartitionsAssigned(Logger, Name, Describe(assigned));
        AssignmentChanged("assigned", assigned.Count);
        var start = StartOffsets(consumer, assigned);
        if (context.RebalanceHandler is { } hooks && assigned.Count > 0)
        {
            var assignment = new PartitionAssignment(Name, Options.GroupId, assigned);
            RunHook("OnAssignedAsync", ct => hooks.OnAssignedAsync(assignment, ct));
            for (var i = 0; i < start.Count; i++)
            {
                if (assignment.Seeks.TryGetValue(start[i].TopicPartition, out var offset))
                {
                    start[i] = new TopicPartitionOffset(start[i].TopicPartition, new Offset(offset));
                }
            }
        }

        TellLotsWhereTheyStart(consumer, start);
        return start;
    }

    /// <summary>
    /// Tells each new partition's retry tiers where the partition starts: its parked records from that offset on are read
    /// again by its worker, and wait until the worker has passed them (<see cref="RetryTiers.ParkingLot.StartsAt"/>).
    /// </summary>
    private void TellLotsWhereTheyStart(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartitionOffset> start)
    {
        if (context.RetryTiers is null)
        {
            return;
        }

        List<TopicPartition>? unknown = null;
        foreach (var position in start)
        {
            if (partitions.TryGet(position.Topic, position.Partition.Value, out var worker) && worker.Lot is { } lot)
            {
                if (position.Offset.Value >= 0)
                {
                    lot.StartsAt(position.Offset.Value);
                }
                else
                {
                    (unknown ??= []).Add(position.TopicPartition);
                }
            }
        }

        if (unknown is null)
        {
            return;
        }

        List<TopicPartitionOffset> committed;
        try
        {
            committed = consumer.Committed(unknown, ReliableConsumerConstants.CommittedLookupTimeout);
        }
        catch (KafkaException ex)
        {
            // Unknown: the parked records run at once. One the worker reads again is then skipped there (it is parked, or done).
            Log.RetryStartUnknown(Logger, Name, Describe(unknown), ex.Error.Reason);
            committed = [];
        }

        foreach (var partition in unknown)
        {
            var offset = committed.FirstOrDefault(c => c.TopicPartition == partition)?.Offset.Value ?? -1;
            if (partitions.TryGet(partition.Topic, partition.Partition.Value, out var worker) && worker.Lot is { } lot)
            {
                lot.StartsAt(offset >= 0 ? offset : long.MaxValue);
            }
        }
    }

    /// <summary>Drains the revoked partitions, commits their watermarks, runs the user's hook and gives them up.</summary>
    public void OnRevoked(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartitionOffset> revokedPartitions)
    {
        var revoked = partitions.Take(revokedPartitions);
        if (revoked.Count == 0)
        {
            return;
        }

        Log.PartitionsRevoking(Logger, Name, Describe(revokedPartitions), Options.RevokeTimeout);
        Drain(revoked, Options.RevokeTimeout);
        AdvanceAll(revoked);
        if (!commits.Commit(consumer, revoked, flush: true))
        {
            Log.RevokeCommitFailed(Logger, Name, Describe(revokedPartitions));
        }

        RunPartitionsHook("OnRevokedAsync", revoked, static (hooks, released, ct) => hooks.OnRevokedAsync(released, ct));
        Release(revoked);
        AssignmentChanged("revoked", revokedPartitions.Count);
        Log.PartitionsRevoked(Logger, Name, Describe(revokedPartitions));
    }

    /// <summary>Aborts the lost partitions' records and gives them up without committing.</summary>
    public void OnLost(List<TopicPartitionOffset> lostPartitions)
    {
        var lost = partitions.Take(lostPartitions);
        foreach (var worker in lost)
        {
            worker.Abort();
        }

        // Another member may own these partitions already: committing anything now could move its offsets backwards.
        RunPartitionsHook("OnLostAsync", lost, static (hooks, released, ct) => hooks.OnLostAsync(released, ct));
        Release(lost);
        AssignmentChanged("lost", lostPartitions.Count);
        Log.PartitionsLost(Logger, Name, Describe(lostPartitions));
    }

    /// <summary>
    /// Gives every partition up when the consumer leaves its group, after the shutdown's drain and commit: the same moment
    /// as a revoke, with the same hook.
    /// </summary>
    public void OnLeaving(List<PartitionWorker> workers)
    {
        foreach (var worker in workers)
        {
            worker.Abort();
        }

        partitions.Clear();
        RunPartitionsHook("OnRevokedAsync", workers, static (hooks, released, ct) => hooks.OnRevokedAsync(released, ct));
        Release(workers);
    }

    /// <summary>Moves each worker's watermark past the records done at its head.</summary>
    public static void AdvanceAll(IEnumerable<PartitionWorker> workers)
    {
        foreach (var worker in workers)
        {
            worker.Tracker.Advance();
        }
    }

    /// <summary>Publishes the new set of workers to the threads that read it (metrics, health), shares the byte budget and counts the rebalance.</summary>
    private void AssignmentChanged(string kind, int changed)
    {
        partitions.Publish();
        flow.Share(partitions.Count);
        context.Metrics.Rebalance(context, kind, changed);
    }

    /// <summary>
    /// Stops dispatching and waits (blocking the poll thread, which is what a rebalance needs) until every in-flight record of
    /// the given workers is finished, or the timeout passes and their handlers are cancelled.
    /// </summary>
    private void Drain(List<PartitionWorker> workers, TimeSpan timeout)
    {
        var completions = new Task[workers.Count];
        for (var i = 0; i < workers.Count; i++)
        {
            workers[i].StopDispatch();
            completions[i] = workers[i].Completion;
        }

        var drained = Task.WhenAll(completions);
        if (!drained.Wait(timeout))
        {
            Log.DrainTimedOut(Logger, Name, timeout);
            foreach (var worker in workers)
            {
                worker.Abort();
            }

            // A moment for the cancelled handlers to end before the revoked partitions' commit (see the shutdown's drain).
            drained.Wait(ReliableConsumerConstants.AbortGrace);
        }
    }

    private void Release(List<PartitionWorker> workers)
    {
        context.RetryTiers?.Detach(workers.Where(w => w.Lot is not null).Select(w => w.Lot!));
        foreach (var worker in workers)
        {
            // Drained (or cancelled) already. Aborting ends what outlives the assignment: lease renewals of records whose
            // acknowledgement never came, so that the partition's next owner is not kept waiting for their keys.
            worker.Abort();
            worker.Dispose();
        }

        if (context.PartitionsReleased is { } released && workers.Count > 0)
        {
            released(workers.ConvertAll(w => w.TopicPartition));
        }
    }

    /// <summary>Runs the user's revoke or loss hook, if any, for the partitions of the given workers.</summary>
    private void RunPartitionsHook(
        string hook, List<PartitionWorker> workers, Func<IRebalanceHandler, IReadOnlyList<TopicPartition>, CancellationToken, ValueTask> call)
    {
        if (context.RebalanceHandler is { } hooks && workers.Count > 0)
        {
            var released = workers.ConvertAll(w => w.TopicPartition);
            RunHook(hook, ct => call(hooks, released, ct));
        }
    }

    /// <summary>Runs a rebalance hook on the poll thread, inside the rebalance, waiting at most the revoke timeout; a failure is logged, never thrown.</summary>
    private void RunHook(string hook, Func<CancellationToken, ValueTask> run)
    {
        var timeout = Options.RevokeTimeout;
        using var timeLimit = new CancellationTokenSource(timeout);
        try
        {
            var task = run(timeLimit.Token).AsTask();

            // The poll thread is not async code: blocking it here is what keeps the rebalance from completing before the hook.
            if (!task.Wait(timeout))
            {
                timeLimit.Cancel();
                Log.RebalanceHookTimedOut(Logger, Name, hook, timeout);
            }
        }
        catch (Exception ex)
        {
            Log.RebalanceHookFailed(Logger, Name, hook, ex);
        }
    }

    /// <summary>
    /// Where each assigned partition starts: where the group committed, unless the idempotency store keeps offsets with the
    /// handler's effects and its offset is ahead (the process died between the database commit and the Kafka commit). A group
    /// offset behind the last one this consumer committed was moved back by someone else (an offsets reset, or a topic
    /// deleted and created again): then the group's offset wins, and the stored one is forgotten.
    /// </summary>
    private List<TopicPartitionOffset> StartOffsets(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> assigned)
    {
        var start = assigned.ConvertAll(p => new TopicPartitionOffset(p, Offset.Unset));
        if (context.StoredOffsets is not { } storedOffsets || assigned.Count == 0)
        {
            return start;
        }

        IReadOnlyList<StoredOffset> stored;
        try
        {
            stored = storedOffsets.GetStoredOffsets(Options.GroupId, assigned);
        }
        catch (Exception ex)
        {
            // The store is down (a transient outage, never a reason to stop the consumer). Starting from the group's
            // committed offsets is safe: the records applied since are read again and skipped by their idempotency keys
            // (the store must be up to handle them, so they wait for it like any record).
            Log.StoredOffsetsUnavailable(Logger, Name, Describe(assigned), ex.Message);
            return start;
        }

        // What the store recorded is what the group may be committed up to (see CommitRecorder).
        foreach (var partition in assigned)
        {
            commits.Assigned(partition, stored.FirstOrDefault(o => o.Partition == partition)?.LastCommitted ?? -1);
        }

        if (stored.Count == 0)
        {
            return start;
        }

        List<TopicPartitionOffset> committed;
        try
        {
            committed = consumer.Committed(assigned, ReliableConsumerConstants.CommittedLookupTimeout);
        }
        catch (KafkaException)
        {
            committed = [];
        }

        List<TopicPartition>? reset = null;
        for (var i = 0; i < start.Count; i++)
        {
            var partition = start[i].TopicPartition;
            var kept = stored.FirstOrDefault(o => o.Partition == partition);
            if (kept is null)
            {
                continue;
            }

            var groupOffset = committed.FirstOrDefault(o => o.TopicPartition == partition)?.Offset.Value ?? -1;
            if (kept.LastCommitted >= 0 && groupOffset < kept.LastCommitted)
            {
                Log.GroupOffsetMovedBack(Logger, Name, partition.Topic, partition.Partition.Value, groupOffset, kept.LastCommitted, kept.NextOffset);
                (reset ??= []).Add(partition);
                continue;
            }

            if (kept.NextOffset > groupOffset)
            {
                start[i] = new TopicPartitionOffset(partition, new Offset(kept.NextOffset));

                // The records before it are applied already: commit it too, so that the group's offset (and its lag) tell the
                // truth even if no record of the partition is fetched again.
                if (partitions.TryGet(partition.Topic, partition.Partition.Value, out var worker))
                {
                    worker.Tracker.StartAt(kept.NextOffset);
                    commits.OnReleased(1);
                }

                Log.StartingFromStoredOffset(Logger, Name, partition.Topic, partition.Partition.Value, kept.NextOffset);
            }
        }

        if (reset is not null)
        {
            commits.Forget(reset);
        }

        return start;
    }

    private static string Describe<T>(List<T> items) => string.Join(", ", items);
}
