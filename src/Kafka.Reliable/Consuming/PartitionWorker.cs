using System.Runtime.CompilerServices;
using Confluent.Kafka;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Diagnostics;
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
    private readonly ConsumeResult<byte[]?, byte[]?>?[] _records;
    private readonly AsyncSignal _signal = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _abort = new();
    private readonly IRecordProcessor _processor;
    private readonly ConsumerContext _consumer;
    private readonly MessageContext _context;
    private Queue<ConsumeResult<byte[]?, byte[]?>>? _overflow;

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
            var done = await ProcessWithRetriesAsync(stop, abort).ConfigureAwait(false);
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
    /// Runs attempts until the record is done. A record that can never be processed (its payload cannot be deserialized or
    /// the translator rejects it) is dead-lettered at once; a handler failure is retried in place with a capped backoff, so the
    /// watermark never passes a failed record. A dead-letter write that fails is retried the same way.
    /// </summary>
    /// <returns><see langword="false"/> when the worker was stopped or aborted before the record was done.</returns>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> ProcessWithRetriesAsync(CancellationToken stop, CancellationToken abort)
    {
        var firstFailure = default(DateTimeOffset);
        while (true)
        {
            var outcome = await _processor.ProcessAsync(_context, abort).ConfigureAwait(false);
            if (outcome.IsSuccess)
            {
                return true;
            }

            if (outcome.Canceled || stop.IsCancellationRequested)
            {
                return false;
            }

            var now = _consumer.Time.GetUtcNow();
            if (firstFailure == default)
            {
                firstFailure = now;
            }

            if (outcome.FailedStage != ProcessingStage.Handle && _consumer.DeadLetter is { } deadLetter)
            {
                return await DeadLetterAsync(deadLetter, outcome, firstFailure, now, stop).ConfigureAwait(false);
            }

            var delay = RetryBackoff.Delay(_consumer.Options.Retry, _context.Attempt);
            Log.RecordFailed(
                _consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, DeadLetterPublisher.StageName(outcome.FailedStage),
                _context.Attempt, outcome.Exception!.GetType().FullName!, outcome.Exception.Message, delay);
            if (!await DelayAsync(delay, stop).ConfigureAwait(false))
            {
                return false;
            }

            _context.Attempt++;
        }
    }

    private async ValueTask<bool> DeadLetterAsync(DeadLetterPublisher deadLetter, ProcessingOutcome outcome, DateTimeOffset firstFailure, DateTimeOffset lastFailure, CancellationToken stop)
    {
        var topic = deadLetter.TopicFor(_context.Topic);
        var writeAttempt = 1;
        while (true)
        {
            try
            {
                await deadLetter.PublishAsync(_context, outcome, firstFailure, lastFailure, stop).ConfigureAwait(false);
                Log.RecordDeadLettered(
                    _consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, DeadLetterPublisher.StageName(outcome.FailedStage),
                    outcome.Exception!.GetType().FullName!, outcome.Exception.Message, topic);
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
