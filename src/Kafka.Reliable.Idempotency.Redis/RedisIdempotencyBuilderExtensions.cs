using Kafka.Reliable.Idempotency.Redis;
using Kafka.Reliable.Idempotency;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Kafka.Reliable;

/// <summary>
/// Registers the Redis idempotency store on a reliable consumer. Its <see cref="RedisIdempotencyOptions"/> are named options
/// (the consumer's name), bindable from configuration and validated when the host starts.
/// </summary>
public static class RedisIdempotencyBuilderExtensions
{
    /// <summary>Keeps the keys of handled messages in Redis, shared by every instance of the consumer group, expiring after the retention.</summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="configuration">The StackExchange.Redis configuration string, for example <c>localhost:6379</c>: the store makes its own connection.</param>
    /// <param name="configure">Changes the store's settings.</param>
    /// <returns>The builder.</returns>
    public static TBuilder UseRedisIdempotency<TBuilder>(this TBuilder builder, string configuration, Action<RedisIdempotencyOptions>? configure = null)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        return builder.UseRedisIdempotencyCore(section: null, o =>
        {
            o.Configuration = configuration;
            configure?.Invoke(o);
        });
    }

    /// <summary>
    /// Keeps the keys of handled messages in Redis, with the store's settings bound from <paramref name="section"/>: with a
    /// <c>Configuration</c> string the store makes its own connection; without one it uses the application's
    /// <c>IConnectionMultiplexer</c> (the keyed one when <c>ConnectionMultiplexerKey</c> is set).
    /// </summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="section">The configuration section holding <see cref="RedisIdempotencyOptions"/>.</param>
    /// <returns>The builder.</returns>
    public static TBuilder UseRedisIdempotency<TBuilder>(this TBuilder builder, IConfiguration section)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(section);
        return builder.UseRedisIdempotencyCore(section, configure: null);
    }

    /// <summary>
    /// Keeps the keys of handled messages in Redis, with the store's settings set in code. Leave
    /// <see cref="RedisIdempotencyOptions.Configuration"/> empty to use the application's <c>IConnectionMultiplexer</c>, for example
    /// <c>UseRedisIdempotency(o =&gt; o.KeyPrefix = "orders:")</c> after <c>AddSingleton&lt;IConnectionMultiplexer&gt;(...)</c>.
    /// </summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="configure">Sets the store's settings, after any configuration binding of the same consumer's store.</param>
    /// <returns>The builder.</returns>
    public static TBuilder UseRedisIdempotency<TBuilder>(this TBuilder builder, Action<RedisIdempotencyOptions> configure)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(configure);
        return builder.UseRedisIdempotencyCore(section: null, configure);
    }

    private static TBuilder UseRedisIdempotencyCore<TBuilder>(this TBuilder builder, IConfiguration? section, Action<RedisIdempotencyOptions>? configure)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        var name = builder.Name;
        var options = builder.Services.AddOptions<RedisIdempotencyOptions>(name);
        if (section is not null)
        {
            options.Bind(section);
        }

        StoreRegistration.AddStoreOptions<RedisIdempotencyOptions, RedisIdempotencyOptionsValidator>(options, section, configure);
        builder.Services.AddOptions<IdempotencyStoreOptions>(name).Configure<IOptionsMonitor<RedisIdempotencyOptions>>(
            (store, monitor) =>
            {
                var redis = monitor.Get(name);
                store.UseStore(sp => new RedisIdempotencyStore(redis, ApplicationConnection(sp, redis)));
            });
        return builder;
    }

    private static IConnectionMultiplexer? ApplicationConnection(IServiceProvider services, RedisIdempotencyOptions options) =>
        !string.IsNullOrWhiteSpace(options.Configuration) ? null
        : string.IsNullOrWhiteSpace(options.ConnectionMultiplexerKey) ? services.GetRequiredService<IConnectionMultiplexer>()
        : services.GetRequiredKeyedService<IConnectionMultiplexer>(options.ConnectionMultiplexerKey);
}
