using System.Runtime.CompilerServices;
using Confluent.Kafka;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Idempotency;
using Kafka.Reliable.Offsets;
using Kafka.Reliable.Pipeline;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;

namespace Kafka.Reliable.Consuming;

/// <summary>
/// Owns one assigned partition for one assignment: its bounded buffer of records, its offset tracker, and the worker that
/// runs the pipeline over the records in offset order. A new assignment of the same partition gets a new worker, so a
/// completion from an older assignment can only ever reach the old tracker, which nobody commits from any more (G6).
/// </summary>
internal sealed class PartitionWorker : IDisposable
{
    private static readonly TimeSpan MinHeldWait = TimeSpan.FromMilliseconds(100);
    private readonly ConsumeResult<byte[]?, byte[]?>?[] _records;
    private readonly AsyncSignal _signal = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _abort = new();
    private readonly IRecordProcessor _processor;
    private readonly ConsumerContext _consumer;
    private readonly MessageContext _context;
    private Queue<ConsumeResult<byte[]?, byte[]?>>? _overflow;
    private volatile bool _holding;

    // The record at the head: how many attempts it had and when they failed. Only the worker loop touches these.
    private int _attempts;
    private DateTimeOffset _firstFailure;
    private DateTimeOffset _lastFailure;
    private CancellationToken _abortToken;
    private Exception? _replayedFailure;

    public PartitionWorker(TopicPartition topicPartition, ConsumerContext consumer, IRecordProcessor processor)
    {
        TopicPartition = topicPartition;
        _consumer = consumer;
        _processor = processor;
        // Headroom over the buffer size: records that librdkafka had already fetched when the partition was paused still fit.
        Tracker = new PartitionOffsetTracker(consumer.Options.PartitionBufferSize * 2);
        _records = new ConsumeResult<byte[]?, byte[]?>?[Tracker.Capacity];
        _context = new MessageContext(consumer.Name, consumer.Options.GroupId);
        Completion = Task.CompletedTask;
    }

    public TopicPartition TopicPartition { get; }

    public PartitionOffsetTracker Tracker { get; }

    /// <summary>Gets or sets a value indicating whether the partition is paused (poll thread).</summary>
    public bool Paused { get; set; }

    /// <summary>Gets the offset after the last record delivered to this worker: where fetching resumes (poll thread); -1 before the first record.</summary>
    public long NextFetchOffset { get; private set; } = -1;

    /// <summary>Gets or sets the last offset committed for this partition in this assignment (poll thread).</summary>
    public long LastCommitted { get; set; } = -1;

    /// <summary>Gets the worker loop; it completes once the worker was stopped and its in-flight record is finished.</summary>
    public Task Completion { get; private set; }

    public bool IsAborted => _abort.IsCancellationRequested;

    /// <summary>Gets a value indicating whether the record at the head of the partition is failing (retrying, waiting for the circuit, or for the dead-letter topic): the partition is paused meanwhile.</summary>
    public bool IsHolding => _holding;

    public void Start() => Completion = Task.Run(RunAsync);

    /// <summary>Gets the number of records buffered and not yet done, including those waiting for a slot (poll thread).</summary>
    public int Buffered => Tracker.Count + (_overflow?.Count ?? 0);

    /// <summary>
    /// Buffers a record (poll thread). When the ring has no free slot, the record waits in an overflow queue on the poll
    /// thread: librdkafka may still deliver records it had fetched before the partition was paused, and every delivered
    /// record must be kept, because on resume librdkafka fetches from after the last record it delivered.
    /// </summary>
    public void Enqueue(ConsumeResult<byte[]?, byte[]?> record)
    {
        NextFetchOffset = record.Offset.Value + 1;
        if (Tracker.IsFull || _overflow is { Count: > 0 })
        {
            (_overflow ??= new Queue<ConsumeResult<byte[]?, byte[]?>>()).Enqueue(record);
            return;
        }

        Add(record);
    }

    /// <summary>Moves records waiting in the overflow queue into freed slots (poll thread).</summary>
    public void DrainOverflow()
    {
        while (_overflow is { Count: > 0 } && !Tracker.IsFull)
        {
            Add(_overflow.Dequeue());
        }
    }

    private void Add(ConsumeResult<byte[]?, byte[]?> record)
    {
        _records[Tracker.SlotOf(Tracker.NextSequence)] = record;
        Tracker.TryAdd(record.Offset.Value, out _);
        _signal.Set();
    }

    /// <summary>Stops dispatching: the worker finishes the record it is handling (if any) and exits; buffered records are left alone.</summary>
    public void StopDispatch()
    {
        if (!_stop.IsCancellationRequested)
        {
            _stop.Cancel();
            _signal.Set();
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

    private async Task RunAsync()
    {
        var stop = _stop.Token;
        var abort = _abort.Token;
        long next = 0;
        while (!stop.IsCancellationRequested)
        {
            if (next == Tracker.Published)
            {
                await _signal.WaitAsync().ConfigureAwait(false);
                continue;
            }

            var slot = Tracker.SlotOf(next);
            _context.Initialize(_records[slot]!);
            var done = await ProcessRecordAsync(stop, abort).ConfigureAwait(false);
            _context.Reset();
            if (!done)
            {
                return;
            }

            _records[slot] = null;
            Tracker.MarkDone(next);
            _consumer.NotifyProgress();
            next++;
        }
    }

    /// <summary>
    /// Takes the record at the head of the partition until it is done: handled, skipped, or dead-lettered and acknowledged.
    /// A payload the pipeline can never process (a tombstone under the DeadLetter policy, an oversize value, a deserializer or
    /// translator failure) is dead-lettered at once. Handler attempts run through the resilience pipeline: transient failures
    /// are retried with backoff, fatal ones and exhausted retries are dead-lettered, and while the circuit is open the record
    /// waits without spending attempts. While a record fails, its partition is held (paused) and the others go on.
    /// </summary>
    /// <returns><see langword="false"/> when the worker was stopped or aborted before the record was done.</returns>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> ProcessRecordAsync(CancellationToken stop, CancellationToken abort)
    {
        _attempts = 0;
        _firstFailure = default;
        _abortToken = abort;
        try
        {
            var proceed = Screen(out var rejected);
            if (!proceed && rejected.IsSuccess)
            {
                return true;
            }

            var outcome = !proceed ? rejected
                : _consumer.FirstAttemptOutsidePipeline ? await FirstAttemptAsync(stop).ConfigureAwait(false)
                : await AttemptThroughPipelineAsync(stop).ConfigureAwait(false);
            var heldRound = 0;
            while (true)
            {
                if (outcome.IsSuccess)
                {
                    if (outcome.Duplicate)
                    {
                        Log.DuplicateSkipped(_consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset);
                        ReliableMetrics.DuplicateSkipped(_consumer.Name, _context.GroupId, _context.Topic);
                    }

                    return true;
                }

                if (outcome.Canceled || stop.IsCancellationRequested)
                {
                    return false;
                }

                if (outcome.Exception is BrokenCircuitException or IdempotencyKeyHeldException)
                {
                    // Not the record's fault: wait for the circuit, or for the consumer holding its key, without spending attempts.
                    Hold(true);
                    var wait = outcome.Exception is IdempotencyKeyHeldException held
                        ? TimeSpan.FromTicks(Math.Clamp(held.RetryAfter.Ticks, MinHeldWait.Ticks, _consumer.Options.Retry.MaxDelay.Ticks))
                        : ((BrokenCircuitException)outcome.Exception).RetryAfter ?? _consumer.Options.CircuitBreaker.BreakDuration;
                    if (!await DelayAsync(wait, stop).ConfigureAwait(false))
                    {
                        return false;
                    }

                    outcome = await AttemptThroughPipelineAsync(stop).ConfigureAwait(false);
                    continue;
                }

                if (_firstFailure == default)
                {
                    // A screened payload never reached an attempt: it failed now, once.
                    _attempts = _context.Attempt = 1;
                    _firstFailure = _lastFailure = _consumer.Time.GetUtcNow();
                    Hold(true);
                }

                if (_consumer.DeadLetter is { } deadLetter)
                {
                    return await DeadLetterAsync(deadLetter, outcome, stop).ConfigureAwait(false);
                }

                // Dead-lettering is off: nothing may be skipped, so the partition holds here until the cause is fixed.
                var delay = RetryBackoff.Delay(_consumer.Options.Retry, ++heldRound);
                Log.RecordHeld(_consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, DeadLetterPublisher.StageName(outcome.FailedStage), delay);
                if (!await DelayAsync(delay, stop).ConfigureAwait(false))
                {
                    return false;
                }

                outcome = proceed ? await AttemptThroughPipelineAsync(stop).ConfigureAwait(false) : rejected;
            }
        }
        finally
        {
            Hold(false);
            _abortToken = default;
            _replayedFailure = null;
        }
    }

    /// <summary>Decides what can be decided without deserializing: tombstones and oversize values.</summary>
    /// <param name="rejected">When the record does not go to the pipeline: success to skip it, or the failure to dead-letter it with.</param>
    /// <returns><see langword="true"/> when the record goes to the pipeline.</returns>
    private bool Screen(out ProcessingOutcome rejected)
    {
        rejected = ProcessingOutcome.Success;
        var value = _context.Record!.Message.Value;
        if (value is null)
        {
            switch (_consumer.Options.Tombstones)
            {
                case TombstonePolicy.Skip:
                    Log.TombstoneSkipped(_consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset);
                    return false;
                case TombstonePolicy.DeadLetter:
                    rejected = ProcessingOutcome.Failed(ProcessingStage.Deserialize, new InvalidDataException(
                        "The record has a null value (a tombstone) and the consumer's Tombstones policy is DeadLetter; set Tombstones to Skip or Handle if tombstones are expected."));
                    return false;
            }
        }
        else if (value.Length > _consumer.Options.MaxPayloadBytes)
        {
            rejected = ProcessingOutcome.Failed(ProcessingStage.Deserialize, new InvalidDataException(
                $"The record's value is {value.Length} bytes, more than MaxPayloadBytes ({_consumer.Options.MaxPayloadBytes}); it was not deserialized."));
            return false;
        }

        return true;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ProcessingOutcome> AttemptThroughPipelineAsync(CancellationToken stop)
    {
        var resilience = ResilienceContextPool.Shared.Get(stop);
        try
        {
            var result = await _consumer.Resilience.ExecuteOutcomeAsync(
                static (_, self) => self.AttemptAsync(), resilience, this).ConfigureAwait(false);
            return result.Exception is { } exception
                ? ProcessingOutcome.Failed(ProcessingStage.Handle, exception)
                : result.Result;
        }
        finally
        {
            ResilienceContextPool.Shared.Return(resilience);
        }
    }

    /// <summary>
    /// The first attempt without the pipeline, when the pipeline is the built-in retry alone: a record that succeeds at once
    /// (nearly all of them) costs no Polly call. A transient failure enters the pipeline, which takes that failure as its first
    /// attempt's outcome, so that delays and attempt counts are exactly those of running the pipeline from the start.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ProcessingOutcome> FirstAttemptAsync(CancellationToken stop)
    {
        var first = await AttemptAsync().ConfigureAwait(false);
        if (first.Exception is not { } exception)
        {
            return first.Result;
        }

        if (_consumer.Classification.Classify(exception) == FailureKind.Fatal)
        {
            return ProcessingOutcome.Failed(ProcessingStage.Handle, exception);
        }

        _replayedFailure = exception;
        return await AttemptThroughPipelineAsync(stop).ConfigureAwait(false);
    }

    /// <summary>One attempt at the record. A handler failure is returned to Polly as an exception outcome (not thrown), so that it can retry or count it.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<Outcome<ProcessingOutcome>> AttemptAsync()
    {
        if (_replayedFailure is { } replayed)
        {
            // The failure of the first attempt, made outside the pipeline (see FirstAttemptAsync).
            _replayedFailure = null;
            return Outcome.FromException<ProcessingOutcome>(replayed);
        }

        _context.Attempt = ++_attempts;
        var outcome = await _processor.ProcessAsync(_context, _abortToken).ConfigureAwait(false);
        if (outcome.IsSuccess || outcome.Canceled)
        {
            return Outcome.FromResult(outcome);
        }

        _lastFailure = _consumer.Time.GetUtcNow();
        if (_firstFailure == default)
        {
            _firstFailure = _lastFailure;
            Hold(true);
        }

        var exception = outcome.Exception!;
        var kind = outcome.FailedStage == ProcessingStage.Handle ? _consumer.Classification.Classify(exception) : FailureKind.Fatal;
        Log.RecordFailed(
            _consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, DeadLetterPublisher.StageName(outcome.FailedStage),
            _attempts, exception.GetType().FullName!, exception.Message, kind);
        return outcome.FailedStage == ProcessingStage.Handle ? Outcome.FromException<ProcessingOutcome>(exception) : Outcome.FromResult(outcome);
    }

    /// <summary>Marks the partition as held by a failing record (or released), and tells the poll thread to pause or resume it.</summary>
    private void Hold(bool holding)
    {
        if (_holding != holding)
        {
            _holding = holding;
            _consumer.NotifyProgress();
        }
    }

    private async ValueTask<bool> DeadLetterAsync(DeadLetterPublisher deadLetter, ProcessingOutcome outcome, CancellationToken stop)
    {
        var topic = deadLetter.TopicFor(_context.Topic);
        var writeAttempt = 1;
        while (true)
        {
            try
            {
                await deadLetter.PublishAsync(_context, outcome, _firstFailure, _lastFailure, stop).ConfigureAwait(false);
                Log.RecordDeadLettered(
                    _consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, DeadLetterPublisher.StageName(outcome.FailedStage),
                    _context.Attempt, outcome.Exception!.GetType().FullName!, outcome.Exception.Message, topic);
                return true;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return false;
            }
            catch (Exception ex)
            {
                // Not acknowledged: the record is not done, so its partition does not advance past it. Try again.
                var delay = RetryBackoff.Delay(_consumer.Options.Retry, writeAttempt++);
                Log.DeadLetterFailed(_consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, topic, ex.Message, delay);
                if (!await DelayAsync(delay, stop).ConfigureAwait(false))
                {
                    return false;
                }
            }
        }
    }

    private async ValueTask<bool> DelayAsync(TimeSpan delay, CancellationToken stop)
    {
        try
        {
            await Task.Delay(delay, _consumer.Time, stop).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }
}
