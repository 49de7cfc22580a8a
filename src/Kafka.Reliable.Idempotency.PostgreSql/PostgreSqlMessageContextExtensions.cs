using Kafka.Reliable.Idempotency.PostgreSql;

namespace Kafka.Reliable;

/// <summary>Gives a handler the PostgreSQL connection and transaction of its message, with <see cref="PostgreSqlIdempotencyOptions.Transactional"/>.</summary>
public static class PostgreSqlMessageContextExtensions
{
    /// <summary>Gets the transaction the handler writes through, so that its writes commit with the idempotency record and offset.</summary>
    /// <param name="context">The message's context.</param>
    /// <returns>The transaction (its <c>Connection</c> and <c>Transaction</c>).</returns>
    /// <exception cref="InvalidOperationException">The consumer does not use the PostgreSQL store in transactional mode.</exception>
    public static PostgreSqlIdempotencyTransaction GetNpgsqlTransaction(this MessageContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Transaction as PostgreSqlIdempotencyTransaction
            ?? throw new InvalidOperationException("This message has no PostgreSQL transaction: register the consumer with UsePostgreSqlIdempotency(..., o => o.Transactional = true).");
    }
}
