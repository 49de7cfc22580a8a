using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Diagnostics;

public sealed class TracingTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task ProcessSpans_ContinueTheProducersTrace_FollowTheConventions_ShowRetries_AndLinkTheDeadLettersSendSpan()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var traceId = ActivityTraceId.CreateRandom();
        var parentSpanId = ActivitySpanId.CreateRandom();
        Message<byte[]?, byte[]?> Record(int id) => new()
        {
            Key = Encoding.UTF8.GetBytes($"order-{id}"),
            Value = Encoding.UTF8.GetBytes($"{{\"Id\":{id},\"Key\":\"order-{id}\"}}"),
            Headers = new Headers { { "traceparent", Encoding.ASCII.GetBytes($"00-{traceId}-{parentSpanId}-01") } },
        };
        // Record 3's key is binary (not UTF-8 text): it is left out of the span, not decoded as garbage.
        var binary = Record(3);
        binary.Key = [0xFF, 0x00, 0xC3, 0x28];
        await broker.ProduceMessagesAsync(topic, [(0, Record(0)), (0, Record(1)), (0, Record(2)), (0, binary)]);
        using var spans = new GroupSpans(group);
        var handler = new RecordingHandler
        {
            // Record 1 fails once (transient), record 2 is rejected (fatal, dead-lettered).
            Behavior = (message, context, _) => message.Id switch
            {
                1 when context.Attempt == 1 => throw new TimeoutException("slow database"),
                2 => throw new NonRetryableException("order 2 is invalid"),
                _ => ValueTask.CompletedTask,
            },
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 4, "the four records are committed");
        await Eventually.TrueAsync(() => spans.Process.Count == 4 && spans.Send.Count == 1, "four process spans and one dead-letter span are recorded");
        var server = BootstrapServer.Parse(broker.BootstrapServers)!.Value;

        var process = spans.Process.OrderBy(a => (long)a.GetTagItem("messaging.kafka.offset")!).ToList();
        Assert.All(process, span =>
        {
            Assert.Equal(ActivityKind.Consumer, span.Kind);
            Assert.Equal($"process {topic}", span.DisplayName);
            Assert.Equal(traceId, span.TraceId);
            Assert.Equal(parentSpanId, span.ParentSpanId);
            Assert.Equal("kafka", span.GetTagItem("messaging.system"));
            Assert.Equal("process", span.GetTagItem("messaging.operation.type"));
            Assert.Equal("process", span.GetTagItem("messaging.operation.name"));
            Assert.Equal(topic, span.GetTagItem("messaging.destination.name"));
            Assert.Equal("0", span.GetTagItem("messaging.destination.partition.id"));
            Assert.Equal(group, span.GetTagItem("messaging.consumer.group.name"));
            Assert.Equal("test", span.GetTagItem("messaging.client.id"));
            Assert.Equal(server.Address, span.GetTagItem("server.address"));
            Assert.Equal(server.Port, span.GetTagItem("server.port"));
            Assert.Null(span.GetTagItem("messaging.kafka.message.tombstone"));
        });
        Assert.Equal("order-0", process[0].GetTagItem("messaging.kafka.message.key"));
        Assert.Equal(ActivityStatusCode.Unset, process[0].Status);
        Assert.Empty(process[0].Events);
        Assert.Null(process[3].GetTagItem("messaging.kafka.message.key"));
        Assert.Equal(ActivityStatusCode.Unset, process[3].Status);

        Assert.Equal(2, process[1].GetTagItem("kafka.reliable.attempts"));
        var retry = Assert.Single(process[1].Events);
        Assert.Equal(typeof(TimeoutException).FullName, retry.Tags.Single(t => t.Key == "exception.type").Value);
        Assert.NotEqual(ActivityStatusCode.Error, process[1].Status);

        Assert.Equal(ActivityStatusCode.Error, process[2].Status);
        Assert.Equal(typeof(NonRetryableException).FullName, process[2].GetTagItem("error.type"));
        var send = Assert.Single(spans.Send);
        Assert.Equal(ActivityKind.Producer, send.Kind);
        Assert.Equal(process[2].SpanId, send.ParentSpanId);
        Assert.Equal($"send {topic}.dlq", send.DisplayName);
        Assert.Equal("kafka", send.GetTagItem("messaging.system"));
        Assert.Equal("send", send.GetTagItem("messaging.operation.name"));
        Assert.Equal("send", send.GetTagItem("messaging.operation.type"));
        Assert.Equal(topic + ".dlq", send.GetTagItem("messaging.destination.name"));
        Assert.Equal("0", send.GetTagItem("messaging.destination.partition.id"));
        Assert.Equal(0L, send.GetTagItem("messaging.kafka.offset"));
        Assert.Equal("order-2", send.GetTagItem("messaging.kafka.message.key"));
        Assert.Equal("test-dlq", send.GetTagItem("messaging.client.id"));
        Assert.Equal(server.Address, send.GetTagItem("server.address"));
        Assert.Equal(server.Port, send.GetTagItem("server.port"));
        Assert.Equal(ActivityStatusCode.Unset, send.Status);

        // The dead letter carries the trace on: its traceparent is the dead-letter span's.
        var dead = Assert.Single(broker.ReadAll(topic + ".dlq", 1, expected: 1));
        Assert.Equal(send.Id, Encoding.ASCII.GetString(dead.Message.Headers.GetLastBytes("traceparent")));
    }

    /// <summary>Records the library's spans of one consumer group (tests run side by side).</summary>
    private sealed class GroupSpans : IDisposable
    {
        private readonly ActivityListener _listener;
        private readonly ConcurrentQueue<Activity> _all = new();

        public GroupSpans(string group)
        {
            _listener = new ActivityListener
            {
                ShouldListenTo = source => source.Name == KafkaReliableDiagnostics.ActivitySourceName,
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = activity => _all.Enqueue(activity),
            };
            ActivitySource.AddActivityListener(_listener);
            Group = group;
        }

        public string Group { get; }

        public List<Activity> Process => _all.Where(a => a.Kind == ActivityKind.Consumer && (string?)a.GetTagItem("messaging.consumer.group.name") == Group).ToList();

        public List<Activity> Send => _all.Where(a => a.Kind == ActivityKind.Producer && Process.Any(p => p.SpanId == a.ParentSpanId)).ToList();

        public void Dispose() => _listener.Dispose();
    }
}
