using Kafka.Reliable;

namespace OpenTelemetry.Trace;

/// <summary>Adds Kafka.Reliable's spans to an OpenTelemetry tracer provider.</summary>
public static class KafkaReliableTracerProviderBuilderExtensions
{
    /// <summary>
    /// Collects the spans of every reliable consumer: a <c>process {topic}</c> span per record (continuing the producer's
    /// trace from the record's <c>traceparent</c> header) and a <c>send {dead-letter topic}</c> span per dead letter, with the
    /// attributes of OpenTelemetry's messaging semantic conventions. The same as
    /// <c>AddSource(KafkaReliableDiagnostics.ActivitySourceName)</c>; calling it twice is harmless.
    /// </summary>
    /// <param name="builder">The tracer provider builder.</param>
    /// <returns>The builder, to chain further calls.</returns>
    public static TracerProviderBuilder AddKafkaReliableInstrumentation(this TracerProviderBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddSource(KafkaReliableDiagnostics.ActivitySourceName);
    }
}
