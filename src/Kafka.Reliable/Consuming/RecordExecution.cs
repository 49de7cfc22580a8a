using System.Diagnostics;
using System.Runtime.CompilerServices;
using Confluent.Kafka;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Idempotency;
using Kafka.Reliable.Pipeline;
using Polly;
using Polly.CircuitBreaker;

namespace Kafka.Reliable.Consuming;

/// <summary>What became of a record.</summary>
internal enum RecordResult
{
    /// <summary>Done: handled, skipped, or dead-lettered.</summary>
    Done,

    /// <summary>Handled, with <see cref="CommitStrategy.Manual"/>, and not acknowledged yet: its acknowledgement completes it.</summary>
    Deferred,

    /// <summary>The worker stopped before the record was done.</summary>
    Stopped,
}

/// <summary>
/// Takes one record at a time through the pipeline until it is done: the per-record state (context, attempts, failure
/// times) of one lane of a partition. A sequential partition has one; a partition dispatched by key or unordered has one per
/// record in flight, reused from record to record.
/// </summary>
internal sealed class RecordExecution
{
    private readonly ConsumerContext _consumer;
    private readonly IRecordProcessor _processor;
    private readonly MessageContext _context;
    private readonly PartitionTelemetry _telemetry;
    private readonly Action<bool>? _onHold;
    private bool _holding;
    private int _attempts;
    private Exception? _lastHandlerFailure;
    private int _handlerFailures;
    private DateTimeOffset _firstFailure;
    private DateTimeOffset _lastFailure;
    private CancellationToken _abortToken;
    private Exception? _replayedFailure;
    private bool _handledByHandler;
    private Activity? _activity;
    private Exception? _deadLettered;
    private readonly RetryTiers.ParkingLot? _lot;
    private RetryTiers.ParkedEntry? _parked;

    /// <param name="consumer">What the consumer's partitions share.</param>
    /// <param name="processor">The pipeline.</param>
    /// <param name="onHold">Told when the record starts and stops failing (a sequential partition pauses meanwhile); null to ignore.</param>
    /// <param name="assignment">The assignment of the partition the records are read under.</param>
    /// <param name="telemetry">The tags of the partition's spans and measurements.</param>
    /// <param name="lot">The partition's retry tiers, when the consumer has them; null otherwise.</param>
    public RecordExecution(ConsumerContext consumer, IRecordProcessor processor, Action<bool>? onHold, long assignment, PartitionTelemetry telemetry, RetryTiers.ParkingLot? lot = null)
    {
        _consumer = consumer;
        _lot = lot;
        _telemetry = telemetry;
        _processor = processor;
        _onHold = onHold;
        _context = new MessageContext(consumer.Name, consumer.Options.GroupId) { Assignment = assignment };
    }

    /// <summary>Processes a record until it is done, or until the handler handled it and its acknowledgement is pending.</summary>
    /// <param name="record">The record.</param>
    /// <param name="tracker">The record's partition's offset tracker.</param>
    /// <param name="sequence">The record's sequence in it.</param>
    /// <param name="acknowledgement">With <see cref="CommitStrategy.Manual"/>, the record's acknowledgement; otherwise null.</param>
    /// <param name="stop">Stops retries and waits: the record is left undone.</param>
    /// <param name="abort">Cancels the handler.</param>
    /// <param name="failedInBatch">The size of the batch handler's batch the record failed in, when it runs alone to isolate that failure (it was counted as consumed with its batch); 0 otherwise.</param>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<RecordResult> RunAsync(
        ConsumeResult<byte[]?, byte[]?> record, Offsets.PartitionOffsetTracker tracker, long sequence, MessageAcknowledgement? acknowledgement, CancellationToken stop, CancellationToken abort,
        int failedInBatch = 0)
    {
        _context.Initialize(record);
        _context.Track(tracker, sequence);
        _context.PendingAcknowledgement = acknowledgement;
        _context.FailedInBatch = failedInBatch;
        _handledByHandler = false;
        _deadLettered = null;
        var metrics = _consumer.Metrics;
        if (failedInBatch == 0)
        {
            metrics.Consumed(_telemetry);
        }

        var started = metrics.ProcessDuration.Enabled ? Stopwatch.GetTimestamp() : 0;
        _activity = ReliableTracing.StartProcess(record, _telemetry);
        var done = false;
        try
        {
            if (!await ProcessRecordAsync(stop, abort).ConfigureAwait(false))
            {
                return RecordResult.Stopped;
            }

            done = true;

            // Manual: a record the handler handled is done when the handler acknowledges it, which may be later.
            return acknowledgement is not null && _handledByHandler && !acknowledgement.IsAcknowledged ? RecordResult.Deferred : RecordResult.Done;
        }
        finally
        {
            Finish(started, done);
        }
    }

    /// <summary>
    /// Runs a record parked in a retry tier (or behind its key) through the pipeline: it is done when handled, skipped,
    /// dead-lettered, or moved to its next tier (then its entry is no longer <see cref="RetryTiers.ParkedState.Running"/>).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<RecordResult> RunParkedAsync(RetryTiers.ParkedEntry entry, CancellationToken stop, CancellationToken abort)
    {
        var record = entry.Record!;
        _context.Initialize(record);
        _context.Track(_lot!.Tracker, -1);
        _context.RetryTier = entry.Tier;
        _context.RetryHistory = entry.History;
        _parked = entry;
        _handledByHandler = false;
        _deadLettered = null;
        var metrics = _consumer.Metrics;
        var started = metrics.ProcessDuration.Enabled ? Stopwatch.GetTimestamp() : 0;
        _activity = ReliableTracing.StartProcess(record, _telemetry, entry.ParkedBy);
        var done = false;
        try
        {
            if (entry.Released)
            {
                // An operator released the key: the record is dead-lettered now, and the records behind it go on.
                _attempts = _context.Attempt = 0;
                _firstFailure = _lastFailure = _consumer.Time.GetUtcNow();
                var released = ProcessingOutcome.Failed(ProcessingStage.Handle, new RetryTierReleasedException(entry.Tier));
                done = _consumer.DeadLetter is { } deadLetter && await DeadLetterAsync(deadLetter, released, stop).ConfigureAwait(false);
                return done ? RecordResult.Done : RecordResult.Stopped;
            }

            done = await ProcessRecordAsync(stop, abort).ConfigureAwait(false);
            return done ? RecordResult.Done : RecordResult.Stopped;
        }
        finally
        {
            _parked = null;
            Finish(started, done);
        }
    }

    /// <summary>Ends a record's run: its processing measured (unless left undone: a stopped worker's record is processed again later), its span ended, the context reset.</summary>
    private void Finish(long started, bool done)
    {
        if (started != 0 && done)
        {
            _consumer.Metrics.Processing(started, _telemetry, _deadLettered);
        }

        if (_activity is not null)
        {
            ReliableTracing.Finished(_activity, _attempts, _deadLettered is not null, _deadLettered);
            _activity.Dispose();
            _activity = null;
        }

        _context.Reset();
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
        _lastHandlerFailure = null;
        _handlerFailures = 0;
        _firstFailure = default;
        _abortToken = abort;
        try
        {
            if (_parked is null && _lot is { IsEmpty: false } lot)
            {
                switch (await AdmitAsync(lot, stop).ConfigureAwait(false))
                {
                    case RetryTiers.Admission.AlreadyParked or RetryTiers.Admission.Follow:
                        return true;
                    case RetryTiers.Admission.Full:
                        return false;
                }
            }

            var proceed = Screen(out var rejected);
            if (!proceed && rejected.IsSuccess)
            {
                return true;
            }

            var outcome = !proceed ? rejected
                : _consumer.FirstAttemptOutsidePipeline ? await FirstAttemptAsync(stop).ConfigureAwait(false)
                : await AttemptThroughPipelineAsync(stop).ConfigureAwait(false);
            var heldRound = 0;
            var storeRound = 0;
            while (true)
            {
                if (outcome.IsSuccess)
                {
                    _handledByHandler = proceed && !outcome.Duplicate;
                    if (outcome.Duplicate)
                    {
                        Log.DuplicateSkipped(_consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset);
                        ReliableMetrics.Add(_consumer.Metrics.Duplicates, _consumer, _context.Topic);
                    }

                    return true;
                }

                if (outcome.Canceled || stop.IsCancellationRequested)
                {
                    return false;
                }

                var circuit = outcome.Exception is BrokenCircuitException || WaitsForTheCircuit(outcome);
                if (circuit && CircuitTrialsExhausted())
                {
                    outcome = ProcessingOutcome.Failed(ProcessingStage.Handle, _lastHandlerFailure!);
                }
                else if (circuit || outcome.Exception is IdempotencyWaitException or DependencyUnavailableException)
                {
                    // Not the record's fault: wait for the circuit, for the consumer holding its key, or for the store, without
                    // spending attempts.
                    // After the break, the attempt below is the circuit's trial: the consumer makes it itself, so a circuit opened
                    // by the last record there was still recovers without any other record arriving.
                    Hold(true);
                    var wait = outcome.Exception switch
                    {
                        IdempotencyKeyHeldException held => NotAtFaultWaits.ForHeldKey(held, _consumer.Options),
                        IdempotencyStoreUnavailableException unavailable => StoreWait(unavailable, ++storeRound),
                        DependencyUnavailableException unavailable => DependencyWait(unavailable, ++storeRound),
                        BrokenCircuitException broken => NotAtFaultWaits.ForCircuit(broken, _consumer.Options),
                        _ => _consumer.Options.CircuitBreaker.BreakDuration,
                    };
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
                    ReliableTracing.AttemptFailed(_activity, 1, DeadLetterPublisher.StageName(outcome.FailedStage), outcome.Exception!, FailureKind.Fatal);
                    _firstFailure = _lastFailure = _consumer.Time.GetUtcNow();
                    Hold(true);
                }

                if (_lot is { } parking && TierAfter(outcome) is var tier and > 0)
                {
                    return await ParkAsync(parking, tier, outcome, stop).ConfigureAwait(false);
                }

                if (_consumer.DeadLetter is { } deadLetter)
                {
                    if (_parked is { } parked)
                    {
                        // After its last tier: the dead letter carries every tier's failure.
                        _context.RetryHistory = [.. parked.History, RetryTiers.RetryRecords.HistoryLine(parked.Tier, _lastFailure, _attempts, outcome.Exception!)];
                        _context.Attempt = parked.Attempts + _attempts;
                    }

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

    /// <summary>
    /// Asks the partition's retry tiers whether the record may be handled: a record of a parked key is parked behind it
    /// (written to the retry topic, then done), a record parked already is done. While the lot is full, the record waits.
    /// </summary>
    /// <returns><see cref="RetryTiers.Admission.Full"/> only when the worker stopped while the record waited.</returns>
    private async ValueTask<RetryTiers.Admission> AdmitAsync(RetryTiers.ParkingLot lot, CancellationToken stop)
    {
        var record = _context.Record!;
        var round = 0;
        while (true)
        {
            var admission = lot.Admit(record, out var entry);
            switch (admission)
            {
                case RetryTiers.Admission.AlreadyParked:
                    Log.RecordAlreadyParked(_consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, lot.RetryPartition.Topic);
                    return admission;
                case RetryTiers.Admission.Follow:
                    var copy = RetryTiers.RetryRecords.Copy(record, _consumer.Options.GroupId, tier: 0, dueMs: 0, entry!.ParkedAtMs, attempts: 0, [], _activity?.Id);
                    var written = await lot.WriteAsync(copy, _context.Offset, stop).ConfigureAwait(false);
                    if (written < 0)
                    {
                        lot.Abandon(entry);
                        if (written == -1 || _consumer.DeadLetter is not { } deadLetter)
                        {
                            return RetryTiers.Admission.Full;
                        }

                        // It can never wait behind its key: the dead-letter topic has it instead, so that nothing is lost.
                        _firstFailure = _lastFailure = _consumer.Time.GetUtcNow();
                        var refused = ProcessingOutcome.Failed(ProcessingStage.Handle, new NonRetryableException(
                            $"Its key has a record parked in {lot.RetryPartition.Topic}, and the retry topic refuses its copy (too large): dead-lettered instead of handled out of order."));
                        return await DeadLetterAsync(deadLetter, refused, stop).ConfigureAwait(false) ? admission : RetryTiers.Admission.Full;
                    }

                    ReliableTracing.Parked(_activity, 0);
                    ReliableMetrics.Add(_consumer.Metrics.Parked, _consumer, _context.Topic);
                    Log.RecordParkedBehindKey(_consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, lot.RetryPartition.Topic);
                    return admission;
                case RetryTiers.Admission.Full:
                    Hold(true);
                    if (!await WaitForRoomAsync(++round, stop).ConfigureAwait(false))
                    {
                        return admission;
                    }

                    continue;
                default:
                    return admission;
            }
        }
    }

    /// <summary>Waits the retry backoff for room in the partition's full lot (log 244).</summary>
    /// <returns><see langword="false"/> when the worker stopped meanwhile.</returns>
    private ValueTask<bool> WaitForRoomAsync(int round, CancellationToken stop)
    {
        var delay = RetryBackoff.Delay(_consumer.Options.Retry, round);
        Log.ParkingLotFull(_consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, _consumer.Options.RetryTiers.MaxParkedRecords, delay);
        return DelayAsync(delay, stop);
    }

    /// <summary>
    /// The retry tier a failed record goes to instead of the dead-letter topic: 0 (dead-letter it) for a failure that is not
    /// the handler's transient one, a failure routed out of the tiers, and a record past its last tier.
    /// </summary>
    private int TierAfter(ProcessingOutcome outcome)
    {
        if (outcome.FailedStage != ProcessingStage.Handle || outcome.Exception is not { } exception || KindOf(outcome) != FailureKind.Transient)
        {
            return 0;
        }

        var route = _consumer.Options.RetryTiers.RouteOf(exception);
        if (!route.Parks)
        {
            return 0;
        }

        var tier = _parked is { Tier: > 0 } parked ? parked.Tier + 1 : route.FirstTier;
        return tier <= _lot!.Delays.Count ? tier : 0;
    }

    /// <summary>
    /// Parks a failed record in retry tier <paramref name="tier"/>: writes its copy, due after the tier's delay, with its
    /// failure added to its history, and waits until the copy is acknowledged. The record is then done here (a parked record
    /// running in a tier: moved to the next).
    /// </summary>
    private async ValueTask<bool> ParkAsync(RetryTiers.ParkingLot lot, int tier, ProcessingOutcome outcome, CancellationToken stop)
    {
        var record = _context.Record!;
        var parked = _parked;
        RetryTiers.ParkedEntry? entry = parked;
        var round = 0;
        while (entry is null)
        {
            entry = lot.BeginPark(record, tier);
            if (entry is null)
            {
                if (!await WaitForRoomAsync(++round, stop).ConfigureAwait(false))
                {
                    return false;
                }
            }
        }

        var now = _consumer.Time.GetUtcNow();
        var due = now + lot.Delays[tier - 1];
        var history = RetryTiers.RetryRecords.Bounded([.. parked?.History ?? [], RetryTiers.RetryRecords.HistoryLine(parked?.Tier ?? 0, _lastFailure, _attempts, outcome.Exception!)]);
        var attempts = (parked?.Attempts ?? 0) + _attempts;
        var copy = RetryTiers.RetryRecords.Copy(record, _consumer.Options.GroupId, tier, due.ToUnixTimeMilliseconds(), entry.ParkedAtMs, attempts, history, _activity?.Id ?? parked?.ParkedBy);
        var written = await lot.WriteAsync(copy, _context.Offset, stop).ConfigureAwait(false);
        if (written < 0)
        {
            if (parked is null)
            {
                lot.Abandon(entry);
            }

            // Too large for the retry topic, for ever: dead-lettered now with its failure (the dead-letter topic takes a bounded copy).
            return written == -2 && _consumer.DeadLetter is { } deadLetter && await DeadLetterAsync(deadLetter, outcome, stop).ConfigureAwait(false);
        }

        if (parked is not null)
        {
            lot.Moved(parked, tier);
        }

        ReliableTracing.Parked(_activity, tier);
        ReliableMetrics.Add(_consumer.Metrics.Parked, _consumer, _context.Topic);
        Log.RecordParked(
            _consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, tier, lot.Delays[tier - 1], lot.RetryPartition.Topic,
            attempts, outcome.Exception!.GetType().FullName!, outcome.Exception.Message);
        return true;
    }

    /// <summary>How long a record waits for its deserializer's dependency (a schema registry) after its retries: the retry backoff, logged (234).</summary>
    private TimeSpan DependencyWait(DependencyUnavailableException unavailable, int round)
    {
        var delay = RetryBackoff.Delay(_consumer.Options.Retry, round);
        Log.DependencyUnavailable(_consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, round, delay, unavailable.Message);
        return delay;
    }

    /// <summary>How long a record waits for an idempotency store that could not be reached: the retry backoff, logged (224).</summary>
    private TimeSpan StoreWait(IdempotencyStoreUnavailableException unavailable, int round)
    {
        var delay = RetryBackoff.Delay(_consumer.Options.Retry, round);
        Log.IdempotencyStoreUnavailable(_consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, round, delay, unavailable.InnerException!.Message);
        return delay;
    }

    /// <summary>
    /// Gets a value indicating whether a record that ran out of retries must wait for the circuit instead of being
    /// dead-lettered: its last failure was transient and the circuit is open (that failure may be the one that opened it).
    /// An open circuit says the dependency is down, not the record bad, and an open circuit dead-letters nothing.
    /// </summary>
    private bool WaitsForTheCircuit(ProcessingOutcome outcome) =>
        _consumer.CircuitOpen
        && outcome.Exception is { } exception
        && (outcome.FailedStage == ProcessingStage.Handle || exception is DependencyUnavailableException)
        && KindOf(outcome) == FailureKind.Transient;

    /// <summary>
    /// Classifies a failed outcome: a handler failure as the classification says; a dependency of the deserializer or translator
    /// that is unavailable as transient, always; any other failure before the handler (the payload's) as fatal.
    /// </summary>
    private FailureKind KindOf(ProcessingOutcome outcome) =>
        outcome.Exception is DependencyUnavailableException ? FailureKind.Transient
        : outcome.FailedStage == ProcessingStage.Handle ? _consumer.Classification.Classify(outcome.Exception!)
        : FailureKind.Fatal;

    /// <summary>
    /// Gets a value indicating whether a record waiting for the circuit has had its chance: its retries and as many trials,
    /// every one a transient failure. A record that fails on its own opens the circuit again with each trial, and it cannot
    /// be told from a dependency that is down; without a bound it would hold its partition for ever. It is dead-lettered
    /// with its last handler failure (log 223).
    /// </summary>
    private bool CircuitTrialsExhausted()
    {
        var maxAttempts = _consumer.Options.Retry.MaxAttempts;
        if (_handlerFailures < 2L * maxAttempts)
        {
            return false;
        }

        Log.CircuitTrialsExhausted(_consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, _handlerFailures - maxAttempts);
        return true;
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

        if (exception is not DependencyUnavailableException && _consumer.Classification.Classify(exception) == FailureKind.Fatal)
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
        var metrics = _consumer.Metrics;
        if (_attempts > 1)
        {
            ReliableMetrics.Add(metrics.Retried, _consumer, _context.Topic);
        }

        var started = metrics.HandlerDuration.Enabled ? Stopwatch.GetTimestamp() : 0;
        ProcessingOutcome outcome;
        if (_lot?.Turn is { } turn)
        {
            // Sequential dispatch with retry tiers: the partition's records and its parked ones take turns at the handler.
            await turn.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                outcome = await _processor.ProcessAsync(_context, _abortToken).ConfigureAwait(false);
            }
            finally
            {
                turn.Release();
            }
        }
        else
        {
            outcome = await _processor.ProcessAsync(_context, _abortToken).ConfigureAwait(false);
        }

        if (started != 0)
        {
            ReliableMetrics.Record(metrics.HandlerDuration, started, _consumer, _context.Topic);
        }

        if (outcome.IsSuccess || outcome.Canceled)
        {
            if (outcome.IsSuccess && !outcome.Duplicate)
            {
                ReliableMetrics.Add(metrics.Processed, _consumer, _context.Topic);
            }

            return Outcome.FromResult(outcome);
        }

        ReliableMetrics.Add(metrics.Failed, _consumer, _context.Topic);

        _lastFailure = _consumer.Time.GetUtcNow();
        if (_firstFailure == default)
        {
            _firstFailure = _lastFailure;
            Hold(true);
        }

        var exception = outcome.Exception!;
        var kind = KindOf(outcome);
        if (kind == FailureKind.Transient && exception is not (IdempotencyWaitException or DependencyUnavailableException))
        {
            _lastHandlerFailure = exception;
            _handlerFailures++;
        }

        ReliableTracing.AttemptFailed(_activity, _attempts, DeadLetterPublisher.StageName(outcome.FailedStage), exception, kind);
        Log.RecordFailed(
            _consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, DeadLetterPublisher.StageName(outcome.FailedStage),
            _attempts, exception.GetType().FullName!, exception.Message, kind);
        // Handler failures and an unavailable dependency go to Polly (retries, the circuit); a bad payload is decided here, and
        // so is a failure routed to a retry tier without in-place retries.
        if (_lot is not null && kind == FailureKind.Transient && outcome.FailedStage == ProcessingStage.Handle
            && _consumer.Options.RetryTiers.RouteOf(exception).SkipsInPlaceRetries)
        {
            return Outcome.FromResult(outcome);
        }

        return outcome.FailedStage == ProcessingStage.Handle || exception is DependencyUnavailableException
            ? Outcome.FromException<ProcessingOutcome>(exception)
            : Outcome.FromResult(outcome);
    }

    /// <summary>Marks the record as failing (or no longer), and tells whoever holds its partition or key.</summary>
    private void Hold(bool holding)
    {
        if (_holding != holding)
        {
            _holding = holding;
            _onHold?.Invoke(holding);
        }
    }

    /// <summary>Writes the record to the dead-letter topic, trying again (the publisher's Polly retry) until it is acknowledged or the worker stops.</summary>
    private async ValueTask<bool> DeadLetterAsync(DeadLetterPublisher deadLetter, ProcessingOutcome outcome, CancellationToken stop)
    {
        if (!await deadLetter.WriteUntilAcknowledgedAsync(_consumer, _context, outcome, _firstFailure, _lastFailure, stop).ConfigureAwait(false))
        {
            return false;
        }

        _deadLettered = outcome.Exception;
        ReliableMetrics.Add(_consumer.Metrics.DeadLettered, _consumer, _context.Topic);
        Log.RecordDeadLettered(
            _consumer.Logger, _consumer.Name, _context.Topic, _context.Partition, _context.Offset, DeadLetterPublisher.StageName(outcome.FailedStage),
            _context.Attempt, outcome.Exception!.GetType().FullName!, outcome.Exception.Message, deadLetter.TopicFor(_context.Topic));
        return true;
    }

    private ValueTask<bool> DelayAsync(TimeSpan delay, CancellationToken stop) => _consumer.DelayAsync(delay, stop);
}
