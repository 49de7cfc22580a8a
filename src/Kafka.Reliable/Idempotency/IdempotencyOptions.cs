namespace Kafka.Reliable;

/// <summary>
/// How a consumer with an idempotency store (<c>UseInMemoryIdempotency</c>, <c>UseSqliteIdempotency</c>,
/// <c>UsePostgreSqlIdempotency</c>, <c>UseRedisIdempotency</c>) keys and keeps what it handled.
/// </summary>
/// <remarks>
/// A message's key is, in this order: the key function given to <c>WithIdempotencyKey</c> (for example the order id);
/// the value of the <see cref="KeyHeader"/> header when the record has it; otherwise <c>topic-partition-offset</c>, which
/// recognizes redeliveries of the same record but not the same message produced twice. Keys are kept per consumer group.
/// </remarks>
public sealed class IdempotencyOptions
{
    /// <summary>Gets or sets the header that carries a message id set by the producer.</summary>
    /// <value>The default value is <c>message-id</c>.</value>
    public string KeyHeader { get; set; } = IdempotencyConstants.DefaultKeyHeader;

    /// <summary>
    /// Gets or sets how long a key stays held by a consumer that took it and then crashed, before another may take it.
    /// The consumer renews it every third of its duration while the handler runs (and, with <see cref="CommitStrategy.Manual"/>,
    /// until the record is acknowledged), so a slow handler keeps its key as long as the store can be reached; a lease found
    /// lost is logged (216, 217) and counted.
    /// </summary>
    /// <value>The default value is 5 minutes. Allowed: 1 second to 1 day.</value>
    public TimeSpan LeaseDuration { get; set; } = IdempotencyConstants.DefaultLeaseDuration;

    /// <summary>Gets or sets how long completed keys are kept. Redelivery of an older message is not recognized.</summary>
    /// <value>The default value is 7 days (Kafka's default retention). Allowed: 1 minute to 3650 days.</value>
    public TimeSpan Retention { get; set; } = IdempotencyConstants.DefaultRetention;

    /// <summary>Gets or sets how often expired keys are removed from the store.</summary>
    /// <value>The default value is 10 minutes. Allowed: 1 second to 1 day.</value>
    public TimeSpan CleanupInterval { get; set; } = IdempotencyConstants.DefaultCleanupInterval;
}

internal static class IdempotencyConstants
{
    public const string DefaultKeyHeader = "message-id";
    public const int MaxKeyLength = 512;
    public static readonly TimeSpan DefaultLeaseDuration = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan DefaultRetention = TimeSpan.FromDays(7);
    public static readonly TimeSpan DefaultCleanupInterval = TimeSpan.FromMinutes(10);
}
