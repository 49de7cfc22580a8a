namespace Kafka.Reliable.DeadLetter;

internal static class DeadLetterConstants
{
    public const string DefaultTopic = "{topic}.dlq";
    public const string TopicPlaceholder = "{topic}";

    /// <summary>How long one dead-letter write may take before it counts as failed and is tried again.</summary>
    public const int DeliveryTimeoutMs = 30_000;

    /// <summary>The longest exception message written to a header.</summary>
    public const int MaxMessageLength = 4096;

    /// <summary>
    /// Room the dead-letter producer's <c>message.max.bytes</c> leaves above <c>MaxPayloadBytes</c>: the key (written twice,
    /// as key and as header), the record's own headers, the provenance headers (exception message and stack trace up to
    /// <see cref="MaxMessageLength"/> characters each, up to 4 UTF-8 bytes per character) and the record's framing.
    /// </summary>
    public const int RecordRoomBytes = 64 * 1024;

    /// <summary>The largest bounded copy: librdkafka's default <c>message.max.bytes</c>, which fits under Kafka's default topic limit (<c>max.message.bytes</c> = 1,048,588).</summary>
    public const int MaxBoundedCopyBytes = 1_000_000;

    /// <summary>
    /// What a bounded copy leaves for the framing of the record and its batch, beyond the key, value and headers: librdkafka
    /// counts at most 36 bytes per record, a record batch header is 61 bytes.
    /// </summary>
    public const int FramingBytes = 512;

    /// <summary>The smallest <c>message.max.bytes</c> librdkafka accepts.</summary>
    public const int MinMessageMaxBytes = 1000;

    /// <summary>The largest <c>message.max.bytes</c> librdkafka accepts.</summary>
    public const int MaxMessageMaxBytes = 1_000_000_000;

    /// <summary>The consumer's librdkafka settings that bound the records it can receive; the dead-letter producer takes records of that size too.</summary>
    public static readonly string[] ConsumerSizeSettings = ["fetch.max.bytes", "max.partition.fetch.bytes", "message.max.bytes"];

    /// <summary>librdkafka producer settings the library owns for the dead-letter producer, with what to do instead.</summary>
    public static readonly IReadOnlyDictionary<string, string> ManagedProducerSettings = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["bootstrap.servers"] = "the dead-letter producer uses the consumer's BootstrapServers",
        ["metadata.broker.list"] = "the dead-letter producer uses the consumer's BootstrapServers",
        ["transactional.id"] = "the dead-letter producer is idempotent, not transactional",
    };
}
