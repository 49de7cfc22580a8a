using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;
using Confluent.Kafka;
using Kafka.Reliable.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kafka.Reliable.DeadLetter;

/// <summary>
/// Republishes dead-lettered records to their original topic (or a chosen one) once the cause of their failure is fixed.
/// </summary>
/// <remarks>
/// <para>The replay reads the dead-letter topic up to the end offsets it finds when it starts, keeps the records the filters
/// select, and republishes each with its original key, value and headers (the <c>dlq-</c> provenance headers removed) plus
/// <see cref="DeadLetterHeaders.ReplayCount"/>. A bounded copy (<see cref="DeadLetterHeaders.ValueTruncated"/>) is skipped
/// with a warning that says where the whole record is. It writes with an idempotent, acks=all producer and commits its own
/// progress to its consumer group only after the records before it are acknowledged: a replay that stops (cancellation,
/// <see cref="DeadLetterReplayOptions.MaxRecords"/>, a crash) resumes where it stopped when run again; after a crash, the
/// records between the last commit and the crash may be republished twice, never lost.</para>
/// <para>The records stay in the dead-letter topic; the replay does not delete them.</para>
/// </remarks>
public sealed class DeadLetterReplayer
{
    private const int CommitEvery = 500;
    private static readonly TimeSpan CommitInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);
    private readonly DeadLetterReplayOptions _options;
    private readonly ILogger _logger;
    private readonly Func<int, RateLimiter> _rateLimiter;

    /// <summary>Initializes a new instance of the <see cref="DeadLetterReplayer"/> class.</summary>
    /// <param name="options">What to replay.</param>
    /// <param name="logger">Where to log the start and the end of a replay; none by default.</param>
    /// <exception cref="ArgumentException">A required option is missing or a value is out of range; the message says which.</exception>
    public DeadLetterReplayer(DeadLetterReplayOptions options, ILogger<DeadLetterReplayer>? logger = null)
        : this(options, logger, null)
    {
    }

    /// <param name="options">What to replay.</param>
    /// <param name="logger">Where to log the start and the end of a replay.</param>
    /// <param name="rateLimiter">Creates the limiter a record takes a permit from before it is republished, from the rate; null for <see cref="DeadLetterReplayRate"/>'s token bucket (tests grant permits themselves).</param>
    internal DeadLetterReplayer(DeadLetterReplayOptions options, ILogger<DeadLetterReplayer>? logger, Func<int, RateLimiter>? rateLimiter)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.BootstrapServers))
        {
            throw new ArgumentException("BootstrapServers is required: set it to the Kafka brokers, for example 'localhost:9092'.", nameof(options));
        }

        if (string.IsNullOrWhiteSpace(options.DeadLetterTopic))
        {
            throw new ArgumentException("DeadLetterTopic is required: set it to the dead-letter topic to replay, for example 'orders.dlq'.", nameof(options));
        }

        if (options.MaxRecordsPerSecond is < 1 or > 1_000_000)
        {
            throw new ArgumentException($"MaxRecordsPerSecond is {options.MaxRecordsPerSecond}: use a rate from 1 to 1000000.", nameof(options));
        }

        if (options.MaxRecords is < 1)
        {
            throw new ArgumentException($"MaxRecords is {options.MaxRecords}: use a positive number, or leave it unset for no limit.", nameof(options));
        }

        _options = options;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _rateLimiter = rateLimiter ?? DeadLetterReplayRate.Create;
        GroupId = options.GroupId is { Length: > 0 } group ? group : DefaultGroupId(options);
    }

    /// <summary>Gets the consumer group the replay commits its progress with.</summary>
    public string GroupId { get; }

    /// <summary>Replays the selected records, reporting progress after each commit.</summary>
    /// <param name="progress">Receives the progress after each commit of the replay's position; may be null.</param>
    /// <param name="cancellationToken">Stops the replay: what was republished is acknowledged and committed first.</param>
    /// <returns>How far the replay got.</returns>
    /// <exception cref="KafkaException">The cluster could not be reached, the dead-letter topic does not exist, or a record could not be republished; what was acknowledged before is committed.</exception>
    public Task<DeadLetterReplayProgress> ReplayAsync(IProgress<DeadLetterReplayProgress>? progress = null, CancellationToken cancellationToken = default) =>
        // The Kafka clients' calls block: the replay runs on a thread of its own rather than on the caller's.
        Task.Factory.StartNew(() => Replay(progress, cancellationToken), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>Sends what librdkafka logs for the replay's clients (consumer, producer, admin) to the replay's logger (event 502).</summary>
    private void OnClientLog(IClient client, LogMessage message) => ClientLogs.Forward(_logger, "replay of " + _options.DeadLetterTopic, message);

    private DeadLetterReplayProgress Replay(IProgress<DeadLetterReplayProgress>? progress, CancellationToken cancellationToken)
    {
        Hosting.KafkaNativeLibrary.EnsureLoaded();
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(ConsumerConfig()).SetLogHandler(OnClientLog).Build();
        using var producer = new ProducerBuilder<byte[]?, byte[]?>(ProducerConfig()).SetLogHandler(OnClientLog).Build();
        using var rate = _rateLimiter(_options.MaxRecordsPerSecond);
        var partitions = PartitionsOf(_options.DeadLetterTopic);
        var committed = consumer.Committed(partitions, RequestTimeout);
        var next = new Dictionary<int, long>();
        var end = new Dictionary<int, long>();
        long pending = 0;
        var assignment = new List<TopicPartitionOffset>();
        foreach (var partition in partitions)
        {
            var watermarks = consumer.QueryWatermarkOffsets(partition, RequestTimeout);
            var start = committed.FirstOrDefault(c => c.Partition == partition.Partition) is { Offset.Value: >= 0 } c ? c.Offset.Value : watermarks.Low.Value;
            start = Math.Max(start, watermarks.Low.Value);
            next[partition.Partition.Value] = start;
            end[partition.Partition.Value] = watermarks.High.Value;
            pending += Math.Max(0, watermarks.High.Value - start);
            if (start < watermarks.High.Value)
            {
                assignment.Add(new TopicPartitionOffset(partition, new Offset(start)));
            }
        }

        Log.ReplayStarting(_logger, _options.DeadLetterTopic, GroupId, pending);
        long replayed = 0, skipped = 0;
        var deliveries = new Deliveries();
        var sinceCommit = Stopwatch.StartNew();
        var uncommitted = 0;
        var remaining = assignment.Count;
        var stoppedEarly = false;
        consumer.Assign(assignment);
        try
        {
            while (remaining > 0)
            {
                if (cancellationToken.IsCancellationRequested || (_options.MaxRecords is { } max && replayed >= max))
                {
                    stoppedEarly = true;
                    break;
                }

                var record = consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (record is null || record.IsPartitionEOF)
                {
                    if (record is not null && next[record.Partition.Value] < end[record.Partition.Value])
                    {
                        // The end offset taken at start lies past the last record (transaction markers): the partition is done.
                        next[record.Partition.Value] = end[record.Partition.Value];
                        remaining--;
                    }

                    continue;
                }

                var partition = record.Partition.Value;
                if (record.Offset.Value >= end[partition])
                {
                    continue;
                }

                var selected = Selected(record);
                if (selected && !Permit(rate, cancellationToken))
                {
                    // Stopped while waiting for the rate: the record is neither republished nor passed, the next run starts at it.
                    stoppedEarly = true;
                    break;
                }

                if (selected && Republish(producer, record, deliveries))
                {
                    replayed++;
                }
                else
                {
                    skipped++;
                }

                next[partition] = record.Offset.Value + 1;
                if (next[partition] >= end[partition])
                {
                    remaining--;
                }

                if (++uncommitted >= CommitEvery || sinceCommit.Elapsed >= CommitInterval)
                {
                    CommitProgress(consumer, producer, next, deliveries);
                    uncommitted = 0;
                    sinceCommit.Restart();
                    progress?.Report(new DeadLetterReplayProgress(replayed, skipped, pending, Completed: false));
                }
            }
        }
        finally
        {
            // Whatever ended the run, what was acknowledged is committed so that the next run resumes after it.
            CommitProgress(consumer, producer, next, deliveries);
            consumer.Close();
        }

        var result = new DeadLetterReplayProgress(replayed, skipped, pending, Completed: !stoppedEarly && remaining == 0);
        progress?.Report(result);
        Log.ReplayFinished(_logger, _options.DeadLetterTopic, replayed, skipped);
        return result;
    }

    private bool Selected(ConsumeResult<byte[]?, byte[]?> record)
    {
        var headers = record.Message.Headers;
        if (_options.OriginalTopic is { } topic && !HeaderEquals(headers, DeadLetterHeaders.OriginalTopic, topic))
        {
            return false;
        }

        if (_options.ExceptionType is { } type && !HeaderEquals(headers, DeadLetterHeaders.ExceptionType, type))
        {
            return false;
        }

        if (_options.Key is { } key && (record.Message.Key is not { } recordKey || !Encoding.UTF8.GetBytes(key).AsSpan().SequenceEqual(recordKey)))
        {
            return false;
        }

        var timestamp = record.Message.Timestamp.UnixTimestampMs;
        return (_options.From is not { } from || timestamp >= from.ToUnixTimeMilliseconds())
            && (_options.To is not { } to || timestamp < to.ToUnixTimeMilliseconds());
    }

    private bool Republish(IProducer<byte[]?, byte[]?> producer, ConsumeResult<byte[]?, byte[]?> record, Deliveries deliveries)
    {
        if (record.Message.Headers is { } dead && dead.TryGetLastBytes(DeadLetterHeaders.ValueTruncated, out var originalLength))
        {
            // A bounded copy holds only the start of the value: replaying it would write a corrupt record to the topic.
            Log.ReplayBoundedCopySkipped(
                _logger, _options.DeadLetterTopic, record.Topic, record.Partition.Value, record.Offset.Value, Encoding.UTF8.GetString(originalLength),
                HeaderText(dead, DeadLetterHeaders.OriginalTopic), HeaderText(dead, DeadLetterHeaders.OriginalPartition), HeaderText(dead, DeadLetterHeaders.OriginalOffset));
            return false;
        }

        var headers = new Headers();
        var replayCount = 0;
        string? originalTopic = null;
        foreach (var header in record.Message.Headers ?? [])
        {
            if (header.Key == DeadLetterHeaders.ReplayCount)
            {
                _ = int.TryParse(Encoding.UTF8.GetString(header.GetValueBytes()), NumberStyles.None, CultureInfo.InvariantCulture, out replayCount);
            }
            else if (header.Key == DeadLetterHeaders.OriginalTopic)
            {
                originalTopic = Encoding.UTF8.GetString(header.GetValueBytes());
            }
            else if (!header.Key.StartsWith(DeadLetterHeaders.Prefix, StringComparison.Ordinal))
            {
                headers.Add(header.Key, header.GetValueBytes());
            }
        }

        var target = _options.TargetTopic ?? originalTopic;
        if (target is null)
        {
            Log.ReplayNoOriginalTopic(_logger, _options.DeadLetterTopic, record.Topic, record.Partition.Value, record.Offset.Value, DeadLetterHeaders.OriginalTopic);
            return false;
        }

        headers.Add(DeadLetterHeaders.ReplayCount, Encoding.UTF8.GetBytes((replayCount + 1).ToString(CultureInfo.InvariantCulture)));
        var message = new Message<byte[]?, byte[]?> { Key = record.Message.Key, Value = record.Message.Value, Headers = headers };
        deliveries.ThrowIfFailed();
        producer.Produce(target, message, deliveries.OnDelivered);
        return true;
    }

    /// <summary>Waits for the rate limiter's permit to republish one record (the replay runs on its own thread, so it may block); false when cancelled first.</summary>
    private static bool Permit(RateLimiter rate, CancellationToken cancellationToken)
    {
        try
        {
            using var lease = rate.AcquireAsync(1, cancellationToken).AsTask().GetAwaiter().GetResult();
            return lease.IsAcquired ? true : throw new InvalidOperationException("The replay's rate limiter refused a permit: only one is asked for at a time.");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private static void CommitProgress(IConsumer<byte[]?, byte[]?> consumer, IProducer<byte[]?, byte[]?> producer, Dictionary<int, long> next, Deliveries deliveries)
    {
        // Flush first: an offset is committed only once every record republished before it is acknowledged.
        var unflushed = producer.Flush(RequestTimeout);
        if (unflushed > 0)
        {
            throw new KafkaException(new Error(ErrorCode.Local_TimedOut, $"{unflushed} replayed record(s) were not acknowledged within {RequestTimeout}; progress is not committed past them."));
        }

        deliveries.ThrowIfFailed();
        var offsets = new List<TopicPartitionOffset>(next.Count);
        foreach (var assigned in consumer.Assignment)
        {
            offsets.Add(new TopicPartitionOffset(assigned, new Offset(next[assigned.Partition.Value])));
        }

        if (offsets.Count > 0)
        {
            consumer.Commit(offsets);
        }
    }

    private List<TopicPartition> PartitionsOf(string topic)
    {
        using var admin = new AdminClientBuilder(new AdminClientConfig(SharedSettings()) { BootstrapServers = _options.BootstrapServers })
            .SetLogHandler(OnClientLog).Build();
        var metadata = admin.GetMetadata(topic, RequestTimeout);
        var topicMetadata = metadata.Topics.FirstOrDefault(t => t.Topic == topic);
        if (topicMetadata is null || topicMetadata.Error.IsError || topicMetadata.Partitions.Count == 0)
        {
            throw new KafkaException(new Error(
                topicMetadata?.Error.Code ?? ErrorCode.UnknownTopicOrPart,
                $"The dead-letter topic '{topic}' was not found on {_options.BootstrapServers}: check DeadLetterTopic."));
        }

        return topicMetadata.Partitions.Select(p => new TopicPartition(topic, new Partition(p.PartitionId))).OrderBy(p => p.Partition.Value).ToList();
    }

    private ConsumerConfig ConsumerConfig() => new(SharedSettings())
    {
        BootstrapServers = _options.BootstrapServers,
        GroupId = GroupId,
        ClientId = GroupId,
        EnableAutoCommit = false,
        EnableAutoOffsetStore = false,
        EnablePartitionEof = true,
        AutoOffsetReset = AutoOffsetReset.Earliest,
    };

    private ProducerConfig ProducerConfig() => new(SharedSettings())
    {
        BootstrapServers = _options.BootstrapServers,
        ClientId = GroupId + "-producer",
        EnableIdempotence = true,
        Acks = Acks.All,
        LingerMs = 5,
    };

    private Dictionary<string, string> SharedSettings() => new(_options.KafkaSettings, StringComparer.Ordinal);

    private static string HeaderText(Headers headers, string key) =>
        headers.TryGetLastBytes(key, out var value) ? Encoding.UTF8.GetString(value) : "?";

    private static bool HeaderEquals(Headers? headers, string key, string expected) =>
        headers is not null && headers.TryGetLastBytes(key, out var value) && Encoding.UTF8.GetString(value) == expected;

    private static string DefaultGroupId(DeadLetterReplayOptions options)
    {
        var request = string.Join('\n', options.TargetTopic, options.OriginalTopic, options.ExceptionType, options.Key, options.From?.ToUnixTimeMilliseconds(), options.To?.ToUnixTimeMilliseconds());
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(request)), 0, 4);
        return $"kafka-reliable-replay.{options.DeadLetterTopic}.{hash}";
    }

    /// <summary>The first failed delivery of a run; delivery reports arrive on the producer's thread.</summary>
    private sealed class Deliveries
    {
        private Error? _failure;

        public void OnDelivered(DeliveryReport<byte[]?, byte[]?> report)
        {
            if (report.Error.IsError)
            {
                Interlocked.CompareExchange(ref _failure, report.Error, null);
            }
        }

        public void ThrowIfFailed()
        {
            if (Volatile.Read(ref _failure) is { } failure)
            {
                throw new KafkaException(failure);
            }
        }
    }
}
