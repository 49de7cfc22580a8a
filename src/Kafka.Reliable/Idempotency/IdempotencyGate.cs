using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kafka.Reliable.Idempotency;

/// <summary>What the gate decided for a message.</summary>
internal enum GateDecision
{
    Handle,
    Duplicate,
    Held,
}

/// <summary>
/// Stands between translation and the handler when the consumer has an idempotency store: takes the message's key before
/// the handler runs, and completes or releases it after. With a transactional store, it opens the transaction the handler
/// writes through and commits it with the idempotency record.
/// </summary>
internal sealed class IdempotencyGate
{
    private static readonly TimeSpan FirstCompletionRetry = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxCompletionRetry = TimeSpan.FromSeconds(5);
    private const string GaveUp = "the partition was given up meanwhile, so the record stays undone and is read again by the partition's next owner; its key is free when its lease expires";
    private readonly IIdempotencyStore? _store;
    private readonly ITransactionalIdempotencyStore? _transactional;
    private readonly IdempotencyOptions _options;
    private readonly string _keyPrefix;
    private readonly string _instance = Guid.NewGuid().ToString("N");
    private readonly ConsumerContext? _consumer;
    private readonly TimeProvider _time;
    private readonly LeaseRenewer? _renewer;

    private readonly ILogger _logger;

    public IdempotencyGate(object store, bool transactional, string groupId, IdempotencyOptions options, ILogger? logger = null, ConsumerContext? consumer = null)
    {
        _logger = logger ?? consumer?.Logger ?? NullLogger.Instance;
        _transactional = transactional ? (ITransactionalIdempotencyStore)store : null;
        _store = transactional ? null : (IIdempotencyStore)store;
        _consumer = consumer;
        _time = consumer?.Time ?? TimeProvider.System;
        _renewer = _store is null ? null : new LeaseRenewer(this, _store, options.LeaseDuration, _time, _logger);

        _options = options;
        _keyPrefix = groupId + "/";
        Store = store;
    }

    public object Store { get; }

    /// <summary>Gets a value indicating whether the store is transactional (no leases: a transaction per message or batch).</summary>
    public bool IsTransactional => _transactional is not null;

    /// <summary>Gets the transactional store when it can hold a whole batch in one transaction; null otherwise.</summary>
    public ITransactionalBatchIdempotencyStore? BatchTransactions => _transactional as ITransactionalBatchIdempotencyStore;

    /// <summary>Gets the number of keys whose leases are being renewed (tests).</summary>
    internal int RenewedKeys => _renewer?.Count ?? 0;

    /// <summary>Gets the message's key: the key function's, else the key header's, else topic-partition-offset; prefixed with the group.</summary>
    /// <remarks>Builds the key string only: one allocation per record (the store interfaces take strings).</remarks>
    public string KeyFor(string? selected, MessageContext context)
    {
        if (!string.IsNullOrEmpty(selected))
        {
            ThrowIfTooLong(_keyPrefix.Length + selected.Length);
            return string.Concat(_keyPrefix, selected);
        }

        if (context.Record!.Message.Headers is { } headers && headers.TryGetLastBytes(_options.KeyHeader, out var header) && header is { Length: > 0 })
        {
            // Decoded straight behind the prefix, as Encoding.UTF8.GetString decodes it (invalid bytes become U+FFFD).
            var length = _keyPrefix.Length + Encoding.UTF8.GetCharCount(header);
            ThrowIfTooLong(length);
            return string.Create(length, (Prefix: _keyPrefix, Header: header), static (span, state) =>
            {
                state.Prefix.CopyTo(span);
                Encoding.UTF8.GetChars(state.Header, span[state.Prefix.Length..]);
            });
        }

        var key = string.Create(CultureInfo.InvariantCulture, stackalloc char[128], $"{_keyPrefix}{context.Topic}-{context.Partition}-{context.Offset}");
        ThrowIfTooLong(key.Length);
        return key;
    }

    /// <summary>
    /// Takes the message's key. With a lease store, a key taken comes back as a <see cref="HeldKey"/> whose lease is renewed
    /// from now until it is completed or released; with a transactional store, the message's transaction is opened instead.
    /// </summary>
    /// <param name="key">The key.</param>
    /// <param name="context">The record's context.</param>
    /// <param name="cancellationToken">The worker's abort token: cancels the call, and stops renewals once no handler runs.</param>
    public ValueTask<(GateDecision Decision, TimeSpan RetryAfter, HeldKey? Held)> BeginAsync(string key, MessageContext context, CancellationToken cancellationToken)
    {
        if (_transactional is not null)
        {
            return BeginTransactionAsync(_transactional, key, context, cancellationToken);
        }

        var owner = Owner(context);
        var takenAt = _time.GetTimestamp();
        var pending = _store!.TryBeginAsync(key, owner, _options.LeaseDuration, cancellationToken);

        // A store that answers at once (the in-memory one) costs no state machine.
        return pending.IsCompletedSuccessfully
            ? new(Decide(pending.Result, key, owner, context, takenAt, cancellationToken))
            : BeginLeaseAsync(pending, key, owner, context, takenAt, cancellationToken);
    }

    /// <summary>
    /// With <see cref="CommitStrategy.Manual"/>: makes the record's acknowledgement complete the key, instead of the handler's
    /// return. A deferred acknowledgement that never comes then leaves the key uncompleted, and the record is handled again
    /// when it is delivered again, instead of being skipped as a duplicate of effects that never happened.
    /// </summary>
    public static void CompleteOnAcknowledgement(HeldKey held, MessageAcknowledgement acknowledgement)
    {
        // Not attached when the record was acknowledged already (an earlier attempt acknowledged it, then failed): its effects
        // are durable by the acknowledgement's contract, so the key is completed when the handler returns.
        if (acknowledgement.TryAttach(held))
        {
            held.Acknowledgement = acknowledgement;
        }
    }

    /// <summary>Commits the transaction of a transactional store: the handler's writes, the key and the offset together.</summary>
    public async ValueTask CommitAsync(MessageContext context, CancellationToken cancellationToken)
    {
        var transaction = context.Transaction ?? throw new InvalidOperationException("The message's transaction is gone: the handler must not dispose it.");
        try
        {
            await transaction.CommitAsync(context, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            context.Transaction = null;
            await transaction.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// After the handler returned: completes the key, trying again while the store fails, unless the record's acknowledgement
    /// completes it (<see cref="CommitStrategy.Manual"/>); then its lease stays renewed until the acknowledgement comes.
    /// </summary>
    /// <returns><see langword="false"/> when the worker was aborted before the key could be completed: the record is left undone.</returns>
    public ValueTask<bool> CompleteAfterHandlerAsync(HeldKey held)
    {
        held.HandlerRunning = false;
        return held.Acknowledgement is not null ? ValueTask.FromResult(true) : CompleteWithRetryAsync(held);
    }

    /// <summary>
    /// Called by an acknowledgement that holds a key (see <see cref="CompleteOnAcknowledgement"/>): completes the key, trying
    /// again while the store fails, and only then marks the record done. Never throws.
    /// </summary>
    public void CompleteAcknowledged(HeldKey held, Action<long> markDone, long sequence) => _ = CompleteAcknowledgedAsync(held, markDone, sequence);

    /// <summary>Gives the key back after a failure; never throws (the failure being handled matters more).</summary>
    public async ValueTask ReleaseAsync(string key, HeldKey? held, MessageContext context)
    {
        try
        {
            if (_transactional is not null)
            {
                // Rolling the transaction back releases the key with the handler's writes.
                if (context.Transaction is { } transaction)
                {
                    context.Transaction = null;
                    await transaction.DisposeAsync().ConfigureAwait(false);
                }

                return;
            }

            if (held is not null)
            {
                held.HandlerRunning = false;
                if (held.Acknowledgement is { } acknowledgement && !acknowledgement.TryDetach(held))
                {
                    // The handler acknowledged the record and then failed: the acknowledgement says its effects are durable,
                    // and it completes the key.
                    return;
                }

                Volatile.Write(ref held.State, HeldKey.Done);
                _renewer!.Remove(held);
            }

            await _store!.ReleaseAsync(key, held?.Owner ?? Owner(context), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Not worth failing for: the lease expires by itself, and the database rolls a transaction back when its connection goes.
            Log.IdempotencyReleaseFailed(_logger, context.ConsumerName, context.Topic, context.Partition, context.Offset, ex.Message);
        }
    }

    public async ValueTask<long> CleanupAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        Store is IIdempotencyStore store ? await store.CleanupAsync(now - _options.Retention, cancellationToken).ConfigureAwait(false) : 0;

    /// <summary>Counts a record whose lease was found lost, once.</summary>
    internal void ReportLost(HeldKey held)
    {
        if (Interlocked.Exchange(ref held.LostCounted, 1) == 0 && _consumer is not null)
        {
            ReliableMetrics.Add(_consumer.Metrics.LeasesLost, _consumer, held.Topic);
        }
    }

    private static void ThrowIfTooLong(int length)
    {
        if (length > IdempotencyConstants.MaxKeyLength)
        {
            throw new InvalidDataException($"The idempotency key is {length} characters long, more than {IdempotencyConstants.MaxKeyLength}; choose a shorter key in WithIdempotencyKey.");
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<(GateDecision Decision, TimeSpan RetryAfter, HeldKey? Held)> BeginTransactionAsync(
        ITransactionalIdempotencyStore store, string key, MessageContext context, CancellationToken cancellationToken)
    {
        var transaction = await store.BeginTransactionAsync(key, context, cancellationToken).ConfigureAwait(false);
        if (transaction is null)
        {
            return (GateDecision.Duplicate, default, null);
        }

        context.Transaction = transaction;
        return (GateDecision.Handle, default, null);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<(GateDecision Decision, TimeSpan RetryAfter, HeldKey? Held)> BeginLeaseAsync(
        ValueTask<IdempotencyBeginResult> pending, string key, string owner, MessageContext context, long takenAt, CancellationToken cancellationToken) =>
        Decide(await pending.ConfigureAwait(false), key, owner, context, takenAt, cancellationToken);

    private (GateDecision Decision, TimeSpan RetryAfter, HeldKey? Held) Decide(IdempotencyBeginResult result, string key, string owner, MessageContext context, long takenAt, CancellationToken cancellationToken)
    {
        switch (result.Status)
        {
            case IdempotencyStatus.Acquired:
                var held = new HeldKey(this, key, owner, context, takenAt, cancellationToken);
                _renewer!.Add(held);
                return (GateDecision.Handle, default, held);
            case IdempotencyStatus.AlreadyCompleted:
                return (GateDecision.Duplicate, default, null);
            default:
                return (GateDecision.Held, result.RetryAfter, null);
        }
    }

    private async Task CompleteAcknowledgedAsync(HeldKey held, Action<long> markDone, long sequence)
    {
        try
        {
            // A worker stopped meanwhile (lost partition, shutdown) leaves the record undone: its next owner reads it again.
            if (await CompleteWithRetryAsync(held).ConfigureAwait(false) && !held.Abort.IsCancellationRequested)
            {
                markDone(sequence);
            }
        }
        catch (Exception ex)
        {
            // A bug, never the store's failure (retried above): the record stays undone, which is safe.
            Log.IdempotencyCompleteFailed(_logger, held.Consumer, held.Topic, held.Partition, held.Offset, ex.Message, GaveUp);
        }
    }

    /// <summary>
    /// Completes a held key: the handler's effects happened. A store failure is retried (with a growing delay, the lease still
    /// renewed meanwhile) until the worker is aborted; the key is never released, which would let the effects happen twice.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> CompleteWithRetryAsync(HeldKey held)
    {
        var delay = FirstCompletionRetry;
        while (true)
        {
            Volatile.Write(ref held.State, HeldKey.Completing);
            try
            {
                if (await _store!.CompleteAsync(held.Key, held.Owner, CancellationToken.None).ConfigureAwait(false) == IdempotencyLeaseStatus.Lost)
                {
                    await CompleteLostAsync(held).ConfigureAwait(false);
                }

                Volatile.Write(ref held.State, HeldKey.Done);
                _renewer!.Remove(held);
                return true;
            }
            catch (Exception ex)
            {
                Volatile.Write(ref held.State, HeldKey.Holding);
                if (held.Abort.IsCancellationRequested)
                {
                    Log.IdempotencyCompleteFailed(_logger, held.Consumer, held.Topic, held.Partition, held.Offset, ex.Message, GaveUp);
                    return false;
                }

                Log.IdempotencyCompleteFailed(_logger, held.Consumer, held.Topic, held.Partition, held.Offset, ex.Message, string.Create(CultureInfo.InvariantCulture, $"trying again in {delay}"));
                try
                {
                    await Task.Delay(delay, _time, held.Abort).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return false;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxCompletionRetry.Ticks));
            }
        }
    }

    /// <summary>
    /// The key was no longer held by this record when its handler's effects were done: its lease expired and the key was removed
    /// or taken by another consumer. The effects happened, so the record counts as done, and the key is completed if it is free;
    /// a key held by another consumer is left to it (it completes or releases it). Another run may have happened: it is said.
    /// </summary>
    private async ValueTask CompleteLostAsync(HeldKey held)
    {
        ReportLost(held);
        var begin = await _store!.TryBeginAsync(held.Key, held.Owner, _options.LeaseDuration, CancellationToken.None).ConfigureAwait(false);
        var outcome = begin.Status switch
        {
            IdempotencyStatus.Acquired when await _store.CompleteAsync(held.Key, held.Owner, CancellationToken.None).ConfigureAwait(false) == IdempotencyLeaseStatus.Held
                => "the key was free, and is completed now",
            IdempotencyStatus.Acquired => "the key was free, but was taken by another consumer before it could be completed",
            IdempotencyStatus.AlreadyCompleted => "another run completed the key",
            _ => "another consumer holds the key now, and completes or releases it",
        };
        Log.IdempotencyCompletedAfterLeaseLost(_logger, held.Consumer, held.Topic, held.Partition, held.Offset, held.Key, outcome);
    }

    // The same record retried within one assignment is the same owner, so that it can take its own key again. A new
    // assignment of the partition is another owner, even in this process: a handler of the earlier assignment that did not
    // stop when cancelled may still run, and the record must wait for it (or for its lease to expire), not run beside it.
    // Built in a buffer on the stack: the string is the one allocation.
    private string Owner(MessageContext context) =>
        string.Create(CultureInfo.InvariantCulture, stackalloc char[128], $"{_instance}/{context.Assignment}/{context.Topic}/{context.Partition}/{context.Offset}");
}

/// <summary>
/// A failure to take the message's key that is not the record's fault: the record waits and tries again, holding its
/// partition (or key), without spending its retry attempts, without being dead-lettered, and without counting for the
/// circuit.
/// </summary>
internal abstract class IdempotencyWaitException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The message's key is being handled by another consumer (its lease has not expired).</summary>
internal sealed class IdempotencyKeyHeldException(TimeSpan retryAfter)
    : IdempotencyWaitException($"The message's idempotency key is held by another consumer for up to {retryAfter}.")
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>The idempotency store could not be asked for the message's key (it is down or unreachable).</summary>
internal sealed class IdempotencyStoreUnavailableException(Exception inner)
    : IdempotencyWaitException($"The idempotency store could not be reached: {inner.Message}", inner);
