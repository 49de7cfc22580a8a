namespace Kafka.Reliable.Idempotency.Redis;

/// <summary>Settings of the Redis idempotency store: named options (the consumer's name), bindable from configuration and validated when the host starts.</summary>
public sealed class RedisIdempotencyOptions
{
    /// <summary>
    /// Gets or sets the StackExchange.Redis configuration string, for example <c>localhost:6379</c>; the store then makes its own
    /// connection, and closes it when it is disposed. Leave it empty to use the application's <c>IConnectionMultiplexer</c>
    /// (see <see cref="ConnectionMultiplexerKey"/>).
    /// </summary>
    /// <value>The default value is empty: the application's connection.</value>
    public string Configuration { get; set; } = string.Empty;

    /// <summary>
    /// Gets or sets the service key of the application's <c>IConnectionMultiplexer</c>, registered with
    /// <c>AddKeyedSingleton&lt;IConnectionMultiplexer&gt;(key, ...)</c>, used when <see cref="Configuration"/> is empty. The store
    /// uses that connection and never closes it.
    /// </summary>
    /// <value>The default value is <see langword="null"/>: the connection registered without a key.</value>
    public string? ConnectionMultiplexerKey { get; set; }

    /// <summary>Gets or sets the prefix of the store's Redis keys.</summary>
    /// <value>The default value is <c>kafka-reliable:idempotency:</c>.</value>
    public string KeyPrefix { get; set; } = "kafka-reliable:idempotency:";

    /// <summary>Gets or sets how long a completed key is kept; Redis expires it by itself.</summary>
    /// <value>The default value is 7 days.</value>
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Gets or sets the Redis database number.</summary>
    /// <value>The default value is -1: the connection's default database.</value>
    public int Database { get; set; } = -1;
}
