using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Kafka.Reliable.Consuming;

namespace Kafka.Reliable.Diagnostics;

/// <summary>
/// The library's instruments, on the meter <see cref="KafkaReliableDiagnostics.MeterName"/>. Counters and histograms are
/// tagged with the consumer, its group and the topic; the observable gauges read the live consumers when collected.
/// Nothing is measured (and nothing allocated) while no listener enables an instrument.
/// </summary>
internal static class ReliableMetrics
{
    private static readonly Meter Meter = new(KafkaReliableDiagnostics.MeterName, typeof(ReliableMetrics).Assembly.GetName().Version?.ToString());
    private static readonly ConcurrentDictionary<ConsumerRunner, byte> Live = new();

    public static readonly Counter<long> Processed = Meter.CreateCounter<long>(
        "kafka.reliable.records.processed", "{record}", "Records the handler handled successfully.");

    public static readonly Counter<long> Failed = Meter.CreateCounter<long>(
        "kafka.reliable.records.failed", "{record}", "Failed attempts at records, in any stage.");

    public static readonly Counter<long> Retried = Meter.CreateCounter<long>(
        "kafka.reliable.records.retried", "{record}", "Attempts at records after a failed one.");

    public static readonly Counter<long> DeadLettered = Meter.CreateCounter<long>(
        "kafka.reliable.records.dead_lettered", "{record}", "Records written to the dead-letter topic and acknowledged.");

    public static readonly Counter<long> DeadLetteredTruncated = Meter.CreateCounter<long>(
        "kafka.reliable.records.dead_lettered_truncated", "{record}",
        "Records dead-lettered as a bounded copy (value cut, header dlq-value-truncated) because the whole record was too large for the dead-letter topic; also counted in kafka.reliable.records.dead_lettered.");

    public static readonly Counter<long> Duplicates = Meter.CreateCounter<long>(
        "kafka.reliable.records.duplicates", "{record}", "Records skipped because the idempotency store says they were handled before.");

    public static readonly Counter<long> LeasesLost = Meter.CreateCounter<long>(
        "kafka.reliable.idempotency.leases_lost", "{record}",
        "Records whose idempotency lease was found lost (expired and removed, or taken by another consumer) while they were handled or awaited their acknowledgement: another run of the message may have happened.");

    public static readonly Histogram<double> HandlerDuration = Meter.CreateHistogram<double>(
        "kafka.reliable.handler.duration", "s", "How long one attempt at a record took, from deserialization to the handler's return.");

    public static readonly Counter<long> Rebalances = Meter.CreateCounter<long>(
        "kafka.reliable.rebalances", "{rebalance}", "Partition assignments, revocations and losses (tag kafka.reliable.rebalance.kind).");

    public static readonly Histogram<double> CommitDuration = Meter.CreateHistogram<double>(
        "kafka.reliable.commit.duration", "s", "How long a synchronous offset commit took.");

    public static readonly Counter<long> CommitFailures = Meter.CreateCounter<long>(
        "kafka.reliable.commit.failures", "{commit}", "Offset commits that failed (and were tried again).");

    public static readonly Counter<long> Restarts = Meter.CreateCounter<long>(
        "kafka.reliable.consumer.restarts", "{restart}", "Restarts of a consumer by its watchdog, after a partition (the topic tag's) had records pending and finished none for Watchdog:StuckAfter.");

    static ReliableMetrics()
    {
        Meter.CreateObservableGauge("kafka.reliable.consumer.lag", ObserveLag, "{record}", "Per partition: the high watermark minus the committed offset.");
        Meter.CreateObservableUpDownCounter("kafka.reliable.records.in_flight", ObserveInFlight, "{record}", "Records being handled now.");
        Meter.CreateObservableUpDownCounter(
            "kafka.reliable.records.buffered",
            ObserveBuffered,
            "{record}",
            "Per partition: records read from Kafka and not yet released (waiting, being handled, or done behind an unfinished one); at most PartitionBufferSize while the client accepts pauses.");
        Meter.CreateObservableUpDownCounter(
            "kafka.reliable.records.buffered.size",
            ObserveBufferedBytes,
            "By",
            "Per partition: the bytes of the buffered records (keys, values, headers, plus 128 bytes each); paused at the partition's share of MaxBufferedBytes.");
        Meter.CreateObservableUpDownCounter("kafka.reliable.partitions.paused", ObservePaused, "{partition}", "Assigned partitions that are paused (full buffer, failing record, open circuit).");
    }

    public static void Register(ConsumerRunner runner) => Live.TryAdd(runner, 0);

    public static void Unregister(ConsumerRunner runner) => Live.TryRemove(runner, out _);

    /// <summary>Adds one to a counter, tagged with the consumer, its group and the topic; nothing happens while no listener enables it.</summary>
    public static void Add(Counter<long> counter, ConsumerContext consumer, string topic)
    {
        if (counter.Enabled)
        {
            counter.Add(1, Tags(consumer, KafkaReliableDiagnostics.TopicTag, topic));
        }
    }

    /// <summary>Records the time since <paramref name="startTimestamp"/> (a <see cref="Stopwatch"/> timestamp) in seconds.</summary>
    public static void Record(Histogram<double> histogram, long startTimestamp, ConsumerContext consumer, string topic)
    {
        if (histogram.Enabled)
        {
            histogram.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds, Tags(consumer, KafkaReliableDiagnostics.TopicTag, topic));
        }
    }

    public static void Rebalance(ConsumerContext consumer, string kind, int partitions)
    {
        if (Rebalances.Enabled)
        {
            Rebalances.Add(partitions, Tags(consumer, "kafka.reliable.rebalance.kind", kind));
        }
    }

    // The lag is -1 until both of its ends are known: no measurement until then.
    private static IEnumerable<Measurement<long>> ObserveLag() => PerPartition(static worker => worker.Lag);

    private static IEnumerable<Measurement<long>> ObserveBuffered() => PerPartition(static worker => worker.Buffered);

    private static IEnumerable<Measurement<long>> ObserveBufferedBytes() => PerPartition(static worker => worker.BufferedBytes);

    /// <summary>
    /// One measurement per assigned partition of every live consumer (none for a negative value: not known yet), tagged with
    /// the consumer, group, topic and partition.
    /// </summary>
    private static IEnumerable<Measurement<long>> PerPartition(Func<PartitionWorker, long> valueOf)
    {
        foreach (var runner in Live.Keys)
        {
            foreach (var worker in runner.Partitions)
            {
                var value = valueOf(worker);
                if (value < 0)
                {
                    continue;
                }

                yield return new Measurement<long>(
                    value,
                    Tag(KafkaReliableDiagnostics.ConsumerTag, runner.Context.Name),
                    Tag(KafkaReliableDiagnostics.ConsumerGroupTag, runner.Context.Options.GroupId),
                    Tag(KafkaReliableDiagnostics.TopicTag, worker.TopicPartition.Topic),
                    Tag(KafkaReliableDiagnostics.PartitionTag, worker.TopicPartition.Partition.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            }
        }
    }

    private static IEnumerable<Measurement<long>> ObserveInFlight() =>
        Live.Keys.Select(runner => new Measurement<long>(runner.InFlightRecords(), Tag(KafkaReliableDiagnostics.ConsumerTag, runner.Context.Name), Tag(KafkaReliableDiagnostics.ConsumerGroupTag, runner.Context.Options.GroupId)));

    private static IEnumerable<Measurement<long>> ObservePaused() =>
        Live.Keys.Select(runner => new Measurement<long>(runner.PausedPartitions(), Tag(KafkaReliableDiagnostics.ConsumerTag, runner.Context.Name), Tag(KafkaReliableDiagnostics.ConsumerGroupTag, runner.Context.Options.GroupId)));

    /// <summary>The consumer's tags and one more; a <see cref="TagList"/> holds them without allocating.</summary>
    private static TagList Tags(ConsumerContext consumer, string key, string value) => new()
    {
        { KafkaReliableDiagnostics.ConsumerTag, consumer.Name },
        { KafkaReliableDiagnostics.ConsumerGroupTag, consumer.Options.GroupId },
        { key, value },
    };

    private static KeyValuePair<string, object?> Tag(string key, object? value) => new(key, value);
}
