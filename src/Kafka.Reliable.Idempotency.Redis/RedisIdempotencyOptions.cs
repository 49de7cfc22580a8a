namespace Kafka.Reliable;

/// <summary>Settings of the Redis idempotency store.</summary>
public sealed class RedisIdempotencyOptions
{
    /// <summary>Gets or sets the StackExchange.Redis configuration string, for example <c>localhost:6379</c>.</summary>
    public string Configuration { get; set; } = string.Empty;

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
