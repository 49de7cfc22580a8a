using Kafka.Reliable.DeadLetter;

namespace Kafka.Reliable;

/// <summary>
/// Settings of one reliable consumer. Bind them from configuration (<c>AddReliableConsumer&lt;T&gt;(configuration.GetSection("Kafka:Orders"))</c>)
/// or set them in code; they are validated when the host starts, and a bad value stops the start with a message naming it.
/// </summary>
public sealed class ReliableConsumerOptions
{
    /// <summary>Gets or sets the Kafka brokers to bootstrap from, as <c>host:port</c> pairs separated by commas.</summary>
    /// <value>The default value is empty: a value is required.</value>
    public string BootstrapServers { get; set; } = string.Empty;

    /// <summary>Gets or sets the consumer group. Consumers with the same group share the topics' partitions.</summary>
    /// <value>The default value is empty: a value is required.</value>
    public string GroupId { get; set; } = string.Empty;

    /// <summary>
    /// Gets or sets the consumer group protocol: <see cref="GroupProtocol.Classic"/> (join, sync and heartbeat; the client
    /// assigns partitions, cooperative-sticky by default) or <see cref="GroupProtocol.Consumer"/> (KIP-848, Kafka 4.0+: the
    /// broker assigns partitions incrementally and a rebalance never stops the group). See docs/concurrency.md, "Group protocols".
    /// </summary>
    /// <value>The default value is <see cref="GroupProtocol.Classic"/>, which every broker speaks.</value>
    public GroupProtocol GroupProtocol { get; set; } = GroupProtocol.Classic;

    /// <summary>
    /// Gets or sets the member's static identity in its group (<c>group.instance.id</c>, static membership), unique among
    /// the group's members: a member that restarts within the session timeout gets its partitions back without a rebalance.
    /// Two members with one id fence each other: under the classic protocol the newer one fences the older one, under the
    /// consumer protocol the newer one is refused while the older one holds the id; the fenced member stops with a fatal
    /// error that names the id, and its health check is unhealthy.
    /// </summary>
    /// <value>The default value is null: dynamic membership.</value>
    public string? GroupInstanceId { get; set; }

    /// <summary>Gets the topics to consume.</summary>
    /// <value>The default value is an empty list: at least one topic is required.</value>
    public IList<string> Topics { get; } = [];

    /// <summary>Gets or sets where a partition is read from when the group has no committed offset for it.</summary>
    /// <value>The default value is <see cref="StartPosition.Earliest"/>, so that a new group misses nothing.</value>
    public StartPosition StartPosition { get; set; } = StartPosition.Earliest;

    /// <summary>Gets the commit settings.</summary>
    public CommitOptions Commit { get; } = new();

    /// <summary>Gets the dead-letter settings: where records go that can never be processed.</summary>
    public DeadLetterOptions DeadLetter { get; } = new();

    /// <summary>Gets the settings of in-place retries of failed records.</summary>
    public RetryOptions Retry { get; } = new();

    /// <summary>Gets the settings of retry tiers: transient failures retried from a retry topic, keeping each key's order (off by default).</summary>
    public RetryTierOptions RetryTiers { get; } = new();

    /// <summary>Gets the idempotency settings, used when the consumer has an idempotency store.</summary>
    public IdempotencyOptions Idempotency { get; } = new();

    /// <summary>Gets how batches are formed for a batch handler (<c>WithBatchHandler&lt;THandler&gt;()</c>); unused with a message handler.</summary>
    public BatchOptions Batch { get; } = new();

    /// <summary>Gets the settings of the circuit breaker over the handler (off by default).</summary>
    public CircuitBreakerOptions CircuitBreaker { get; } = new();

    /// <summary>Gets the settings of the stuck-consumer watchdog, which can restart the consumer (off by default).</summary>
    public WatchdogOptions Watchdog { get; } = new();

    /// <summary>Gets or sets what happens to a record with a null value (a tombstone, the delete marker of compacted topics).</summary>
    /// <value>The default value is <see cref="TombstonePolicy.DeadLetter"/>: a null value is unexpected in an event topic, so it is surfaced, not dropped.</value>
    public TombstonePolicy Tombstones { get; set; } = TombstonePolicy.DeadLetter;

    /// <summary>
    /// Gets or sets the largest record value the consumer deserializes. A larger one is dead-lettered at once (stage
    /// <c>deserialize</c>) with a message giving its size, so that a huge payload cannot exhaust memory in the deserializer.
    /// </summary>
    /// <value>The default value is 1 MiB (1,048,576 bytes), Kafka's default record size limit. Allowed: 1 byte to 2 GiB.</value>
    public int MaxPayloadBytes { get; set; } = ReliableConsumerConstants.DefaultMaxPayloadBytes;

    /// <summary>Gets or sets how the records of a partition are dispatched to the handler.</summary>
    /// <value>The default value is <see cref="DispatchMode.Sequential"/>: one record at a time per partition, in offset order.</value>
    public DispatchMode Dispatch { get; set; } = DispatchMode.Sequential;

    /// <summary>
    /// Gets or sets the most records the consumer handles at once over all its partitions, with <see cref="DispatchMode.ByKey"/>
    /// and <see cref="DispatchMode.Unordered"/>. (Sequential dispatch handles one record per assigned partition.)
    /// </summary>
    /// <value>The default value is 100. Allowed: 1 to 100,000.</value>
    public int MaxInFlight { get; set; } = ReliableConsumerConstants.DefaultMaxInFlight;

    /// <summary>
    /// Gets or sets how many records of one partition may be buffered ahead of its handler. A partition that reaches it (or
    /// its share of <see cref="MaxBufferedBytes"/>) is paused: it stops fetching, the consumer keeps polling the others; it
    /// is resumed when half of it is drained. Most workloads are bounded by bytes first; this bounds records of tiny payloads.
    /// </summary>
    /// <value>The default value is 100,000. Allowed: 1 to 1,000,000.</value>
    public int PartitionBufferSize { get; set; } = ReliableConsumerConstants.DefaultPartitionBufferSize;

    /// <summary>
    /// Gets or sets the most bytes of records one consumer holds ahead of its handlers, over all its partitions. Each assigned
    /// partition gets an equal share; a partition whose buffered records (keys, values and headers, plus 128 bytes each for
    /// their objects) reach its share is paused and resumed when half of it is drained. Shares larger than a fetch
    /// (librdkafka's <c>max.partition.fetch.bytes</c>, 1 MiB) mean a partition is paused only when its handler is really
    /// behind, never because one fetch arrived at once: a pause throws away what librdkafka had prefetched for the partition.
    /// librdkafka's own prefetch queue (<c>queued.max.messages.kbytes</c>) comes on top of this budget.
    /// </summary>
    /// <value>The default value is 64 MiB (67,108,864). Allowed: 1 MiB to 64 GiB.</value>
    public long MaxBufferedBytes { get; set; } = ReliableConsumerConstants.DefaultMaxBufferedBytes;

    /// <summary>
    /// Gets or sets how long a stopping consumer waits for records being handled to finish before it cancels them,
    /// commits what is done, and leaves the group.
    /// </summary>
    /// <value>The default value is 30 seconds.</value>
    public TimeSpan ShutdownTimeout { get; set; } = ReliableConsumerConstants.DefaultShutdownTimeout;

    /// <summary>
    /// Gets or sets how long a rebalance waits for the records being handled on revoked partitions to finish before it
    /// cancels them and releases the partitions. Their offsets are committed up to what is done.
    /// </summary>
    /// <value>The default value is 30 seconds.</value>
    public TimeSpan RevokeTimeout { get; set; } = ReliableConsumerConstants.DefaultRevokeTimeout;

    /// <summary>Gets or sets the longest time one poll waits for records; it bounds how quickly completions are committed when the topic is idle.</summary>
    /// <value>The default value is 100 milliseconds.</value>
    public TimeSpan PollTimeout { get; set; } = ReliableConsumerConstants.DefaultPollTimeout;

    /// <summary>
    /// Gets any further librdkafka consumer settings (for example <c>session.timeout.ms</c>, <c>max.poll.interval.ms</c>,
    /// <c>security.protocol</c>, <c>sasl.*</c>, <c>partition.assignment.strategy</c>), passed through unchanged.
    /// The settings this library manages (<c>bootstrap.servers</c>, <c>group.id</c>, <c>enable.auto.commit</c>,
    /// <c>enable.auto.offset.store</c>, <c>auto.offset.reset</c>) are rejected here: use the typed properties.
    /// </summary>
    /// <value>The default value is empty; the assignment strategy defaults to <c>cooperative-sticky</c>.</value>
    public IDictionary<string, string> KafkaSettings { get; } = new Dictionary<string, string>(StringComparer.Ordinal);
}

/// <summary>The consumer group protocol a consumer speaks with the group coordinator.</summary>
public enum GroupProtocol
{
    /// <summary>The classic protocol (JoinGroup, SyncGroup, Heartbeat): the client assigns partitions; every broker speaks it.</summary>
    Classic,

    /// <summary>The consumer protocol of KIP-848 (ConsumerGroupHeartbeat, Kafka 4.0+): the broker assigns partitions incrementally.</summary>
    Consumer,
}

/// <summary>How the records of one partition are dispatched to the handler.</summary>
public enum DispatchMode
{
    /// <summary>One record at a time, in offset order; a failing record pauses its partition. Partitions run in parallel.</summary>
    Sequential,

    /// <summary>Records with the same key one at a time in offset order, different keys in parallel (up to <see cref="ReliableConsumerOptions.MaxInFlight"/>); a failing record holds back only its key.</summary>
    ByKey,

    /// <summary>Every record in parallel, in no particular order (up to <see cref="ReliableConsumerOptions.MaxInFlight"/>).</summary>
    Unordered,
}

/// <summary>What a consumer does with a record whose value is null (a tombstone).</summary>
public enum TombstonePolicy
{
    /// <summary>Dead-letter it (stage <c>deserialize</c>) with a message saying it is a tombstone.</summary>
    DeadLetter,

    /// <summary>Count it as done without calling the deserializer or the handler.</summary>
    Skip,

    /// <summary>Pass it on: the deserializer is called with <c>isNull: true</c> and decides (for compacted topics, where a tombstone means "deleted").</summary>
    Handle,
}

/// <summary>Where a consumer starts reading a partition for which its group has no committed offset.</summary>
public enum StartPosition
{
    /// <summary>From the oldest record still retained.</summary>
    Earliest,

    /// <summary>From the next record produced after the consumer joins.</summary>
    Latest,
}
