namespace Kafka.Reliable;

/// <summary>Names to subscribe to the library's telemetry with.</summary>
public static class KafkaReliableDiagnostics
{
    /// <summary>
    /// The name of the library's <see cref="System.Diagnostics.Metrics.Meter"/>, made by the host's
    /// <see cref="System.Diagnostics.Metrics.IMeterFactory"/>: add it to your metrics exporter (<c>AddMeter("Kafka.Reliable")</c>, or
    /// <c>AddKafkaReliableInstrumentation()</c> from the Kafka.Reliable.OpenTelemetry package).
    /// </summary>
    public const string MeterName = "Kafka.Reliable";

    /// <summary>The tag that carries the consumer's name.</summary>
    public const string ConsumerTag = "kafka.reliable.consumer";

    /// <summary>The tag that carries the consumer group (OpenTelemetry's messaging convention).</summary>
    public const string ConsumerGroupTag = "messaging.consumer.group.name";

    /// <summary>The tag that carries the topic (OpenTelemetry's messaging convention).</summary>
    public const string TopicTag = "messaging.destination.name";

    /// <summary>The tag that carries the partition (OpenTelemetry's messaging convention).</summary>
    public const string PartitionTag = "messaging.destination.partition.id";

    /// <summary>
    /// The name of the library's <see cref="System.Diagnostics.ActivitySource"/>: add it to your tracer (<c>AddSource("Kafka.Reliable")</c>,
    /// or <c>AddKafkaReliableInstrumentation()</c> from the Kafka.Reliable.OpenTelemetry package).
    /// </summary>
    public const string ActivitySourceName = "Kafka.Reliable";
}
