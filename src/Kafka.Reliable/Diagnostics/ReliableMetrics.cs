using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using static Kafka.Reliable.Diagnostics.SemanticConventions;

namespace Kafka.Reliable.Diagnostics;

/// <summary>
/// The library's instruments, on the meter <see cref="KafkaReliableDiagnostics.MeterName"/>: those of OpenTelemetry's messaging
/// conventions (<c>messaging.process.duration</c>, <c>messaging.client.consumed.messages</c>,
/// <c>messaging.client.operation.duration</c> of commits), and the library's own (<c>kafka.reliable.*</c>) where the
/// conventions have none. One instance per service provider, its meter made by the provider's <see cref="IMeterFactory"/>,
/// so that a host (or a test) sees its own consumers' measurements alone; the observable gauges read that provider's live
/// consumers when collected. Nothing is measured (and nothing allocated) while no listener enables an instrument.
/// </summary>
internal sealed class ReliableMetrics : IDisposable
{
    private static readonly Lazy<ReliableMetrics> DetachedInstance = new(() => new ReliableMetrics(null));
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly ConcurrentDictionary<ConsumerRunner, byte> _live = new();

    /// <param name="meterFactory">Makes the meter; null for a meter of its own (outside dependency injection), disposed with this.</param>
    public ReliableMetrics(IMeterFactory? meterFactory)
    {
        var options = new MeterOptions(KafkaReliableDiagnostics.MeterName) { Version = typeof(ReliableMetrics).Assembly.GetName().Version?.ToString() };
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(options) ?? new Meter(options);
        var seconds = new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets };

        ProcessDuration = _meter.CreateHistogram(
            SemanticConventions.ProcessDuration, "s",
            "Duration of processing operation: one per record, from the moment it is taken until it is done (handled, skipped or dead-lettered), every attempt included; error.type when it was dead-lettered.",
            advice: seconds);
        ConsumedMessages = _meter.CreateCounter<long>(
            SemanticConventions.ConsumedMessages, "{message}", "Number of messages that were delivered to the application: records taken for processing.");
        ClientOperationDuration = _meter.CreateHistogram(
            SemanticConventions.ClientOperationDuration, "s",
            "Duration of messaging operation initiated by a producer or consumer client: synchronous offset commits (messaging.operation.name commit); error.type when it failed.",
            advice: seconds);
        Processed = _meter.CreateCounter<long>("kafka.reliable.records.processed", "{record}", "Records the handler handled successfully.");
        Failed = _meter.CreateCounter<long>("kafka.reliable.records.failed", "{record}", "Failed attempts at records, in any stage.");
        Retried = _meter.CreateCounter<long>("kafka.reliable.records.retried", "{record}", "Attempts at records after a failed one.");
        DeadLettered = _meter.CreateCounter<long>(
            "kafka.reliable.records.dead_lettered", "{record}", "Records written to the dead-letter topic and acknowledged.");
        DeadLetteredTruncated = _meter.CreateCounter<long>(
            "kafka.reliable.records.dead_lettered_truncated", "{record}",
            "Records dead-lettered as a bounded copy (value cut, header dlq-value-truncated) because the whole record was too large for the dead-letter topic; also counted in kafka.reliable.records.dead_lettered.");
        Duplicates = _meter.CreateCounter<long>(
            "kafka.reliable.records.duplicates", "{record}", "Records skipped because the idempotency store says they were handled before.");
        LeasesLost = _meter.CreateCounter<long>(
            "kafka.reliable.idempotency.leases_lost", "{record}",
            "Records whose idempotency lease was found lost (expired and removed, or taken by another consumer) while they were handled or awaited their acknowledgement: another run of the message may have happened.");
        HandlerDuration = _meter.CreateHistogram(
            "kafka.reliable.handler.duration", "s", "How long one attempt at a record took, from deserialization to the handler's return.", advice: seconds);
        BatchSize = _meter.CreateHistogram<int>(
            "kafka.reliable.batch.size", "{record}", "Records handed to a batch handler in one batch (a part of a failed batch being isolated counts as a batch).",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = BatchSizeBuckets });
        BatchDuration = _meter.CreateHistogram(
            "kafka.reliable.batch.duration", "s", "How long a batch took, from its first attempt until it was done (every attempt and isolated part included).", advice: seconds);
        RebalancedPartitions = _meter.CreateCounter<long>(
            "kafka.reliable.rebalance.partitions", "{partition}", "Partitions assigned, revoked or lost (tag kafka.reliable.rebalance.kind).");
        CommitFailures = _meter.CreateCounter<long>("kafka.reliable.commit.failures", "{commit}", "Offset commits that failed (and were tried again).");
        Restarts = _meter.CreateCounter<long>(
            "kafka.reliable.consumer.restarts", "{restart}",
            "Restarts of a consumer by its watchdog, after a partition (the topic tag's) had records pending and finished none for Watchdog:StuckAfter.");

        Parked = _meter.CreateCounter<long>(
            "kafka.reliable.retry.parked", "{record}",
            "Records written to a retry topic and acknowledged: failed ones moved to a tier (or to their next tier), and records parked behind an earlier record of their key.");
        _meter.CreateObservableUpDownCounter(
            "kafka.reliable.retry.parked_keys", ObserveParkedKeys, "{key}", "Per partition: keys with records parked in the retry topic (their later records wait behind them).");
        _meter.CreateObservableUpDownCounter(
            "kafka.reliable.retry.parked_records", ObserveParkedRecords, "{record}", "Per partition: records parked in the retry topic, failed ones and those waiting behind them.");
        _meter.CreateObservableGauge(
            "kafka.reliable.retry.oldest_parked_age", ObserveOldestParked, "s", "Per partition with parked records: how long ago its oldest parked record was first parked.");
        _meter.CreateObservableGauge("kafka.reliable.consumer.lag", ObserveLag, "{record}", "Per partition: the high watermark minus the committed offset.");
        _meter.CreateObservableUpDownCounter("kafka.reliable.records.in_flight", ObserveInFlight, "{record}", "Records being handled now.");
        _meter.CreateObservableUpDownCounter(
            "kafka.reliable.records.buffered",
            ObserveBuffered,
            "{record}",
            "Per partition: records read from Kafka and not yet released (waiting, being handled, or done behind an unfinished one); at most PartitionBufferSize while the client accepts pauses.");
        _meter.CreateObservableUpDownCounter(
            "kafka.reliable.records.buffered.size",
            ObserveBufferedBytes,
            "By",
            "Per partition: the bytes of the buffered records (keys, values, headers, plus 128 bytes each); paused at the partition's share of MaxBufferedBytes.");
        _meter.CreateObservableUpDownCounter(
            "kafka.reliable.partitions.paused", ObservePaused, "{partition}", "Assigned partitions that are paused (full buffer, failing record, open circuit).");
    }

    /// <summary>Gets the instruments of consumers built outside dependency injection (tests, benchmarks): a meter of their own.</summary>
    public static ReliableMetrics Detached => DetachedInstance.Value;

    public Histogram<double> ProcessDuration { get; }

    public Counter<long> ConsumedMessages { get; }

    public Histogram<double> ClientOperationDuration { get; }

    public Counter<long> Processed { get; }

    public Counter<long> Failed { get; }

    public Counter<long> Retried { get; }

    public Counter<long> DeadLettered { get; }

    public Counter<long> DeadLetteredTruncated { get; }

    public Counter<long> Duplicates { get; }

    public Counter<long> LeasesLost { get; }

    public Histogram<double> HandlerDuration { get; }

    public Histogram<int> BatchSize { get; }

    public Histogram<double> BatchDuration { get; }

    public Counter<long> RebalancedPartitions { get; }

    public Counter<long> CommitFailures { get; }

    public Counter<long> Restarts { get; }

    public Counter<long> Parked { get; }

    public void Register(ConsumerRunner runner) => _live.TryAdd(runner, 0);

    public void Unregister(ConsumerRunner runner) => _live.TryRemove(runner, out _);

    /// <summary>Adds <paramref name="value"/> to a counter, tagged with the consumer, its group and the topic; nothing happens while no listener enables it.</summary>
    public static void Add(Counter<long> counter, long value, ConsumerContext consumer, string topic)
    {
        if (counter.Enabled && value > 0)
        {
            counter.Add(value, Tags(consumer, KafkaReliableDiagnostics.TopicTag, topic));
        }
    }

    /// <summary>Records the size of a batch handed to a batch handler.</summary>
    public void BatchHandled(int size, ConsumerContext consumer, string topic)
    {
        if (BatchSize.Enabled)
        {
            BatchSize.Record(size, Tags(consumer, KafkaReliableDiagnostics.TopicTag, topic));
        }
    }

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

    /// <summary>Counts a record taken for processing (<c>messaging.client.consumed.messages</c>); no allocation.</summary>
    public void Consumed(PartitionTelemetry partition, int count = 1)
    {
        if (ConsumedMessages.Enabled)
        {
            ConsumedMessages.Add(count, partition.ProcessTags);
        }
    }

    /// <summary>
    /// Records a record's <c>messaging.process.duration</c> since <paramref name="startTimestamp"/>, with <c>error.type</c> when
    /// it ended in a failure (dead-lettered); no allocation for a record that succeeded.
    /// </summary>
    public void Processing(long startTimestamp, PartitionTelemetry partition, Exception? failure)
    {
        if (ProcessDuration.Enabled)
        {
            var seconds = Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds;
            ProcessDuration.Record(seconds, failure is null ? partition.ProcessTags : partition.ProcessTagsWithError(ErrorTypeOf(failure)));
        }
    }

    /// <summary>
    /// Records a synchronous commit's <c>messaging.client.operation.duration</c> since <paramref name="startTimestamp"/>, with
    /// <c>error.type</c> (the Kafka error code's name) when it failed (poll thread).
    /// </summary>
    public void Commit(long startTimestamp, ConsumerContext consumer, List<TopicPartitionOffset> committed, ErrorCode? error)
    {
        if (!ClientOperationDuration.Enabled)
        {
            return;
        }

        var seconds = Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds;
        string? topic = committed.Count > 0 ? committed[0].Topic : null;
        foreach (var partition in committed)
        {
            if (!string.Equals(partition.Topic, topic, StringComparison.Ordinal))
            {
                topic = null;
                break;
            }
        }

        var tags = consumer.Telemetry.CommitTags(topic);
        ClientOperationDuration.Record(seconds, error is { } code ? [.. tags, new(ErrorType, code.ToString())] : tags);
    }

    public void Rebalance(ConsumerContext consumer, string kind, int partitions)
    {
        if (RebalancedPartitions.Enabled)
        {
            RebalancedPartitions.Add(partitions, Tags(consumer, "kafka.reliable.rebalance.kind", kind));
        }
    }

    /// <summary>The conventions' <c>error.type</c> of an exception: its type's full name.</summary>
    public static string ErrorTypeOf(Exception exception) => exception.GetType().FullName ?? "_OTHER";

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    // The lag is -1 until both of its ends are known: no measurement until then.
    private IEnumerable<Measurement<long>> ObserveLag() => PerPartition(static worker => worker.Lag);

    private IEnumerable<Measurement<long>> ObserveBuffered() => PerPartition(static worker => worker.Buffered);

    private IEnumerable<Measurement<long>> ObserveBufferedBytes() => PerPartition(static worker => worker.BufferedBytes);

    private IEnumerable<Measurement<long>> ObserveParkedKeys() => PerPartition(static worker => worker.Lot?.Keys ?? -1);

    private IEnumerable<Measurement<long>> ObserveParkedRecords() => PerPartition(static worker => worker.Lot?.Count ?? -1);

    private IEnumerable<Measurement<double>> ObserveOldestParked()
    {
        foreach (var runner in _live.Keys)
        {
            var now = runner.Context.Time.GetUtcNow().ToUnixTimeMilliseconds();
            foreach (var worker in runner.Partitions)
            {
                if (worker.Lot?.OldestParkedAtMs is > 0 and var at)
                {
                    yield return new Measurement<double>(Math.Max(0, now - at) / 1000.0, PartitionTags(runner, worker));
                }
            }
        }
    }

    /// <summary>
    /// One measurement per assigned partition of every live consumer (none for a negative value: not known yet), tagged with
    /// the consumer, group, topic and partition.
    /// </summary>
    private IEnumerable<Measurement<long>> PerPartition(Func<PartitionWorker, long> valueOf)
    {
        foreach (var runner in _live.Keys)
        {
            foreach (var worker in runner.Partitions)
            {
                var value = valueOf(worker);
                if (value < 0)
                {
                    continue;
                }

                yield return new Measurement<long>(value, PartitionTags(runner, worker));
            }
        }
    }

    private static KeyValuePair<string, object?>[] PartitionTags(ConsumerRunner runner, PartitionWorker worker) =>
    [
        Tag(KafkaReliableDiagnostics.ConsumerTag, runner.Context.Name),
        Tag(KafkaReliableDiagnostics.ConsumerGroupTag, runner.Context.Options.GroupId),
        Tag(KafkaReliableDiagnostics.TopicTag, worker.TopicPartition.Topic),
        Tag(KafkaReliableDiagnostics.PartitionTag, worker.TopicPartition.Partition.Value.ToString(CultureInfo.InvariantCulture)),
    ];

    private IEnumerable<Measurement<long>> ObserveInFlight() =>
        _live.Keys.Select(runner => new Measurement<long>(runner.InFlightRecords(), Tag(KafkaReliableDiagnostics.ConsumerTag, runner.Context.Name), Tag(KafkaReliableDiagnostics.ConsumerGroupTag, runner.Context.Options.GroupId)));

    private IEnumerable<Measurement<long>> ObservePaused() =>
        _live.Keys.Select(runner => new Measurement<long>(runner.PausedPartitions(), Tag(KafkaReliableDiagnostics.ConsumerTag, runner.Context.Name), Tag(KafkaReliableDiagnostics.ConsumerGroupTag, runner.Context.Options.GroupId)));

    /// <summary>The consumer's tags and one more; a <see cref="TagList"/> holds them without allocating.</summary>
    private static TagList Tags(ConsumerContext consumer, string key, string value) => new()
    {
        { KafkaReliableDiagnostics.ConsumerTag, consumer.Name },
        { KafkaReliableDiagnostics.ConsumerGroupTag, consumer.Options.GroupId },
        { key, value },
    };

    private static KeyValuePair<string, object?> Tag(string key, object? value) => new(key, value);
}
