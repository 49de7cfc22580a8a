using Kafka.Reliable.Idempotency.PostgreSql;
using Kafka.Reliable.Idempotency;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Kafka.Reliable;

/// <summary>
/// Registers the PostgreSQL idempotency store on a reliable consumer. Its <see cref="PostgreSqlIdempotencyOptions"/> are named
/// options (the consumer's name), bindable from configuration and validated when the host starts.
/// </summary>
public static class PostgreSqlIdempotencyBuilderExtensions
{
    /// <summary>
    /// Keeps the keys of handled messages in PostgreSQL, shared by every instance of the consumer group. With
    /// <see cref="PostgreSqlIdempotencyOptions.Transactional"/>, the handler writes through
    /// <see cref="PostgreSqlMessageContextExtensions.GetNpgsqlTransaction"/> and its writes, the key and the partition's
    /// offset commit in one transaction: exactly-once effects.
    /// </summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="connectionString">The Npgsql connection string: the store builds its own data source.</param>
    /// <param name="configure">Changes the store's settings.</param>
    /// <returns>The builder.</returns>
    public static TBuilder UsePostgreSqlIdempotency<TBuilder>(this TBuilder builder, string connectionString, Action<PostgreSqlIdempotencyOptions>? configure = null)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        return builder.UsePostgreSqlIdempotencyCore(configuration: null, o =>
        {
            o.ConnectionString = connectionString;
            configure?.Invoke(o);
        });
    }

    /// <summary>
    /// Keeps the keys of handled messages in PostgreSQL, with the store's settings bound from <paramref name="configuration"/>:
    /// with a <c>ConnectionString</c> the store builds its own data source; without one it uses the application's
    /// <c>NpgsqlDataSource</c> (the keyed one when <c>DataSourceKey</c> is set).
    /// </summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="configuration">The configuration section holding <see cref="PostgreSqlIdempotencyOptions"/>.</param>
    /// <returns>The builder.</returns>
    public static TBuilder UsePostgreSqlIdempotency<TBuilder>(this TBuilder builder, IConfiguration configuration)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return builder.UsePostgreSqlIdempotencyCore(configuration, configure: null);
    }

    /// <summary>
    /// Keeps the keys of handled messages in PostgreSQL, with the store's settings set in code. Leave
    /// <see cref="PostgreSqlIdempotencyOptions.ConnectionString"/> empty to use the application's <c>NpgsqlDataSource</c>, for
    /// example <c>UsePostgreSqlIdempotency(o =&gt; o.Transactional = true)</c> after <c>AddNpgsqlDataSource(...)</c>.
    /// </summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="configure">Sets the store's settings, after any configuration binding of the same consumer's store.</param>
    /// <returns>The builder.</returns>
    public static TBuilder UsePostgreSqlIdempotency<TBuilder>(this TBuilder builder, Action<PostgreSqlIdempotencyOptions> configure)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(configure);
        return builder.UsePostgreSqlIdempotencyCore(configuration: null, configure);
    }

    private static TBuilder UsePostgreSqlIdempotencyCore<TBuilder>(this TBuilder builder, IConfiguration? configuration, Action<PostgreSqlIdempotencyOptions>? configure)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        var name = builder.Name;
        var options = builder.Services.AddOptions<PostgreSqlIdempotencyOptions>(name);
        if (configuration is not null)
        {
            options.Bind(configuration);
        }

        StoreRegistration.AddStoreOptions<PostgreSqlIdempotencyOptions, PostgreSqlIdempotencyOptionsValidator>(options, configuration, configure);
        StoreRegistration.UseStoreOf<PostgreSqlIdempotencyOptions, PostgreSqlIdempotencyStore>(builder.Services, name, static o => o.Transactional, Create);
        return builder;
    }

    private static PostgreSqlIdempotencyStore Create(IServiceProvider services, PostgreSqlIdempotencyOptions options) =>
        new(options, services.GetService<TimeProvider>(), ApplicationDataSource(services, options));

    private static NpgsqlDataSource? ApplicationDataSource(IServiceProvider services, PostgreSqlIdempotencyOptions options) =>
        !string.IsNullOrWhiteSpace(options.ConnectionString) ? null
        : string.IsNullOrWhiteSpace(options.DataSourceKey) ? services.GetRequiredService<NpgsqlDataSource>()
        : services.GetRequiredKeyedService<NpgsqlDataSource>(options.DataSourceKey);
}
