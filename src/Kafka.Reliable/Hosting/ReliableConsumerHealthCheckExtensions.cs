using Kafka.Reliable;
using Kafka.Reliable.Hosting;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds reliable consumers to the host's health checks.</summary>
public static class ReliableConsumerHealthCheckExtensions
{
    /// <summary>
    /// Adds the health check of the reliable consumer named <paramref name="consumerName"/> (the name given to
    /// <c>AddReliableConsumer</c>, or the configuration section's key): unhealthy when it stopped, cannot write its dead-letter
    /// topic or is stuck; degraded when it lags, a record waits too long, or its circuit is open.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="consumerName">The consumer's name.</param>
    /// <param name="configure">Changes the thresholds.</param>
    /// <param name="tags">Tags of the check, for filtering health endpoints (for example "ready").</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddReliableConsumer(
        this IHealthChecksBuilder builder, string consumerName, Action<ReliableConsumerHealthOptions>? configure = null, IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(consumerName);
        var options = new ReliableConsumerHealthOptions();
        configure?.Invoke(options);
        return builder.Add(new HealthCheckRegistration(
            "kafka-reliable:" + consumerName,
            sp => new ReliableConsumerHealthCheck(sp.GetRequiredService<ConsumerRegistry>(), consumerName, options, sp.GetService<TimeProvider>() ?? TimeProvider.System),
            failureStatus: HealthStatus.Unhealthy,
            tags));
    }
}
