using Kafka.Reliable.Idempotency.Sqlite;

namespace Kafka.Reliable;

/// <summary>Gives a handler the SQLite transaction of its message, with <see cref="SqliteIdempotencyOptions.Transactional"/>.</summary>
public static class SqliteMessageContextExtensions
{
    /// <summary>Gets the transaction the handler writes through, so that its writes commit with the idempotency record.</summary>
    /// <param name="context">The message's context.</param>
    /// <returns>The transaction (its <c>Connection</c> and <c>Transaction</c>).</returns>
    /// <exception cref="InvalidOperationException">The consumer does not use the SQLite store in transactional mode.</exception>
    public static SqliteIdempotencyTransaction GetSqliteTransaction(this MessageContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Transaction as SqliteIdempotencyTransaction
            ?? throw new InvalidOperationException("This message has no SQLite transaction: register the consumer with UseSqliteIdempotency(..., o => o.Transactional = true).");
    }
}
