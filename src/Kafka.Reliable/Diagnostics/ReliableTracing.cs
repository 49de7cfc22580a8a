using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Unicode;
using Confluent.Kafka;
using static Kafka.Reliable.Diagnostics.SemanticConventions;

namespace Kafka.Reliable.Diagnostics;

/// <summary>
/// Spans on the activity source <see cref="KafkaReliableDiagnostics.ActivitySourceName"/>, following OpenTelemetry's
/// messaging conventions: one <c>process {topic}</c> consumer span per record, continuing the producer's trace from the
/// record's W3C <c>traceparent</c> header, with an event per failed attempt; a <c>send {dead-letter topic}</c> producer
/// span for a dead letter, whose context the dead-letter record carries on. Nothing is created while nobody listens.
/// </summary>
internal static class ReliableTracing
{
    public const string TraceParentHeader = "traceparent";
    public const string TraceStateHeader = "tracestate";

    /// <summary>Set (true) on the span of a record run from a retry tier.</summary>
    public const string RetryTierTag = "kafka.reliable.retry";

    /// <summary>The tier a record was parked in by the span's run (0: behind an earlier record of its key).</summary>
    public const string ParkedTierTag = "kafka.reliable.parked_tier";

    private static readonly ActivitySource Source = new(KafkaReliableDiagnostics.ActivitySourceName, typeof(ReliableTracing).Assembly.GetName().Version?.ToString());

    /// <param name="record">The record (for a record parked in a retry tier, the original record rebuilt from its copy).</param>
    /// <param name="partition">The partition's tags.</param>
    /// <param name="parkedBy">For a record run from a retry tier, the trace context of the span that parked it: the new span links to it.</param>
    public static Activity? StartProcess(ConsumeResult<byte[]?, byte[]?> record, PartitionTelemetry partition, string? parkedBy = null)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        ActivityContext.TryParse(Header(record, TraceParentHeader), Header(record, TraceStateHeader), out var parent);
        ActivityLink[]? links = parkedBy is not null && ActivityContext.TryParse(parkedBy, null, out var parking) ? [new ActivityLink(parking)] : null;

        // The attributes that samplers may look at are given at creation: system, operation, topic, partition, server.
        var activity = Source.StartActivity(ActivityKind.Consumer, parent, partition.SpanTags, links, name: partition.ProcessSpanName);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(KafkaOffset, record.Offset.Value);
            SetMessageTags(activity, record.Message.Key, record.Message.Value);
            if (parkedBy is not null)
            {
                activity.SetTag(RetryTierTag, true);
            }
        }

        return activity;
    }

    /// <summary>
    /// Starts the span of a batch handed to a batch handler: one <c>process</c> span per batch, a root with a link to each
    /// record's producer context (the messaging conventions' batch pattern), and the batch's size.
    /// </summary>
    public static Activity? StartBatch(MessageContext[] contexts, ArraySegment<int> group, PartitionTelemetry partition)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var links = new List<ActivityLink>(group.Count);
        foreach (var index in group)
        {
            var record = contexts[index].Record!;
            if (ActivityContext.TryParse(Header(record, TraceParentHeader), Header(record, TraceStateHeader), out var producer))
            {
                links.Add(new ActivityLink(producer));
            }
        }

        var activity = Source.StartActivity(ActivityKind.Consumer, default(ActivityContext), partition.SpanTags, links, name: partition.ProcessSpanName);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(MessagingBatchMessageCount, group.Count);
            activity.SetTag(KafkaOffset, contexts[group[0]].Offset);
        }

        return activity;
    }

    /// <summary>Marks a record's span as parked in a retry tier (0: behind an earlier record of its key).</summary>
    public static void Parked(Activity? activity, int tier)
    {
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(ParkedTierTag, tier);
        }
    }

    public static void AttemptFailed(Activity? activity, int attempt, string stage, Exception exception, FailureKind kind)
    {
        if (activity is not { IsAllDataRequested: true })
        {
            return;
        }

        activity.AddEvent(new ActivityEvent("exception", tags: new ActivityTagsCollection
        {
            ["exception.type"] = exception.GetType().FullName,
            ["exception.message"] = exception.Message,
            ["kafka.reliable.attempt"] = attempt,
            ["kafka.reliable.stage"] = stage,
            ["kafka.reliable.failure_kind"] = kind.ToString(),
        }));
    }

    public static void Finished(Activity? activity, int attempts, bool deadLettered, Exception? exception)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetTag("kafka.reliable.attempts", attempts);
        if (deadLettered)
        {
            activity.SetTag("kafka.reliable.dead_lettered", true);
            activity.SetTag(ErrorType, exception is null ? "_OTHER" : ReliableMetrics.ErrorTypeOf(exception));
            activity.SetStatus(ActivityStatusCode.Error, exception?.Message);
        }
    }

    /// <summary>
    /// Starts the span of a dead-letter write, a child of the record's processing span, and writes its context into the dead
    /// letter's headers.
    /// </summary>
    /// <param name="deadLetterTopic">The dead-letter topic.</param>
    /// <param name="message">The dead letter; its headers get the span's context.</param>
    /// <param name="producer">The dead-letter producer's settings: its client id and bootstrap servers.</param>
    public static Activity? StartDeadLetter(string deadLetterTopic, Message<byte[]?, byte[]?> message, ProducerConfig producer)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var tags = new List<KeyValuePair<string, object?>>(8)
        {
            new(MessagingSystem, MessagingSystemKafka),
            new(OperationName, Send),
            new(OperationType, Send),
            new(DestinationName, deadLetterTopic),
        };
        ConsumerTelemetry.AddServer(tags, BootstrapServer.Parse(producer.BootstrapServers));
        var activity = Source.StartActivity(ActivityKind.Producer, default(ActivityContext), tags, name: Send + " " + deadLetterTopic);
        if (activity is null)
        {
            return null;
        }

        if (activity.IsAllDataRequested)
        {
            if (producer.ClientId is { Length: > 0 } clientId)
            {
                activity.SetTag(ClientId, clientId);
            }

            SetMessageTags(activity, message.Key, message.Value);
        }

        var headers = message.Headers;
        headers.Remove(TraceParentHeader);
        headers.Remove(TraceStateHeader);
        headers.Add(TraceParentHeader, Encoding.ASCII.GetBytes(activity.Id!));
        if (activity.TraceStateString is { Length: > 0 } state)
        {
            headers.Add(TraceStateHeader, Encoding.ASCII.GetBytes(state));
        }

        return activity;
    }

    /// <summary>Completes a dead-letter span with where the dead letter was written.</summary>
    public static void DeadLetterSent(Activity? activity, DeliveryResult<byte[]?, byte[]?> delivered)
    {
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(PartitionId, delivered.Partition.Value.ToString(CultureInfo.InvariantCulture));
            activity.SetTag(KafkaOffset, delivered.Offset.Value);
        }
    }

    /// <summary>Marks a dead-letter span as failed: <c>error.type</c> is the Kafka error code's name, or the exception's type.</summary>
    public static void DeadLetterFailed(Activity? activity, Exception exception)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetTag(ErrorType, exception is KafkaException kafka ? kafka.Error.Code.ToString() : ReliableMetrics.ErrorTypeOf(exception));
        activity.SetStatus(ActivityStatusCode.Error, exception.Message);
    }

    /// <summary>
    /// The conventions' key text: the key decoded as UTF-8 when it is text (valid UTF-8 without control characters); null for
    /// a binary key, which has no unambiguous string form and is left out rather than shown as garbage.
    /// </summary>
    internal static string? KeyText(byte[] key)
    {
        if (!Utf8.IsValid(key))
        {
            return null;
        }

        var text = Encoding.UTF8.GetString(key);
        foreach (var c in text)
        {
            if (char.IsControl(c))
            {
                return null;
            }
        }

        return text;
    }

    private static void SetMessageTags(Activity activity, byte[]? key, byte[]? value)
    {
        if (key is not null && KeyText(key) is { } text)
        {
            activity.SetTag(KafkaMessageKey, text);
        }

        if (value is null)
        {
            activity.SetTag(KafkaTombstone, true);
        }
    }

    private static string? Header(ConsumeResult<byte[]?, byte[]?> record, string name) =>
        record.Message.Headers is { } headers && headers.TryGetLastBytes(name, out var value) ? Encoding.ASCII.GetString(value) : null;
}
