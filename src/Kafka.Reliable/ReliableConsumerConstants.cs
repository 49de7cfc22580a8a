namespace Kafka.Reliable;

internal static class ReliableConsumerConstants
{
    /// <summary>The most messages in one batch of a batch handler, by default.</summary>
    public const int DefaultBatchMaxSize = 500;

    /// <summary>The most bytes in one batch of a batch handler, by default (4 MiB).</summary>
    public const int DefaultBatchMaxBytes = 4 * 1024 * 1024;

    public const int MaxBatchMaxSize = 100_000;

    public const int MinBatchMaxBytes = 1024;

    public const int MaxBatchMaxBytes = 1024 * 1024 * 1024;

    public const int DefaultPartitionBufferSize = 100_000;

    /// <summary>The default byte budget of one consumer's buffers: 64 MiB.</summary>
    public const long DefaultMaxBufferedBytes = 64L * 1024 * 1024;

    /// <summary>The smallest byte budget: 1 MiB, librdkafka's default <c>max.partition.fetch.bytes</c>.</summary>
    public const long MinMaxBufferedBytes = 1024L * 1024;

    /// <summary>The largest byte budget: 64 GiB.</summary>
    public const long MaxMaxBufferedBytes = 64L * 1024 * 1024 * 1024;

    /// <summary>What one buffered record costs besides its key, value and headers (its objects and its slot), in bytes.</summary>
    public const int RecordOverheadBytes = 128;

    /// <summary>The most slots a partition's ring has (more records wait in order on the poll thread, within the same bounds).</summary>
    public const int MaxRingSlots = 8192;
    public const int DefaultMaxInFlight = 100;

    /// <summary>The librdkafka <c>fetch.queue.backoff.ms</c> the consumer uses unless <c>KafkaSettings</c> sets it (librdkafka's is 1000).</summary>
    public const string DefaultFetchQueueBackoffMs = "20";
    public const int MaxMaxInFlight = 100_000;
    public const int MaxPartitionBufferSize = 1_000_000;
    public static readonly TimeSpan DefaultShutdownTimeout = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan DefaultRevokeTimeout = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan DefaultPollTimeout = TimeSpan.FromMilliseconds(100);
    public static readonly TimeSpan DefaultCommitInterval = TimeSpan.FromSeconds(5);

    public static readonly TimeSpan DefaultRejoinWhenRefusedFor = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan DefaultRetryDelay = TimeSpan.FromMilliseconds(200);
    public static readonly TimeSpan DefaultRetryMaxDelay = TimeSpan.FromSeconds(30);
    public const int DefaultRetryMaxAttempts = 5;
    public const int MaxRetryAttempts = 1_000_000;
    public const double DefaultCircuitFailureRatio = 0.5;
    public const int DefaultCircuitMinimumThroughput = 10;
    public static readonly TimeSpan DefaultCircuitSamplingDuration = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan DefaultCircuitBreakDuration = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan MinCircuitDuration = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan MaxCircuitDuration = TimeSpan.FromDays(1);
    public const int DefaultMaxPayloadBytes = 1024 * 1024;
    public static readonly TimeSpan MaxDuration = TimeSpan.FromHours(1);
    /// <summary>How long a drain that timed out waits for the handlers it cancelled to end, before the commit that follows it.</summary>
    public static readonly TimeSpan AbortGrace = TimeSpan.FromSeconds(2);

    /// <summary>
    /// What a stop may take beyond its drain and a revoke served meanwhile (the cancelled handlers' grace, the final commit,
    /// leaving the group) before its client is abandoned (log 112): librdkafka normally needs well under a second for these.
    /// </summary>
    public static readonly TimeSpan StopAllowance = TimeSpan.FromSeconds(10);

    public static readonly TimeSpan DefaultStuckAfter = TimeSpan.FromMinutes(10);
    public static readonly TimeSpan MinStuckAfter = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan MaxStuckAfter = TimeSpan.FromDays(1);

    /// <summary>The longest time between two looks of the watchdog; it looks four times per <c>Watchdog:StuckAfter</c> otherwise.</summary>
    public static readonly TimeSpan MaxWatchdogInterval = TimeSpan.FromSeconds(30);

    /// <summary>How long the lookup of committed offsets on assignment may take, with an idempotency store that keeps offsets.</summary>
    public static readonly TimeSpan CommittedLookupTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How long a stopping consumer waits for the committed offsets to be recorded in the idempotency store.</summary>
    public static readonly TimeSpan CommitRecordTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How long a failed commit waits before it is tried again.</summary>
    public static readonly TimeSpan CommitRetryDelay = TimeSpan.FromMilliseconds(200);

    /// <summary>librdkafka settings owned by the library, with the typed option to use instead.</summary>
    public static readonly IReadOnlyDictionary<string, string> ManagedKafkaSettings = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["bootstrap.servers"] = nameof(ReliableConsumerOptions.BootstrapServers),
        ["metadata.broker.list"] = nameof(ReliableConsumerOptions.BootstrapServers),
        ["group.id"] = nameof(ReliableConsumerOptions.GroupId),
        ["enable.auto.commit"] = "Commit:Strategy",
        ["enable.auto.offset.store"] = "Commit:Strategy",
        ["auto.offset.reset"] = nameof(ReliableConsumerOptions.StartPosition),
        ["group.protocol"] = nameof(ReliableConsumerOptions.GroupProtocol),
        ["group.instance.id"] = nameof(ReliableConsumerOptions.GroupInstanceId),
    };

    /// <summary>
    /// The librdkafka settings of the classic group protocol that <see cref="GroupProtocol.Consumer"/> does not take (librdkafka
    /// refuses them), with what replaces each.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> ClassicOnlyKafkaSettings = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["partition.assignment.strategy"] = "the broker assigns partitions under the consumer protocol: choose its assignor with KafkaSettings:group.remote.assignor ('uniform' or 'range'), or leave it to the broker's default (uniform)",
        ["session.timeout.ms"] = "the session timeout is the broker's under the consumer protocol: set group.consumer.session.timeout.ms on the broker, or on the group (kafka-configs --entity-type groups)",
        ["heartbeat.interval.ms"] = "the heartbeat interval is the broker's under the consumer protocol: set group.consumer.heartbeat.interval.ms on the broker, or on the group",
        ["group.protocol.type"] = "the consumer protocol has no protocol type: remove it",
    };
}
