using Kafka.Reliable;
using Kafka.Reliable.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds reliable consumers to the host's health checks.</summary>
/// <remarks>
/// The health check itself needs only <c>Microsoft.Extensions.Diagnostics.HealthChecks.Abstractions</c>; these methods extend
/// <see cref="IHealthChecksBuilder"/>, which an application gets from <c>AddHealthChecks()</c> in
/// <c>Microsoft.Extensions.Diagnostics.HealthChecks</c> (or ASP.NET Core), so Kafka.Reliable does not bring that package itself.
/// </remarks>
public static class ReliableConsumerHealthCheckExtensions
{
    /// <summary>
    /// Adds the health check of the reliable consumer named <paramref name="consumerName"/> (the name given to
    /// <c>AddReliableConsumer</c>, or the configuration section's key): unhealthy when it stopped, cannot write its dead-letter
    /// topic or is stuck; degraded when it lags, a record waits too long, or its circuit is open.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="consumerName">The consumer's name.</param>
    /// <param name="configure">Changes the thresholds, after <paramref name="configuration"/> is bound.</param>
    /// <param name="name">The check's name, also the name of its <see cref="ReliableConsumerHealthOptions"/>; <c>kafka-reliable:&lt;consumerName&gt;</c> by default.</param>
    /// <param name="failureStatus">The status reported when the consumer is unhealthy (or the check fails); <see cref="HealthStatus.Unhealthy"/> by default.</param>
    /// <param name="tags">Tags of the check, for filtering health endpoints (for example "ready").</param>
    /// <param name="timeout">How long the check may take before it is reported as failed; no limit by default.</param>
    /// <param name="configuration">A configuration section holding <see cref="ReliableConsumerHealthOptions"/>, bound before <paramref name="configure"/> runs; none by default.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddReliableConsumer(
        this IHealthChecksBuilder builder,
        string consumerName,
        Action<ReliableConsumerHealthOptions>? configure = null,
        string? name = null,
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null,
        TimeSpan? timeout = null,
        IConfiguration? configuration = null) =>
        builder.AddReliableConsumerCore(consumerName, configuration, configure, name, failureStatus, tags, timeout);

    /// <summary>
    /// Adds the health check of the reliable consumer named <paramref name="consumerName"/>, with thresholds bound from
    /// <paramref name="configuration"/> (for example the section <c>HealthChecks:Orders</c> holding <c>MaxLag</c>,
    /// <c>MaxRecordAge</c> and <c>StallTimeout</c>) and checked when the host starts. The other overload takes the same
    /// section as its <c>configuration</c> argument, beside a name, a failure status, tags and a timeout.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="consumerName">The consumer's name.</param>
    /// <param name="configuration">The configuration section holding <see cref="ReliableConsumerHealthOptions"/>.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddReliableConsumer(this IHealthChecksBuilder builder, string consumerName, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return builder.AddReliableConsumerCore(consumerName, configuration, configure: null, name: null, failureStatus: null, tags: null, timeout: null);
    }

    private static IHealthChecksBuilder AddReliableConsumerCore(
        this IHealthChecksBuilder builder,
        string consumerName,
        IConfiguration? configuration,
        Action<ReliableConsumerHealthOptions>? configure,
        string? name,
        HealthStatus? failureStatus,
        IEnumerable<string>? tags,
        TimeSpan? timeout)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(consumerName);
        if (name is not null)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(name);
        }

        var checkName = name ?? "kafka-reliable:" + consumerName;
        var options = builder.Services.AddOptions<ReliableConsumerHealthOptions>(checkName);
        if (configuration is not null)
        {
            options.Bind(configuration);
        }

        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ReliableConsumerHealthOptions>, ReliableConsumerHealthOptionsValidator>());
        builder.Services.AddSingleton(new ReliableConsumerHealthCheckSource(checkName, consumerName, (configuration as IConfigurationSection)?.Path));
        builder.Services.TryAddSingleton(TimeProvider.System);

        return builder.Add(new HealthCheckRegistration(
            checkName,
            sp => new ReliableConsumerHealthCheck(
                sp.GetKeyedService<ConsumerState>(consumerName),
                consumerName,
                sp.GetRequiredService<IOptionsMonitor<ReliableConsumerHealthOptions>>().Get(checkName),
                sp.GetService<TimeProvider>() ?? TimeProvider.System),
            failureStatus,
            tags,
            timeout));
    }
}
