using Confluent.Kafka;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Offsets;
using Kafka.Reliable.Pipeline;
using Kafka.Reliable.Rebalance;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Consuming;

/// <summary>
/// One reliable consumer's poll loop: a dedicated thread that owns the Kafka client, takes what it fetched and buffers each
/// record in its partition's <see cref="PartitionWorker"/>, which runs the pipeline. The poll thread never runs handler code
/// and never waits for it, except to drain in-flight records on revoke and on shutdown (G6, G8). Every call on the Kafka
/// client, including commits and the rebalance callbacks, happens on this thread, so commits and assignment changes can
/// never interleave. The concerns it drives each have their own home: <see cref="AssignedPartitions"/> (who owns what),
/// <see cref="FlowControl"/> (pause and resume), <see cref="Offsets.CommitCoordinator"/> (watermark commits) and
/// <see cref="Rebalance.RebalanceCoordinator"/> (assignment, revocation, loss).
/// </summary>
internal sealed class ConsumerRunner : IAsyncDisposable
{
    /// <summary>The most records buffered before the workers are woken, in a burst of records librdkafka had already fetched.</summary>
    private const int SignalBatch = 64;

    private const string FetchQueueBackoff = "fetch.queue.backoff.ms";

    private readonly ConsumerContext _context;
    private readonly ReliableConsumerOptions _options;
    private readonly Action? _onFatal;
    private readonly AssignedPartitions _partitions = new();
    private readonly FlowControl _flow;
    private readonly CommitCoordinator _commits;
    private readonly RebalanceCoordinator _rebalance;
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _unsignalled;
    private readonly List<PartitionWorker> _toSignal = [];
    private IConsumer<byte[]?, byte[]?>? _consumer;
    private long _lastLagRefresh;
    private Thread? _thread;
    private volatile string? _fatalReason;
    private volatile string _stage = Stage.Polling;
    private long _stopAskedAt;
    private int _abandoned;

    public ConsumerRunner(ConsumerContext context, IRecordProcessor processor, Action? onFatal = null)
    {
        _context = context;
        _options = context.Options;
        _onFatal = onFatal;
        _flow = new FlowControl(context);
        _commits = new CommitCoordinator(context, _partitions);
        _rebalance = new RebalanceCoordinator(context, processor, _partitions, _flow, _commits);
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

        if (_options.RetryTiers.Enabled)
        {
            _context.RetryTiers = new RetryTiers.RetryTierConsumer(_context);
        }

        if (_context.StoredOffsets is { } storedOffsets)
        {
            _commits.RecordIn(storedOffsets);
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

        // The bound counts from the first request: a stop asked again (the host's token expired, then its disposal) does not wait anew.
        Interlocked.CompareExchange(ref _stopAskedAt, _context.Time.GetTimestamp(), 0);
        await _stopping.CancelAsync().ConfigureAwait(false);
        var limit = StopLimit(_options);
        var left = limit - _context.Time.GetElapsedTime(Interlocked.Read(ref _stopAskedAt));
        try
        {
            await _stopped.Task.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, _context.Time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Abandon(limit);
        }
    }

    /// <summary>
    /// How long a stop may take before its client is abandoned: the drain (<see cref="ReliableConsumerOptions.ShutdownTimeout"/>),
    /// a revoke served meanwhile (<see cref="ReliableConsumerOptions.RevokeTimeout"/>), and <see cref="ReliableConsumerConstants.StopAllowance"/>
    /// for the cancelled handlers to end, the final commit and leaving the group.
    /// </summary>
    internal static TimeSpan StopLimit(ReliableConsumerOptions options) =>
        options.ShutdownTimeout + options.RevokeTimeout + ReliableConsumerConstants.StopAllowance;

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        if (Volatile.Read(ref _abandoned) == 0)
        {
            // An abandoned poll thread may still read its token.
            _stopping.Dispose();
        }
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
        if (options.GroupProtocol == Reliable.GroupProtocol.Consumer)
        {
            config.GroupProtocol = Confluent.Kafka.GroupProtocol.Consumer;
        }
        else
        {
            config.PartitionAssignmentStrategy ??= PartitionAssignmentStrategy.CooperativeSticky;
        }

        if (options.GroupInstanceId is { Length: > 0 } instance)
        {
            config.GroupInstanceId = instance;
        }

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
            .SetPartitionsAssignedHandler((consumer, partitions) =>
            {
                Joined = true;
                return _rebalance.OnAssigned(consumer, partitions);
            })
            .SetPartitionsRevokedHandler((_, partitions) => _rebalance.OnRevoked(_consumer!, partitions))
            .SetPartitionsLostHandler((_, partitions) => _rebalance.OnLost(partitions))
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
            SetFatal(ex.Error);
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
                if (!JoinsAgain)
                {
                    // Not the consumer's end when it joins again (logs 110 and 111 say so).
                    Log.FatalError(Logger, Name, _fatalReason, null);
                }

                AbandonAll();
                _onFatal?.Invoke();
            }

            _stage = Stage.Releasing;
            _commits.AwaitInFlight();
            consumer.Dispose();
            _context.RetryTiers?.Dispose();
            _context.RetryTiers = null;
            _context.DeadLetter?.Dispose();
            _partitions.Unpublish();
            _context.Metrics.Unregister(this);
            _stopped.TrySetResult();
        }
    }

    /// <summary>
    /// Gives up on a poll thread that did not finish stopping within its bound: a call into the native client that does not
    /// return (librdkafka's close has been seen to hang during a rebalance). What was committed stays committed; the thread
    /// and its client are left to end on their own, and the consumer no longer reports partitions or metrics.
    /// </summary>
    private void Abandon(TimeSpan limit)
    {
        if (Interlocked.Exchange(ref _abandoned, 1) == 0)
        {
            Log.StopAbandoned(Logger, Name, limit, _stage);
            _partitions.Unpublish();
            _context.Metrics.Unregister(this);
        }
    }

    /// <summary>What the poll thread is doing, for the log of a stop that does not finish (<see cref="Abandon"/>).</summary>
    private static class Stage
    {
        public const string Polling = "polling";
        public const string Draining = "draining the records in flight";
        public const string Committing = "committing what is done";
        public const string Leaving = "leaving its group (closing the client)";
        public const string Releasing = "releasing the client";
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
        if (_partitions.Find(record) is not { } worker)
        {
            // Not ours (any more): it is not buffered, so it is not committed either; its owner reads it.
            Log.RecordOfUnassignedPartition(Logger, Name, record.Topic, record.Partition.Value, record.Offset.Value);
            return;
        }

        var waiting = worker.NeedsSignal;
        worker.Enqueue(record);
        ToSignal(worker, waiting);
        _flow.OnBuffered(consumer, worker);
    }

    private void Housekeeping(IConsumer<byte[]?, byte[]?> consumer)
    {
        _flow.ResumeAssigned(consumer, _partitions);
        _context.RetryTiers?.Poll();
        if (_context.TakeProgress())
        {
            var circuitOpen = _context.CircuitOpen;
            foreach (var worker in _partitions.Workers)
            {
                var waiting = worker.NeedsSignal;
                var released = worker.Release() + (worker.Lot?.TakeReleased() ?? 0);
                ToSignal(worker, waiting);
                if (released > 0)
                {
                    _commits.OnReleased(released);
                }

                _flow.Review(consumer, worker, circuitOpen);
            }
        }

        RefreshLag(consumer);
        _commits.CommitIfDue(consumer);
        if (_fatalReason is null && _commits.RefusedLongerThan(_options.Commit.RejoinWhenRefusedFor) is { } refusedFor)
        {
            // The client still believes it is a member: it goes on consuming, and nothing it does is ever committed. A new
            // client joins again; what this one did not commit is read again (its records' idempotency keys skip the done ones).
            Log.MembershipRefused(Logger, Name, _options.GroupId, refusedFor, _options.Commit.RejoinWhenRefusedFor);
            JoinsAgain = true;
            _fatalReason = $"The group '{_options.GroupId}' refused every commit for {refusedFor} as from a member it does not know, while the client still counted itself a member; the consumer joins again with a new client (Commit:RejoinWhenRefusedFor is {_options.Commit.RejoinWhenRefusedFor}).";
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
        if (_context.MemberId is null)
        {
            // A member the coordinator gave nothing yet (the consumer protocol calls no assignment back then) has an id all the same.
            _context.MemberId = consumer.MemberId is { Length: > 0 } memberId ? memberId : null;
        }

        foreach (var worker in _partitions.Workers)
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

    /// <summary>
    /// Gets a value indicating whether the fatal error is the consumer protocol's refusal of this member's static id because
    /// another member holds it (UNRELEASED_INSTANCE_ID): the consumer joins again later instead of stopping the host.
    /// </summary>
    public bool InstanceIdHeldByAnother { get; private set; }

    /// <summary>Gets a value indicating whether the group has assigned this runner's client partitions (an empty set included) at least once.</summary>
    public bool Joined { get; private set; }

    /// <summary>
    /// Gets a value indicating whether the consumer recovers from the runner's end by joining again with a new client instead
    /// of stopping the host: its static id was refused (<see cref="InstanceIdHeldByAnother"/>), or the group kept refusing its
    /// commits as an unknown member's (<see cref="CommitOptions.RejoinWhenRefusedFor"/>).
    /// </summary>
    public bool JoinsAgain { get; private set; }

    /// <summary>Gets the assigned partitions' workers, for health checks and metrics (any thread).</summary>
    public IReadOnlyList<PartitionWorker> Partitions => _partitions.Snapshot;

    /// <summary>Gets the context the consumer's threads share.</summary>
    public ConsumerContext Context => _context;

    /// <summary>Gets the number of assigned partitions that are paused, for metrics (any thread).</summary>
    public int PausedPartitions() => _partitions.Snapshot.Count(w => w.Paused);

    /// <summary>Gets the number of records being processed now, over all partitions (any thread).</summary>
    public int InFlightRecords() => _partitions.Snapshot.Sum(w => w.InFlight);

    private void Shutdown(IConsumer<byte[]?, byte[]?> consumer)
    {
        var workers = new List<PartitionWorker>(_partitions.Workers);
        Log.ConsumerStopping(Logger, Name, workers.Count, _options.ShutdownTimeout);
        _stage = Stage.Draining;
        if (workers.Count > 0)
        {
            // Stop fetching, then let in-flight records finish. The client keeps being polled while they do, so the
            // member stays in its group and a rebalance meanwhile is still served. A pause the client refuses for now is
            // tried again at each poll of the drain (records it returns meanwhile are dropped uncommitted, as below).
            var partitions = workers.ConvertAll(w => w.TopicPartition);
            var paused = _flow.TryPause(consumer, partitions, workers[0]);
            foreach (var worker in workers)
            {
                worker.StopDispatch();
            }

            var drained = Task.WhenAll(workers.ConvertAll(w => w.Completion));
            var deadline = _context.Time.GetTimestamp() + (long)(_options.ShutdownTimeout.TotalSeconds * _context.Time.TimestampFrequency);
            while (!drained.IsCompleted && _context.Time.GetTimestamp() < deadline && _fatalReason is null)
            {
                paused = paused || _flow.TryPause(consumer, partitions, workers[0]);

                // Records of paused partitions are not returned; anything else is dropped uncommitted and read again later.
                try
                {
                    consumer.Consume(_options.PollTimeout);
                }
                catch (ConsumeException ex) when (!ex.Error.IsFatal)
                {
                    Log.ConsumeError(Logger, Name, ex.Error.Code, ex.Error.Reason);
                }

                RebalanceCoordinator.AdvanceAll(_partitions.Workers);
            }

            if (!drained.IsCompleted)
            {
                Log.DrainTimedOut(Logger, Name, _options.ShutdownTimeout);

                // Cancel what still runs before the final commit, and give it a moment to end: a handler's open transaction may
                // hold what that commit needs (SQLite's write lock, for the offsets a store keeps), and an aborted record is
                // not done, so it is not committed either way.
                foreach (var worker in workers)
                {
                    worker.Abort();
                }

                drained.Wait(ReliableConsumerConstants.AbortGrace);
            }

            _stage = Stage.Committing;
            workers = new List<PartitionWorker>(_partitions.Workers);
            RebalanceCoordinator.AdvanceAll(workers);
            _commits.Commit(consumer, workers, flush: true);

            // Leaving the group gives every partition up: the same moment as a revoke, after the same drain and commit.
            _rebalance.OnLeaving(workers);
        }

        _stage = Stage.Leaving;
        _commits.AwaitInFlight();
        consumer.Close();
        Log.ConsumerStopped(Logger, Name);
    }

    private void AbandonAll()
    {
        foreach (var worker in _partitions.Workers)
        {
            worker.Abort();
            worker.Dispose();
        }

        _partitions.Clear();
    }

    private void OnError(Error error)
    {
        if (error.IsFatal)
        {
            SetFatal(error);
            return;
        }

        Log.ClientError(Logger, Name, error.Code, error.Reason);
    }

    /// <summary>
    /// Records the first fatal error as the health check reports it; a member fenced for its static identity says which and
    /// why. The error arrives through the client's error callback or, first, as a consume call's exception whose code is only
    /// Local_Fatal: the broker's error is then known by its text (librdkafka's description of FENCED_INSTANCE_ID or
    /// UNRELEASED_INSTANCE_ID).
    /// </summary>
    private void SetFatal(Error error)
    {
        if (_fatalReason is not null)
        {
            return;
        }

        var reason = $"{error.Code}: {error.Reason}";
        var fenced = error.Code is ErrorCode.FencedInstanceId || error.Reason.Contains("FENCED_INSTANCE_ID", StringComparison.Ordinal)
            || error.Reason.Contains("fenced by other consumer", StringComparison.OrdinalIgnoreCase);
        var unreleased = !fenced && (error.Code is ErrorCode.UnreleasedInstanceId || error.Reason.Contains("UNRELEASED_INSTANCE_ID", StringComparison.Ordinal)
            || error.Reason.Contains("instance ID is still used by another member", StringComparison.OrdinalIgnoreCase));
        InstanceIdHeldByAnother = unreleased;
        JoinsAgain |= unreleased;
        _fatalReason = fenced
            ? $"{reason}. Another member of group '{_options.GroupId}' joined with the same GroupInstanceId ('{_options.GroupInstanceId}') and fenced this one (classic protocol: the newer member wins). Give each member its own GroupInstanceId."
            : unreleased
                ? $"{reason}. Another member of group '{_options.GroupId}' holds GroupInstanceId '{_options.GroupInstanceId}' (consumer protocol: the member holding the id keeps it, the newer one is refused). The consumer tries to join again, with a backoff: a member that stopped without leaving the group (killed) holds its id until the broker expires its session. If another running member has the id, give each member its own GroupInstanceId."
                : reason;
    }

    private void OnClientLog(LogMessage message) => ClientLogs.Forward(Logger, Name, message);
}
