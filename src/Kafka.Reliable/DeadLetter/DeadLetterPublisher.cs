using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Pipeline;

namespace Kafka.Reliable.DeadLetter;

/// <summary>
/// Writes rejected records to the dead-letter topic with an idempotent, acks=all producer. One per consumer, shared by its
/// partition workers (the Confluent producer is thread-safe). Only failures reach it, so it is off the hot path.
/// </summary>
internal sealed class DeadLetterPublisher : IDisposable
{
    private readonly ProducerConfig _config;
    private IProducer<byte[]?, byte[]?>? _producer;
    private readonly DeadLetterOptions _options;
    private readonly byte[] _group;

    public DeadLetterPublisher(ReliableConsumerOptions options, string clientId)
    {
        _options = options.DeadLetter;
        _group = Encoding.UTF8.GetBytes(options.GroupId);
        var config = Consuming.OwnedProducers.Config(options);
        config.ClientId = clientId + "-dlq";
        config.MessageTimeoutMs = DeadLetterConstants.DeliveryTimeoutMs;
        _config = config;
    }

    /// <summary>Gets the producer, created on the first dead letter: most consumers never need one.</summary>
    private IProducer<byte[]?, byte[]?> Producer =>
        LazyInitializer.EnsureInitialized(ref _producer, () => new ProducerBuilder<byte[]?, byte[]?>(_config).Build());

    public string TopicFor(string originalTopic) =>
        _options.Topic.Replace(DeadLetterConstants.TopicPlaceholder, originalTopic, StringComparison.Ordinal);

    /// <summary>Writes the record and waits for the acknowledgement; throws when it is not acknowledged.</summary>
    public async Task PublishAsync(MessageContext context, ProcessingOutcome outcome, DateTimeOffset firstFailure, DateTimeOffset lastFailure, CancellationToken cancellationToken)
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
        if (_options.IncludeStackTrace && exception.StackTrace is { } stackTrace)
        {
            Add(headers, DeadLetterHeaders.ExceptionStackTrace, Truncate(stackTrace));
        }

        var message = new Message<byte[]?, byte[]?>
        {
            Key = record.Message.Key,
            Value = record.Message.Value,
            Headers = headers,
        };
        var topic = TopicFor(record.Topic);
        using var activity = ReliableTracing.StartDeadLetter(topic, headers);
        try
        {
            await Producer.ProduceAsync(topic, message, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, ex.Message);
            throw;
        }
    }

    public void Dispose()
    {
        if (_producer is { } producer)
        {
            producer.Flush(TimeSpan.FromSeconds(5));
            producer.Dispose();
        }
    }

    internal static string StageName(ProcessingStage stage) => stage switch
    {
        ProcessingStage.Deserialize => "deserialize",
        ProcessingStage.Translate => "translate",
        ProcessingStage.Handle => "handle",
        _ => "none",
    };

    private static void Add(Headers headers, string key, string value) => headers.Add(key, Encoding.UTF8.GetBytes(value));

    private static string Truncate(string text) =>
        text.Length <= DeadLetterConstants.MaxMessageLength ? text : text[..DeadLetterConstants.MaxMessageLength];
}
