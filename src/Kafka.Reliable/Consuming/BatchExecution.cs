using System.Diagnostics;
using Confluent.Kafka;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Idempotency;
using Kafka.Reliable.Offsets;
using Kafka.Reliable.Pipeline;
using Polly;
using Polly.CircuitBreaker;

namespace Kafka.Reliable.Consuming;

/// <summary>
/// Takes a batch of a partition's records through the pipeline until each record is done: the batch handler's side of a
/// sequential partition worker (one per worker, one batch at a time).
/// </summary>
/// <remarks>
/// <para>
/// Records that can never be handled (a tombstone under the DeadLetter policy, an oversize value, a deserializer or
/// translator failure) are taken out first and go through the one-record path (<see cref="RecordExecution"/>), which
/// dead-letters them at once; a tombstone under the Skip policy is done at once.
/// </para>
/// <para>
/// The rest is one group, attempted through the resilience pipeline: transient failures retry the whole group, and while
/// the circuit is open (or the idempotency store is unavailable, or a key is held elsewhere) the group waits without
/// spending attempts. A group that fails for good (a fatal failure, or retries exhausted) is bisected: each half is a group
/// of its own, attempted once (a half that fails is halved again at once), down to single records, which take the
/// one-record path with its retries, circuit waits and dead-lettering. A record the
/// handler reports failed (<see cref="MessageBatch{TMessage}.Fail"/>) takes the one-record path too, once the others are done.
/// </para>
/// </remarks>
internal sealed class BatchExecution
{
    private readonly ConsumerContext _consumer;
    private readonly IBatchRun _run;
    private readonly BatchSlice[] _one = new BatchSlice[1];
    private ArraySegment<BatchSlice> _members;
    private MessageContext[] _contexts = [];
    private BatchSlice[] _slices = [];
    private int[] _positions = [];
    private bool[] _excluded = [];
    private int[] _group = [];
    private int[] _poison = [];
    private Dictionary<string, PartitionTelemetry>? _topicTelemetry;
    private PartitionTelemetry? _topicsTelemetry;
    private int _transientFailures;
    private bool _holding;
    private Exception? _lastTransient;
    private CancellationToken _abort;

    public BatchExecution(ConsumerContext consumer, IBatchProcessor processor)
    {
        _consumer = consumer;
        _run = processor.CreateRun();
    }

    /// <summary>Gets or sets what to call each time the handler returns from an attempt at a batch (whatever its outcome), besides marking its partitions active.</summary>
    public Action? OnAttemptReturned { get; init; }

    /// <summary>Runs the records of one partition's slice as a batch until each is done.</summary>
    /// <returns><see langword="false"/> when the worker stopped before every record was done (those not done stay undone).</returns>
    public ValueTask<bool> RunAsync(BatchSlice slice, CancellationToken stop, CancellationToken abort)
    {
        _one[0] = slice;
        return RunAsync(new ArraySegment<BatchSlice>(_one), stop, abort);
    }

    /// <summary>
    /// Runs the records of the slices (each of another partition, in the order given) as one batch until each is done.
    /// </summary>
    /// <returns><see langword="false"/> when <paramref name="stop"/> or <paramref name="abort"/> ended the run before every record was done (those not done stay undone).</returns>
    public async ValueTask<bool> RunAsync(ArraySegment<BatchSlice> members, CancellationToken stop, CancellationToken abort)
    {
        var count = 0;
        foreach (var member in members)
        {
            count += member.Count;
        }

        Prepare(count);
        _members = members;
        _abort = abort;
        var good = 0;
        var poison = 0;
        var metrics = _consumer.Metrics;
        foreach (var member in members)
        {
            member.Worker.AddInFlight(member.Count);
        }

        try
        {
            var i = 0;
            foreach (var member in members)
            {
                var worker = member.Worker;
                for (var position = 0; position < member.Count; position++, i++)
                {
                    _slices[i] = member;
                    _positions[i] = position;
                    var sequence = member.SequenceAt(position);
                    var context = _contexts[i];
                    var record = worker.RecordAt(sequence);
                    context.Initialize(record);
                    context.Assignment = worker.Assignment;
                    context.Track(worker.Tracker, sequence);
                    var value = record.Message.Value;
                    if (value is null ? _consumer.Options.Tombstones != TombstonePolicy.Handle : value.Length > _consumer.Options.MaxPayloadBytes)
                    {
                        if (value is null && _consumer.Options.Tombstones == TombstonePolicy.Skip)
                        {
                            metrics.Consumed(worker.Telemetry);
                            Log.TombstoneSkipped(_consumer.Logger, _consumer.Name, context.Topic, context.Partition, context.Offset);
                            member.Complete(position);
                        }
                        else
                        {
                            _poison[poison++] = i;
                        }

                        continue;
                    }

                    var prepared = await _run.PrepareAsync(context, i, abort).ConfigureAwait(false);
                    for (var round = 1; prepared.Exception is DependencyUnavailableException unavailable; round++)
                    {
                        // The deserializer's dependency (a schema registry) is down: not the record's fault. The batch waits for it,
                        // holding its partitions, and prepares the record again.
                        Hold(true);
                        var delay = RetryBackoff.Delay(_consumer.Options.Retry, round);
                        Log.DependencyUnavailable(_consumer.Logger, _consumer.Name, context.Topic, context.Partition, context.Offset, round, delay, unavailable.Message);
                        if (!await DelayAsync(delay, stop).ConfigureAwait(false))
                        {
                            return false;
                        }

                        prepared = await _run.PrepareAsync(context, i, abort).ConfigureAwait(false);
                    }

                    if (prepared.Canceled)
                    {
                        return false;
                    }

                    if (prepared.IsSuccess)
                    {
                        _group[good++] = i;
                    }
                    else
                    {
                        _poison[poison++] = i;
                    }
                }
            }

            // Poison first, each alone: the one-record path screens, fails and dead-letters it at once (stage deserialize or translate).
            for (var p = 0; p < poison; p++)
            {
                if (!await RunSingleAsync(_poison[p], failedInBatch: 0, stop).ConfigureAwait(false))
                {
                    return false;
                }
            }

            if (good == 0)
            {
                return true;
            }

            if (good > 1)
            {
                // A batch of one takes the one-record path, which counts its record itself.
                CountConsumed(good);
            }

            var started = metrics.BatchDuration.Enabled ? Stopwatch.GetTimestamp() : 0;
            var done = await RunGroupAsync(new ArraySegment<int>(_group, 0, good), isolating: false, failedInBatch: 0, stop).ConfigureAwait(false);
            if (done && started != 0)
            {
                ReliableMetrics.Record(metrics.BatchDuration, started, _consumer, _contexts[_group[0]].Topic);
            }

            return done;
        }
        finally
        {
            for (var c = 0; c < count; c++)
            {
                _contexts[c].Reset();
                _slices[c] = null!;
            }

            Hold(false);
            foreach (var member in members)
            {
                member.Worker.AddInFlight(-member.Count);
            }


            _members = default;
            _one[0] = null!;
            _abort = default;
        }
    }

    /// <summary>Counts the records taken for processing (<c>messaging.client.consumed.messages</c>), per partition.</summary>
    private void CountConsumed(int good)
    {
        var metrics = _consumer.Metrics;
        var slice = _slices[_group[0]];
        var run = 0;
        for (var g = 0; g < good; g++)
        {
            if (_slices[_group[g]] != slice)
            {
                metrics.Consumed(slice.Worker.Telemetry, run);
                slice = _slices[_group[g]];
                run = 0;
            }

            run++;
        }

        metrics.Consumed(slice.Worker.Telemetry, run);
    }

    private void Prepare(int count)
    {
        if (_contexts.Length < count)
        {
            var contexts = new MessageContext[count];
            Array.Copy(_contexts, contexts, _contexts.Length);
            for (var i = _contexts.Length; i < count; i++)
            {
                contexts[i] = new MessageContext(_consumer.Name, _consumer.Options.GroupId);
            }

            _contexts = contexts;
            _slices = new BatchSlice[count];
            _positions = new int[count];
            _excluded = new bool[count];
            _group = new int[count];
            _poison = new int[count];
        }

        _run.Begin(count);
    }

    /// <summary>Runs one record alone (poison, a record reported failed, or one isolated from a failed batch) until it is done.</summary>
    private async ValueTask<bool> RunSingleAsync(int index, int failedInBatch, CancellationToken stop)
    {
        var slice = _slices[index];
        var position = _positions[index];
        var worker = slice.Worker;
        var result = await worker.SingleExecution.RunAsync(_contexts[index].Record!, worker.Tracker, slice.SequenceAt(position), acknowledgement: null, stop, _abort, failedInBatch).ConfigureAwait(false);
        if (result == RecordResult.Stopped)
        {
            return false;
        }

        slice.Complete(position);
        return true;
    }

    private void Complete(int index) => _slices[index].Complete(_positions[index]);

    /// <summary>Gets the tags of a group's span: its partition's, or its topic's when it spans partitions (of one topic or several).</summary>
    private PartitionTelemetry TelemetryOf(ArraySegment<int> group)
    {
        var first = _slices[group[0]];
        if (first == _slices[group[^1]])
        {
            return first.Worker.Telemetry;
        }

        var topic = _contexts[group[0]].Topic;
        foreach (var index in group)
        {
            if (!string.Equals(_contexts[index].Topic, topic, StringComparison.Ordinal))
            {
                return _topicsTelemetry ??= new PartitionTelemetry(_consumer.Telemetry, topic: null);
            }
        }

        _topicTelemetry ??= new Dictionary<string, PartitionTelemetry>(StringComparer.Ordinal);
        if (!_topicTelemetry.TryGetValue(topic, out var telemetry))
        {
            _topicTelemetry[topic] = telemetry = new PartitionTelemetry(_consumer.Telemetry, topic);
        }

        return telemetry;
    }

    /// <summary>Logs the records of the group the idempotency store knew as handled (<see cref="_excluded"/>), per partition.</summary>
    private void LogDuplicates(ArraySegment<int> group)
    {
        var start = 0;
        for (var g = 1; g <= group.Count; g++)
        {
            if (g < group.Count && _slices[group[g]] == _slices[group[start]])
            {
                continue;
            }

            var skipped = 0;
            for (var r = start; r < g; r++)
            {
                skipped += _excluded[group[r]] ? 1 : 0;
            }

            if (skipped > 0)
            {
                var first = _contexts[group[start]];
                Log.BatchDuplicatesSkipped(_consumer.Logger, _consumer.Name, first.Topic, first.Partition, first.Offset, _contexts[group[g - 1]].Offset, skipped);
            }

            start = g;
        }
    }

    /// <summary>Adds the group's records that are <see cref="_excluded"/> (or those that are not, or all when null) to a counter, per topic.</summary>
    private void AddPerTopic(System.Diagnostics.Metrics.Counter<long> counter, ArraySegment<int> group, bool? excluded)
    {
        if (!counter.Enabled)
        {
            return;
        }

        string? topic = null;
        long count = 0;
        foreach (var index in group)
        {
            if (excluded is { } wanted && _excluded[index] != wanted)
            {
                continue;
            }

            var next = _contexts[index].Topic;
            if (!string.Equals(next, topic, StringComparison.Ordinal))
            {
                if (count > 0)
                {
                    ReliableMetrics.Add(counter, count, _consumer, topic!);
                }

                topic = next;
                count = 0;
            }

            count++;
        }

        if (count > 0)
        {
            ReliableMetrics.Add(counter, count, _consumer, topic!);
        }
    }

    /// <summary>
    /// Runs a group of prepared records until each is done: attempts through the resilience pipeline, waits for the circuit
    /// or the store, and bisects a group that fails for good.
    /// </summary>
    /// <param name="group">The records, as prepared indexes in offset order.</param>
    /// <param name="isolating">Whether the group is part of a failed batch.</param>
    /// <param name="failedInBatch">The size of the failed batch it is part of; 0 for a batch as formed.</param>
    /// <param name="stop">Stops retries and waits.</param>
    private async ValueTask<bool> RunGroupAsync(ArraySegment<int> group, bool isolating, int failedInBatch, CancellationToken stop)
    {
        if (group.Count == 1)
        {
            return await RunSingleAsync(group[0], failedInBatch, stop).ConfigureAwait(false);
        }

        var activity = ReliableTracing.StartBatch(_contexts, group, TelemetryOf(group));
        var attempt = 0;
        var storeRound = 0;
        _transientFailures = 0;
        _lastTransient = null;
        try
        {
            while (true)
            {
                var (state, failure) = await AttemptAsync(group, isolating, attempt, stop).ConfigureAwait(false);
                attempt = state.Attempts;
                var canceled = state.Result is { Outcome.Canceled: true };
                if (failure is null && !canceled)
                {
                    // Read before the result is reused by the groups that FinishAsync may run.
                    var covered = state.Result!.Covered;
                    return await FinishAsync(group.Slice(0, covered), isolating, failedInBatch, state.Result, stop).ConfigureAwait(false)
                        && (covered == group.Count || await RunGroupAsync(group.Slice(covered), isolating, failedInBatch, stop).ConfigureAwait(false));
                }

                if (canceled || stop.IsCancellationRequested)
                {
                    return false;
                }

                // A part of a failed batch that fails is bisected at once, even when its failure opened the circuit: only its
                // records alone are retried and wait for the circuit, so isolating costs one attempt per part, not a retry
                // policy and circuit trials at every size (torture seed 248895915 missed its liveness bound that way).
                var circuit = failure is BrokenCircuitException || (!isolating && WaitsForTheCircuit(failure!));
                if ((circuit && _transientFailures < 2L * _consumer.Options.Retry.MaxAttempts) || failure is IdempotencyWaitException)
                {
                    // Not the records' fault: wait for the circuit, the store, or the consumer holding a key, without spending attempts.
                    Hold(true);

                    var wait = failure switch
                    {
                        IdempotencyKeyHeldException held => NotAtFaultWaits.ForHeldKey(held, _consumer.Options),
                        IdempotencyStoreUnavailableException unavailable => StoreWait(group, unavailable, ++storeRound),
                        BrokenCircuitException broken => NotAtFaultWaits.ForCircuit(broken, _consumer.Options),
                        _ => _consumer.Options.CircuitBreaker.BreakDuration,
                    };
                    if (!await DelayAsync(wait, stop).ConfigureAwait(false))
                    {
                        return false;
                    }

                    continue;
                }

                // Failed for good (a fatal failure, or retries spent): isolate the failing records, half by half.
                var cause = failure is BrokenCircuitException ? _lastTransient ?? failure : failure!;
                ReliableTracing.AttemptFailed(activity, attempt, DeadLetterPublisher.StageName(ProcessingStage.Handle), cause, _consumer.Classification.Classify(cause));
                Log.BatchIsolating(_consumer.Logger, _consumer.Name, _contexts[group[0]].Topic, _contexts[group[0]].Partition, _contexts[group[0]].Offset, group.Count, attempt, cause.GetType().FullName!, cause.Message);
                var size = failedInBatch > 0 ? failedInBatch : group.Count;
                var half = group.Count / 2;
                return await RunGroupAsync(group.Slice(0, half), isolating: true, size, stop).ConfigureAwait(false)
                    && await RunGroupAsync(group.Slice(half), isolating: true, size, stop).ConfigureAwait(false);
            }
        }
        finally
        {
            if (activity is not null)
            {
                ReliableTracing.Finished(activity, attempt, deadLettered: false, exception: null);
                activity.Dispose();
            }
        }
    }

    /// <summary>Completes a group that the handler handled: every record but those it reported failed, which then run alone.</summary>
    private async ValueTask<bool> FinishAsync(ArraySegment<int> group, bool isolating, int failedInBatch, BatchAttemptResult result, CancellationToken stop)
    {
        // The result is reused by the next attempt: take what it says first.
        foreach (var index in group)
        {
            _excluded[index] = false;
        }

        foreach (var index in result.Skipped)
        {
            _excluded[index] = true;
        }

        if (result.Skipped.Count > 0 && !result.RolledBack)
        {
            LogDuplicates(group);
            AddPerTopic(_consumer.Metrics.Duplicates, group, excluded: true);
        }

        if (result.Failed.Count == 0)
        {
            AddPerTopic(_consumer.Metrics.Processed, group, excluded: false);
            foreach (var index in group)
            {
                Complete(index);
            }

            return true;
        }

        // The result is reused by the next attempt: take what it says first.
        var failed = new HashSet<int>(result.Failed.Count);
        foreach (var (index, failure) in result.Failed)
        {
            failed.Add(index);
            _excluded[index] = true;
            Log.BatchRecordReportedFailed(_consumer.Logger, _consumer.Name, _contexts[index].Topic, _contexts[index].Partition, _contexts[index].Offset, failure.GetType().FullName!, failure.Message);
        }

        var size = failedInBatch > 0 ? failedInBatch : group.Count;
        if (result.RolledBack)
        {
            // Nothing of the group is done: it runs again without the failed records (whose effects were rolled back with it).
            var rest = group.Where(index => !failed.Contains(index)).ToArray();
            if (rest.Length > 0 && !await RunGroupAsync(rest, isolating, failedInBatch, stop).ConfigureAwait(false))
            {
                return false;
            }
        }
        else
        {
            AddPerTopic(_consumer.Metrics.Processed, group, excluded: false);
            foreach (var index in group)
            {
                if (!failed.Contains(index))
                {
                    Complete(index);
                }
            }
        }

        foreach (var index in group)
        {
            if (failed.Contains(index) && !await RunSingleAsync(index, size, stop).ConfigureAwait(false))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>One run of the group through the resilience pipeline (its retries included).</summary>
    private async ValueTask<(AttemptState State, Exception? Failure)> AttemptAsync(ArraySegment<int> group, bool isolating, int attempts, CancellationToken stop)
    {
        var state = new AttemptState(this, group, isolating, attempts);
        var resilience = ResilienceContextPool.Shared.Get(stop);
        if (isolating)
        {
            resilience.Properties.Set(HandlerResilience.OneAttempt, true);
        }
        try
        {
            var outcome = await _consumer.Resilience.ExecuteOutcomeAsync(
                static async (_, state) => await state.Execution.AttemptOnceAsync(state).ConfigureAwait(false), resilience, state).ConfigureAwait(false);
            return (state, outcome.Exception);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(resilience);
        }
    }

    /// <summary>One attempt at the group; a handler failure is returned to Polly as an exception outcome, so that it can retry or count it.</summary>
    private async ValueTask<Outcome<bool>> AttemptOnceAsync(AttemptState state)
    {
        state.Attempts++;
        var metrics = _consumer.Metrics;
        var topic = _contexts[state.Group[0]].Topic;
        if (state.Attempts > 1)
        {
            AddPerTopic(metrics.Retried, state.Group, excluded: null);
        }

        metrics.BatchHandled(state.Group.Count, _consumer, topic);
        var started = metrics.HandlerDuration.Enabled ? Stopwatch.GetTimestamp() : 0;
        var result = await _run.HandleAsync(state.Group, state.Isolating, state.Attempts, _abort).ConfigureAwait(false);
        foreach (var member in _members)
        {
            member.Worker.Touch();
        }

        OnAttemptReturned?.Invoke();
        if (started != 0)
        {
            ReliableMetrics.Record(metrics.HandlerDuration, started, _consumer, topic);
        }

        state.Result = result;
        if (result.Outcome.IsSuccess || result.Outcome.Canceled)
        {
            return Outcome.FromResult(true);
        }

        var exception = result.Outcome.Exception!;
        AddPerTopic(metrics.Failed, state.Group, excluded: null);

        // While the batch fails, its partition holds (is paused), as for a failing record.
        Hold(true);
        var kind = _consumer.Classification.Classify(exception);
        if (kind == FailureKind.Transient && exception is not IdempotencyWaitException)
        {
            _transientFailures++;
            _lastTransient = exception;
        }

        var first = _contexts[state.Group[0]];
        Log.BatchFailed(_consumer.Logger, _consumer.Name, first.Topic, first.Partition, first.Offset, state.Group.Count, state.Attempts, exception.GetType().FullName!, exception.Message, kind);
        return Outcome.FromException<bool>(exception);
    }

    /// <summary>Marks the batch as failing (or no longer), and tells its partitions' workers, which pause the partitions meanwhile.</summary>
    /// <remarks>Told again at each failure: a record run alone in between (isolated, or poison) ends its own hold.</remarks>
    private void Hold(bool holding)
    {
        if (holding || _holding)
        {
            _holding = holding;
            foreach (var member in _members)
            {
                member.Worker.SetHolding(holding);
            }
        }
    }

    /// <summary>
    /// Gets a value indicating whether a group that ran out of retries must wait for the circuit instead of being isolated:
    /// its last failure was transient and the circuit is open (the dependency is down, not the records bad).
    /// </summary>
    private bool WaitsForTheCircuit(Exception failure) =>
        _consumer.CircuitOpen && _consumer.Classification.Classify(failure) == FailureKind.Transient && failure is not IdempotencyWaitException;

    private TimeSpan StoreWait(ArraySegment<int> group, IdempotencyStoreUnavailableException unavailable, int round)
    {
        var delay = RetryBackoff.Delay(_consumer.Options.Retry, round);
        var first = _contexts[group[0]];
        Log.IdempotencyStoreUnavailable(_consumer.Logger, _consumer.Name, first.Topic, first.Partition, first.Offset, round, delay, unavailable.InnerException!.Message);
        return delay;
    }

    private ValueTask<bool> DelayAsync(TimeSpan delay, CancellationToken stop) => _consumer.DelayAsync(delay, stop);

    /// <summary>The state of one run of a group through the pipeline: the group, the attempts so far and the last attempt's result.</summary>
    private sealed class AttemptState(BatchExecution execution, ArraySegment<int> group, bool isolating, int attempts)
    {
        public BatchExecution Execution { get; } = execution;

        public ArraySegment<int> Group { get; } = group;

        public bool Isolating { get; } = isolating;

        public int Attempts { get; set; } = attempts;

        /// <summary>Gets or sets the last attempt's result; null when the pipeline made none (the circuit is open).</summary>
        public BatchAttemptResult? Result { get; set; }
    }
}
