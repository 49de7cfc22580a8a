using System.Globalization;
using System.Text;
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
    private readonly IIdempotencyStore? _store;
    private readonly ITransactionalIdempotencyStore? _transactional;
    private readonly IdempotencyOptions _options;
    private readonly string _keyPrefix;
    private readonly string _instance = Guid.NewGuid().ToString("N");

    private readonly ILogger _logger;

    public IdempotencyGate(object store, bool transactional, string groupId, IdempotencyOptions options, ILogger? logger = null)
    {
        _logger = logger ?? NullLogger.Instance;
        _transactional = transactional ? (ITransactionalIdempotencyStore)store : null;
        _store = transactional ? null : (IIdempotencyStore)store;

        _options = options;
        _keyPrefix = groupId + "/";
        Store = store;
    }

    public object Store { get; }

    /// <summary>Gets the message's key: the key function's, else the key header's, else topic-partition-offset; prefixed with the group.</summary>
    public string KeyFor(string? selected, MessageContext context)
    {
        var key = selected;
        if (string.IsNullOrEmpty(key) && context.Record!.Message.Headers is { } headers && headers.TryGetLastBytes(_options.KeyHeader, out var header) && header is { Length: > 0 })
        {
            key = Encoding.UTF8.GetString(header);
        }

        key = string.IsNullOrEmpty(key)
            ? string.Create(CultureInfo.InvariantCulture, $"{_keyPrefix}{context.Topic}-{context.Partition}-{context.Offset}")
            : _keyPrefix + key;
        if (key.Length > IdempotencyConstants.MaxKeyLength)
        {
            throw new InvalidDataException($"The idempotency key is {key.Length} characters long, more than {IdempotencyConstants.MaxKeyLength}; choose a shorter key in WithIdempotencyKey.");
        }

        return key;
    }

    public async ValueTask<(GateDecision Decision, TimeSpan RetryAfter)> BeginAsync(string key, MessageContext context, CancellationToken cancellationToken)
    {
        if (_transactional is not null)
        {
            var transaction = await _transactional.BeginTransactionAsync(key, context, cancellationToken).ConfigureAwait(false);
            if (transaction is null)
            {
                return (GateDecision.Duplicate, default);
            }

            context.Transaction = transaction;
            return (GateDecision.Handle, default);
        }

        var result = await _store!.TryBeginAsync(key, Owner(context), _options.LeaseDuration, cancellationToken).ConfigureAwait(false);
        return result.Status switch
        {
            IdempotencyStatus.Acquired => (GateDecision.Handle, default),
            IdempotencyStatus.AlreadyCompleted => (GateDecision.Duplicate, default),
            _ => (GateDecision.Held, result.RetryAfter),
        };
    }

    public async ValueTask CompleteAsync(string key, MessageContext context, CancellationToken cancellationToken)
    {
        if (_transactional is not null)
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

            return;
        }

        await _store!.CompleteAsync(key, Owner(context), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Gives the key back after a failure; never throws (the failure being handled matters more).</summary>
    public async ValueTask ReleaseAsync(string key, MessageContext context)
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

            await _store!.ReleaseAsync(key, Owner(context), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Not worth failing for: the lease expires by itself, and the database rolls a transaction back when its connection goes.
            Log.IdempotencyReleaseFailed(_logger, context.ConsumerName, context.Topic, context.Partition, context.Offset, ex.Message);
        }
    }

    public async ValueTask<long> CleanupAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        Store is IIdempotencyStore store ? await store.CleanupAsync(now - _options.Retention, cancellationToken).ConfigureAwait(false) : 0;

    // The same record retried within one assignment is the same owner, so that it can take its own key again. A new
    // assignment of the partition is another owner, even in this process: a handler of the earlier assignment that did not
    // stop when cancelled may still run, and the record must wait for it (or for its lease to expire), not run beside it.
    private string Owner(MessageContext context) =>
        string.Create(CultureInfo.InvariantCulture, $"{_instance}/{context.Assignment}/{context.Topic}/{context.Partition}/{context.Offset}");
}

/// <summary>
/// The message's key is being handled by another consumer (its lease has not expired): the record waits and tries again,
/// without spending its retry attempts.
/// </summary>
internal sealed class IdempotencyKeyHeldException(TimeSpan retryAfter)
    : Exception($"The message's idempotency key is held by another consumer for up to {retryAfter}.")
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}
