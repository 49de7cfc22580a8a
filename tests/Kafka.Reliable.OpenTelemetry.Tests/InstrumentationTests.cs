using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Kafka.Reliable.OpenTelemetry.Tests;

public sealed record Order(int Id);

public sealed class OrderHandler : IMessageHandler<Order>
{
    public ValueTask HandleAsync(Order message, MessageContext context, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}

public sealed class InstrumentationTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task AddKafkaReliableInstrumentation_SpansAndMetricsOfAConsumer_ReachTheInMemoryExporters()
    {
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = "orders-" + Guid.NewGuid().ToString("N");
        var group = "g-" + Guid.NewGuid().ToString("N");
        cluster.CreateTopic(topic);
        cluster.CreateTopic(topic + ".dlq");
        await cluster.ProduceAllAsync(
            topic,
            [Json("k1", """{"Id":1}"""), Json("k2", "not json"), Json("k3", """{"Id":3}""")],
            TestContext.Current.CancellationToken);

        var spans = new List<Activity>();
        var metrics = new List<MetricSnapshot>();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddOpenTelemetry()
            .WithTracing(tracing => tracing.AddKafkaReliableInstrumentation().AddInMemoryExporter(spans))
            .WithMetrics(meters => meters.AddKafkaReliableInstrumentation().AddInMemoryExporter(metrics));
        builder.Services
            .AddReliableConsumer<Order>("orders", o =>
            {
                o.BootstrapServers = cluster.BootstrapServers;
                o.GroupId = group;
                o.Topics.Add(topic);
                o.Commit.Interval = TimeSpan.FromMilliseconds(100);
                o.KafkaSettings["session.timeout.ms"] = "6000";
                o.KafkaSettings["heartbeat.interval.ms"] = "500";
            })
            .WithHandler<OrderHandler>();
        using var host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        try
        {
            // A record's span ends before the record counts as done, so every span is exported once its offset is committed.
            await WaitAsync(() => cluster.GetCommittedOffsets(group, topic).GetValueOrDefault(0) == 3, "the three records are committed (one of them dead-lettered)");
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }

        // Spans (read once the host stopped: the exporter adds them from the consumer's threads): a process span per record,
        // and the dead letter's send span under the poison record's.
        var exported = spans.ToList();
        var process = exported.Where(s => s.Kind == ActivityKind.Consumer).OrderBy(s => (long)s.GetTagItem("messaging.kafka.offset")!).ToList();
        Assert.Equal(3, process.Count);
        Assert.All(process, span =>
        {
            Assert.Equal($"process {topic}", span.DisplayName);
            Assert.Equal("kafka", span.GetTagItem("messaging.system"));
            Assert.Equal("process", span.GetTagItem("messaging.operation.name"));
            Assert.Equal(group, span.GetTagItem("messaging.consumer.group.name"));
        });
        Assert.Equal(ActivityStatusCode.Error, process[1].Status);
        var send = Assert.Single(exported, s => s.Kind == ActivityKind.Producer);
        Assert.Equal($"send {topic}.dlq", send.DisplayName);
        Assert.Equal(process[1].SpanId, send.ParentSpanId);

        // Metrics: the conventions' instruments and the library's, exported with the advised buckets in seconds.
        Assert.True(host.Services.GetRequiredService<MeterProvider>().ForceFlush(), "the meter provider flushes");
        var latest = metrics.GroupBy(m => m.Name).ToDictionary(g => g.Key, g => g.Last());

        var consumed = latest["messaging.client.consumed.messages"];
        Assert.Equal("{message}", consumed.Unit);
        Assert.Equal(3, ForGroup(consumed, group).Sum(p => p.GetSumLong()));

        var duration = latest["messaging.process.duration"];
        Assert.Equal("s", duration.Unit);
        Assert.Equal(MetricType.Histogram, duration.MetricType);
        var points = ForGroup(duration, group).ToList();
        Assert.Equal(3, points.Sum(p => p.GetHistogramCount()));
        Assert.Equal(1, points.Where(p => Tags(p).ContainsKey("error.type")).Sum(p => p.GetHistogramCount()));
        double[] advised = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
        foreach (var point in points)
        {
            var bounds = new List<double>();
            foreach (var bucket in point.GetHistogramBuckets())
            {
                bounds.Add(bucket.ExplicitBound);
            }

            Assert.Equal([.. advised, double.PositiveInfinity], bounds);
        }

        Assert.Equal(1, ForGroup(latest["kafka.reliable.records.dead_lettered"], group).Sum(p => p.GetSumLong()));
        Assert.Equal(2, ForGroup(latest["kafka.reliable.records.processed"], group).Sum(p => p.GetSumLong()));
    }

    [Fact]
    public void AddKafkaReliableInstrumentation_NullBuilder_Throws()
    {
        Assert.Throws<ArgumentNullException>("builder", () => ((TracerProviderBuilder)null!).AddKafkaReliableInstrumentation());
        Assert.Throws<ArgumentNullException>("builder", () => ((MeterProviderBuilder)null!).AddKafkaReliableInstrumentation());
    }

    private static Message<byte[]?, byte[]?> Json(string key, string value) =>
        new() { Key = Encoding.UTF8.GetBytes(key), Value = Encoding.UTF8.GetBytes(value) };

    private static IEnumerable<MetricPoint> ForGroup(MetricSnapshot metric, string group) =>
        metric.MetricPoints.Where(p => Tags(p).TryGetValue("messaging.consumer.group.name", out var g) && (string?)g == group);

    private static Dictionary<string, object?> Tags(MetricPoint point)
    {
        var tags = new Dictionary<string, object?>();
        foreach (var tag in point.Tags)
        {
            tags[tag.Key] = tag.Value;
        }

        return tags;
    }

    private static async Task WaitAsync(Func<bool> condition, string what)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        while (!condition())
        {
            if (timeout.IsCancellationRequested)
            {
                Assert.Fail($"Expected within {Timeout.TotalSeconds} s: {what}.");
            }

            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
    }
}
