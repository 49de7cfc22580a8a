// Compiled into the SQL store packages (linked from their project files): the argument checks of BeginBatchTransactionAsync.
namespace Kafka.Reliable.Idempotency;

/// <summary>Checks the arguments of <see cref="ITransactionalBatchIdempotencyStore.BeginBatchTransactionAsync"/>, alike for every store.</summary>
internal static class BatchKeys
{
    /// <summary>Throws when the keys or their <paramref name="handled"/> list cannot describe a batch.</summary>
    /// <param name="keys">The messages' keys.</param>
    /// <param name="handled">Where the store reports each message handled or not.</param>
    /// <exception cref="ArgumentNullException">A list is null.</exception>
    /// <exception cref="ArgumentException">The batch is empty, a key is null, or the lists differ in length.</exception>
    public static void Validate(IReadOnlyList<string> keys, IList<bool> handled)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(handled);
        if (keys.Count == 0)
        {
            throw new ArgumentException("A batch has at least one message: keys is empty.", nameof(keys));
        }

        if (handled.Count != keys.Count)
        {
            throw new ArgumentException($"handled must be as long as keys, one entry per message: it has {handled.Count} entries for {keys.Count} keys.", nameof(handled));
        }

        for (var i = 0; i < keys.Count; i++)
        {
            if (keys[i] is null)
            {
                throw new ArgumentException($"keys[{i}] is null: every message of a batch needs an idempotency key.", nameof(keys));
            }
        }
    }

    /// <summary>The error of a batch transaction asked of a store in lease mode.</summary>
    /// <param name="registration">How to register the store in transactional mode, for example <c>UseSqliteIdempotency(..., o =&gt; o.Transactional = true)</c>.</param>
    /// <returns>The exception to throw.</returns>
    public static InvalidOperationException NotTransactional(string registration) =>
        new($"A batch transaction needs the store in transactional mode, and this one takes keys under leases: configure it Transactional, for example {registration}.");
}
