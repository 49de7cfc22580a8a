using System.Diagnostics;
using System.Globalization;
using System.Text;
using Confluent.Kafka;

namespace Kafka.Reliable.Diagnostics;

/// <summary>
/// Spans on the activity source <see cref="KafkaReliableDiagnostics.ActivitySourceName"/>, following OpenTelemetry's
/// messaging conventions: one <c>process {topic}</c> consumer span per record, continuing the producer's trace from the
/// record's W3C <c>traceparent</c> header, with an event per failed attempt; a <c>publish {dead-letter topic}</c> producer
/// span for a dead letter, whose context the dead-letter record carries on. Nothing is created while nobody listens.
/// </summary>
internal static class ReliableTracing
{
    public const string TraceParentHeader = "traceparent";
    public const string TraceStateHeader = "tracestate";

    private static readonly ActivitySource Source = new(KafkaReliableDiagnostics.ActivitySourceName, typeof(ReliableTracing).Assembly.GetName().Version?.ToString());

    public static Activity? StartProcess(ConsumeResult<byte[]?, byte[]?> record, string groupId)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        ActivityContext.TryParse(Header(record, TraceParentHeader), Header(record, TraceStateHeader), out var parent);
        var activity = Source.StartActivity("process " + record.Topic, ActivityKind.Consumer, parent);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("messaging.system", "kafka");
            activity.SetTag("messaging.operation.type", "process");
            activity.SetTag("messaging.operation.name", "process");
            activity.SetTag("messaging.destination.name", record.Topic);
            activity.SetTag("messaging.destination.partition.id", record.Partition.Value.ToString(CultureInfo.InvariantCulture));
            activity.SetTag("messaging.kafka.offset", record.Offset.Value);
            activity.SetTag("messaging.consumer.group.name", groupId);
            if (record.Message.Key is { } key)
            {
                activity.SetTag("messaging.kafka.message.key", Encoding.UTF8.GetString(key));
            }

            if (record.Message.Value is { } value)
            {
                activity.SetTag("messaging.message.body.size", value.Length);
            }
        }

        return activity;
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
            activity.SetTag("error.type", exception?.GetType().FullName);
            activity.SetStatus(ActivityStatusCode.Error, exception?.Message);
        }
    }

    /// <summary>Starts the span of a dead-letter write, a child of the record's processing span, and writes its context into the dead letter's headers.</summary>
    public static Activity? StartDeadLetter(string deadLetterTopic, Headers headers)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var activity = Source.StartActivity("publish " + deadLetterTopic, ActivityKind.Producer);
        if (activity is null)
        {
            return null;
        }

        activity.SetTag("messaging.system", "kafka");
        activity.SetTag("messaging.operation.type", "publish");
        activity.SetTag("messaging.destination.name", deadLetterTopic);
        headers.Remove(TraceParentHeader);
        headers.Remove(TraceStateHeader);
        headers.Add(TraceParentHeader, Encoding.ASCII.GetBytes(activity.Id!));
        if (activity.TraceStateString is { Length: > 0 } state)
        {
            headers.Add(TraceStateHeader, Encoding.ASCII.GetBytes(state));
        }

        return activity;
    }

    private static string? Header(ConsumeResult<byte[]?, byte[]?> record, string name) =>
        record.Message.Headers is { } headers && headers.TryGetLastBytes(name, out var value) ? Encoding.ASCII.GetString(value) : null;
}
