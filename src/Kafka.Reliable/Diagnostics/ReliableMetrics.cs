using System.Diagnostics.Metrics;

namespace Kafka.Reliable.Diagnostics;

/// <summary>The library's instruments, on the meter <see cref="KafkaReliableDiagnostics.MeterName"/>.</summary>
internal static class ReliableMetrics
{
    private static readonly Meter Meter = new(KafkaReliableDiagnostics.MeterName, typeof(ReliableMetrics).Assembly.GetName().Version?.ToString());

    /// <summary>Records skipped because their idempotency key was completed before (redeliveries, re-sent messages).</summary>
    public static readonly Counter<long> Duplicates = Meter.CreateCounter<long>(
        "kafka.reliable.records.duplicates", "{record}", "Records skipped because the idempotency store says they were handled before.");

    public static void DuplicateSkipped(string consumer, string groupId, string topic) =>
        Duplicates.Add(
            1,
            new KeyValuePair<string, object?>(KafkaReliableDiagnostics.ConsumerTag, consumer),
            new KeyValuePair<string, object?>(KafkaReliableDiagnostics.ConsumerGroupTag, groupId),
            new KeyValuePair<string, object?>(KafkaReliableDiagnostics.TopicTag, topic));
}
