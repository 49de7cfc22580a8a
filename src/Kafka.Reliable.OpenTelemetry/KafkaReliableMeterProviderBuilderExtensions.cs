using Kafka.Reliable;

namespace OpenTelemetry.Metrics;

/// <summary>Adds Kafka.Reliable's metrics to an OpenTelemetry meter provider.</summary>
public static class KafkaReliableMeterProviderBuilderExtensions
{
    /// <summary>
    /// Collects the instruments of every reliable consumer: those of OpenTelemetry's messaging semantic conventions
    /// (<c>messaging.process.duration</c>, <c>messaging.client.consumed.messages</c>, <c>messaging.client.operation.duration</c>)
    /// and the library's own <c>kafka.reliable.*</c> ones (lag, buffered records, dead letters, rebalances, commits...). Its
    /// histograms advise their bucket boundaries in seconds, which the SDK applies. The same as
    /// <c>AddMeter(KafkaReliableDiagnostics.MeterName)</c>; calling it twice is harmless.
    /// </summary>
    /// <param name="builder">The meter provider builder.</param>
    /// <returns>The builder, to chain further calls.</returns>
    public static MeterProviderBuilder AddKafkaReliableInstrumentation(this MeterProviderBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddMeter(KafkaReliableDiagnostics.MeterName);
    }
}
