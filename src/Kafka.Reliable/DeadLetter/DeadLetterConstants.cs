namespace Kafka.Reliable;

internal static class DeadLetterConstants
{
    public const string DefaultTopic = "{topic}.dlq";
    public const string TopicPlaceholder = "{topic}";

    /// <summary>How long one dead-letter write may take before it counts as failed and is tried again.</summary>
    public const int DeliveryTimeoutMs = 30_000;

    /// <summary>The longest exception message written to a header.</summary>
    public const int MaxMessageLength = 4096;
}
