using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable;

/// <summary>Registers the SQLite idempotency store on a reliable consumer.</summary>
public static class SqliteIdempotencyBuilderExtensions
{
    /// <summary>
    /// Keeps the keys of handled messages in a SQLite database file (created if missing), so that a message delivered again
    /// is not handled again, across restarts. With <see cref="SqliteIdempotencyOptions.Transactional"/>, the handler writes
    /// through <see cref="SqliteMessageContextExtensions.GetSqliteTransaction"/> and its writes commit with the key.
    /// </summary>
    /// <typeparam name="TMessage">The consumer's message type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="path">The database file, for example <c>/var/lib/orders/idempotency.db</c>.</param>
    /// <param name="configure">Changes the store's settings.</param>
    /// <returns>The builder.</returns>
    public static IReliableConsumerBuilder<TMessage> UseSqliteIdempotency<TMessage>(
        this IReliableConsumerBuilder<TMessage> builder, string path, Action<SqliteIdempotencyOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var options = new SqliteIdempotencyOptions
        {
            ConnectionString = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = true }.ToString(),
        };
        configure?.Invoke(options);
        return options.Transactional
            ? builder.UseTransactionalIdempotencyStore(sp => new SqliteIdempotencyStore(options, sp.GetService<TimeProvider>(), sp.GetService<ILogger<SqliteIdempotencyStore>>()))
            : builder.UseIdempotencyStore(sp => new SqliteIdempotencyStore(options, sp.GetService<TimeProvider>(), sp.GetService<ILogger<SqliteIdempotencyStore>>()));
    }
}
