using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Pipeline;

namespace Kafka.Reliable.RetryTiers;

/// <summary>
/// One assigned partition's records parked in its retry topic (<see cref="RetryTierOptions"/>), for one assignment: which
/// keys are parked, the records of each in original offset order, and the retry topic partition's watermark.
/// </summary>
/// <remarks>
/// <para>The retry topic's partition is the only record of what is parked: the lot is rebuilt from it (read from the group's
/// committed offset to its end) before the partition's first record is dispatched, so a new owner knows every parked key.
/// A copy read back fills its entry; a newer copy of the same original offset (the next tier) supersedes the older one,
/// whose offset then counts as done. An entry's copy stays uncommitted until the entry is done (handled, dead-lettered) or
/// superseded, so a crash at any moment leaves every parked record in the topic.</para>
/// <para>Threads: the poll thread reads the retry topic into it (<see cref="Ingest"/>) and commits its watermark; the
/// partition's worker parks records and asks whether a key is parked; the lot's lane runs parked records. All under one
/// lock, taken only while something is parked (<see cref="IsEmpty"/> is read without it).</para>
/// </remarks>
internal sealed class ParkingLot
{
    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, List<ParkedEntry>> _chains = [];
    private readonly Dictionary<long, ParkedEntry> _byOffset = [];
    private readonly SortedSet<long> _pending = [];
    private readonly HashSet<ulong> _running = [];
    private readonly AsyncSignal _signal = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConsumerContext _consumer;
    private readonly IRecordProcessor _processor;
    private readonly RetryTierOptions _options;
    private readonly bool _ordered;
    private readonly long _assignment;
    private readonly PartitionTelemetry _telemetry;
    private readonly Dictionary<long, int> _finished = [];
    private readonly Queue<long> _finishedOrder = new();
    private long _nextRetryOffset = -1;
    private long _mainStart = -1;
    private long _lastProgressMs;
    private int _count;
    private int _released;
    private string? _failure;

    public ParkingLot(ConsumerContext consumer, IRecordProcessor processor, PartitionWorker owner)
    {
        _consumer = consumer;
        _processor = processor;
        _options = consumer.Options.RetryTiers;
        _ordered = _options.Ordering == RetryTierOrdering.Ordered && consumer.Options.Dispatch != DispatchMode.Unordered;
        _assignment = owner.Assignment;
        _telemetry = owner.Telemetry;
        Tracker = owner.Tracker;
        Delays = _options.EffectiveDelays;
        Partition = owner.TopicPartition;
        RetryPartition = new TopicPartition(RetryRecords.TopicFor(_options, Partition.Topic), Partition.Partition);
        Turn = consumer.Options.Dispatch == DispatchMode.Sequential ? new SemaphoreSlim(1, 1) : null;
    }

    /// <summary>Gets the partition's offset tracker: a parked record's context stores its oldest unfinished offset (<see cref="MessageContext.SafeNextOffset"/>).</summary>
    public Offsets.PartitionOffsetTracker Tracker { get; }

    /// <summary>
    /// Gets the turn the partition's handler calls take, under <see cref="DispatchMode.Sequential"/> dispatch: a parked record
    /// is handled between two of the partition's records, never beside one. Null under the other modes, where parked records
    /// of different keys run beside the partition's (up to <see cref="RetryTierConstants.MaxConcurrentKeys"/> of them).
    /// </summary>
    public SemaphoreSlim? Turn { get; }

    /// <summary>
    /// Sets where the partition starts in this assignment (poll thread, before the retry partition is read): a parked record
    /// from before it runs at once; one from it on is read again by the partition's worker, and waits until the worker has
    /// passed it. <see cref="long.MaxValue"/> when the partition is not read again (no committed offset).
    /// </summary>
    public void StartsAt(long offset)
    {
        lock (_lock)
        {
            _mainStart = offset;
        }
    }

    /// <summary>Gets the partition whose records are parked here.</summary>
    public TopicPartition Partition { get; }

    /// <summary>Gets the retry topic's partition they are parked in.</summary>
    public TopicPartition RetryPartition { get; }

    /// <summary>Gets the tiers' delays.</summary>
    public IReadOnlyList<TimeSpan> Delays { get; }

    /// <summary>Gets a task that completes once the retry partition was read to its end: every parked key is known.</summary>
    public Task Ready => _ready.Task;

    /// <summary>Gets a value indicating whether nothing is parked (any thread, without the lock).</summary>
    public bool IsEmpty => Volatile.Read(ref _count) == 0;

    /// <summary>Gets the number of parked records (any thread).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Gets or sets the last offset committed for the retry partition in this assignment (poll thread).</summary>
    public long LastCommitted { get; set; } = -1;

    /// <summary>Gets why the retry partition cannot be read, when it cannot (any thread).</summary>
    public string? Failure => Volatile.Read(ref _failure);

    /// <summary>Gets the retry partition's watermark: the offset of its first record not done, or past the last one read; -1 before any (poll thread).</summary>
    public long Watermark
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count > 0 ? _pending.Min : _nextRetryOffset;
            }
        }
    }

    /// <summary>Gets the number of parked keys (chains), for metrics (any thread).</summary>
    public int Keys
    {
        get
        {
            lock (_lock)
            {
                return _chains.Count;
            }
        }
    }

    /// <summary>Gets when the oldest parked record was first parked (Unix milliseconds), or 0 when none is (any thread).</summary>
    public long OldestParkedAtMs
    {
        get
        {
            if (IsEmpty)
            {
                return 0;
            }

            lock (_lock)
            {
                long oldest = 0;
                foreach (var entry in _byOffset.Values)
                {
                    if (entry.ParkedAtMs > 0 && (oldest == 0 || entry.ParkedAtMs < oldest))
                    {
                        oldest = entry.ParkedAtMs;
                    }
                }

                return oldest;
            }
        }
    }

    /// <summary>
    /// Gets how long the lot has had a parked record that could run (running, or due and first of its key) without one
    /// finishing or moving on; zero when none could (any thread). The watchdog and the health check count it as the
    /// partition's: a parked record stuck in its lane is a stuck partition.
    /// </summary>
    public TimeSpan StalledFor()
    {
        if (IsEmpty)
        {
            return TimeSpan.Zero;
        }

        var now = NowMs;
        lock (_lock)
        {
            var since = long.MaxValue;
            foreach (var chain in _chains.Values)
            {
                var head = chain[0];
                if (head.State == ParkedState.Running)
                {
                    since = Math.Min(since, head.RunningSinceMs);
                }
                else if (head is { State: ParkedState.Waiting, Confirmed: true } && IsDue(head, now))
                {
                    since = Math.Min(since, head.Tier == 0 || head.DueMs <= 0 ? head.ParkedAtMs : head.DueMs);
                }
            }

            return since == long.MaxValue ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Math.Max(0, now - Math.Max(since, _lastProgressMs)));
        }
    }

    /// <summary>Takes the number of retry records done since the last call, towards the next commit (poll thread).</summary>
    public int TakeReleased()
    {
        lock (_lock)
        {
            var released = _released;
            _released = 0;
            return released;
        }
    }

    /// <summary>The lot's key of a record: its key's hash when a key's records wait behind each other, else one of its own.</summary>
    internal ulong ChainOf(byte[]? key, long originalOffset) =>
        _ordered && key is not null ? KeyHash(key) : (ulong)originalOffset << 1;

    /// <summary>A 64-bit FNV-1a hash of a key, odd (a chain of its own is even): a collision only puts two keys in one chain, in offset order.</summary>
    internal static ulong KeyHash(ReadOnlySpan<byte> key)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in key)
        {
            hash = (hash ^ b) * 1099511628211UL;
        }

        return hash | 1;
    }

    private long NowMs => _consumer.Time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>
    /// Decides what the partition's worker does with a record before handling it: whether its key is parked (it is parked
    /// behind), or it is parked already (read again after a crash, before its offset was committed).
    /// </summary>
    /// <param name="record">The record.</param>
    /// <param name="entry">The placeholder of the record, parked behind its key, when the result is <see cref="Admission.Follow"/>.</param>
    public Admission Admit(ConsumeResult<byte[]?, byte[]?> record, out ParkedEntry? entry)
    {
        entry = null;
        lock (_lock)
        {
            var offset = record.Offset.Value;
            if (_byOffset.TryGetValue(offset, out var parked))
            {
                // Read again (the partition restarted before its offset was committed): it waits in its tier, now confirmed.
                if (!parked.Confirmed)
                {
                    parked.Confirmed = true;
                    _signal.Set();
                }

                return Admission.AlreadyParked;
            }

            if (_finished.ContainsKey(offset))
            {
                return Admission.AlreadyParked;
            }

            if (!_ordered || record.Message.Key is not { } key || !_chains.ContainsKey(KeyHash(key)))
            {
                return Admission.Proceed;
            }

            if (_count >= _options.MaxParkedRecords)
            {
                return Admission.Full;
            }

            entry = new ParkedEntry(offset, KeyHash(key)) { ParkedAtMs = NowMs, Confirmed = true };
            Insert(entry);
            return Admission.Follow;
        }
    }

    /// <summary>Parks a record that failed: a placeholder holds its key from now on. Null when the lot is full.</summary>
    public ParkedEntry? BeginPark(ConsumeResult<byte[]?, byte[]?> record, int tier)
    {
        lock (_lock)
        {
            if (_byOffset.TryGetValue(record.Offset.Value, out var parked))
            {
                return parked;
            }

            if (_count >= _options.MaxParkedRecords)
            {
                return null;
            }

            var entry = new ParkedEntry(record.Offset.Value, ChainOf(record.Message.Key, record.Offset.Value)) { Tier = tier, ParkedAtMs = NowMs, Confirmed = true };
            Insert(entry);
            return entry;
        }
    }

    /// <summary>Forgets a placeholder whose copy was never acknowledged (the worker stopped): its record is not done, so it is read again.</summary>
    public void Abandon(ParkedEntry entry)
    {
        lock (_lock)
        {
            if (entry.State == ParkedState.Incoming && entry.RetryOffset < 0 && _byOffset.TryGetValue(entry.OriginalOffset, out var current) && current == entry)
            {
                Remove(entry);
            }
        }

        _signal.Set();
    }

    /// <summary>
    /// Writes a copy of a record to the retry partition and waits until it is acknowledged, trying again after the retry
    /// backoff while it is not (logged, 240).
    /// </summary>
    /// <returns>
    /// The copy's offset; -1 when <paramref name="stop"/> fired first or the consumer is closing; -2 when the retry topic can
    /// never take it (too large: the caller dead-letters the record instead).
    /// </returns>
    public async ValueTask<long> WriteAsync(Message<byte[]?, byte[]?> copy, long originalOffset, CancellationToken stop)
    {
        var publisher = _consumer.DeadLetter!;
        var round = 0;
        while (true)
        {
            try
            {
                var delivered = await publisher.ProduceToAsync(_consumer, RetryPartition, copy, stop).ConfigureAwait(false);
                return delivered.Offset.Value;
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                return -1;
            }
            catch (ObjectDisposedException)
            {
                return -1;
            }
            catch (ProduceException<byte[]?, byte[]?> ex) when (DeadLetter.DeadLetterPublisher.IsTooLarge(ex.Error.Code))
            {
                Log.RetryTierWriteRefused(_consumer.Logger, _consumer.Name, Partition.Topic, Partition.Partition.Value, originalOffset, RetryPartition.Topic, ex.Error.Reason);
                return -2;
            }
            catch (Exception ex)
            {
                var delay = RetryBackoff.Delay(_consumer.Options.Retry, ++round);
                Log.RetryTierWriteFailed(_consumer.Logger, _consumer.Name, Partition.Topic, Partition.Partition.Value, originalOffset, RetryPartition.Topic, ex.Message, delay);
                if (!await _consumer.DelayAsync(delay, stop).ConfigureAwait(false))
                {
                    return -1;
                }
            }
        }
    }

    /// <summary>Marks an entry moved to its next tier, once the copy is acknowledged: it waits to be read back (or takes the copy read meanwhile).</summary>
    public void Moved(ParkedEntry entry, int tier)
    {
        lock (_lock)
        {
            if (entry.Successor is { } successor)
            {
                var old = entry.RetryOffset;
                entry.Adopt(successor);
                entry.Successor = null;
                Done(old);
            }
            else
            {
                entry.State = ParkedState.Incoming;
                entry.Tier = tier;
            }

            entry.RetryNow = false;
            _lastProgressMs = NowMs;
        }

        _signal.Set();
        _consumer.NotifyProgress();
    }

    /// <summary>Reads one record of the retry partition into the lot (poll thread).</summary>
    public void Ingest(ConsumeResult<byte[]?, byte[]?> record)
    {
        var read = RetryRecords.Read(record);
        bool released;
        lock (_lock)
        {
            _nextRetryOffset = record.Offset.Value + 1;

            // A record that is not kept pending moves the watermark on when nothing before it is pending: counted towards
            // the next commit like a record done.
            var before = ++_released;
            Place(record, read);
            released = _released >= before;
        }

        _signal.Set();
        if (released)
        {
            _consumer.NotifyProgress();
        }
    }

    /// <summary>Reads one record into the lot (under the lock).</summary>
    private void Place(ConsumeResult<byte[]?, byte[]?> record, RetryRecord read)
    {
        if (read.Group is { } group && group != _consumer.Options.GroupId)
        {
            // Another group's parked record: the topic is shared by the groups that read the same topic.
            return;
        }

        switch (read.Kind)
        {
            case RetryRecordKind.Command:
                Apply(read.Command!, record.Message.Key, record.Offset.Value);
                break;
            case RetryRecordKind.Invalid:
                Log.RetryRecordIgnored(_consumer.Logger, _consumer.Name, RetryPartition.Topic, RetryPartition.Partition.Value, record.Offset.Value, read.Problem!);
                break;
            default:
                var copy = read.Copy!;
                if (copy.Record.Topic != Partition.Topic || copy.Record.Partition != Partition.Partition)
                {
                    Log.RetryRecordIgnored(
                        _consumer.Logger, _consumer.Name, RetryPartition.Topic, RetryPartition.Partition.Value, record.Offset.Value,
                        $"it was parked from {copy.Record.Topic} [{copy.Record.Partition.Value}], not from {Partition.Topic} [{Partition.Partition.Value}]");
                }
                else if (read.Kind == RetryRecordKind.Done)
                {
                    Finished(copy);
                }
                else
                {
                    // Kept pending (until done or superseded) instead of counted.
                    _released--;
                    _pending.Add(copy.RetryOffset);
                    Place(copy);
                }

                break;
        }
    }

    /// <summary>Notes that the retry partition was read to its end (poll thread): the lot knows every parked key.</summary>
    public void ReachedEnd(long offset)
    {
        lock (_lock)
        {
            _nextRetryOffset = Math.Max(_nextRetryOffset, offset);
        }

        if (_ready.TrySetResult())
        {
            Volatile.Write(ref _lastProgressMs, NowMs);
            Log.RetryPartitionRead(_consumer.Logger, _consumer.Name, Partition.Topic, Partition.Partition.Value, RetryPartition.Topic, Count, Keys);
        }

        _signal.Set();
    }

    /// <summary>Notes that the retry partition cannot be read (poll thread): the partition waits, and the health check says why.</summary>
    public void Failed(string reason)
    {
        if (Interlocked.Exchange(ref _failure, reason) != reason)
        {
            Log.RetryPartitionUnavailable(_consumer.Logger, _consumer.Name, Partition.Topic, Partition.Partition.Value, RetryPartition.Topic, reason);
        }
    }

    /// <summary>Notes that the retry partition is read again after a failure (poll thread).</summary>
    public void Recovered() => Volatile.Write(ref _failure, null);

    /// <summary>
    /// Runs the lot's parked records until <paramref name="stop"/>: each key's first record when it is due (a record of tier 0
    /// at once), up to <see cref="RetryTierConstants.MaxConcurrentKeys"/> keys at a time. Returns once the records running
    /// when it stopped are finished.
    /// </summary>
    public async Task RunAsync(CancellationToken stop, CancellationToken abort)
    {
        var chains = new List<Task>();
        var runnable = new List<ulong>();
        while (!stop.IsCancellationRequested)
        {
            runnable.Clear();
            var wait = TimeSpan.FromSeconds(1);
            var now = NowMs;
            lock (_lock)
            {
                foreach (var (id, chain) in _chains)
                {
                    if (_running.Count + runnable.Count >= RetryTierConstants.MaxConcurrentKeys)
                    {
                        break;
                    }

                    var head = chain[0];
                    if (_running.Contains(id) || head.State != ParkedState.Waiting || !head.Confirmed)
                    {
                        continue;
                    }

                    if (!IsDue(head, now))
                    {
                        wait = TimeSpan.FromMilliseconds(Math.Clamp(head.DueMs - now, 1, wait.TotalMilliseconds));
                        continue;
                    }

                    runnable.Add(id);
                }

                foreach (var id in runnable)
                {
                    _running.Add(id);
                }
            }

            foreach (var id in runnable)
            {
                chains.Add(RunChainAsync(id, stop, abort));
            }

            chains.RemoveAll(static t => t.IsCompleted);
            await _signal.WaitAsync(wait, _consumer.Time).ConfigureAwait(false);
        }

        await Task.WhenAll(chains).ConfigureAwait(false);
    }

    /// <summary>Wakes the lane: the worker stops, or something changed.</summary>
    public void Wake() => _signal.Set();

    private static bool IsDue(ParkedEntry entry, long now) => entry.Tier == 0 || entry.Released || entry.RetryNow || entry.DueMs <= now;

    /// <summary>Runs a key's records in order while the first one can run: handled, dead-lettered or moved to its next tier.</summary>
    private async Task RunChainAsync(ulong id, CancellationToken stop, CancellationToken abort)
    {
        await Task.Yield();
        var execution = new RecordExecution(_consumer, _processor, onHold: null, _assignment, _telemetry, lot: this);
        try
        {
            while (!stop.IsCancellationRequested)
            {
                ParkedEntry entry;
                lock (_lock)
                {
                    if (!_chains.TryGetValue(id, out var chain) || chain[0] is not { State: ParkedState.Waiting, Confirmed: true } head || !IsDue(head, NowMs))
                    {
                        return;
                    }

                    entry = head;
                    entry.State = ParkedState.Running;
                    entry.RunningSinceMs = NowMs;
                }

                // Not counted against MaxInFlight: a partition's records may hold every in-flight slot while they wait for room
                // in this lot, which only these runs make. At most MaxConcurrentKeys of them run per partition.
                var result = await execution.RunParkedAsync(entry, stop, abort).ConfigureAwait(false);

                lock (_lock)
                {
                    if (entry.State != ParkedState.Running)
                    {
                        // Moved to its next tier: it waits there.
                        continue;
                    }

                    if (result == RecordResult.Stopped)
                    {
                        entry.State = ParkedState.Waiting;
                        return;
                    }

                    Remove(entry);
                    Remember(entry.OriginalOffset, entry.Tier);
                }

                _consumer.NotifyProgress();
                MarkDone(entry);
            }
        }
        catch (Exception ex)
        {
            // A bug, never a handler failure: the entry stays, and holds its key and the retry partition's watermark.
            Log.WorkerFailed(_consumer.Logger, _consumer.Name, RetryPartition.Topic, RetryPartition.Partition.Value, ex);
        }
        finally
        {
            lock (_lock)
            {
                _running.Remove(id);
            }

            _signal.Set();
        }
    }

    /// <summary>
    /// Writes the done marker of a parked record that was handled or dead-lettered, without waiting for it: a marker that is
    /// lost only means the record may run again after a restart (and an idempotency store skips it).
    /// </summary>
    private void MarkDone(ParkedEntry entry)
    {
        if (_consumer.DeadLetter is not { } publisher || entry.Record is not { } record)
        {
            return;
        }

        var marker = RetryRecords.DoneMarker(record, _consumer.Options.GroupId, entry.Tier);
        _ = WriteMarkerAsync(publisher, marker);
    }

    private async Task WriteMarkerAsync(DeadLetter.DeadLetterPublisher publisher, Message<byte[]?, byte[]?> marker)
    {
        try
        {
            await publisher.ProduceToAsync(_consumer, RetryPartition, marker, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is KafkaException or ObjectDisposedException or OperationCanceledException)
        {
            Log.RetryDoneMarkerFailed(_consumer.Logger, _consumer.Name, RetryPartition.Topic, RetryPartition.Partition.Value, ex.Message);
        }
    }

    /// <summary>Applies a done marker read from the retry partition: the record it names was done (under the lock).</summary>
    private void Finished(ParkedCopy marker)
    {
        if (_byOffset.TryGetValue(marker.OriginalOffset, out var entry) && entry.State != ParkedState.Running && entry.RetryOffset >= 0 && entry.RetryOffset < marker.RetryOffset)
        {
            Remove(entry);
        }

        Remember(marker.OriginalOffset, marker.Tier);
    }

    /// <summary>Remembers an original offset that is done, so that a copy of it read later (written twice) is not run again (under the lock).</summary>
    private void Remember(long originalOffset, int tier)
    {
        if (_finished.TryGetValue(originalOffset, out var known))
        {
            _finished[originalOffset] = Math.Max(known, tier);
            return;
        }

        _finished.Add(originalOffset, tier);
        _finishedOrder.Enqueue(originalOffset);
        if (_finishedOrder.Count > RetryTierConstants.MaxFinished)
        {
            _finished.Remove(_finishedOrder.Dequeue());
        }
    }

    /// <summary>Places a copy read from the retry partition: it fills its placeholder, supersedes an older copy, or is a duplicate (under the lock).</summary>
    private void Place(ParkedCopy copy)
    {
        if (!_byOffset.TryGetValue(copy.OriginalOffset, out var entry))
        {
            if (_finished.TryGetValue(copy.OriginalOffset, out var finishedTier) && copy.Tier <= finishedTier)
            {
                // A copy of a record done already (written twice around a failed write, or read before its done marker).
                Done(copy.RetryOffset);
                return;
            }

            entry = new ParkedEntry(copy.OriginalOffset, ChainOf(copy.Record.Message.Key, copy.OriginalOffset)) { Confirmed = copy.OriginalOffset < _mainStart };
            entry.Adopt(copy);
            Insert(entry);
            return;
        }

        if (entry.State == ParkedState.Incoming ? copy.Tier < entry.Tier : copy.Tier <= entry.Tier)
        {
            // An older copy, or a second copy of the same tier (written twice around a crash): nothing to run.
            Done(copy.RetryOffset);
            return;
        }

        if (entry.State == ParkedState.Running)
        {
            // The next tier's copy of a record still running (its move not confirmed yet): it takes over when the run ends.
            if (entry.Successor is { } older)
            {
                Done(older.RetryOffset);
            }

            entry.Successor = copy;
            return;
        }

        var superseded = entry.RetryOffset;
        entry.Adopt(copy);
        Done(superseded);
    }

    /// <summary>
    /// Applies an operator's command to the first parked record of a key, if it was parked before the command was written
    /// (a command read again after a restart finds that record done, and does nothing); under the lock.
    /// </summary>
    private void Apply(string command, byte[]? key, long commandOffset)
    {
        if (command is not (RetryTierConstants.ReleaseCommand or RetryTierConstants.RetryNowCommand))
        {
            Log.RetryRecordIgnored(_consumer.Logger, _consumer.Name, RetryPartition.Topic, RetryPartition.Partition.Value, commandOffset, $"'{command}' is not a command: use 'release' or 'retry-now'");
            return;
        }

        var matched = 0;
        foreach (var chain in _chains.Values)
        {
            var head = chain[0];
            if (key is null || head.Record?.Message.Key is not { } headKey || !headKey.AsSpan().SequenceEqual(key) || head.RetryOffset < 0 || head.RetryOffset > commandOffset)
            {
                continue;
            }

            matched++;
            if (command == RetryTierConstants.ReleaseCommand)
            {
                head.Released = true;
            }
            else
            {
                head.RetryNow = true;
            }
        }

        Log.RetryCommandApplied(_consumer.Logger, _consumer.Name, RetryPartition.Topic, RetryPartition.Partition.Value, command, matched);
    }

    private void Insert(ParkedEntry entry)
    {
        _byOffset.Add(entry.OriginalOffset, entry);
        if (!_chains.TryGetValue(entry.Chain, out var chain))
        {
            _chains.Add(entry.Chain, chain = []);
        }

        if (chain.Count == 0 || chain[^1].OriginalOffset < entry.OriginalOffset)
        {
            chain.Add(entry);
        }
        else
        {
            var index = chain.FindIndex(e => e.OriginalOffset > entry.OriginalOffset);
            chain.Insert(index, entry);
        }

        Volatile.Write(ref _count, _count + 1);
    }

    private void Remove(ParkedEntry entry)
    {
        _lastProgressMs = NowMs;
        _byOffset.Remove(entry.OriginalOffset);
        if (_chains.TryGetValue(entry.Chain, out var chain))
        {
            chain.Remove(entry);
            if (chain.Count == 0)
            {
                _chains.Remove(entry.Chain);
            }
        }

        Done(entry.RetryOffset);
        if (entry.Successor is { } successor)
        {
            Done(successor.RetryOffset);
        }

        Volatile.Write(ref _count, _count - 1);
    }

    private void Done(long retryOffset)
    {
        if (retryOffset >= 0 && _pending.Remove(retryOffset))
        {
            _released++;
        }
    }
}

/// <summary>What the partition's worker does with a record, given what is parked.</summary>
internal enum Admission
{
    /// <summary>Handle it.</summary>
    Proceed,

    /// <summary>Park it behind its key (it has a placeholder now).</summary>
    Follow,

    /// <summary>It is parked already: done.</summary>
    AlreadyParked,

    /// <summary>Its key is parked, and the lot is full: wait.</summary>
    Full,
}
