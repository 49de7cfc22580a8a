namespace Kafka.Reliable;

/// <summary>
/// The headers of a record in a retry topic (<see cref="RetryTierOptions"/>), besides the original record's own headers,
/// which it keeps unchanged with its key and value. Values are UTF-8 text. A record dead-lettered after its last tier
/// carries <see cref="History"/> too.
/// </summary>
public static class RetryTierHeaders
{
    /// <summary>The topic the record was first consumed from.</summary>
    public const string OriginalTopic = "retry-original-topic";

    /// <summary>The partition the record was first consumed from (also the retry topic's partition it is parked in).</summary>
    public const string OriginalPartition = "retry-original-partition";

    /// <summary>The record's offset in its original partition: a parked key's records are handled in this order.</summary>
    public const string OriginalOffset = "retry-original-offset";

    /// <summary>The original record's timestamp, in milliseconds since the Unix epoch.</summary>
    public const string OriginalTimestamp = "retry-original-timestamp";

    /// <summary>The consumer group that parked the record.</summary>
    public const string ConsumerGroup = "retry-group";

    /// <summary>
    /// The record's tier: from 1 for a record that failed (it is tried again once <see cref="Due"/> has come), 0 for a record
    /// parked only because an earlier record of its key is (it is handled, in order, once the records before it are done).
    /// </summary>
    public const string Tier = "retry-tier";

    /// <summary>When the record is tried again, in milliseconds since the Unix epoch; absent for a record of tier 0.</summary>
    public const string Due = "retry-due";

    /// <summary>When the record was first parked, in milliseconds since the Unix epoch: the age of a parked record counts from it.</summary>
    public const string ParkedAt = "retry-parked-at";

    /// <summary>How many times the handler was called for the record so far, over every tier.</summary>
    public const string Attempts = "retry-attempts";

    /// <summary>
    /// One header per failed tier, oldest first: <c>tier=N; at=ISO-8601 UTC; attempts=K; exception=Type: message</c>
    /// (tier 0 for the attempts at the original record, before it was parked).
    /// </summary>
    public const string History = "retry-history";

    /// <summary>The W3C trace context of the span that parked the record; each retry attempt's span links to it.</summary>
    public const string ParkedBy = "retry-parked-by";

    /// <summary>
    /// On a marker written once a parked record is done (handled or dead-lettered), with the original topic, partition,
    /// offset, group and tier and no value: a consumer that reads the retry topic again does not run that record again.
    /// </summary>
    public const string Done = "retry-done";

    /// <summary>
    /// On a command record written by the operations tool (<c>kafka-reliable retry release</c>) instead of a parked record:
    /// <c>release</c> (dead-letter the key's failed record now, and handle the records behind it) or <c>retry-now</c> (try
    /// the key's failed record now, without waiting for its delay). The command's key is the parked key.
    /// </summary>
    public const string Command = "retry-command";
}
