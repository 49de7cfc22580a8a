using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable;

/// <summary>Registers the PostgreSQL idempotency store on a reliable consumer.</summary>
public static class PostgreSqlIdempotencyBuilderExtensions
{
    /// <summary>
    /// Keeps the keys of handled messages in PostgreSQL, shared by every instance of the consumer group. With
    /// <see cref="PostgreSqlIdempotencyOptions.Transactional"/>, the handler writes through
    /// <see cref="PostgreSqlMessageContextExtensions.GetNpgsqlTransaction"/> and its writes, the key and the partition's
    /// offset commit in one transaction: exactly-once effects.
    /// </summary>
    /// <typeparam name="TMessage">The consumer's message type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="connectionString">The Npgsql connection string.</param>
    /// <param name="configure">Changes the store's settings.</param>
    /// <returns>The builder.</returns>
    public static IReliableConsumerBuilder<TMessage> UsePostgreSqlIdempotency<TMessage>(
        this IReliableConsumerBuilder<TMessage> builder, string connectionString, Action<PostgreSqlIdempotencyOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        var options = new PostgreSqlIdempotencyOptions { ConnectionString = connectionString };
        configure?.Invoke(options);
        return options.Transactional
            ? builder.UseTransactionalIdempotencyStore(sp => new PostgreSqlIdempotencyStore(options, sp.GetService<TimeProvider>()))
            : builder.UseIdempotencyStore(sp => new PostgreSqlIdempotencyStore(options, sp.GetService<TimeProvider>()));
    }
}
