using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Pipeline;
using Polly;
using Polly.Retry;

namespace Kafka.Reliable.DeadLetter;

/// <summary>
/// Writes rejected records to the dead-letter topic with an idempotent, acks=all producer. One per consumer, shared by its
/// partition workers (the Confluent producer is thread-safe). Only failures reach it, so it is off the hot path.
/// </summary>
/// <remarks>
/// The producer is created on the first dead letter (most consumers never need one), exactly once however many partitions
/// dead-letter at the same moment; after a fatal error (an idempotent producer that lost its sequence) it is replaced, and
/// the broken one is disposed once the writes still using it have returned. After <see cref="Dispose"/> every producer is
/// disposed and a write throws <see cref="ObjectDisposedException"/>: the consumer is stopping.
/// </remarks>
internal sealed class DeadLetterPublisher : IDisposable
{
    private static readonly TimeSpan DisposeFlushTimeout = TimeSpan.FromSeconds(5);

    private readonly Lock _gate = new();
    private readonly List<ProducerSlot> _open = [];
    private readonly Func<ProducerConfig, IProducer<byte[]?, byte[]?>> _factory;
    private readonly DeadLetterOptions _options;
    private readonly byte[] _group;
    private ProducerSlot? _current;
    private ConsumerContext? _consumer;
    private ResiliencePipeline? _writeRetry;
    private bool _disposed;

    public DeadLetterPublisher(ReliableConsumerOptions options, string clientId)
        : this(options, clientId, null)
    {
    }

    /// <param name="options">The consumer's options.</param>
    /// <param name="clientId">The consumer's client id; the producer's is this with <c>-dlq</c> appended.</param>
    /// <param name="factory">Creates a producer from its settings; null for a Confluent producer (tests count and fake them).</param>
    internal DeadLetterPublisher(ReliableConsumerOptions options, string clientId, Func<ProducerConfig, IProducer<byte[]?, byte[]?>>? factory)
    {
        _options = options.DeadLetter;
        _group = Encoding.UTF8.GetBytes(options.GroupId);
        Config = BuildConfig(options, clientId);
        MaxMessageBytes = int.TryParse(Config.Get("message.max.bytes"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var max)
            ? max
            : DeadLetterConstants.MinMessageMaxBytes;
        _factory = factory ?? Build;
    }

    /// <summary>Gets the dead-letter producer's settings.</summary>
    internal ProducerConfig Config { get; }

    /// <summary>Gets the producer's <c>message.max.bytes</c>: the largest record it sends to the broker.</summary>
    internal int MaxMessageBytes { get; }

    /// <summary>
    /// The dead-letter producer's settings: the consumer's owned-producer settings (idempotent, acks=all, how to reach the
    /// cluster), a <c>message.max.bytes</c> that takes whatever the consumer takes, then <see cref="DeadLetterOptions.ProducerSettings"/>.
    /// </summary>
    internal static ProducerConfig BuildConfig(ReliableConsumerOptions options, string clientId)
    {
        var config = OwnedProducers.Config(options);
        config.ClientId = clientId + "-dlq";
        config.MessageTimeoutMs = DeadLetterConstants.DeliveryTimeoutMs;
        config.MessageMaxBytes = MessageMaxBytesFor(options);
        foreach (var (key, value) in options.DeadLetter.ProducerSettings)
        {
            config.Set(key, value);
        }

        return config;
    }

    /// <summary>
    /// The larger of <see cref="ReliableConsumerOptions.MaxPayloadBytes"/> plus room for the key and the headers, and the
    /// consumer's own size limits where its settings name them, within librdkafka's range: a record the consumer received
    /// and rejected is not refused by the producer that dead-letters it.
    /// </summary>
    internal static int MessageMaxBytesFor(ReliableConsumerOptions options)
    {
        var bytes = (long)options.MaxPayloadBytes + DeadLetterConstants.RecordRoomBytes;
        foreach (var setting in DeadLetterConstants.ConsumerSizeSettings)
        {
            if (options.KafkaSettings.TryGetValue(setting, out var text)
                && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var limit))
            {
                bytes = Math.Max(bytes, limit);
            }
        }

        return (int)Math.Clamp(bytes, DeadLetterConstants.MinMessageMaxBytes, DeadLetterConstants.MaxMessageMaxBytes);
    }

    public string TopicFor(string originalTopic) =>
        _options.Topic.Replace(DeadLetterConstants.TopicPlaceholder, originalTopic, StringComparison.Ordinal);

    /// <summary>
    /// Writes the record and waits for the acknowledgement; throws when it is not acknowledged. A record too large for the
    /// dead-letter topic (refused by the producer's <c>message.max.bytes</c> or by the broker) is written once more as a
    /// bounded copy, which cannot be refused for its value's size; only when that is refused too does this throw, and the
    /// caller tries again later. Throws <see cref="ObjectDisposedException"/> once disposed.
    /// </summary>
    public async Task PublishAsync(
        ConsumerContext consumer, MessageContext context, ProcessingOutcome outcome, DateTimeOffset firstFailure, DateTimeOffset lastFailure, CancellationToken cancellationToken)
    {
        var slot = Acquire(consumer);
        try
        {
            var record = context.Record!;
            var message = new Message<byte[]?, byte[]?>
            {
                Key = record.Message.Key,
                Value = record.Message.Value,
                Headers = ProvenanceHeaders(context, outcome, firstFailure, lastFailure),
            };
            var topic = TopicFor(record.Topic);
            using var activity = ReliableTracing.StartDeadLetter(topic, message, Config);
            try
            {
                try
                {
                    ReliableTracing.DeadLetterSent(activity, await slot.Producer.ProduceAsync(topic, message, cancellationToken).ConfigureAwait(false));
                }
                catch (ProduceException<byte[]?, byte[]?> ex) when (IsTooLarge(ex.Error.Code) && BoundedCopy(message) is { } copy)
                {
                    // The value is what makes it too large, and it would be refused the same way every time: write what fits.
                    ReliableTracing.DeadLetterSent(activity, await slot.Producer.ProduceAsync(topic, copy, cancellationToken).ConfigureAwait(false));
                    Log.DeadLetteredBoundedCopy(
                        consumer.Logger, consumer.Name, record.Topic, record.Partition.Value, record.Offset.Value, topic, ex.Error.Reason,
                        message.Value!.Length, message.Key?.Length ?? 0, SerializedSize(message.Headers), MaxMessageBytes, copy.Value!.Length);
                    ReliableMetrics.Add(consumer.Metrics.DeadLetteredTruncated, consumer, record.Topic);
                }
            }
            catch (Exception ex)
            {
                ReliableTracing.DeadLetterFailed(activity, ex);
                if (ex is KafkaException kafka && IsFatal(kafka.Error) && Retire(slot))
                {
                    Log.DeadLetterProducerFatal(consumer.Logger, consumer.Name, kafka.Error.Code, kafka.Error.Reason);
                }

                throw;
            }
        }
        finally
        {
            Release(slot);
        }
    }

    /// <summary>
    /// Writes a record to a given partition with the dead-letter producer (idempotent, acks=all) and waits for the
    /// acknowledgement; throws when it is not acknowledged (retry tiers write their copies this way). Throws
    /// <see cref="ObjectDisposedException"/> once disposed.
    /// </summary>
    public async Task<DeliveryResult<byte[]?, byte[]?>> ProduceToAsync(
        ConsumerContext consumer, TopicPartition partition, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken)
    {
        var slot = Acquire(consumer);
        try
        {
            return await slot.Producer.ProduceAsync(partition, message, cancellationToken).ConfigureAwait(false);
        }
        catch (KafkaException ex) when (IsFatal(ex.Error) && Retire(slot))
        {
            Log.DeadLetterProducerFatal(consumer.Logger, consumer.Name, ex.Error.Code, ex.Error.Reason);
            throw;
        }
        finally
        {
            Release(slot);
        }
    }

    /// <summary>
    /// Writes the record (<see cref="PublishAsync"/>) and, while it is not acknowledged, tries again after the consumer's retry
    /// backoff (<see cref="ReliableConsumerOptions.Retry"/>: its <see cref="RetryOptions.Delay"/>, <see cref="RetryOptions.MaxDelay"/>,
    /// <see cref="RetryOptions.BackoffType"/> and <see cref="RetryOptions.UseJitter"/>), for as long as it takes: a record
    /// counts as done only once the dead-letter topic has it. Meanwhile the consumer reports the dead-letter topic as not
    /// writable (health check) and each failure is logged (206) with the delay before the next attempt.
    /// </summary>
    /// <returns><see langword="true"/> once acknowledged; <see langword="false"/> when <paramref name="stop"/> fired or the publisher was disposed first (the record stays undone).</returns>
    public async ValueTask<bool> WriteUntilAcknowledgedAsync(
        ConsumerContext consumer, MessageContext context, ProcessingOutcome outcome, DateTimeOffset firstFailure, DateTimeOffset lastFailure, CancellationToken stop)
    {
        var pipeline = WriteRetry(consumer);
        var write = new PendingWrite(this, consumer, context, outcome, firstFailure, lastFailure);
        var resilience = ResilienceContextPool.Shared.Get(stop);
        resilience.Properties.Set(PendingWrite.Key, write);
        try
        {
            await pipeline.ExecuteAsync(
                static (resilience, write) => new ValueTask(write.Publisher.PublishAsync(write.Consumer, write.Context, write.Outcome, write.FirstFailure, write.LastFailure, resilience.CancellationToken)),
                resilience,
                write).ConfigureAwait(false);
            return true;
        }
        catch (Exception) when (stop.IsCancellationRequested)
        {
            // Stopped: a cancelled wait, or a refused write the retry does not try again once stopped. Either way the record
            // is left undone, and read again by whoever owns the partition next.
            return false;
        }
        catch (ObjectDisposedException)
        {
            // The consumer is stopping and closed its dead-letter producer: the record is left undone.
            return false;
        }
        finally
        {
            ResilienceContextPool.Shared.Return(resilience);
            if (write.Failing)
            {
                consumer.DeadLetterRecovered();
            }
        }
    }

    /// <summary>
    /// The retry strategy between dead-letter write attempts: Polly's retry with the consumer's <see cref="RetryOptions"/>
    /// (delay, cap, backoff type, jitter) and time provider, retrying every failure but a stop or a disposed publisher, without
    /// an attempt limit.
    /// </summary>
    internal static RetryStrategyOptions WriteRetryOptions(RetryOptions retry) => new()
    {
        Name = "dead-letter-write",
        MaxRetryAttempts = int.MaxValue,
        Delay = retry.Delay,
        MaxDelay = retry.MaxDelay,
        BackoffType = retry.BackoffType,
        UseJitter = retry.UseJitter,
        ShouldHandle = static args => new ValueTask<bool>(args.Outcome.Exception switch
        {
            null or ObjectDisposedException => false,
            OperationCanceledException when args.Context.CancellationToken.IsCancellationRequested => false,
            _ => true,
        }),
        OnRetry = static args =>
        {
            if (args.Context.Properties.TryGetValue(PendingWrite.Key, out var write))
            {
                write.Failed(args.Outcome.Exception!, args.RetryDelay);
            }

            return default;
        },
    };

    private ResiliencePipeline WriteRetry(ConsumerContext consumer)
    {
        if (Volatile.Read(ref _writeRetry) is { } pipeline)
        {
            return pipeline;
        }

        var built = new ResiliencePipelineBuilder { Name = "Kafka.Reliable.DeadLetter." + consumer.Name, TimeProvider = consumer.Time }
            .AddRetry(WriteRetryOptions(consumer.Options.Retry))
            .Build();
        return Interlocked.CompareExchange(ref _writeRetry, built, null) ?? built;
    }

    /// <summary>Disposes every producer (the current one after flushing what it still has to send); later writes throw.</summary>
    public void Dispose()
    {
        ProducerSlot[] closing;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _current = null;
            closing = [.. _open];
            _open.Clear();
        }

        foreach (var slot in closing)
        {
            Close(slot, flush: slot is { FatalError: null, Retired: false });
        }
    }

    internal static string StageName(ProcessingStage stage) => stage switch
    {
        ProcessingStage.Deserialize => "deserialize",
        ProcessingStage.Translate => "translate",
        ProcessingStage.Handle => "handle",
        _ => "none",
    };

    /// <summary>Errors that say the record is too large for the producer or the topic, and will be every time it is sent.</summary>
    internal static bool IsTooLarge(ErrorCode code) => code is ErrorCode.MsgSizeTooLarge or ErrorCode.RecordListTooLarge;

    private static bool IsFatal(Error error) => error.IsFatal || error.Code == ErrorCode.Local_Fatal;

    /// <summary>Gets the producer for one write, creating it (once) if there is none, or none that works.</summary>
    private ProducerSlot Acquire(ConsumerContext consumer)
    {
        Error? replaced = null;
        ProducerSlot? unused = null;
        ProducerSlot slot;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _consumer ??= consumer;
            if (_current is { FatalError: { } error } fatal)
            {
                // It reported a fatal error through its error handler: no write on it can succeed any more.
                replaced = error;
                fatal.Retired = true;
                _current = null;
                if (fatal.Users == 0 && _open.Remove(fatal))
                {
                    unused = fatal;
                }
            }

            if (_current is null)
            {
                // Under the lock: concurrent first dead letters wait for this one producer instead of each building one.
                _current = new ProducerSlot(_factory(Config));
                _open.Add(_current);
            }

            slot = _current;
            slot.Users++;
        }

        if (replaced is not null)
        {
            Log.DeadLetterProducerFatal(consumer.Logger, consumer.Name, replaced.Code, replaced.Reason);
        }

        if (unused is not null)
        {
            Close(unused, flush: false);
        }

        return slot;
    }

    /// <summary>Ends one write's use of a producer, and disposes the producer if it was replaced and this was its last write.</summary>
    private void Release(ProducerSlot slot)
    {
        lock (_gate)
        {
            slot.Users--;
            if (!slot.Retired || slot.Users > 0 || !_open.Remove(slot))
            {
                return;
            }
        }

        Close(slot, flush: false);
    }

    /// <summary>Takes a producer that hit a fatal error out of use; the next write creates a new one.</summary>
    /// <returns><see langword="true"/> when this call retired it (another write may have seen the same error first).</returns>
    private bool Retire(ProducerSlot slot)
    {
        lock (_gate)
        {
            if (slot.Retired || _disposed)
            {
                return false;
            }

            slot.Retired = true;
            if (ReferenceEquals(_current, slot))
            {
                _current = null;
            }

            // Disposed when the last write using it (the caller's, at least) releases it.
            return true;
        }
    }

    private static void Close(ProducerSlot slot, bool flush)
    {
        try
        {
            if (flush)
            {
                // Give the writes still in flight their chance to be acknowledged.
                slot.Producer.Flush(DisposeFlushTimeout);
            }
        }
        catch (KafkaException)
        {
            // Disposed below all the same.
        }
        finally
        {
            slot.Producer.Dispose();
        }
    }

    /// <summary>
    /// The producer's error handler (on its poll thread): a fatal error marks it for replacement by the next write; other
    /// errors, which librdkafka retries itself (a broker down, a connection lost), are logged: they say why writes are slow
    /// or fail.
    /// </summary>
    internal void OnProducerError(IProducer<byte[]?, byte[]?> producer, Error error)
    {
        if (!error.IsFatal)
        {
            if (Volatile.Read(ref _consumer) is { } consumer)
            {
                Log.DeadLetterProducerError(consumer.Logger, consumer.Name, error.Code, error.Reason);
            }

            return;
        }

        lock (_gate)
        {
            foreach (var slot in _open)
            {
                if (ReferenceEquals(slot.Producer, producer))
                {
                    slot.FatalError ??= error;
                }
            }
        }
    }

    private IProducer<byte[]?, byte[]?> Build(ProducerConfig config) =>
        new ProducerBuilder<byte[]?, byte[]?>(config).SetErrorHandler(OnProducerError).SetLogHandler(OnProducerLog).Build();

    private void OnProducerLog(IProducer<byte[]?, byte[]?> producer, LogMessage message)
    {
        if (Volatile.Read(ref _consumer) is { } consumer)
        {
            ClientLogs.Forward(consumer.Logger, consumer.Name, message);
        }
    }

    private Headers ProvenanceHeaders(MessageContext context, ProcessingOutcome outcome, DateTimeOffset firstFailure, DateTimeOffset lastFailure)
    {
        var record = context.Record!;
        var headers = new Headers();
        if (record.Message.Headers is { } original)
        {
            foreach (var header in original)
            {
                headers.Add(header.Key, header.GetValueBytes());
            }
        }

        var exception = outcome.Exception!;
        Add(headers, DeadLetterHeaders.OriginalTopic, record.Topic);
        Add(headers, DeadLetterHeaders.OriginalPartition, record.Partition.Value.ToString(CultureInfo.InvariantCulture));
        Add(headers, DeadLetterHeaders.OriginalOffset, record.Offset.Value.ToString(CultureInfo.InvariantCulture));
        Add(headers, DeadLetterHeaders.OriginalTimestamp, record.Message.Timestamp.UnixTimestampMs.ToString(CultureInfo.InvariantCulture));
        if (record.Message.Key is { } key)
        {
            headers.Add(DeadLetterHeaders.OriginalKey, key);
        }

        headers.Add(DeadLetterHeaders.ConsumerGroup, _group);
        Add(headers, DeadLetterHeaders.FailureStage, StageName(outcome.FailedStage));
        Add(headers, DeadLetterHeaders.ExceptionType, exception.GetType().FullName ?? exception.GetType().Name);
        Add(headers, DeadLetterHeaders.ExceptionMessage, Truncate(exception.Message));
        Add(headers, DeadLetterHeaders.Attempts, context.Attempt.ToString(CultureInfo.InvariantCulture));
        Add(headers, DeadLetterHeaders.FirstFailure, firstFailure.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
        Add(headers, DeadLetterHeaders.LastFailure, lastFailure.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
        if (context.FailedInBatch > 0)
        {
            Add(headers, DeadLetterHeaders.FailedInBatch, context.FailedInBatch.ToString(CultureInfo.InvariantCulture));
        }

        if (context.RetryHistory is { } history)
        {
            // A record dead-lettered from a retry tier: the failure of each tier it went through.
            foreach (var line in history)
            {
                Add(headers, RetryTierHeaders.History, line);
            }

            Add(headers, RetryTierHeaders.Tier, context.RetryTier.ToString(CultureInfo.InvariantCulture));
        }

        if (exception is IDeadLetterHeaderSource source)
        {
            AddFrom(headers, source);
        }
        if (_options.IncludeStackTrace && exception.StackTrace is { } stackTrace)
        {
            Add(headers, DeadLetterHeaders.ExceptionStackTrace, Truncate(stackTrace));
        }

        return headers;
    }

    /// <summary>
    /// The record with its value cut so that the whole fits under the smaller of the producer's <c>message.max.bytes</c> and
    /// <see cref="DeadLetterConstants.MaxBoundedCopyBytes"/> (which Kafka's default topic limit takes), and the original value's
    /// length in <see cref="DeadLetterHeaders.ValueTruncated"/>. Null when cutting the value would not make it fit: the
    /// value is not what is too large.
    /// </summary>
    internal Message<byte[]?, byte[]?>? BoundedCopy(Message<byte[]?, byte[]?> message)
    {
        if (message.Value is not { } value)
        {
            return null;
        }

        var headers = new Headers();
        foreach (var header in message.Headers)
        {
            headers.Add(header.Key, header.GetValueBytes());
        }

        Add(headers, DeadLetterHeaders.ValueTruncated, value.Length.ToString(CultureInfo.InvariantCulture));
        var limit = Math.Min(MaxMessageBytes, DeadLetterConstants.MaxBoundedCopyBytes);
        var room = (long)limit - DeadLetterConstants.FramingBytes - (message.Key?.Length ?? 0) - SerializedSize(headers);
        if (room < 0 || room >= value.Length)
        {
            return null;
        }

        return new Message<byte[]?, byte[]?> { Key = message.Key, Value = value[..(int)room], Headers = headers };
    }

    /// <summary>An upper bound of the headers' size on the wire: names, values, and a length prefix (varint) for each.</summary>
    private static int SerializedSize(Headers headers)
    {
        var size = 0;
        foreach (var header in headers)
        {
            size += Encoding.UTF8.GetByteCount(header.Key) + (header.GetValueBytes()?.Length ?? 0) + 10;
        }

        return size;
    }

    private static void Add(Headers headers, string key, string value) => headers.Add(key, Encoding.UTF8.GetBytes(value));

    /// <summary>Adds the headers an exception gives about its failure; a source that fails to give them adds nothing (the dead letter is written anyway).</summary>
    private static void AddFrom(Headers headers, IDeadLetterHeaderSource source)
    {
        IReadOnlyList<KeyValuePair<string, string>> extra;
        try
        {
            extra = source.DeadLetterHeaders;
        }
        catch (Exception)
        {
            return;
        }

        foreach (var (key, value) in extra)
        {
            if (!string.IsNullOrEmpty(key) && value is not null)
            {
                Add(headers, key, Truncate(value));
            }
        }
    }

    private static string Truncate(string text) =>
        text.Length <= DeadLetterConstants.MaxMessageLength ? text : text[..DeadLetterConstants.MaxMessageLength];

    /// <summary>One record's dead-letter write, carried through the retry pipeline's context to its retry callback.</summary>
    private sealed class PendingWrite(
        DeadLetterPublisher publisher, ConsumerContext consumer, MessageContext context, ProcessingOutcome outcome, DateTimeOffset firstFailure, DateTimeOffset lastFailure)
    {
        public static readonly ResiliencePropertyKey<PendingWrite> Key = new("Kafka.Reliable.DeadLetterWrite");

        public DeadLetterPublisher Publisher { get; } = publisher;

        public ConsumerContext Consumer { get; } = consumer;

        public MessageContext Context { get; } = context;

        public ProcessingOutcome Outcome { get; } = outcome;

        public DateTimeOffset FirstFailure { get; } = firstFailure;

        public DateTimeOffset LastFailure { get; } = lastFailure;

        /// <summary>Gets a value indicating whether a write attempt failed (the consumer then reports the dead-letter topic as not writable until this write ends).</summary>
        public bool Failing { get; private set; }

        /// <summary>Not acknowledged: the record is not done, so its partition does not advance past it; the next attempt follows the delay.</summary>
        public void Failed(Exception exception, TimeSpan delay)
        {
            if (!Failing)
            {
                Failing = true;
                Consumer.DeadLetterFailed();
            }

            var record = Context.Record!;
            Log.DeadLetterFailed(
                Consumer.Logger, Consumer.Name, record.Topic, record.Partition.Value, record.Offset.Value, Publisher.TopicFor(record.Topic), exception.Message, delay);
        }
    }

    /// <summary>A producer and the writes using it; guarded by the publisher's lock.</summary>
    private sealed class ProducerSlot(IProducer<byte[]?, byte[]?> producer)
    {
        public IProducer<byte[]?, byte[]?> Producer { get; } = producer;

        /// <summary>Gets or sets how many writes are using the producer now.</summary>
        public int Users { get; set; }

        /// <summary>Gets or sets a value indicating whether the producer was replaced; it is disposed when its last write releases it.</summary>
        public bool Retired { get; set; }

        /// <summary>Gets or sets the fatal error the producer reported through its error handler; null while it has none.</summary>
        public Error? FatalError { get; set; }
    }
}
