using System.Globalization;
using Kafka.Reliable.Hosting;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Kafka.Reliable;

/// <summary>
/// Thresholds of a reliable consumer's health check (<c>AddHealthChecks().AddReliableConsumer("Orders")</c>): named options
/// (the check's name), bindable from configuration and validated when the host starts.
/// </summary>
public sealed class ReliableConsumerHealthOptions
{
    /// <summary>Gets or sets the lag of a partition (high watermark minus committed offset) above which the consumer is degraded.</summary>
    /// <value>The default value is 10,000 records. Allowed: 0 or more.</value>
    public long MaxLag { get; set; } = 10_000;

    /// <summary>Gets or sets how long a record may wait, buffered and not done, before the consumer is degraded.</summary>
    /// <value>The default value is 5 minutes. Allowed: more than zero.</value>
    public TimeSpan MaxRecordAge { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Gets or sets how long a partition with records pending may go without finishing one before the consumer is
    /// unhealthy (a stuck consumer: a handler that hangs, a record that retries forever).
    /// </summary>
    /// <value>The default value is 10 minutes. Allowed: more than zero.</value>
    public TimeSpan StallTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Gets or sets how long ago the oldest record parked in a retry tier (<see cref="RetryTierOptions"/>) may have been parked
    /// before the consumer is degraded: a dependency down for longer than the tiers were meant to cover.
    /// </summary>
    /// <value>The default value is 1 hour. Allowed: more than zero.</value>
    public TimeSpan MaxParkedAge { get; set; } = TimeSpan.FromHours(1);
}

/// <summary>
/// Reports a reliable consumer's health: unhealthy when it is not running, when its dead-letter topic cannot be written,
/// or when a partition with pending records makes no progress for <see cref="ReliableConsumerHealthOptions.StallTimeout"/>;
/// degraded when its circuit breaker is open, when a partition lags more than
/// <see cref="ReliableConsumerHealthOptions.MaxLag"/>, or when a record waits longer than
/// <see cref="ReliableConsumerHealthOptions.MaxRecordAge"/>; healthy otherwise. It reads the state the consumer publishes
/// (its <see cref="ConsumerState"/>, resolved by the consumer's name); it sends no request. Unhealthy is reported as the
/// registration's failure status.
/// </summary>
internal sealed class ReliableConsumerHealthCheck(ConsumerState? state, string consumerName, ReliableConsumerHealthOptions options, TimeProvider time) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(Check(context.Registration?.FailureStatus ?? HealthStatus.Unhealthy));

    private HealthCheckResult Check(HealthStatus failureStatus)
    {
        if (state is null)
        {
            return new HealthCheckResult(failureStatus, $"No reliable consumer named '{consumerName}' is registered.");
        }

        if (state.Runner is not { } runner || !runner.IsRunning)
        {
            return new HealthCheckResult(failureStatus, state.Runner?.FatalReason is { } reason
                ? $"Consumer '{consumerName}' stopped on a fatal error: {reason}"
                : $"Consumer '{consumerName}' is not running.");
        }

        var now = time.GetTimestamp();
        var data = new Dictionary<string, object>
        {
            ["in_flight"] = runner.InFlightRecords(),
            ["paused_partitions"] = runner.PausedPartitions(),
            ["group_protocol"] = runner.Context.Options.GroupProtocol.ToString(),
        };
        if (runner.Context.MemberId is { Length: > 0 } memberId)
        {
            data["member_id"] = memberId;
        }

        if (runner.Context.Options.GroupInstanceId is { } instanceId)
        {
            data["group_instance_id"] = instanceId;
        }

        var unhealthy = new List<string>();
        var degraded = new List<string>();
        if (runner.Context.DeadLetterFailing is > 0 and var failing)
        {
            unhealthy.Add($"{failing} record(s) cannot be written to the dead-letter topic; their partitions hold");
        }

        if (runner.Context.CircuitOpen)
        {
            degraded.Add("the circuit breaker is open: every partition is paused");
        }

        foreach (var partition in runner.Partitions)
        {
            var name = $"{partition.TopicPartition.Topic}[{partition.TopicPartition.Partition.Value}]";
            if (partition.Lag >= 0)
            {
                data["lag:" + name] = partition.Lag;
                if (partition.Lag > options.MaxLag)
                {
                    degraded.Add($"{name} lags {partition.Lag.ToString(CultureInfo.InvariantCulture)} records (more than {options.MaxLag.ToString(CultureInfo.InvariantCulture)})");
                }
            }

            if (partition.Lot is { } lot)
            {
                data["parked:" + name] = lot.Count;
                if (lot.Failure is { } failure)
                {
                    unhealthy.Add($"{name} waits: its retry topic {lot.RetryPartition.Topic} cannot be read ({failure})");
                }
                else if (!lot.Ready.IsCompleted)
                {
                    degraded.Add($"{name} is reading its parked keys from {lot.RetryPartition.Topic}");
                }

                if (lot.OldestParkedAtMs is > 0 and var parkedAt
                    && TimeSpan.FromMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds() - parkedAt) is var parkedFor && parkedFor > options.MaxParkedAge)
                {
                    degraded.Add($"{name} has a record parked in a retry tier for {parkedFor:g} (more than {options.MaxParkedAge:g})");
                }
            }

            var stalledFor = partition.StalledFor(now);
            if (stalledFor > options.StallTimeout)
            {
                unhealthy.Add($"{name} has records pending and finished none for {stalledFor:g} (more than {options.StallTimeout:g})");
            }

            var oldest = partition.OldestPendingTimestamp;
            if (oldest != 0 && time.GetElapsedTime(oldest, now) is var age && age > options.MaxRecordAge)
            {
                degraded.Add($"{name} has a record waiting for {age:g} (more than {options.MaxRecordAge:g})");
            }
        }

        return unhealthy.Count > 0 ? new HealthCheckResult(failureStatus, $"Consumer '{consumerName}': {string.Join("; ", unhealthy.Concat(degraded))}.", data: data)
            : degraded.Count > 0 ? HealthCheckResult.Degraded($"Consumer '{consumerName}': {string.Join("; ", degraded)}.", data: data)
            : HealthCheckResult.Healthy($"Consumer '{consumerName}' is consuming.", data);
    }
}
