using Confluent.Kafka;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Offsets;
using Kafka.Reliable.Pipeline;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Consuming;

/// <summary>
/// One reliable consumer: a dedicated poll thread that owns the Kafka client, and one <see cref="PartitionWorker"/> per
/// assigned partition that runs the pipeline. The poll thread never runs handler code and never waits for it, except to
/// drain in-flight records on revoke and on shutdown (G6, G8). Every call on the Kafka client, including commits and the
/// rebalance callbacks, happens on the poll thread, so commits and assignment changes can never interleave.
/// </summary>
internal sealed class ConsumerRunner : IAsyncDisposable
{
    /// <summary>The most records buffered before the workers are woken, in a burst of records librdkafka had already fetched.</summary>
    private const int SignalBatch = 64;

    private const string FetchQueueBackoff = "fetch.queue.backoff.ms";

    private readonly ConsumerContext _context;
    private readonly ReliableConsumerOptions _options;
    private readonly IRecordProcessor _processor;
    private readonly Action? _onFatal;
    private readonly Dictionary<PartitionKey, PartitionWorker> _workers = [];
    private readonly List<TopicPartitionOffset> _commitBuffer = [];
    private readonly List<TopicPartition> _assignedSinceLastPoll = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CommitScheduler _scheduler;
    private readonly int _resumeThreshold;
    private readonly bool _offsetsInTransactions;
    private long _partitionBytes;
    private int _unsignalled;
    private readonly List<PartitionWorker> _toSignal = [];
    private CommitRecorder? _commitRecorder;
    private IConsumer<byte[]?, byte[]?>? _consumer;
    private PartitionWorker? _lastWorker;
    private volatile PartitionWorker[] _snapshot = [];
    private long _lastLagRefresh;
    private Thread? _thread;
    private volatile string? _fatalReason;

    public ConsumerRunner(ConsumerContext context, IRecordProcessor processor, Action? onFatal = null)
    {
        _context = context;
        _options = context.Options;
        _processor = processor;
        _onFatal = onFatal;
        _scheduler = new CommitScheduler(_options.Commit, context.Time);
        _resumeThreshold = _options.PartitionBufferSize / 2;
        _partitionBytes = _options.MaxBufferedBytes;
        _offsetsInTransactions = _options.Commit.Strategy == CommitStrategy.Transactional;
    }

    /// <summary>Gets a task that completes when the poll loop has ended and the client is closed.</summary>
    public Task Stopped => _stopped.Task;

    private ILogger Logger => _context.Logger;

    private string Name => _context.Name;

    /// <summary>Creates the client and starts the poll thread. Throws if the client cannot be created.</summary>
    public void Start()
    {
        _consumer = BuildConsumer();
        var consumer = _consumer;
        _context.GroupMetadata = () => consumer.ConsumerGroupMetadata;
        if (_options.DeadLetter.Enabled)
        {
            _context.DeadLetter = new DeadLetterPublisher(_options, Name);
        }

        if (_context.StoredOffsets is { } storedOffsets)
        {
            _commitRecorder = new CommitRecorder(storedOffsets, _options.GroupId, Logger, Name);
        }


        Log.ConsumerStarting(Logger, Name, _options.GroupId, string.Join(",", _options.Topics), _options.Commit.Strategy);
        _context.Metrics.Register(this);
        _thread = new Thread(Run) { IsBackground = true, Name = $"kafka-reliable:{Name}" };
        _thread.Start();
    }

    /// <summary>Stops fetching, drains in-flight records (bounded by the shutdown timeout), commits, and leaves the group.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_thread is null)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _stopped.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _stopping.Dispose();
    }

    internal static ConsumerConfig BuildConfig(string name, ReliableConsumerOptions options)
    {
        var config = new ConsumerConfig(new Dictionary<string, string>(options.KafkaSettings, StringComparer.Ordinal))
        {
            BootstrapServers = options.BootstrapServers,
            GroupId = options.GroupId,
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            AutoOffsetReset = options.StartPosition == StartPosition.Latest ? AutoOffsetReset.Latest : AutoOffsetReset.Earliest,
            EnablePartitionEof = false,
        };
        config.PartitionAssignmentStrategy ??= PartitionAssignmentStrategy.CooperativeSticky;
        config.ClientId ??= name;
        if (config.Get(FetchQueueBackoff) is null)
        {
            // librdkafka stops fetching a partition for fetch.queue.backoff.ms (1 s by default) whenever its queue of fetched
            // records is over queued.min.messages (100,000, counted over the whole consumer): a consumer that drains that queue
            // in less than a second then waits with nothing to do. The poll thread drains it continuously into the
            // partitions' buffers (bounded by MaxBufferedBytes), so a short back-off keeps fetching going.
            config.Set(FetchQueueBackoff, ReliableConsumerConstants.DefaultFetchQueueBackoffMs);
        }
        if (options.Commit.Strategy == CommitStrategy.Transactional)
        {
            // Consume-transform-produce reads only committed input, as the rest of the chain will.
            config.IsolationLevel ??= IsolationLevel.ReadCommitted;
        }

        return config;
    }

    private IConsumer<byte[]?, byte[]?> BuildConsumer()
    {
        var client = new ConsumerBuilder<byte[]?, byte[]?>(BuildConfig(Name, _options))
            .SetPartitionsAssignedHandler((consumer, partitions) => OnAssigned(consumer, partitions))
            .SetPartitionsRevokedHandler((_, partitions) => OnRevoked(partitions))
            .SetPartitionsLostHandler((_, partitions) => OnLost(partitions))
            .SetErrorHandler((_, error) => OnError(error))
            .SetLogHandler((_, message) => OnClientLog(message))
            .Build();
        return _context.ClientInterceptor?.Wrap(client) ?? client;
    }

    private void Run()
    {
        var consumer = _consumer!;
        try
        {
            consumer.Subscribe(_options.Topics);
            var stopping = _stopping.Token;
            var pollTimeout = _options.PollTimeout;
            var failures = 0;
            while (!stopping.IsCancellationRequested && _fatalReason is null)
            {
                try
                {
                    Poll(consumer, pollTimeout);
                    failures = 0;
                }
                catch (Exception ex) when (ex is not KafkaException { Error.IsFatal: true })
                {
                    // Only a fatal Kafka error ends the loop. Anything else (a client call refused for a moment, a bug in a
                    // hook) is logged and the loop goes on, after a pause that grows while the failures repeat.
                    var delay = TimeSpan.FromMilliseconds(Math.Min(5_000, 50 << Math.Min(++failures, 7)));
                    Log.PollIterationFailed(Logger, Name, failures, delay, ex);
                    SignalWorkers();
                    _context.NotifyProgress();
                    stopping.WaitHandle.WaitOne(delay);
                }
            }

            if (_fatalReason is null)
            {
                Shutdown(consumer);
            }
        }
        catch (KafkaException ex) when (ex.Error.IsFatal)
        {
            _fatalReason ??= ex.Error.Reason;
        }
        catch (Exception ex)
        {
            Log.PollLoopFailed(Logger, Name, ex);
            _fatalReason ??= ex.Message;
        }
        finally
        {
            if (_fatalReason is not null)
            {
                Log.FatalError(Logger, Name, _fatalReason, null);
                AbandonAll();
                _onFatal?.Invoke();
            }

            consumer.Dispose();
            _context.DeadLetter?.Dispose();
            _snapshot = [];
            _context.Metrics.Unregister(this);
            _stopped.TrySetResult();
        }
    }

    /// <summary>Wakes the workers that were given records since the last call (poll thread).</summary>
    private void SignalWorkers()
    {
        _unsignalled = 0;
        foreach (var worker in _toSignal)
        {
            worker.SignalBuffered();
        }

        _toSignal.Clear();
    }

    /// <summary>Remembers a worker that was given records and is not woken yet, once (poll thread).</summary>
    private void ToSignal(PartitionWorker worker, bool waitingBefore)
    {
        if (!waitingBefore && worker.NeedsSignal)
        {
            _toSignal.Add(worker);
        }
    }

    /// <summary>One turn of the poll loop: take what the client has (or wait for it up to the poll timeout), buffer it, then look after the partitions.</summary>
    private void Poll(IConsumer<byte[]?, byte[]?> consumer, TimeSpan pollTimeout)
    {
        ConsumeResult<byte[]?, byte[]?>? record = null;
        try
        {
            // What librdkafka has already fetched comes first, without waiting; the workers are woken once that burst is
            // buffered (or every SignalBatch records of a long one), then the poll waits for more.
            record = consumer.Consume(TimeSpan.Zero);
            if (record is null)
            {
                SignalWorkers();
                record = consumer.Consume(pollTimeout);
            }
        }
        catch (ConsumeException ex) when (!ex.Error.IsFatal)
        {
            Log.ConsumeError(Logger, Name, ex.Error.Code, ex.Error.Reason);
        }

        if (record is not null)
        {
            Dispatch(consumer, record);
            if (++_unsignalled >= SignalBatch)
            {
                SignalWorkers();
            }
        }

        Housekeeping(consumer);
    }

    private void Dispatch(IConsumer<byte[]?, byte[]?> consumer, ConsumeResult<byte[]?, byte[]?> record)
    {
        var worker = _lastWorker;
        if (worker is null || worker.TopicPartition.Partition.Value != record.Partition.Value || !string.Equals(worker.TopicPartition.Topic, record.Topic, StringComparison.Ordinal))
        {
            if (!_workers.TryGetValue(new PartitionKey(record.Topic, record.Partition.Value), out worker))
            {
                // Not ours (any more): it is not buffered, so it is not committed either; its owner reads it.
                Log.RecordOfUnassignedPartition(Logger, Name, record.Topic, record.Partition.Value, record.Offset.Value);
                return;
            }

            _lastWorker = worker;
        }

        var waiting = worker.NeedsSignal;
        worker.Enqueue(record);
        ToSignal(worker, waiting);
        if (!worker.Paused && (worker.Buffered >= _options.PartitionBufferSize || worker.BufferedBytes >= _partitionBytes))
        {
            // Full, in records or in bytes (the partition's share of MaxBufferedBytes). Pausing throws away what librdkafka had
            // prefetched for the partition, so the share is meant to be several fetches: pauses then happen only when the
            // handler is really behind, and resuming at half leaves a share's half of work to cover the refetch.
            Pause(consumer, worker);
        }
    }

    private void Housekeeping(IConsumer<byte[]?, byte[]?> consumer)
    {
        if (_assignedSinceLastPoll.Count > 0)
        {
            // A partition paused under an earlier assignment must not stay paused under the new one: its new worker starts empty.
            // If the client refuses for now, the loop tries again at the next poll, for the partitions that are still ours.
            _assignedSinceLastPoll.RemoveAll(p => !_workers.ContainsKey(new PartitionKey(p.Topic, p.Partition.Value)));
            consumer.Resume(_assignedSinceLastPoll);
            _assignedSinceLastPoll.Clear();
        }

        if (_context.TakeProgress())
        {
            var circuitOpen = _context.CircuitOpen;
            foreach (var worker in _workers.Values)
            {
                var waiting = worker.NeedsSignal;
                var released = worker.Release();
                ToSignal(worker, waiting);
                if (released > 0)
                {
                    _scheduler.OnReleased(released);
                }

                if (worker.IsHolding || (circuitOpen && worker.Buffered > 0))
                {
                    // A failing record holds its partition, and an open circuit every partition with records waiting for it: stop
                    // fetching what cannot be handled yet. A partition with nothing buffered keeps fetching (at most a buffer's
                    // worth): its next record is what makes the circuit's trial if no other record is waiting.
                    Pause(consumer, worker);
                }
                else if (worker.Paused && worker.Buffered <= _resumeThreshold && worker.BufferedBytes <= _partitionBytes / 2 && Resume(consumer, worker))
                {
                    Log.PartitionResumed(Logger, Name, worker.TopicPartition.Topic, worker.TopicPartition.Partition.Value, worker.Buffered);
                }
            }
        }

        RefreshLag(consumer);
        var now = _scheduler.Now();
        if (_scheduler.IsDue(now))
        {
            if (Commit(consumer, _workers.Values))
            {
                _scheduler.OnCommitted(now);
            }
            else
            {
                _scheduler.OnCommitFailed(now);
            }
        }
    }

    /// <summary>Resumes a paused partition; when the client refuses for now, the partition stays paused and is tried again at the next poll.</summary>
    private bool Resume(IConsumer<byte[]?, byte[]?> consumer, PartitionWorker worker)
    {
        try
        {
            consumer.Resume([worker.TopicPartition]);
            if (worker.NextFetchOffset >= 0)
            {
                // librdkafka can leave a resumed partition out of its broker's fetch list when the pause had already taken it out
                // (seen with 2.16: the partition never fetches again). Seeking to the position resume fetches from anyway
                // restarts the fetcher: nothing is skipped or repeated.
                consumer.Seek(new TopicPartitionOffset(worker.TopicPartition, new Offset(worker.NextFetchOffset)));
            }
        }
        catch (KafkaException ex) when (!ex.Error.IsFatal)
        {
            PartitionOperationFailed("resume", worker, ex);
            return false;
        }

        worker.Paused = false;
        return true;
    }

    private void Pause(IConsumer<byte[]?, byte[]?> consumer, PartitionWorker worker)
    {
        if (worker.Paused)
        {
            return;
        }

        try
        {
            consumer.Pause([worker.TopicPartition]);
        }
        catch (KafkaException ex) when (!ex.Error.IsFatal)
        {
            PartitionOperationFailed("pause", worker, ex);
            return;
        }

        worker.Paused = true;
        Log.PartitionPaused(Logger, Name, worker.TopicPartition.Topic, worker.TopicPartition.Partition.Value, worker.Buffered);
    }

    /// <summary>Pauses the partitions a stopping consumer drains; a refusal the client may lift is logged and reported.</summary>
    private bool TryPause(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> partitions, PartitionWorker first)
    {
        try
        {
            consumer.Pause(partitions);
            return true;
        }
        catch (KafkaException ex) when (!ex.Error.IsFatal)
        {
            PartitionOperationFailed("pause", first, ex);
            return false;
        }
    }

    /// <summary>Logs a refused pause or resume and makes the next poll look at the partitions again, so that it is retried.</summary>
    private void PartitionOperationFailed(string operation, PartitionWorker worker, KafkaException ex)
    {
        Log.PartitionOperationFailed(Logger, Name, operation, worker.TopicPartition.Topic, worker.TopicPartition.Partition.Value, ex.Error.Code, ex.Error.Reason);
        _context.NotifyProgress();
    }

    /// <summary>Commits the watermark of every given partition that moved since its last commit, synchronously (poll thread).</summary>
    /// <returns><see langword="true"/> when everything that was due is committed.</returns>
    private bool Commit(IConsumer<byte[]?, byte[]?> consumer, IEnumerable<PartitionWorker> workers)
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

        _commitBuffer.Clear();
        foreach (var worker in workers)
        {
            var watermark = worker.Tracker.Watermark;
            if (watermark > worker.LastCommitted)
            {
                _commitBuffer.Add(new TopicPartitionOffset(worker.TopicPartition, new Offset(watermark)));
            }
        }

        if (_commitBuffer.Count == 0)
        {
            return true;
        }

        var metrics = _context.Metrics;
        var started = metrics.ClientOperationDuration.Enabled ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
        try
        {
            consumer.Commit(_commitBuffer);
            if (started != 0)
            {
                metrics.Commit(started, _context, _commitBuffer, error: null);
            }

            foreach (var committed in _commitBuffer)
            {
                MarkCommitted(committed);
            }

            Log.Committed(Logger, Name, _commitBuffer.Count);
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

            if (started != 0)
            {
                metrics.Commit(started, _context, _commitBuffer, ex.Error.Code);
            }

            ReliableMetrics.Add(metrics.CommitFailures, _context, _commitBuffer[0].Topic);
            Log.CommitFailed(Logger, Name, ex.Error.Reason);
            return false;
        }
        catch (KafkaException ex)
        {
            if (started != 0)
            {
                metrics.Commit(started, _context, _commitBuffer, ex.Error.Code);
            }

            ReliableMetrics.Add(metrics.CommitFailures, _context, _commitBuffer[0].Topic);
            Log.CommitFailed(Logger, Name, ex.Error.Reason);
            return false;
        }
    }

    private void MarkCommitted(TopicPartitionOffset committed)
    {
        _commitRecorder?.Record(committed);
        if (_workers.TryGetValue(new PartitionKey(committed.Topic, committed.Partition.Value), out var worker))
        {
            worker.LastCommitted = Math.Max(worker.LastCommitted, committed.Offset.Value);
        }
    }

    /// <summary>Measures each partition's lag about once a second, from the high watermark librdkafka last saw (no request).</summary>
    private void RefreshLag(IConsumer<byte[]?, byte[]?> consumer)
    {
        var now = _context.Time.GetTimestamp();
        if (now - _lastLagRefresh < _context.Time.TimestampFrequency)
        {
            return;
        }

        _lastLagRefresh = now;
        foreach (var worker in _workers.Values)
        {
            var position = worker.LastCommitted >= 0 ? worker.LastCommitted : worker.FirstOffset;
            var high = consumer.GetWatermarkOffsets(worker.TopicPartition).High.Value;
            worker.Lag = high >= 0 && position >= 0 ? Math.Max(0, high - position) : -1;
        }
    }

    /// <summary>Gets a value indicating whether the poll loop runs.</summary>
    public bool IsRunning => _thread is { IsAlive: true } && !_stopped.Task.IsCompleted && _fatalReason is null;

    /// <summary>Gets why the consumer stopped on a fatal error, if it did.</summary>
    public string? FatalReason => _fatalReason;

    /// <summary>Gets the assigned partitions' workers, for health checks and metrics (any thread).</summary>
    public IReadOnlyList<PartitionWorker> Partitions => _snapshot;

    /// <summary>Gets the context the consumer's threads share.</summary>
    public ConsumerContext Context => _context;

    /// <summary>Gets the number of assigned partitions that are paused, for metrics (any thread).</summary>
    public int PausedPartitions() => _snapshot.Count(w => w.Paused);

    /// <summary>Gets the number of records being processed now, over all partitions (any thread).</summary>
    public int InFlightRecords() => _snapshot.Sum(w => w.InFlight);

    private List<TopicPartitionOffset> OnAssigned(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> partitions)
    {
        foreach (var partition in partitions)
        {
            var key = new PartitionKey(partition.Topic, partition.Partition.Value);
            if (_workers.ContainsKey(key))
            {
                continue;
            }

            var worker = new PartitionWorker(partition, _context, _processor);
            _workers.Add(key, worker);
            _assignedSinceLastPoll.Add(partition);
            _context.StartPartitionWorker(worker);
        }

        Log.PartitionsAssigned(Logger, Name, Describe(partitions));
        AssignmentChanged("assigned", partitions.Count);
        var start = StartOffsets(consumer, partitions);
        if (_context.RebalanceHandler is { } hooks && partitions.Count > 0)
        {
            var assignment = new PartitionAssignment(Name, _options.GroupId, partitions);
            RunHook("OnAssignedAsync", ct => hooks.OnAssignedAsync(assignment, ct));
            for (var i = 0; i < start.Count; i++)
            {
                if (assignment.Seeks.TryGetValue(start[i].TopicPartition, out var offset))
                {
                    start[i] = new TopicPartitionOffset(start[i].TopicPartition, new Offset(offset));
                }
            }
        }

        return start;
    }

    /// <summary>Publishes the new set of workers to the threads that read it (metrics, health) and counts the rebalance (poll thread).</summary>
    private void AssignmentChanged(string kind, int partitions)
    {
        _snapshot = [.. _workers.Values];
        // Every assigned partition gets an equal share of the consumer's byte budget.
        _partitionBytes = _options.MaxBufferedBytes / Math.Max(1, _workers.Count);
        _context.Metrics.Rebalance(_context, kind, partitions);
    }

    /// <summary>Runs the user's revoke or loss hook, if any, for the partitions of the given workers (poll thread).</summary>
    private void RunPartitionsHook(
        string hook, List<PartitionWorker> workers, Func<IRebalanceHandler, IReadOnlyList<TopicPartition>, CancellationToken, ValueTask> call)
    {
        if (_context.RebalanceHandler is { } hooks && workers.Count > 0)
        {
            var partitions = workers.ConvertAll(w => w.TopicPartition);
            RunHook(hook, ct => call(hooks, partitions, ct));
        }
    }

    /// <summary>Runs a rebalance hook on the poll thread, inside the rebalance, waiting at most the revoke timeout; a failure is logged, never thrown.</summary>
    private void RunHook(string hook, Func<CancellationToken, ValueTask> run)
    {
        var timeout = _options.RevokeTimeout;
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
    private List<TopicPartitionOffset> StartOffsets(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> partitions)
    {
        var start = partitions.ConvertAll(p => new TopicPartitionOffset(p, Offset.Unset));
        if (_context.StoredOffsets is not { } storedOffsets || partitions.Count == 0)
        {
            return start;
        }

        IReadOnlyList<StoredOffset> stored;
        try
        {
            stored = storedOffsets.GetStoredOffsets(_options.GroupId, partitions);
        }
        catch (Exception ex)
        {
            // The store is down (a transient outage, never a reason to stop the consumer). Starting from the group's
            // committed offsets is safe: the records applied since are read again and skipped by their idempotency keys
            // (the store must be up to handle them, so they wait for it like any record).
            Log.StoredOffsetsUnavailable(Logger, Name, Describe(partitions), ex.Message);
            return start;
        }

        if (stored.Count == 0)
        {
            return start;
        }

        List<TopicPartitionOffset> committed;
        try
        {
            committed = consumer.Committed(partitions, ReliableConsumerConstants.CommittedLookupTimeout);
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
                if (_workers.TryGetValue(new PartitionKey(partition.Topic, partition.Partition.Value), out var worker))
                {
                    worker.Tracker.StartAt(kept.NextOffset);
                    _scheduler.OnReleased(1);
                }

                Log.StartingFromStoredOffset(Logger, Name, partition.Topic, partition.Partition.Value, kept.NextOffset);
            }
        }

        if (reset is not null)
        {
            _commitRecorder?.Forget(reset);
        }

        return start;
    }

    private void OnRevoked(List<TopicPartitionOffset> partitions)
    {
        var revoked = Take(partitions);
        if (revoked.Count == 0)
        {
            return;
        }

        Log.PartitionsRevoking(Logger, Name, Describe(partitions), _options.RevokeTimeout);
        Drain(revoked, _options.RevokeTimeout);
        AdvanceAll(revoked);
        if (!Commit(_consumer!, revoked))
        {
            Log.RevokeCommitFailed(Logger, Name, Describe(partitions));
        }

        RunPartitionsHook("OnRevokedAsync", revoked, static (hooks, released, ct) => hooks.OnRevokedAsync(released, ct));
        Release(revoked);
        AssignmentChanged("revoked", partitions.Count);
        Log.PartitionsRevoked(Logger, Name, Describe(partitions));
    }

    private void OnLost(List<TopicPartitionOffset> partitions)
    {
        var lost = Take(partitions);
        foreach (var worker in lost)
        {
            worker.Abort();
        }

        // Another member may own these partitions already: committing anything now could move its offsets backwards.
        RunPartitionsHook("OnLostAsync", lost, static (hooks, released, ct) => hooks.OnLostAsync(released, ct));
        Release(lost);
        AssignmentChanged("lost", partitions.Count);
        Log.PartitionsLost(Logger, Name, Describe(partitions));
    }

    private List<PartitionWorker> Take(List<TopicPartitionOffset> partitions)
    {
        var taken = new List<PartitionWorker>(partitions.Count);
        foreach (var partition in partitions)
        {
            if (_workers.Remove(new PartitionKey(partition.Topic, partition.Partition.Value), out var worker))
            {
                taken.Add(worker);
            }
        }

        _lastWorker = null;
        return taken;
    }

    /// <summary>
    /// Stops dispatching and waits (blocking the poll thread, which is what a rebalance or a shutdown needs) until every in-flight
    /// record of the given workers is finished, or the timeout passes and their handlers are cancelled.
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
        }
    }

    private static void AdvanceAll(IEnumerable<PartitionWorker> workers)
    {
        foreach (var worker in workers)
        {
            worker.Tracker.Advance();
        }
    }

    private void Release(List<PartitionWorker> workers)
    {
        foreach (var worker in workers)
        {
            // Drained (or cancelled) already. Aborting ends what outlives the assignment: lease renewals of records whose
            // acknowledgement never came, so that the partition's next owner is not kept waiting for their keys.
            worker.Abort();
            worker.Dispose();
        }

        if (_context.PartitionsReleased is { } released && workers.Count > 0)
        {
            released(workers.ConvertAll(w => w.TopicPartition));
        }
    }

    private void Shutdown(IConsumer<byte[]?, byte[]?> consumer)
    {
        var workers = new List<PartitionWorker>(_workers.Values);
        Log.ConsumerStopping(Logger, Name, workers.Count, _options.ShutdownTimeout);
        if (workers.Count > 0)
        {
            // Stop fetching, then let in-flight records finish. The client keeps being polled while they do, so the
            // member stays in its group and a rebalance meanwhile is still served. A pause the client refuses for now is
            // tried again at each poll of the drain (records it returns meanwhile are dropped uncommitted, as below).
            var partitions = workers.ConvertAll(w => w.TopicPartition);
            var paused = TryPause(consumer, partitions, workers[0]);
            foreach (var worker in workers)
            {
                worker.StopDispatch();
            }

            var drained = Task.WhenAll(workers.ConvertAll(w => w.Completion));
            var deadline = _context.Time.GetTimestamp() + (long)(_options.ShutdownTimeout.TotalSeconds * _context.Time.TimestampFrequency);
            while (!drained.IsCompleted && _context.Time.GetTimestamp() < deadline && _fatalReason is null)
            {
                paused = paused || TryPause(consumer, partitions, workers[0]);

                // Records of paused partitions are not returned; anything else is dropped uncommitted and read again later.
                try
                {
                    consumer.Consume(_options.PollTimeout);
                }
                catch (ConsumeException ex) when (!ex.Error.IsFatal)
                {
                    Log.ConsumeError(Logger, Name, ex.Error.Code, ex.Error.Reason);
                }

                AdvanceAll(_workers.Values);
            }

            if (!drained.IsCompleted)
            {
                Log.DrainTimedOut(Logger, Name, _options.ShutdownTimeout);
            }

            workers = new List<PartitionWorker>(_workers.Values);
            AdvanceAll(workers);
            Commit(consumer, workers);
            _commitRecorder?.WaitIdle(ReliableConsumerConstants.CommitRecordTimeout);
            foreach (var worker in workers)
            {
                worker.Abort();
            }

            _workers.Clear();

            // Leaving the group gives every partition up: the same moment as a revoke, after the same drain and commit.
            RunPartitionsHook("OnRevokedAsync", workers, static (hooks, released, ct) => hooks.OnRevokedAsync(released, ct));
            Release(workers);
        }

        consumer.Close();
        Log.ConsumerStopped(Logger, Name);
    }

    private void AbandonAll()
    {
        foreach (var worker in _workers.Values)
        {
            worker.Abort();
            worker.Dispose();
        }

        _workers.Clear();
    }

    private void OnError(Error error)
    {
        if (error.IsFatal)
        {
            _fatalReason ??= $"{error.Code}: {error.Reason}";
            return;
        }

        Log.ClientError(Logger, Name, error.Code, error.Reason);
    }

    private void OnClientLog(LogMessage message) => ClientLogs.Forward(Logger, Name, message);

    private static string Describe<T>(List<T> partitions) => string.Join(", ", partitions);

    private readonly record struct PartitionKey(string Topic, int Partition);
}
