namespace Kafka.Reliable.DeadLetter;

/// <summary>
/// Where records go that can never be processed: a payload that cannot be deserialized, a message the translator rejects,
/// a handler failure that is fatal or that outlived its retries.
/// The dead-letter record keeps the original key and value bytes unchanged and carries its provenance in headers
/// (<see cref="DeadLetterHeaders"/>). A record counts as done only once the dead-letter topic acknowledged it.
/// A record too large for the dead-letter topic is written as a bounded copy instead: its value cut, and the original
/// length in <see cref="DeadLetterHeaders.ValueTruncated"/>; the whole record stays at its offset in the source topic.
/// </summary>
public sealed class DeadLetterOptions
{
    /// <summary>
    /// Gets or sets a value indicating whether rejected records are dead-lettered. When turned off, such a record is retried
    /// in place like a handler failure, which holds back its partition until someone intervenes: nothing is ever skipped.
    /// </summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool Enabled { get; set; } = true;

    /// <summary>Gets or sets the dead-letter topic; <c>{topic}</c> stands for the record's original topic.</summary>
    /// <value>The default value is <c>{topic}.dlq</c>.</value>
    public string Topic { get; set; } = DeadLetterConstants.DefaultTopic;

    /// <summary>Gets or sets a value indicating whether the exception's stack trace is added as a header.</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool IncludeStackTrace { get; set; }

    /// <summary>
    /// Gets further librdkafka producer settings for the dead-letter producer (for example <c>message.max.bytes</c>,
    /// <c>compression.type</c>, <c>enable.idempotence</c>), applied last, over the library's own. Without them the producer is
    /// idempotent with <c>acks=all</c>, reaches the cluster with the consumer's <c>security.*</c>, <c>sasl.*</c>, <c>ssl.*</c>
    /// and <c>socket.*</c> settings, and takes records as large as the consumer receives: its <c>message.max.bytes</c> is the
    /// larger of <see cref="ReliableConsumerOptions.MaxPayloadBytes"/> plus 64 KiB (for the key and the headers) and the
    /// consumer's <c>fetch.max.bytes</c>, <c>max.partition.fetch.bytes</c> and <c>message.max.bytes</c> where
    /// <see cref="ReliableConsumerOptions.KafkaSettings"/> sets them, within 1000 to 1,000,000,000. Set <c>message.max.bytes</c>
    /// here to the dead-letter topic's <c>max.message.bytes</c> when that is lower: larger records are then written as bounded
    /// copies without a round trip to the broker. <c>bootstrap.servers</c> and <c>transactional.id</c> are rejected, and
    /// <c>acks</c> must stay <c>all</c>; the settings are checked by librdkafka when the host starts.
    /// </summary>
    /// <value>The default value is empty: the settings derived from the consumer's, as described above.</value>
    public IDictionary<string, string> ProducerSettings { get; } = new Dictionary<string, string>(StringComparer.Ordinal);
}

/// <summary>The headers a dead-letter record carries, in addition to the original record's own headers. Values are UTF-8 text.</summary>
public static class DeadLetterHeaders
{
    /// <summary>The topic the record was consumed from.</summary>
    public const string OriginalTopic = "dlq-original-topic";

    /// <summary>The partition the record was consumed from.</summary>
    public const string OriginalPartition = "dlq-original-partition";

    /// <summary>The record's offset in its partition.</summary>
    public const string OriginalOffset = "dlq-original-offset";

    /// <summary>The record's timestamp, in milliseconds since the Unix epoch.</summary>
    public const string OriginalTimestamp = "dlq-original-timestamp";

    /// <summary>The record's key bytes, unchanged (also the dead-letter record's own key); absent when the record had no key.</summary>
    public const string OriginalKey = "dlq-original-key";

    /// <summary>The consumer group that gave up on the record.</summary>
    public const string ConsumerGroup = "dlq-consumer-group";

    /// <summary>The pipeline stage that failed: <c>deserialize</c>, <c>translate</c> or <c>handle</c>.</summary>
    public const string FailureStage = "dlq-failure-stage";

    /// <summary>The full name of the exception's type.</summary>
    public const string ExceptionType = "dlq-exception-type";

    /// <summary>The exception's message.</summary>
    public const string ExceptionMessage = "dlq-exception-message";

    /// <summary>The exception's stack trace, when <see cref="DeadLetterOptions.IncludeStackTrace"/> is set.</summary>
    public const string ExceptionStackTrace = "dlq-exception-stacktrace";

    /// <summary>How many attempts were made.</summary>
    public const string Attempts = "dlq-attempts";

    /// <summary>When the first attempt failed (ISO 8601, UTC).</summary>
    public const string FirstFailure = "dlq-first-failure";

    /// <summary>When the last attempt failed (ISO 8601, UTC).</summary>
    public const string LastFailure = "dlq-last-failure";

    /// <summary>
    /// Present only on a record of a batch handler's batch that failed: the number of records in the batch it first failed
    /// in. The consumer then isolated the failure by handling smaller batches, and this record failed alone.
    /// </summary>
    public const string FailedInBatch = "dlq-failed-in-batch";

    /// <summary>
    /// The header naming the schema id a payload was framed with, when it failed to deserialize against it (an unknown id, or
    /// bytes that do not match the schema); written by the Schema Registry deserializers (<see cref="IDeadLetterHeaderSource"/>).
    /// </summary>
    public const string SchemaId = "dlq-schema-id";

    /// <summary>
    /// Present only on a bounded copy: the length in bytes of the original value, of which the dead-letter record holds the
    /// first bytes. Written when the dead-letter topic (or the dead-letter producer's <c>message.max.bytes</c>) refused the
    /// whole record as too large; read the whole record from the source topic at the original coordinates.
    /// </summary>
    public const string ValueTruncated = "dlq-value-truncated";

    /// <summary>
    /// On a record replayed from a dead-letter topic (not on the dead-letter record itself): how many times it was replayed.
    /// The replay removes every other <c>dlq-</c> header and keeps the record's own headers.
    /// </summary>
    public const string ReplayCount = "dlq-replay-count";

    /// <summary>The prefix of every header this library adds to a dead-letter record.</summary>
    public const string Prefix = "dlq-";
}
