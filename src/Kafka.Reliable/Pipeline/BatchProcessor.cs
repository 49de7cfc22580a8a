using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using Kafka.Reliable.Hosting;
using Kafka.Reliable.Idempotency;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable.Pipeline;

/// <summary>The pipeline of a consumer with a batch handler: one record at a time as a batch of one, or whole batches through a <see cref="IBatchRun"/>.</summary>
internal interface IBatchProcessor : IRecordProcessor
{
    /// <summary>Makes the state of one partition worker's batches (not thread-safe; one per worker).</summary>
    IBatchRun CreateRun();

    /// <summary>Gets the consumer's batches across partitions (<see cref="BatchOptions.AcrossPartitions"/>), made by the first worker that asks.</summary>
    Consuming.BatchCollector CollectorFor(Consuming.ConsumerContext consumer);
}

/// <summary>
/// One partition worker's batches: the records of a batch are prepared (deserialized and translated) once, then handled
/// in groups (the whole batch, or parts of it while a failure is isolated), each group through the idempotency gate.
/// </summary>
internal interface IBatchRun
{
    /// <summary>Starts a batch of at most <paramref name="capacity"/> records.</summary>
    void Begin(int capacity);

    /// <summary>
    /// Deserializes and translates the record of <paramref name="context"/>, kept at <paramref name="index"/>; a failure is the
    /// record's (poison), unless it is a <see cref="DependencyUnavailableException"/> (the batch waits and prepares it again).
    /// </summary>
    ValueTask<ProcessingOutcome> PrepareAsync(MessageContext context, int index, CancellationToken cancellationToken);

    /// <summary>Handles the prepared records at <paramref name="group"/>'s indexes as one batch, in that order.</summary>
    ValueTask<BatchAttemptResult> HandleAsync(ArraySegment<int> group, bool isolating, int attempt, CancellationToken cancellationToken);
}

/// <summary>What became of one attempt at a group of records (reused from attempt to attempt).</summary>
internal sealed class BatchAttemptResult
{
    /// <summary>Gets or sets the attempt's outcome: success (with <see cref="Failed"/> perhaps not empty), a failure of the whole group, or a cancellation.</summary>
    public ProcessingOutcome Outcome { get; set; }

    /// <summary>Gets the records the handler reported failed (<see cref="MessageBatch{TMessage}.Fail"/>), as prepared indexes, with their failures.</summary>
    public List<(int Index, Exception Failure)> Failed { get; } = [];

    /// <summary>Gets or sets a value indicating whether the group's transaction was rolled back because of <see cref="Failed"/>: nothing of it is done.</summary>
    public bool RolledBack { get; set; }

    /// <summary>Gets the records the idempotency store knew as handled, as prepared indexes: left out of the batch, and done.</summary>
    public List<int> Skipped { get; } = [];

    /// <summary>
    /// Gets or sets how many records at the start of the group the attempt covered; the rest is attempted as a group of its own
    /// after them (a lease store met a key twice in one group: the second record must wait for the first one's outcome).
    /// </summary>
    public int Covered { get; set; }

    public void Reset(int count)
    {
        Covered = count;
        Outcome = ProcessingOutcome.Success;
        Failed.Clear();
        RolledBack = false;
        Skipped.Clear();
    }
}

internal sealed class BatchProcessor<TMessage, TDomain> : IBatchProcessor
{
    private readonly RecordProcessor<TMessage, TDomain> _single;
    private Consuming.BatchCollector? _collector;

    public BatchProcessor(
        IMessageDeserializer<TMessage>? deserializer,
        IMessageTranslator<TMessage, TDomain> translator,
        BatchHandlerRegistration<TDomain> handler,
        IServiceProvider services,
        IdempotencyGate? gate,
        Func<TMessage, MessageContext, string?>? keySelector,
        bool acrossPartitions = false,
        IAsyncMessageDeserializer<TMessage>? asyncDeserializer = null)
    {
        if (gate is { IsTransactional: true, BatchTransactions: null })
        {
            throw new InvalidOperationException(
                $"The consumer has a batch handler and a transactional idempotency store ({gate.Store.GetType().Name}) that cannot hold a batch in one transaction " +
                $"(it does not implement {nameof(ITransactionalBatchIdempotencyStore)}): use the SQLite or PostgreSQL store, or a message handler.");
        }

        if (acrossPartitions && gate is { IsTransactional: true, BatchTransactions.CommitsSeveralPartitions: false })
        {
            throw new InvalidOperationException(
                $"The consumer has Batch:AcrossPartitions = true and a transactional idempotency store ({gate.Store.GetType().Name}) whose batch transactions keep " +
                $"one partition's offset (its {nameof(ITransactionalBatchIdempotencyStore.CommitsSeveralPartitions)} is false): use the SQLite or PostgreSQL store, " +
                "or set Batch:AcrossPartitions to false.");
        }

        Deserializer = deserializer;
        AsyncDeserializer = asyncDeserializer;
        Translator = translator;
        Handler = handler;
        Gate = gate;
        KeySelector = keySelector;
        ScopeFactory = services.GetRequiredService<IServiceScopeFactory>();
        SingletonHandler = handler.Singleton ? handler.Resolve(services) : null;
        _single = new RecordProcessor<TMessage, TDomain>(
            deserializer, translator, provider => new BatchOfOne(SingletonHandler ?? handler.Resolve(provider)), handler.Singleton, services, gate, keySelector, asyncDeserializer);
    }

    public IMessageDeserializer<TMessage>? Deserializer { get; }

    public IAsyncMessageDeserializer<TMessage>? AsyncDeserializer { get; }

    public IMessageTranslator<TMessage, TDomain> Translator { get; }

    public BatchHandlerRegistration<TDomain> Handler { get; }

    public IBatchMessageHandler<TDomain>? SingletonHandler { get; }

    public IServiceScopeFactory ScopeFactory { get; }

    public IdempotencyGate? Gate { get; }

    public Func<TMessage, MessageContext, string?>? KeySelector { get; }

    /// <summary>One record alone (a poison record, or one isolated from a failed batch): handled as a batch of one.</summary>
    public ValueTask<ProcessingOutcome> ProcessAsync(MessageContext context, CancellationToken cancellationToken) => _single.ProcessAsync(context, cancellationToken);

    public IBatchRun CreateRun() => new BatchRun<TMessage, TDomain>(this);

    public Consuming.BatchCollector CollectorFor(Consuming.ConsumerContext consumer) =>
        LazyInitializer.EnsureInitialized(ref _collector, () => new Consuming.BatchCollector(consumer, this));

    /// <summary>The batch handler seen as a message handler, for records handled alone: a failure it reports is thrown.</summary>
    private sealed class BatchOfOne(IBatchMessageHandler<TDomain> handler) : IMessageHandler<TDomain>
    {
        public async ValueTask HandleAsync(TDomain message, MessageContext context, CancellationToken cancellationToken)
        {
            var batch = new MessageBatch<TDomain>();
            batch.Clear(1);
            batch.Add(message, context, 0);
            batch.Attempt = context.Attempt;
            batch.IsIsolating = context.FailedInBatch > 0;
            batch.Transaction = context.Transaction;
            await handler.HandleAsync(batch, cancellationToken).ConfigureAwait(false);
            if (batch.FailureOf(0) is { } failure)
            {
                ExceptionDispatchInfo.Throw(failure);
            }
        }
    }
}

/// <summary>The batches of one partition worker: prepared records and the reused batch handed to the handler.</summary>
internal sealed class BatchRun<TMessage, TDomain>(BatchProcessor<TMessage, TDomain> processor) : IBatchRun
{
    private readonly MessageBatch<TDomain> _batch = new();
    private readonly BatchAttemptResult _result = new();
    private TMessage[] _messages = [];
    private TDomain[] _domains = [];
    private MessageContext[] _contexts = [];
    private string[] _keys = [];
    private bool[] _handled = [];
    private long[] _sequences = [];
    private HeldKey?[] _held = [];
    private readonly List<string> _groupKeys = [];
    private readonly List<MessageContext> _lasts = [];
    private readonly HashSet<string> _seenKeys = new(StringComparer.Ordinal);

    public void Begin(int capacity)
    {
        if (_messages.Length < capacity)
        {
            _messages = new TMessage[capacity];
            _domains = new TDomain[capacity];
            _contexts = new MessageContext[capacity];
            _keys = new string[capacity];
            _held = new HeldKey?[capacity];
        }
        else
        {
            Array.Clear(_messages);
            Array.Clear(_domains);
            Array.Clear(_contexts);
            Array.Clear(_keys);
        }
    }

    public ValueTask<ProcessingOutcome> PrepareAsync(MessageContext context, int index, CancellationToken cancellationToken)
    {
        _contexts[index] = context;
        if (processor.AsyncDeserializer is not null)
        {
            return PrepareSlowlyAsync(context, index, cancellationToken);
        }

        TMessage message;
        try
        {
            var value = context.Record!.Message.Value;
            message = processor.Deserializer!.Deserialize(value, value is null, context);
        }
        catch (Exception ex)
        {
            return ValueTask.FromResult(ProcessingOutcome.Failed(ProcessingStage.Deserialize, ex));
        }

        return ValueTask.FromResult(Translate(message, context, index));
    }

    /// <summary>The asynchronous deserializer's way (a schema registry's).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ProcessingOutcome> PrepareSlowlyAsync(MessageContext context, int index, CancellationToken cancellationToken)
    {
        TMessage message;
        try
        {
            var value = context.Record!.Message.Value;
            message = await processor.AsyncDeserializer!.DeserializeAsync(value, value is null, context, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested)
        {
            return ProcessingOutcome.Cancel(ex);
        }
        catch (Exception ex)
        {
            return ProcessingOutcome.Failed(ProcessingStage.Deserialize, ex);
        }

        return Translate(message, context, index);
    }

    private ProcessingOutcome Translate(TMessage message, MessageContext context, int index)
    {
        try
        {
            _domains[index] = processor.Translator.Translate(message, context);
        }
        catch (Exception ex)
        {
            return ProcessingOutcome.Failed(ProcessingStage.Translate, ex);
        }

        _messages[index] = message;
        return ProcessingOutcome.Success;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<BatchAttemptResult> HandleAsync(ArraySegment<int> indexes, bool isolating, int attempt, CancellationToken cancellationToken)
    {
        var count = indexes.Count;
        _result.Reset(count);
        _batch.Clear(count);
        _batch.Attempt = attempt;
        _batch.IsIsolating = isolating;
        for (var i = 0; i < count; i++)
        {
            _contexts[indexes[i]].Attempt = attempt;
        }

        var gate = processor.Gate;
        _result.Outcome = gate is null ? await HandleBatchAsync(indexes, cancellationToken).ConfigureAwait(false)
            : gate.IsTransactional ? await HandleInTransactionAsync(gate, indexes, cancellationToken).ConfigureAwait(false)
            : await HandleWithLeasesAsync(gate, indexes, cancellationToken).ConfigureAwait(false);
        return _result;
    }

    /// <summary>Without a store: every record of the group goes to the handler.</summary>
    private async ValueTask<ProcessingOutcome> HandleBatchAsync(ArraySegment<int> indexes, CancellationToken cancellationToken)
    {
        for (var i = 0; i < indexes.Count; i++)
        {
            var index = indexes[i];
            _batch.Add(_domains[index], _contexts[index], index);
        }

        return await CallHandlerAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A transactional store: one transaction holds the handler's writes, the keys of the group's records and the partition's
    /// offset. Records whose key is recorded already are left out (done); a handler that reports failures has the transaction
    /// rolled back, so that the group can run again without them.
    /// </summary>
    private async ValueTask<ProcessingOutcome> HandleInTransactionAsync(IdempotencyGate gate, ArraySegment<int> indexes, CancellationToken cancellationToken)
    {
        var count = indexes.Count;
        _groupKeys.Clear();
        for (var i = 0; i < count; i++)
        {
            var index = indexes[i];
            if (!TryKey(gate, index, out var key))
            {
                return ProcessingOutcome.Success;
            }

            _groupKeys.Add(key);
        }

        if (_handled.Length < count)
        {
            _handled = new bool[Math.Max(count, _messages.Length)];
        }

        var handled = new ArraySegment<bool>(_handled, 0, count);
        handled.AsSpan().Clear();
        IdempotencyTransaction transaction;
        try
        {
            transaction = await gate.BatchTransactions!.BeginBatchTransactionAsync(_groupKeys, handled, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested)
        {
            return ProcessingOutcome.Cancel(ex);
        }
        catch (Exception ex)
        {
            return ProcessingOutcome.Failed(ProcessingStage.Handle, new IdempotencyStoreUnavailableException(ex));
        }

        await using (transaction.ConfigureAwait(false))
        {
            for (var i = 0; i < count; i++)
            {
                var index = indexes[i];
                if (handled[i])
                {
                    _result.Skipped.Add(index);
                    continue;
                }

                _contexts[index].Transaction = transaction;
                _batch.Add(_domains[index], _contexts[index], index);
            }

            try
            {
                if (_batch.Count == 0)
                {
                    return ProcessingOutcome.Success;
                }

                _batch.Transaction = transaction;
                var outcome = await CallHandlerAsync(cancellationToken).ConfigureAwait(false);
                if (!outcome.IsSuccess)
                {
                    return outcome;
                }

                if (_result.Failed.Count > 0)
                {
                    // Disposed uncommitted below: rolled back, with every effect of the batch.
                    _result.RolledBack = true;
                    return ProcessingOutcome.Success;
                }

                // Each partition's stored offset is past its last record in the group, duplicates included, unless a record before
                // it outside the group is not done yet (the records the handler reported failed, left out of a group run again).
                // A group across partitions has the records of each partition together, in offset order.
                if (_sequences.Length < count)
                {
                    _sequences = new long[Math.Max(count, _messages.Length)];
                }

                _lasts.Clear();
                var start = 0;
                for (var i = 1; i <= count; i++)
                {
                    if (i < count && _contexts[indexes[i]].Tracker == _contexts[indexes[start]].Tracker)
                    {
                        continue;
                    }

                    for (var j = start; j < i - 1; j++)
                    {
                        _sequences[j] = _contexts[indexes[j]].Sequence;
                    }

                    var last = _contexts[indexes[i - 1]];
                    last.CommittedWith = new ArraySegment<long>(_sequences, start, i - 1 - start);
                    _lasts.Add(last);
                    start = i;
                }

                try
                {
                    // Committed even if the records were cancelled meanwhile, as for a single message.
                    if (_lasts.Count == 1)
                    {
                        await transaction.CommitAsync(_lasts[0], CancellationToken.None).ConfigureAwait(false);
                    }
                    else
                    {
                        await transaction.CommitAsync(_lasts, CancellationToken.None).ConfigureAwait(false);
                    }
                }
                catch (Exception ex)
                {
                    return ProcessingOutcome.Failed(ProcessingStage.Handle, ex);
                }
                finally
                {
                    foreach (var last in _lasts)
                    {
                        last.CommittedWith = default;
                    }
                }

                return ProcessingOutcome.Success;
            }
            finally
            {
                for (var i = 0; i < count; i++)
                {
                    _contexts[indexes[i]].Transaction = null;
                }
            }
        }
    }

    /// <summary>
    /// A lease store: every record's key is taken before the handler runs (a record handled already is left out and done;
    /// a key another consumer holds releases the others and makes the group wait), completed after it returns, and released
    /// for the records it failed.
    /// </summary>
    private async ValueTask<ProcessingOutcome> HandleWithLeasesAsync(IdempotencyGate gate, ArraySegment<int> indexes, CancellationToken cancellationToken)
    {
        var count = indexes.Count;
        Array.Clear(_held);
        _seenKeys.Clear();
        for (var i = 0; i < count; i++)
        {
            var index = indexes[i];
            if (!TryKey(gate, index, out var key))
            {
                return ProcessingOutcome.Success;
            }

            if (!_seenKeys.Add(key))
            {
                // A key met twice: its second record waits for the first one's outcome, in the next group.
                count = _result.Covered = i;
                break;
            }

            _keys[index] = key;
        }

        var taken = 0;
        for (var i = 0; i < count; i++)
        {
            var index = indexes[i];
            var key = _keys[index];
            GateDecision decision;
            TimeSpan retryAfter;
            HeldKey? held;
            try
            {
                (decision, retryAfter, held) = await gate.BeginAsync(key, _contexts[index], cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                await ReleaseAllAsync(gate, indexes, i).ConfigureAwait(false);
                return ex is OperationCanceledException && cancellationToken.IsCancellationRequested
                    ? ProcessingOutcome.Cancel(ex)
                    : ProcessingOutcome.Failed(ProcessingStage.Handle, new IdempotencyStoreUnavailableException(ex));
            }

            switch (decision)
            {
                case GateDecision.Duplicate:
                    _result.Skipped.Add(index);
                    continue;
                case GateDecision.Held:
                    await ReleaseAllAsync(gate, indexes, i).ConfigureAwait(false);
                    return ProcessingOutcome.Failed(ProcessingStage.Handle, new IdempotencyKeyHeldException(retryAfter));
            }

            _held[index] = held;
            taken++;
            _batch.Add(_domains[index], _contexts[index], index);
        }

        if (taken == 0)
        {
            return ProcessingOutcome.Success;
        }

        var outcome = await CallHandlerAsync(cancellationToken).ConfigureAwait(false);
        if (!outcome.IsSuccess)
        {
            await ReleaseAllAsync(gate, indexes, count).ConfigureAwait(false);
            return outcome;
        }

        foreach (var (index, _) in _result.Failed)
        {
            if (_held[index] is { } failed)
            {
                _held[index] = null;
                await gate.ReleaseAsync(_keys[index], failed, _contexts[index]).ConfigureAwait(false);
            }
        }

        // The handler's effects are done: every other key is completed, even if the records were cancelled meanwhile.
        var completed = true;
        for (var i = 0; i < count; i++)
        {
            if (_held[indexes[i]] is { } held)
            {
                _held[indexes[i]] = null;
                completed &= await gate.CompleteAfterHandlerAsync(held).ConfigureAwait(false);
            }
        }

        return completed
            ? ProcessingOutcome.Success
            : ProcessingOutcome.Cancel(new OperationCanceledException("The partition was given up before the batch's idempotency keys could be completed.", cancellationToken));
    }

    private async ValueTask ReleaseAllAsync(IdempotencyGate gate, ArraySegment<int> indexes, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var index = indexes[i];
            if (_held[index] is { } held)
            {
                _held[index] = null;
                await gate.ReleaseAsync(_keys[index], held, _contexts[index]).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Gets a record's idempotency key; a key selector that fails (or a key too long) fails that record, reported as the handler would.</summary>
    private bool TryKey(IdempotencyGate gate, int index, out string key)
    {
        try
        {
            key = gate.KeyFor(processor.KeySelector?.Invoke(_messages[index], _contexts[index]), _contexts[index]);
            return true;
        }
        catch (Exception ex)
        {
            // The whole group is done again without this record, which then fails alone.
            _result.Failed.Add((index, ex));
            _result.RolledBack = true;
            key = string.Empty;
            return false;
        }
    }

    private async ValueTask<ProcessingOutcome> CallHandlerAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (processor.SingletonHandler is { } singleton)
            {
                await singleton.HandleAsync(_batch, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                var scope = processor.ScopeFactory.CreateAsyncScope();
                await using (scope.ConfigureAwait(false))
                {
                    await processor.Handler.Resolve(scope.ServiceProvider).HandleAsync(_batch, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested)
        {
            return ProcessingOutcome.Cancel(ex);
        }
        catch (Exception ex)
        {
            return ProcessingOutcome.Failed(ProcessingStage.Handle, ex);
        }

        for (var i = 0; i < _batch.Count; i++)
        {
            if (_batch.FailureOf(i) is { } failure)
            {
                _result.Failed.Add((_batch.SourceOf(i), failure));
            }
        }

        return ProcessingOutcome.Success;
    }
}
