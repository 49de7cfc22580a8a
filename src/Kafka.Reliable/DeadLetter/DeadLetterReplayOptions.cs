namespace Kafka.Reliable.DeadLetter;

/// <summary>
/// What <see cref="DeadLetterReplayer"/> replays: which dead-letter topic, which of its records, where to, and how fast.
/// </summary>
public sealed class DeadLetterReplayOptions
{
    /// <summary>Gets or sets the Kafka brokers, as <c>host:port</c> pairs separated by commas.</summary>
    /// <value>The default value is empty: a value is required.</value>
    public string BootstrapServers { get; set; } = string.Empty;

    /// <summary>Gets or sets the dead-letter topic to read, for example <c>orders.dlq</c>.</summary>
    /// <value>The default value is empty: a value is required.</value>
    public string DeadLetterTopic { get; set; } = string.Empty;

    /// <summary>
    /// Gets or sets the consumer group the replay commits its progress with, so that a replay that stopped resumes where it
    /// stopped. Run the same replay again with the same group to resume it.
    /// </summary>
    /// <value>
    /// The default value is <see langword="null"/>: <c>kafka-reliable-replay.&lt;dead-letter topic&gt;.&lt;hash&gt;</c>, where the
    /// hash covers the filters and the target, so that the same request resumes and a different one starts from the beginning.
    /// </value>
    public string? GroupId { get; set; }

    /// <summary>Gets or sets the topic to republish to.</summary>
    /// <value>The default value is <see langword="null"/>: each record goes back to the topic in its <see cref="DeadLetterHeaders.OriginalTopic"/> header.</value>
    public string? TargetTopic { get; set; }

    /// <summary>Gets or sets a filter: only records that came from this topic are replayed.</summary>
    public string? OriginalTopic { get; set; }

    /// <summary>Gets or sets a filter: only records that failed with this exception type (its full name, for example <c>System.TimeoutException</c>) are replayed.</summary>
    public string? ExceptionType { get; set; }

    /// <summary>Gets or sets a filter: only records with this key (compared as UTF-8 text) are replayed.</summary>
    public string? Key { get; set; }

    /// <summary>Gets or sets a filter: only records dead-lettered at or after this time (the dead-letter record's timestamp) are replayed.</summary>
    public DateTimeOffset? From { get; set; }

    /// <summary>Gets or sets a filter: only records dead-lettered before this time are replayed.</summary>
    public DateTimeOffset? To { get; set; }

    /// <summary>Gets or sets the highest number of records republished per second, so that a replay cannot flood the consumers of the target topic.</summary>
    /// <value>The default value is 100. Allowed: 1 to 1,000,000.</value>
    public int MaxRecordsPerSecond { get; set; } = 100;

    /// <summary>Gets or sets the most records this run republishes before it commits its progress and stops; the next run resumes after them.</summary>
    /// <value>The default value is <see langword="null"/>: no limit.</value>
    public long? MaxRecords { get; set; }

    /// <summary>Gets further librdkafka settings applied to the replay's consumer and producer (for example <c>security.protocol</c>, <c>sasl.*</c>).</summary>
    public IDictionary<string, string> KafkaSettings { get; } = new Dictionary<string, string>(StringComparer.Ordinal);
}

/// <summary>How far a dead-letter replay got.</summary>
/// <param name="Replayed">How many records were republished and acknowledged in this run.</param>
/// <param name="Skipped">How many records the filters left out in this run.</param>
/// <param name="Pending">How many records the dead-letter topic held after the committed progress when the run started, up to the end offsets taken then.</param>
/// <param name="Completed"><see langword="true"/> when every pending record was read; <see langword="false"/> when <see cref="DeadLetterReplayOptions.MaxRecords"/> or cancellation stopped the run first.</param>
public sealed record DeadLetterReplayProgress(long Replayed, long Skipped, long Pending, bool Completed);
