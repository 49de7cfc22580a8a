using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Idempotency;

namespace Kafka.Reliable.Offsets;

/// <summary>
/// Commits partitions' watermarks (poll thread): when the <see cref="CommitScheduler"/> says a commit is due, on revoke and
/// at shutdown. A watermark never passes a record that is not done (G1); with a store that keeps offsets, every commit is
/// also recorded in the store (<see cref="CommitRecorder"/>), so that a group offset moved back by someone else is noticed.
/// </summary>
internal sealed class CommitCoordinator
{
    private readonly ConsumerContext _context;
    private readonly AssignedPartitions _partitions;
    private readonly CommitScheduler _scheduler;
    private List<TopicPartitionOffset> _buffer = [];

    // A commit that did not return within the poll thread's wait, still running on the thread pool, with its offsets and its start.
    private (Task Call, List<TopicPartitionOffset> Offsets, long Started)? _inFlight;
    private readonly bool _offsetsInTransactions;
    private CommitRecorder? _recorder;

    // When the group began refusing this member's commits as an unknown member's (a timestamp of the consumer's clock), or 0
    // while it accepts them.
    private long _refusedSince;

    public CommitCoordinator(ConsumerContext context, AssignedPartitions partitions)
    {
        _context = context;
        _partitions = partitions;
        _scheduler = new CommitScheduler(context.Options.Commit, context.Time);
        _offsetsInTransactions = context.Options.Commit.Strategy == CommitStrategy.Transactional;
    }

    /// <summary>Starts recording commits in the store that keeps offsets with the handlers' effects.</summary>
    public void RecordIn(IStoredOffsets store) =>
        _recorder = new CommitRecorder(store, _context.Options.GroupId, _context.Logger, _context.Name);

    /// <summary>Counts records released (done at the head of their partition) towards the next commit (poll thread).</summary>
    public void OnReleased(int released) => _scheduler.OnReleased(released);

    /// <summary>Commits every assigned partition's watermark when a commit is due (poll thread).</summary>
    public void CommitIfDue(IConsumer<byte[]?, byte[]?> consumer)
    {
        var now = _scheduler.Now();
        if (!_scheduler.IsDue(now))
        {
            return;
        }

        if (Commit(consumer, _partitions.Workers))
        {
            _scheduler.OnCommitted(now);
        }
        else
        {
            _scheduler.OnCommitFailed(now);
        }
    }

    /// <summary>
    /// Commits the watermark of every given partition that moved since its last commit (poll thread). The poll thread waits
    /// one poll timeout for the commit at most, except when <paramref name="flush"/>; a commit that has not returned by then
    /// goes on, and the next call settles it first.
    /// </summary>
    /// <param name="consumer">The client.</param>
    /// <param name="workers">The partitions.</param>
    /// <param name="flush">
    /// Whether to wait (boundedly) for the store to record the offsets first, when it keeps offsets: at revoke and shutdown,
    /// the last chance to commit them. Otherwise what the store has not recorded yet waits for the next commit.
    /// </param>
    /// <returns><see langword="true"/> when everything that was due is committed.</returns>
    public bool Commit(IConsumer<byte[]?, byte[]?> consumer, IEnumerable<PartitionWorker> workers, bool flush = false)
    {
        if (_offsetsInTransactions)
        {
            // With Kafka transactions, each record's transaction commits its offset with its output, and nothing else may: a
            // plain commit of W written after a transaction's W + 1 would move the group back, and a crash then would produce
            // W's output twice. Records done without a transaction (dead-lettered, skipped) are covered by the next record's
            // transaction; trailing ones are read again after a restart. The watermark counts as committed for lag only.
            foreach (var worker in workers)
            {
                worker.LastCommitted = Math.Max(worker.LastCommitted, worker.Tracker.Watermark);
            }

            return true;
        }

        if (_recorder is { } recorder)
        {
            // With a store that keeps offsets, the group gets only what the store has recorded: its last committed offset is
            // then never behind the group's, so that an offsets reset is recognized on the next assignment.
            foreach (var worker in workers)
            {
                if (worker.Tracker.Watermark > worker.LastCommitted)
                {
                    recorder.Record(worker.TopicPartition, worker.Tracker.Watermark);
                }
            }

            if (flush)
            {
                recorder.WaitIdle(ReliableConsumerConstants.CommitRecordTimeout);
            }
        }

        if (!SettleInFlight(wait: flush))
        {
            // The previous commit has not returned (the coordinator does not answer): this one comes after it.
            return false;
        }

        _buffer.Clear();
        var waitingForStore = false;
        foreach (var worker in workers)
        {
            var watermark = worker.Tracker.Watermark;
            if (_recorder is not null && watermark > worker.LastCommitted)
            {
                var recorded = _recorder.Durable(worker.TopicPartition);
                if (recorded < watermark)
                {
                    // Not recorded yet: committed at a later turn (the commit counts as not done, so that one comes soon).
                    waitingForStore = true;
                    watermark = recorded;
                }
            }

            if (watermark > worker.LastCommitted)
            {
                _buffer.Add(new TopicPartitionOffset(worker.TopicPartition, new Offset(watermark)));
            }

            // The partition's retry tiers: the records parked from it that are done (never with the store's recorder, which
            // keeps the source partitions' offsets only; a parked record read again is skipped by its idempotency key).
            if (worker.Lot is { } lot && lot.Watermark is var retryWatermark && retryWatermark > lot.LastCommitted)
            {
                _buffer.Add(new TopicPartitionOffset(lot.RetryPartition, new Offset(retryWatermark)));
            }
        }

        if (_buffer.Count == 0)
        {
            return !waitingForStore;
        }

        // librdkafka's commit is synchronous and has no timeout: while the coordinator accepts connections but does not answer,
        // it waits for the request timeout (60 s), and for the coordinator lookup after it. The poll thread waits one poll
        // timeout at most (a revoke or a stop waits for the commit to return); past it the commit goes on on the thread pool,
        // the consumer goes on fetching and dispatching, and the next commit settles this one first.
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var offsets = _buffer;
        var call = Task.Run(() => consumer.Commit(offsets));
        if (!flush && Task.WaitAny([call], _context.Options.PollTimeout) < 0)
        {
            _inFlight = (call, offsets, started);
            _buffer = [];
            return false;
        }

        return Settle(call, offsets, started) && !waitingForStore;
    }

    /// <summary>
    /// Waits for a commit still running to return (poll thread, before the client is closed or disposed: a Confluent client
    /// disposed under a call on another thread is freed under that call). Its result no longer matters.
    /// </summary>
    public void AwaitInFlight()
    {
        if (_inFlight is { } inFlight)
        {
            _inFlight = null;
            Task.WaitAny([inFlight.Call]);
        }
    }

    /// <summary>
    /// Takes the result of the commit still running, if any: waits for it when <paramref name="wait"/> (revoke, stop), else only
    /// if it has returned. Returns false while it runs.
    /// </summary>
    private bool SettleInFlight(bool wait)
    {
        if (_inFlight is not { } inFlight)
        {
            return true;
        }

        if (!inFlight.Call.IsCompleted)
        {
            if (!wait)
            {
                return false;
            }

            Task.WaitAny([inFlight.Call]);
        }

        _inFlight = null;
        Settle(inFlight.Call, inFlight.Offsets, inFlight.Started);
        return true;
    }

    /// <summary>Applies a returned commit's result: marks what it committed, logs and counts a failure. Returns whether all of it was committed.</summary>
    private bool Settle(Task call, List<TopicPartitionOffset> offsets, long started)
    {
        var metrics = _context.Metrics;
        try
        {
            call.GetAwaiter().GetResult();
            if (metrics.ClientOperationDuration.Enabled)
            {
                metrics.Commit(started, _context, offsets, error: null);
            }

            foreach (var committed in offsets)
            {
                MarkCommitted(committed);
            }

            Log.Committed(_context.Logger, _context.Name, offsets.Count);
            _refusedSince = 0;
            return true;
        }
        catch (TopicPartitionOffsetException ex)
        {
            foreach (var result in ex.Results)
            {
                if (!result.Error.IsError)
                {
                    MarkCommitted(result.TopicPartitionOffset);
                }
            }

            Failed(metrics, started, offsets, ex.Error);
            return false;
        }
        catch (KafkaException ex)
        {
            Failed(metrics, started, offsets, ex.Error);
            return false;
        }
    }

    private void Failed(ReliableMetrics metrics, long started, List<TopicPartitionOffset> offsets, Error error)
    {
        if (metrics.ClientOperationDuration.Enabled)
        {
            metrics.Commit(started, _context, offsets, error.Code);
        }

        ReliableMetrics.Add(metrics.CommitFailures, _context, offsets[0].Topic);
        Log.CommitFailed(_context.Logger, _context.Name, error.Reason);
        if (_refusedSince == 0 && IsRefusedMembership(error.Code))
        {
            _refusedSince = _context.Time.GetTimestamp();
        }
    }

    /// <summary>The errors with which the group refuses a commit because it does not count this client as its member (any more).</summary>
    private static bool IsRefusedMembership(ErrorCode code) =>
        code is ErrorCode.UnknownMemberId or ErrorCode.IllegalGeneration or ErrorCode.FencedMemberEpoch or ErrorCode.StaleMemberEpoch;

    /// <summary>
    /// Gets how long the group has refused every commit as from a member it does not know, when that is longer than
    /// <paramref name="limit"/> (poll thread; reads the clock only while commits are refused). Refusals count afresh after an
    /// accepted commit and after a new assignment (the client rejoined).
    /// </summary>
    public TimeSpan? RefusedLongerThan(TimeSpan limit) =>
        _refusedSince != 0 && _context.Time.GetElapsedTime(_refusedSince) is var refusedFor && refusedFor >= limit ? refusedFor : null;

    /// <summary>Starts counting refusals afresh: partitions were assigned, so the client is a member again (poll thread).</summary>
    public void OnAssigned() => _refusedSince = 0;

    /// <summary>Forgets the recorded commits of partitions whose group offset was moved back by someone else (poll thread).</summary>
    public void Forget(List<TopicPartition> partitions) => _recorder?.Forget(partitions);

    /// <summary>Sets what the store recorded for a newly assigned partition, read from it on assignment (-1: nothing; poll thread).</summary>
    public void Assigned(TopicPartition partition, long lastCommitted) => _recorder?.Assigned(partition, lastCommitted);

    private void MarkCommitted(TopicPartitionOffset committed)
    {
        if (_partitions.TryGet(committed.Topic, committed.Partition.Value, out var worker))
        {
            worker.LastCommitted = Math.Max(worker.LastCommitted, committed.Offset.Value);
        }
        else if (_context.RetryTiers is { } retryTiers && retryTiers.TryGet(committed.TopicPartition, out var lot))
        {
            lot.LastCommitted = Math.Max(lot.LastCommitted, committed.Offset.Value);
        }
    }
}
