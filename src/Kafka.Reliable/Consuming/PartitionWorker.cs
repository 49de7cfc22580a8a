using System.Runtime.CompilerServices;
using Confluent.Kafka;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Idempotency;
using Kafka.Reliable.Offsets;
using Kafka.Reliable.Pipeline;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Consuming;

/// <summary>
/// Owns one assigned partition for one assignment: its bounded buffer of records, its offset tracker, and the worker that
/// runs the pipeline over the records in offset order. A new assignment of the same partition gets a new worker, so a
/// completion from an older assignment can only ever reach the old tracker, which nobody commits from any more (G6).
/// </summary>
internal sealed class PartitionWorker : IDisposable
{
    /// <summary>The most records one lane runs before it gives its in-flight slot back (ByKey and Unordered).</summary>
    private const int LaneRun = 32;

    private readonly ConsumeResult<byte[]?, byte[]?>?[] _records;
    private readonly long[] _bufferedAt;
    private readonly int[] _sizes;
    private long _bufferedBytes;
    private bool _unsignalled;
    private long _lastProgress;
    private int _inFlight;
    private readonly AsyncSignal _signal = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _abort = new();
    private readonly IRecordProcessor _processor;
    private readonly ConsumerContext _consumer;
    private readonly DispatchMode _mode;
    private readonly bool _manual;
    private readonly Action<long> _complete;

    // ByKey and Unordered: the keys with a record in flight, each with the records of that key waiting behind it; the idle
    // executions, reused. Touched by the dispatcher and by completing lanes, under _lanesLock (never by the poll thread).
    private readonly Dictionary<ulong, Queue<long>> _busyKeys = [];
    private readonly Stack<RecordExecution> _idle = new();
    private readonly Stack<Queue<long>> _freeQueues = new();
    private readonly TaskCompletionSource _lanesDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _activeLanes;
    private bool _dispatchEnded;
    private long _nextDispatch;
    private readonly Lock _lanesLock = new();
    private Queue<ConsumeResult<byte[]?, byte[]?>>? _overflow;
    private volatile bool _holding;
    private BatchCollector? _collector;
    private RecordExecution? _single;

    public PartitionWorker(TopicPartition topicPartition, ConsumerContext consumer, IRecordProcessor processor)
    {
        TopicPartition = topicPartition;
        Telemetry = new PartitionTelemetry(consumer.Telemetry, topicPartition);
        _consumer = consumer;
        _processor = processor;
        Tracker = new PartitionOffsetTracker(RingSlots(consumer.Options));
        _records = new ConsumeResult<byte[]?, byte[]?>?[Tracker.Capacity];
        _bufferedAt = new long[Tracker.Capacity];
        _sizes = new int[Tracker.Capacity];
        _lastProgress = consumer.Time.GetTimestamp();
        Assignment = consumer.NextAssignment();
        _mode = consumer.Options.Dispatch;
        _manual = consumer.Options.Commit.Strategy == CommitStrategy.Manual;
        _complete = Complete;
        Completion = Task.CompletedTask;
    }

    public TopicPartition TopicPartition { get; }

    /// <summary>Gets the tags of this partition's spans and measurements, built once for the assignment.</summary>
    public PartitionTelemetry Telemetry { get; }

    public PartitionOffsetTracker Tracker { get; }

    /// <summary>Gets or sets a value indicating whether the partition is paused (poll thread).</summary>
    public bool Paused { get; set; }

    /// <summary>Gets the offset after the last record delivered to this worker: where fetching resumes (poll thread); -1 before the first record.</summary>
    public long NextFetchOffset { get; private set; } = -1;

    /// <summary>Gets or sets the last offset committed for this partition in this assignment (poll thread).</summary>
    public long LastCommitted { get; set; } = -1;

    /// <summary>Gets the offset of the first record buffered in this assignment; -1 before one.</summary>
    public long FirstOffset { get; private set; } = -1;

    /// <summary>Gets when a record of this partition was last done, or when the partition was assigned (any thread; a <see cref="TimeProvider"/> timestamp).</summary>
    public long LastProgressTimestamp => Volatile.Read(ref _lastProgress);

    /// <summary>Gets when the oldest record not yet done was buffered, or 0 when none is pending (any thread, approximate).</summary>
    public long OldestPendingTimestamp => Tracker.PendingCount > 0 ? Volatile.Read(ref _bufferedAt[Tracker.SlotOf(Tracker.HeadSequence)]) : 0;

    /// <summary>Gets the offset of the oldest record not yet done, or -1 when none is pending (any thread, approximate).</summary>
    public long OldestPendingOffset => Tracker.PendingCount > 0 && Volatile.Read(ref _records[Tracker.SlotOf(Tracker.HeadSequence)]) is { } record ? record.Offset.Value : -1;

    /// <summary>
    /// Gets how long the partition has had records pending without finishing one, at <paramref name="now"/> (a
    /// <see cref="TimeProvider"/> timestamp); zero when none is pending (any thread, approximate). Its parked records count
    /// too (<see cref="RetryTiers.ParkingLot.StalledFor"/>). Counted from the later of
    /// the last finished record and the arrival of the oldest pending one, so that a partition that was idle for a long
    /// time is not stuck the moment a record arrives.
    /// </summary>
    public TimeSpan StalledFor(long now)
    {
        var parked = Lot?.StalledFor() ?? TimeSpan.Zero;
        var oldest = OldestPendingTimestamp;
        if (oldest == 0)
        {
            return parked;
        }

        var since = Math.Max(oldest, LastProgressTimestamp);
        var stalled = now > since ? _consumer.Time.GetElapsedTime(since, now) : TimeSpan.Zero;
        return stalled > parked ? stalled : parked;
    }

    /// <summary>Gets or sets the partition's lag: its high watermark minus its committed offset; -1 until both are known (written by the poll thread, read by metrics).</summary>
    public long Lag { get; set; } = -1;

    /// <summary>Gets the number of this partition's records being processed now (any thread).</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Gets the worker loop; it completes once the worker was stopped and its in-flight record is finished.</summary>
    public Task Completion { get; private set; }

    public bool IsAborted => _abort.IsCancellationRequested;

    /// <summary>
    /// Gets a value indicating whether the record at the head of a sequential partition is failing (retrying, waiting for the
    /// circuit, or for the dead-letter topic): the partition is paused meanwhile. Partitions dispatched by key or unordered
    /// never hold: a failing record holds back only its own key, and the bounded buffer pauses the partition when full.
    /// </summary>
    public bool IsHolding => _holding;

    /// <summary>Gets or sets the partition's retry tiers, with them; set before <see cref="Start"/>.</summary>
    public RetryTiers.ParkingLot? Lot { get; set; }

    /// <summary>Gets the assignment this worker serves (see <see cref="MessageContext.Assignment"/>).</summary>
    public long Assignment { get; }

    /// <summary>Starts the worker; it dispatches nothing before <paramref name="predecessor"/> (the worker of the partition's previous assignment) is finished.</summary>
    public void Start(Task predecessor) => Completion = Task.Run(() => RunGuardedAsync(predecessor));

    /// <summary>Gets the number of records buffered and not yet done, including those waiting for a slot (poll thread).</summary>
    public int Buffered => Tracker.Count + (_overflow?.Count ?? 0);

    /// <summary>
    /// Gets the bytes of the records counted by <see cref="Buffered"/>: keys, values and headers, plus
    /// <see cref="ReliableConsumerConstants.RecordOverheadBytes"/> each (written by the poll thread; any thread may read it).
    /// </summary>
    public long BufferedBytes => Volatile.Read(ref _bufferedBytes);

    /// <summary>
    /// The slots of a partition's ring: twice the record bound, so that the dispatcher sees past records held by busy keys, but
    /// at most <see cref="ReliableConsumerConstants.MaxRingSlots"/> (or twice <c>MaxInFlight</c>) so that an idle partition costs
    /// little memory. Records beyond the ring wait in order in the overflow queue, inside the same bounds.
    /// </summary>
    internal static int RingSlots(ReliableConsumerOptions options) =>
        (int)Math.Min(2L * options.PartitionBufferSize, Math.Max(ReliableConsumerConstants.MaxRingSlots, 2L * options.MaxInFlight));

    /// <summary>What a record counts against the byte budget: its key, value and headers plus a fixed overhead for its objects.</summary>
    internal static int SizeOf(ConsumeResult<byte[]?, byte[]?> record)
    {
        var size = ReliableConsumerConstants.RecordOverheadBytes + (record.Message.Key?.Length ?? 0) + (record.Message.Value?.Length ?? 0);
        if (record.Message.Headers is { Count: > 0 } headers)
        {
            for (var i = 0; i < headers.Count; i++)
            {
                var header = headers[i];
                size += 32 + (2 * header.Key.Length) + (header.GetValueBytes()?.Length ?? 0);
            }
        }

        return size;
    }

    /// <summary>
    /// Releases the records done at the head of the ring, moves waiting records into the freed slots and returns how many
    /// were released (poll thread).
    /// </summary>
    public int Release()
    {
        var head = Tracker.HeadSequence;
        var released = Tracker.Advance();
        if (released > 0)
        {
            long bytes = 0;
            for (var sequence = head; sequence < head + released; sequence++)
            {
                bytes += _sizes[Tracker.SlotOf(sequence)];
            }

            Volatile.Write(ref _bufferedBytes, _bufferedBytes - bytes);
            DrainOverflow();
        }

        return released;
    }

    /// <summary>
    /// Buffers a record (poll thread). When the ring has no free slot, the record waits in an overflow queue on the poll
    /// thread: librdkafka may still deliver records it had fetched before the partition was paused, and every delivered
    /// record must be kept, because on resume librdkafka fetches from after the last record it delivered.
    /// </summary>
    public void Enqueue(ConsumeResult<byte[]?, byte[]?> record)
    {
        NextFetchOffset = record.Offset.Value + 1;
        var size = SizeOf(record);
        Volatile.Write(ref _bufferedBytes, _bufferedBytes + size);
        if (Tracker.IsFull || _overflow is { Count: > 0 })
        {
            (_overflow ??= new Queue<ConsumeResult<byte[]?, byte[]?>>()).Enqueue(record);
            return;
        }

        Add(record, size);
    }

    /// <summary>Moves records waiting in the overflow queue into freed slots (poll thread).</summary>
    private void DrainOverflow()
    {
        while (_overflow is { Count: > 0 } && !Tracker.IsFull)
        {
            var record = _overflow.Dequeue();
            Add(record, SizeOf(record));
        }
    }

    private void Add(ConsumeResult<byte[]?, byte[]?> record, int size)
    {
        var slot = Tracker.SlotOf(Tracker.NextSequence);
        _records[slot] = record;
        _sizes[slot] = size;
        _bufferedAt[slot] = _consumer.Time.GetTimestamp();
        if (FirstOffset < 0)
        {
            FirstOffset = record.Offset.Value;
        }

        Tracker.TryAdd(record.Offset.Value, out _);
        _unsignalled = true;
    }

    /// <summary>Gets a value indicating whether records were buffered since the worker was last woken (poll thread).</summary>
    public bool NeedsSignal => _unsignalled;

    /// <summary>
    /// Wakes the worker for the records buffered since the last call (poll thread). The poll thread buffers a burst of records
    /// and then wakes each worker once: a wake-up per record would make a worker that keeps up with the poll thread pay a
    /// thread-pool hand-off for every record.
    /// </summary>
    public void SignalBuffered()
    {
        if (_unsignalled)
        {
            _unsignalled = false;
            _signal.Set();

            // Records for a slice waiting in a batch across partitions: the collector may be lingering for them.
            _collector?.RecordsArrived();
        }
    }

    /// <summary>Stops dispatching: the worker finishes the record it is handling (if any) and exits; buffered records are left alone.</summary>
    public void StopDispatch()
    {
        if (!_stop.IsCancellationRequested)
        {
            _stop.Cancel();
            _signal.Set();
            Lot?.Wake();
        }
    }

    /// <summary>Cancels the handler of the in-flight record through its cancellation token.</summary>
    public void Abort()
    {
        StopDispatch();
        if (!_abort.IsCancellationRequested)
        {
            _abort.Cancel();
        }
    }

    public void Dispose()
    {
        // The worker may still be finishing an aborted record: its token sources must stay usable until then.
        if (Completion.IsCompleted)
        {
            _stop.Dispose();
            _abort.Dispose();
        }
    }

    /// <summary>
    /// Runs the worker; an exception that escapes the pipeline (a bug, never a handler failure, which the pipeline turns into
    /// an outcome) stops this partition's worker with a critical log instead of faulting the drain that waits for it. The
    /// partition then holds: its records are not committed, and its next owner handles them.
    /// </summary>
    private async Task RunGuardedAsync(Task predecessor)
    {
        try
        {
            if (!predecessor.IsCompleted)
            {
                Log.WaitingForPreviousAssignment(_consumer.Logger, _consumer.Name, TopicPartition.Topic, TopicPartition.Partition.Value);
                await predecessor.WaitAsync(_stop.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                if (_stop.IsCancellationRequested)
                {
                    return;
                }
            }

            if (Lot is { } lot)
            {
                await RunWithRetryTiersAsync(lot).ConfigureAwait(false);
                return;
            }

            await (_processor is IBatchProcessor batches ? RunBatchesAsync(batches)
                : _mode == DispatchMode.Sequential ? RunSequentialAsync()
                : RunConcurrentAsync()).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.WorkerFailed(_consumer.Logger, _consumer.Name, TopicPartition.Topic, TopicPartition.Partition.Value, ex);
        }
    }

    /// <summary>
    /// With retry tiers: waits until the partition's parked keys are known (its retry partition read to its end), then runs the
    /// partition's records and its parked ones side by side until the worker stops.
    /// </summary>
    private async Task RunWithRetryTiersAsync(RetryTiers.ParkingLot lot)
    {
        await lot.Ready.WaitAsync(_stop.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        var parked = lot.RunAsync(_stop.Token, _abort.Token);
        try
        {
            await (_mode == DispatchMode.Sequential ? RunSequentialAsync() : RunConcurrentAsync()).ConfigureAwait(false);
        }
        finally
        {
            lot.Wake();
            await parked.ConfigureAwait(false);
        }
    }

    /// <summary>One record at a time, in offset order.</summary>
    private async Task RunSequentialAsync()
    {
        var stop = _stop.Token;
        var abort = _abort.Token;
        var execution = new RecordExecution(_consumer, _processor, Hold, Assignment, Telemetry, Lot);
        long next = 0;
        while (!stop.IsCancellationRequested)
        {
            if (next == Tracker.Published)
            {
                await _signal.WaitAsync().ConfigureAwait(false);
                continue;
            }

            if (!await RunRecordAsync(execution, next, stop, abort).ConfigureAwait(false))
            {
                return;
            }

            next++;
        }
    }

    /// <summary>
    /// A batch handler's partition: one batch at a time, in offset order, of the records buffered when the previous batch is
    /// done, up to <see cref="BatchOptions.MaxSize"/> records and <see cref="BatchOptions.MaxBytes"/> bytes (at least one
    /// record); a smaller batch waits up to <see cref="BatchOptions.Linger"/> for more. With
    /// <see cref="BatchOptions.AcrossPartitions"/>, the partition's records go to the consumer's <see cref="BatchCollector"/>
    /// instead, which puts them in batches with other partitions' records.
    /// </summary>
    private async Task RunBatchesAsync(IBatchProcessor processor)
    {
        var stop = _stop.Token;
        var abort = _abort.Token;
        var options = _consumer.Options.Batch;
        var slice = new BatchSlice(this);
        BatchExecution? execution = null;
        var collector = options.AcrossPartitions ? processor.CollectorFor(_consumer) : null;
        _collector = collector;
        long next = 0;
        while (!stop.IsCancellationRequested)
        {
            if (next == Tracker.Published)
            {
                await _signal.WaitAsync().ConfigureAwait(false);
                continue;
            }

            slice.Reset(next);
            if (collector is not null)
            {
                if (!await RunSharedAsync(collector, slice, stop, abort).ConfigureAwait(false))
                {
                    return;
                }

                next = slice.End;
                continue;
            }

            if (options.Linger > TimeSpan.Zero && Tracker.Published - next < options.MaxSize && !await LingerAsync(next, options, stop).ConfigureAwait(false))
            {
                return;
            }

            var count = 0;
            long bytes = 0;
            slice.Extend(ref count, ref bytes, options.MaxSize, options.MaxBytes);
            execution ??= new BatchExecution(_consumer, processor);
            if (!await execution.RunAsync(slice, stop, abort).ConfigureAwait(false))
            {
                return;
            }

            next = slice.End;
        }
    }

    /// <summary>
    /// Offers the partition's next records to the consumer's batches across partitions and waits until they are done. A batch
    /// stopped by another of its partitions (revoked) hands the records back undone: they are offered again.
    /// </summary>
    /// <returns><see langword="false"/> when this worker stopped before the records were done.</returns>
    private async ValueTask<bool> RunSharedAsync(BatchCollector collector, BatchSlice slice, CancellationToken stop, CancellationToken abort)
    {
        while (true)
        {
            if (await collector.RunAsync(slice, stop, abort).ConfigureAwait(false))
            {
                return true;
            }

            if (stop.IsCancellationRequested)
            {
                return false;
            }

            if (slice.KeepUndone() == 0)
            {
                return true;
            }
        }
    }

    /// <summary>Waits until a full batch is buffered, the linger time has passed since the first record of the batch arrived, or the worker stops.</summary>
    /// <returns><see langword="false"/> when the worker stopped.</returns>
    private async ValueTask<bool> LingerAsync(long next, BatchOptions options, CancellationToken stop)
    {
        var until = BufferedAt(next) + (long)(options.Linger.TotalSeconds * _consumer.Time.TimestampFrequency);
        while (Tracker.Published - next < options.MaxSize && !stop.IsCancellationRequested)
        {
            var left = _consumer.Time.GetElapsedTime(_consumer.Time.GetTimestamp(), until);
            if (left <= TimeSpan.Zero)
            {
                break;
            }

            // Woken by the poll thread as records arrive, by the stop, or by the timer.
            await _signal.WaitAsync(left, _consumer.Time).ConfigureAwait(false);
        }

        return !stop.IsCancellationRequested;
    }

    /// <summary>
    /// Several records at once, up to the consumer's <see cref="ReliableConsumerOptions.MaxInFlight"/>: ByKey keeps the records
    /// of one key in offset order (a record waits behind the one of its key in flight), Unordered runs each record on its own.
    /// The tracker takes completions in any order and the watermark only passes a contiguous run of done records (G1).
    /// The dispatcher starts a lane when a record can run and an in-flight slot is free; a lane that runs out of records of
    /// its key takes the next record that can run (see <see cref="TakeNextLocked"/>) before it gives its slot back.
    /// </summary>
    private async Task RunConcurrentAsync()
    {
        var stop = _stop.Token;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                if (Volatile.Read(ref _nextDispatch) >= Tracker.Published)
                {
                    await _signal.WaitAsync().ConfigureAwait(false);
                    continue;
                }

                // A slot first (never held while nothing can run: the slots are shared by the consumer's partitions), then the
                // record, which a lane may have taken meanwhile.
                await _consumer.InFlight.WaitAsync(stop).ConfigureAwait(false);
                RecordExecution? execution = null;
                long sequence;
                ulong key = 0;
                lock (_lanesLock)
                {
                    sequence = stop.IsCancellationRequested ? -1 : TakeNextLocked(out key);
                    if (sequence >= 0)
                    {
                        execution = _idle.Count > 0 ? _idle.Pop() : new RecordExecution(_consumer, _processor, onHold: null, Assignment, Telemetry, Lot);
                        _activeLanes++;
                    }
                }

                if (execution is null)
                {
                    _consumer.InFlight.Release();
                    continue;
                }

                _ = RunLaneAsync(execution, key, sequence);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Stopped while waiting for an in-flight slot.
        }

        lock (_lanesLock)
        {
            _dispatchEnded = true;
            if (_activeLanes == 0)
            {
                _lanesDone.TrySetResult();
            }
        }

        await _lanesDone.Task.ConfigureAwait(false);
    }

    /// <summary>
    /// Takes the next record that can run now (under <see cref="_lanesLock"/>): records whose key is busy are queued behind
    /// it, in offset order, on the way; the record returned has its key marked busy (ByKey). Returns -1 when every published
    /// record is taken or queued.
    /// </summary>
    private long TakeNextLocked(out ulong key)
    {
        var published = Tracker.Published;
        while (_nextDispatch < published)
        {
            var sequence = _nextDispatch;
            Volatile.Write(ref _nextDispatch, sequence + 1);
            if (_mode != DispatchMode.ByKey)
            {
                key = 0;
                return sequence;
            }

            key = KeyOf(_records[Tracker.SlotOf(sequence)]!.Message.Key);
            if (_busyKeys.TryGetValue(key, out var waiting))
            {
                waiting.Enqueue(sequence);
                continue;
            }

            _busyKeys.Add(key, _freeQueues.Count > 0 ? _freeQueues.Pop() : new Queue<long>());
            return sequence;
        }

        key = 0;
        return -1;
    }

    /// <summary>
    /// Runs a record, then the records of the same key that queued behind it; when none is left, the next record that can
    /// run, up to <see cref="LaneRun"/> records, so that a fast handler does not pay a thread-pool hand-off per record and the
    /// consumer's other partitions still get the in-flight slot in turn. Ends when nothing can run or the worker stops.
    /// </summary>
    private async Task RunLaneAsync(RecordExecution execution, ulong key, long sequence)
    {
        await Task.Yield();
        var stop = _stop.Token;
        var abort = _abort.Token;
        var holdsKey = _mode == DispatchMode.ByKey;
        var run = 0;
        try
        {
            while (await RunRecordAsync(execution, sequence, stop, abort).ConfigureAwait(false) && !stop.IsCancellationRequested)
            {
                lock (_lanesLock)
                {
                    if (holdsKey)
                    {
                        // Find the key's queue empty and free the key in one critical section: the dispatcher (or a lane), which
                        // queues a record behind a busy key under the same lock, either queued it before (it runs next, here)
                        // or finds the key free after. Freeing it anywhere else would drop a record queued in between.
                        var waiting = _busyKeys[key];
                        if (waiting.TryDequeue(out sequence))
                        {
                            continue;
                        }

                        _busyKeys.Remove(key);
                        _freeQueues.Push(waiting);
                        holdsKey = false;
                    }

                    if (++run >= LaneRun || (sequence = TakeNextLocked(out key)) < 0)
                    {
                        return;
                    }

                    holdsKey = _mode == DispatchMode.ByKey;
                }
            }
        }
        catch (Exception ex)
        {
            // A bug, never a handler failure (the pipeline turns those into outcomes): the record stays undone and holds the
            // partition's watermark, as a failed worker does.
            Log.WorkerFailed(_consumer.Logger, _consumer.Name, TopicPartition.Topic, TopicPartition.Partition.Value, ex);
        }
        finally
        {
            lock (_lanesLock)
            {
                if (holdsKey && _busyKeys.Remove(key, out var waiting))
                {
                    // Stopped: records still queued behind this lane stay undone, like any buffered record of a stopped worker.
                    waiting.Clear();
                    _freeQueues.Push(waiting);
                }

                _idle.Push(execution);
                if (--_activeLanes == 0 && _dispatchEnded)
                {
                    _lanesDone.TrySetResult();
                }
            }

            _consumer.InFlight.Release();
        }
    }

    /// <summary>Runs one record and completes it, unless the handler still has to acknowledge it.</summary>
    /// <returns><see langword="false"/> when the worker stopped before the record was done.</returns>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> RunRecordAsync(RecordExecution execution, long sequence, CancellationToken stop, CancellationToken abort)
    {
        var record = _records[Tracker.SlotOf(sequence)]!;
        var acknowledgement = _manual ? new MessageAcknowledgement(_complete, sequence, record.Topic, record.Partition.Value, record.Offset.Value) : null;
        RecordResult result;
        // Counted per partition, not on a counter all partitions share: no contention between them on the hot path.
        Interlocked.Increment(ref _inFlight);
        try
        {
            result = await execution.RunAsync(record, Tracker, sequence, acknowledgement, stop, abort).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }

        switch (result)
        {
            case RecordResult.Stopped:
                return false;
            case RecordResult.Done when acknowledgement is not null:
                // Through the acknowledgement, so that a record is completed once even if the handler acknowledged it too.
                acknowledgement.Acknowledge();
                return true;
            case RecordResult.Done:
                Complete(sequence);
                return true;
            default:
                return true;
        }
    }

    /// <summary>Gets the buffered record of a sequence not yet done (a batch's execution).</summary>
    internal ConsumeResult<byte[]?, byte[]?> RecordAt(long sequence) => _records[Tracker.SlotOf(sequence)]!;

    /// <summary>Gets what a published record counts against the byte budget (any thread, once published).</summary>
    internal int SizeAt(long sequence) => _sizes[Tracker.SlotOf(sequence)];

    /// <summary>Gets when a published record was buffered (a <see cref="TimeProvider"/> timestamp; any thread).</summary>
    internal long BufferedAt(long sequence) => Volatile.Read(ref _bufferedAt[Tracker.SlotOf(sequence)]);

    /// <summary>Gets the one-record execution of a batch handler's partition: records run alone (poison, isolated, reported failed).</summary>
    internal RecordExecution SingleExecution => _single ??= new RecordExecution(_consumer, _processor, Hold, Assignment, Telemetry);

    /// <summary>Counts records of a batch as in flight (or no longer, with a negative count).</summary>
    internal void AddInFlight(int count) => Interlocked.Add(ref _inFlight, count);

    /// <summary>Marks the partition as active now: a batch attempt that returns, even failed, shows a handler that is not stuck.</summary>
    internal void Touch() => Volatile.Write(ref _lastProgress, _consumer.Time.GetTimestamp());

    /// <summary>Completes a record of a batch.</summary>
    internal void CompleteRecord(long sequence) => Complete(sequence);

    /// <summary>Marks the partition as held by a failing batch (or no longer): it is paused meanwhile.</summary>
    internal void SetHolding(bool holding) => Hold(holding);

    private void Complete(long sequence)
    {
        Volatile.Write(ref _lastProgress, _consumer.Time.GetTimestamp());
        _records[Tracker.SlotOf(sequence)] = null;
        Tracker.MarkDone(sequence);
        _consumer.NotifyProgress();
    }

    private void Hold(bool holding)
    {
        _holding = holding;
        _consumer.NotifyProgress();
    }

    /// <summary>A 64-bit FNV-1a hash of the key: equal keys share a lane; a collision only serializes two keys, never reorders one.</summary>
    private static ulong KeyOf(byte[]? key)
    {
        if (key is null)
        {
            return 0;
        }

        var hash = 14695981039346656037UL;
        foreach (var b in key)
        {
            hash = (hash ^ b) * 1099511628211UL;
        }

        return hash | 1;
    }
}
