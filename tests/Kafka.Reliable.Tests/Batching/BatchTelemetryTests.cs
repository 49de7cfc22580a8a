using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Batching;

public sealed class BatchTelemetryTests(KafkaBrokerFixture broker)
{
    /// <summary>A batch of one partition's records is tagged with the partition; a batch across partitions with its topic alone.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Batch_HasOneProcessSpanLinkedToEveryProducer_AndItsSizeAndDurationAreMeasured(bool acrossPartitions)
    {
        var partitions = acrossPartitions ? 3 : 1;
        var topic = await broker.CreateTopicAsync(partitions);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var producers = Enumerable.Range(0, 3).Select(_ => (Trace: ActivityTraceId.CreateRandom(), Span: ActivitySpanId.CreateRandom())).ToList();
        await broker.ProduceMessagesAsync(topic, producers.Select((p, id) => (id % partitions, new Message<byte[]?, byte[]?>
        {
            Key = Encoding.UTF8.GetBytes($"order-{id}"),
            Value = Encoding.UTF8.GetBytes($"{{\"Id\":{id},\"Key\":\"order-{id}\"}}"),
            Headers = new Headers { { "traceparent", Encoding.ASCII.GetBytes($"00-{p.Trace}-{p.Span}-01") } },
        })));
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == KafkaReliableDiagnostics.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if ((string?)activity.GetTagItem("messaging.consumer.group.name") == group)
                {
                    spans.Enqueue(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        using var meters = new TestMeters();
        var sizes = meters.Collect<int>("kafka.reliable.batch.size");
        var durations = meters.Collect<double>("kafka.reliable.batch.duration");
        var consumed = meters.Collect<long>("messaging.client.consumed.messages");
        var processed = meters.Collect<long>("kafka.reliable.records.processed");

        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, configure: o =>
        {
            o.Batch.Linger = TimeSpan.FromSeconds(10);
            o.Batch.MaxSize = 3;
            o.Batch.AcrossPartitions = acrossPartitions;
        }, services: meters.Use);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, partitions).Values.Sum() == 3, "the three records are committed");
        await Eventually.TrueAsync(() => !spans.IsEmpty, "the batch's span is recorded");

        var span = Assert.Single(spans);
        Assert.Equal(ActivityKind.Consumer, span.Kind);
        Assert.Equal($"process {topic}", span.DisplayName);
        Assert.Null(span.Parent);
        Assert.Equal(default, span.ParentSpanId);
        Assert.Equal(3, span.GetTagItem("messaging.batch.message_count"));
        Assert.Equal(producers.Select(p => $"{p.Trace}-{p.Span}").Order(), span.Links.Select(l => $"{l.Context.TraceId}-{l.Context.SpanId}").Order());
        Assert.Equal(topic, span.GetTagItem("messaging.destination.name"));
        Assert.Equal(acrossPartitions ? null : "0", span.GetTagItem("messaging.destination.partition.id"));
        Assert.Equal([3], sizes.GetMeasurementSnapshot().Select(m => m.Value));
        Assert.Equal(1, durations.Count());
        Assert.Equal(3, consumed.Sum());
        Assert.Equal(3, processed.Sum());
    }
}
