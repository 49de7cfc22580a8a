using Kafka.Reliable.Idempotency.Sqlite;
using Kafka.Reliable.Idempotency;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable;

/// <summary>
/// Registers the SQLite idempotency store on a reliable consumer. Its <see cref="SqliteIdempotencyOptions"/> are named options
/// (the consumer's name), bindable from configuration and validated when the host starts.
/// </summary>
public static class SqliteIdempotencyBuilderExtensions
{
    /// <summary>
    /// Keeps the keys of handled messages in a SQLite database file (created if missing), so that a message delivered again
    /// is not handled again, across restarts. With <see cref="SqliteIdempotencyOptions.Transactional"/>, the handler writes
    /// through <see cref="SqliteMessageContextExtensions.GetSqliteTransaction"/> and its writes commit with the key.
    /// </summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="path">The database file, for example <c>/var/lib/orders/idempotency.db</c>.</param>
    /// <param name="configure">Changes the store's settings.</param>
    /// <returns>The builder.</returns>
    public static TBuilder UseSqliteIdempotency<TBuilder>(this TBuilder builder, string path, Action<SqliteIdempotencyOptions>? configure = null)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var connectionString = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = true }.ToString();
        return builder.UseSqliteIdempotencyCore(configuration: null, o =>
        {
            o.ConnectionString = connectionString;
            configure?.Invoke(o);
        });
    }

    /// <summary>
    /// Keeps the keys of handled messages in a SQLite database, with the store's settings bound from
    /// <paramref name="configuration"/>, for example a section holding <c>ConnectionString</c> (<c>Data Source=/var/lib/orders/idempotency.db</c>)
    /// and <c>Transactional</c>.
    /// </summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="configuration">The configuration section holding <see cref="SqliteIdempotencyOptions"/>.</param>
    /// <returns>The builder.</returns>
    public static TBuilder UseSqliteIdempotency<TBuilder>(this TBuilder builder, IConfiguration configuration)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return builder.UseSqliteIdempotencyCore(configuration, configure: null);
    }

    /// <summary>Keeps the keys of handled messages in a SQLite database whose settings, connection string included, are set in code.</summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="configure">Sets the store's settings, after any configuration binding of the same consumer's store.</param>
    /// <returns>The builder.</returns>
    public static TBuilder UseSqliteIdempotency<TBuilder>(this TBuilder builder, Action<SqliteIdempotencyOptions> configure)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(configure);
        return builder.UseSqliteIdempotencyCore(configuration: null, configure);
    }

    private static TBuilder UseSqliteIdempotencyCore<TBuilder>(this TBuilder builder, IConfiguration? configuration, Action<SqliteIdempotencyOptions>? configure)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        var name = builder.Name;
        var options = builder.Services.AddOptions<SqliteIdempotencyOptions>(name);
        if (configuration is not null)
        {
            options.Bind(configuration);
        }

        StoreRegistration.AddStoreOptions<SqliteIdempotencyOptions, SqliteIdempotencyOptionsValidator>(options, configuration, configure);
        StoreRegistration.UseStoreOf<SqliteIdempotencyOptions, SqliteIdempotencyStore>(builder.Services, name, static o => o.Transactional, Create);
        return builder;
    }

    private static SqliteIdempotencyStore Create(IServiceProvider services, SqliteIdempotencyOptions options) =>
        new(options, services.GetService<TimeProvider>(), services.GetService<ILogger<SqliteIdempotencyStore>>());
}
