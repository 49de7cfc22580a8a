namespace Kafka.Reliable.Testing;

/// <summary>Settings of an <see cref="EmbeddedKafkaCluster"/>.</summary>
public sealed class EmbeddedKafkaClusterOptions
{
    /// <summary>The most brokers one embedded cluster can have.</summary>
    public const int MaxBrokerCount = 16;

    /// <summary>Gets or sets the number of brokers, numbered 1 to <see cref="BrokerCount"/>.</summary>
    /// <value>The default value is 1. Allowed: 1 to 16.</value>
    public int BrokerCount { get; set; } = 1;

    /// <summary>Gets or sets how long a new consumer group waits for more members before its first rebalance.</summary>
    /// <value>The default value is zero, so that tests do not wait: real brokers default to 3 seconds.</value>
    public TimeSpan InitialRebalanceDelay { get; set; } = TimeSpan.Zero;
}

/// <summary>Kafka protocol request kinds, for <see cref="EmbeddedKafkaCluster.PushRequestErrors"/> and <see cref="KafkaBrokerRequest"/>.</summary>
public enum KafkaApiKey : short
{
    /// <summary>Produce.</summary>
    Produce = 0,

    /// <summary>Fetch.</summary>
    Fetch = 1,

    /// <summary>ListOffsets.</summary>
    ListOffsets = 2,

    /// <summary>Metadata.</summary>
    Metadata = 3,

    /// <summary>OffsetCommit.</summary>
    OffsetCommit = 8,

    /// <summary>OffsetFetch.</summary>
    OffsetFetch = 9,

    /// <summary>FindCoordinator.</summary>
    FindCoordinator = 10,

    /// <summary>JoinGroup.</summary>
    JoinGroup = 11,

    /// <summary>Heartbeat.</summary>
    Heartbeat = 12,

    /// <summary>LeaveGroup.</summary>
    LeaveGroup = 13,

    /// <summary>SyncGroup.</summary>
    SyncGroup = 14,

    /// <summary>DescribeGroups.</summary>
    DescribeGroups = 15,

    /// <summary>ListGroups.</summary>
    ListGroups = 16,

    /// <summary>ApiVersions.</summary>
    ApiVersions = 18,

    /// <summary>CreateTopics.</summary>
    CreateTopics = 19,

    /// <summary>InitProducerId.</summary>
    InitProducerId = 22,

    /// <summary>AddPartitionsToTxn.</summary>
    AddPartitionsToTxn = 24,

    /// <summary>AddOffsetsToTxn.</summary>
    AddOffsetsToTxn = 25,

    /// <summary>EndTxn.</summary>
    EndTxn = 26,

    /// <summary>TxnOffsetCommit.</summary>
    TxnOffsetCommit = 28,

    /// <summary>ConsumerGroupHeartbeat: the consumer group protocol's (KIP-848) only group request.</summary>
    ConsumerGroupHeartbeat = 68,
}

/// <summary>The kinds of coordinator a broker can be for a key.</summary>
public enum KafkaCoordinatorType
{
    /// <summary>The group coordinator of a consumer group.</summary>
    Group,

    /// <summary>The transaction coordinator of a transactional id.</summary>
    Transaction,
}

/// <summary>A request an embedded broker received, recorded by <see cref="EmbeddedKafkaCluster.StartRequestTracking"/>.</summary>
/// <param name="BrokerId">The broker that received it, 1 to <see cref="EmbeddedKafkaCluster.BrokerCount"/>.</param>
/// <param name="ApiKey">The kind of request (a value outside <see cref="KafkaApiKey"/>'s names is another Kafka API key).</param>
/// <param name="TimestampMicroseconds">
/// When it was received, in microseconds of librdkafka's monotonic clock: compare it with other requests' timestamps only.
/// </param>
public readonly record struct KafkaBrokerRequest(int BrokerId, KafkaApiKey ApiKey, long TimestampMicroseconds);
