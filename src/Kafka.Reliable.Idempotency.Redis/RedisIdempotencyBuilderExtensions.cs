namespace Kafka.Reliable;

/// <summary>Registers the Redis idempotency store on a reliable consumer.</summary>
public static class RedisIdempotencyBuilderExtensions
{
    /// <summary>Keeps the keys of handled messages in Redis, shared by every instance of the consumer group, expiring after the retention.</summary>
    /// <typeparam name="TMessage">The consumer's message type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="configuration">The StackExchange.Redis configuration string, for example <c>localhost:6379</c>.</param>
    /// <param name="configure">Changes the store's settings.</param>
    /// <returns>The builder.</returns>
    public static IReliableConsumerBuilder<TMessage> UseRedisIdempotency<TMessage>(
        this IReliableConsumerBuilder<TMessage> builder, string configuration, Action<RedisIdempotencyOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        var options = new RedisIdempotencyOptions { Configuration = configuration };
        configure?.Invoke(options);
        return builder.UseIdempotencyStore(_ => new RedisIdempotencyStore(options));
    }
}
