namespace Kafka.Reliable.Diagnostics;

/// <summary>
/// The OpenTelemetry messaging semantic conventions' names and values the library's spans and instruments use (the
/// conventions for messaging, and their Kafka page); the library's own attributes start with <c>kafka.reliable.</c>.
/// </summary>
internal static class SemanticConventions
{
    public const string MessagingSystem = "messaging.system";
    public const string MessagingSystemKafka = "kafka";
    public const string OperationName = "messaging.operation.name";
    public const string OperationType = "messaging.operation.type";
    public const string DestinationName = KafkaReliableDiagnostics.TopicTag;
    public const string PartitionId = KafkaReliableDiagnostics.PartitionTag;
    public const string ConsumerGroupName = KafkaReliableDiagnostics.ConsumerGroupTag;
    public const string ClientId = "messaging.client.id";
    public const string ServerAddress = "server.address";
    public const string ServerPort = "server.port";
    public const string ErrorType = "error.type";
    public const string KafkaOffset = "messaging.kafka.offset";
    public const string MessagingBatchMessageCount = "messaging.batch.message_count";
    public const string KafkaMessageKey = "messaging.kafka.message.key";
    public const string KafkaTombstone = "messaging.kafka.message.tombstone";

    /// <summary>Processing a record pushed to the application (its handler): the name and the type of the operation.</summary>
    public const string Process = "process";

    /// <summary>Sending a record (the dead-letter write): the name and the type of the operation.</summary>
    public const string Send = "send";

    /// <summary>Committing offsets: Kafka's name for the operation, of the type <see cref="Settle"/>.</summary>
    public const string Commit = "commit";

    public const string Settle = "settle";

    public const string ProcessDuration = "messaging.process.duration";
    public const string ConsumedMessages = "messaging.client.consumed.messages";
    public const string ClientOperationDuration = "messaging.client.operation.duration";

    /// <summary>
    /// The bucket boundaries the conventions advise for their duration histograms, in seconds: without them a histogram in
    /// seconds gets the SDK's default boundaries (made for milliseconds), and every measurement lands in the first bucket.
    /// </summary>
    public static readonly IReadOnlyList<double> DurationBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

    /// <summary>Bucket boundaries for batch sizes.</summary>
    public static readonly IReadOnlyList<int> BatchSizeBuckets = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
}
