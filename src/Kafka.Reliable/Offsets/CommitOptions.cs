namespace Kafka.Reliable;

/// <summary>How and when a consumer commits offsets. Every strategy commits only watermarks: the lowest offset of a partition not yet done.</summary>
public sealed class CommitOptions
{
    /// <summary>Gets or sets the commit strategy.</summary>
    /// <value>The default value is <see cref="CommitStrategy.Periodic"/>.</value>
    public CommitStrategy Strategy { get; set; } = CommitStrategy.Periodic;

    /// <summary>Gets or sets, for <see cref="CommitStrategy.Periodic"/>, the longest time between commits while records complete.</summary>
    /// <value>The default value is 5 seconds. Allowed: 1 millisecond to 1 hour.</value>
    public TimeSpan Interval { get; set; } = ReliableConsumerConstants.DefaultCommitInterval;

    /// <summary>Gets or sets, for <see cref="CommitStrategy.Periodic"/>, a number of completed records after which a commit is made before the interval ends; 0 turns the count off.</summary>
    /// <value>The default value is 0 (commit on the interval only).</value>
    public int Count { get; set; }

    /// <summary>
    /// Gets or sets how long the group may keep refusing this member's commits as those of a member it does not know
    /// (unknown member, stale generation or member epoch) before the consumer replaces its Kafka client and joins the group
    /// again. The client normally learns at its next heartbeat that it is out of the group, and rejoins by itself; one that
    /// does not (its coordinator moved while the broker it asked was unreachable) would otherwise go on consuming without
    /// committing anything, for ever.
    /// </summary>
    /// <value>The default value is 30 seconds. Allowed: 1 second to 1 hour.</value>
    public TimeSpan RejoinWhenRefusedFor { get; set; } = ReliableConsumerConstants.DefaultRejoinWhenRefusedFor;

    /// <summary>
    /// Gets or sets, for <see cref="CommitStrategy.Transactional"/>, the prefix of the producers' <c>transactional.id</c>:
    /// each assigned partition gets <c>&lt;prefix&gt;-&lt;topic&gt;-&lt;partition&gt;</c>, so that its next owner fences the previous one.
    /// </summary>
    /// <value>The default value is <see langword="null"/>: the consumer group.</value>
    public string? TransactionalIdPrefix { get; set; }
}

/// <summary>When offsets are committed.</summary>
public enum CommitStrategy
{
    /// <summary>
    /// Commits periodically (every <see cref="CommitOptions.Interval"/>, or after <see cref="CommitOptions.Count"/> completed records),
    /// and synchronously when partitions are revoked and when the consumer stops. The best throughput; after a crash, at most one
    /// interval of records is delivered again.
    /// </summary>
    Periodic,

    /// <summary>Commits synchronously as soon as a record's completion moves its partition's watermark. The fewest redeliveries after a crash, at the cost of one commit request per record.</summary>
    PerMessage,

    /// <summary>
    /// A record the handler handled is done only once the handler acknowledges it, through
    /// <see cref="MessageContext.Acknowledge"/> during the call or the handle from <see cref="MessageContext.DeferAcknowledgement"/>
    /// later (for example when a batch it belongs to is flushed). An unacknowledged record holds back its partition's
    /// watermark. Records that never reach the handler (dead-lettered, skipped) are done by themselves. Watermarks are
    /// committed on the <see cref="CommitOptions.Interval"/> and <see cref="CommitOptions.Count"/> of <see cref="Periodic"/>.
    /// </summary>
    Manual,

    /// <summary>
    /// Consume-transform-produce with Kafka transactions: each record is handled in a transaction of its partition's
    /// producer; what the handler produces through <c>context.GetKafkaTransaction().Produce(...)</c> and the record's offset
    /// commit together, or not at all. Requires <see cref="DispatchMode.Sequential"/> and a broker with transactions (Kafka
    /// 2.5 or later); the consumer reads with <c>isolation.level=read_committed</c> unless told otherwise.
    /// </summary>
    Transactional,
}
