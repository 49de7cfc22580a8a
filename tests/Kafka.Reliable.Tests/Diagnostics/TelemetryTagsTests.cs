using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text;
using Kafka.Reliable.Diagnostics;

namespace Kafka.Reliable.Tests.Diagnostics;

public sealed class TelemetryTagsTests
{
    [Theory]
    [InlineData("localhost:9092", "localhost", 9092)]
    [InlineData("broker-1.example.com:19092,broker-2.example.com:19092", "broker-1.example.com", 19092)]
    [InlineData(" 10.1.2.80:9093 , 10.1.2.81:9093", "10.1.2.80", 9093)]
    [InlineData("PLAINTEXT://kafka:29092", "kafka", 29092)]
    [InlineData("SASL_SSL://pkc-123.region.aws.confluent.cloud:9092", "pkc-123.region.aws.confluent.cloud", 9092)]
    [InlineData("[::1]:9094", "::1", 9094)]
    [InlineData("kafka", "kafka", 9092)]
    [InlineData("::1", "::1", 9092)]
    public void BootstrapServerParse_FirstEntry_GivesServerAddressAndPort(string servers, string address, int port)
    {
        var server = BootstrapServer.Parse(servers);

        Assert.Equal(new BootstrapServer(address, port), server);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData(":9092")]
    public void BootstrapServerParse_NoHost_GivesNothing(string? servers) => Assert.Null(BootstrapServer.Parse(servers));

    [Fact]
    public void BootstrapServerParse_PortNotANumber_KeepsTheAddressAlone() =>
        Assert.Equal(new BootstrapServer("kafka", null), BootstrapServer.Parse("kafka:abc"));

    [Theory]
    [InlineData("order-42")]
    [InlineData("clé-ü-😀")]
    public void KeyText_Utf8Text_IsTheText(string key) => Assert.Equal(key, ReliableTracing.KeyText(Encoding.UTF8.GetBytes(key)));

    [Theory]
    [InlineData(new byte[] { 0xFF, 0xFE, 0x01 })]
    [InlineData(new byte[] { 0xC3, 0x28 })]
    [InlineData(new byte[] { 0x00, 0x00, 0x00, 0x2A })]
    [InlineData(new byte[] { 0x6B, 0x0A, 0x07 })]
    public void KeyText_BinaryKey_IsLeftOut(byte[] key) => Assert.Null(ReliableTracing.KeyText(key));

    [Fact]
    public void PartitionTelemetry_TagsFollowTheConventions_AndAddErrorTypeOnlyWhenAsked()
    {
        var consumer = new ConsumerTelemetry("orders", new ReliableConsumerOptions { GroupId = "billing", BootstrapServers = "kafka-1:9093,kafka-2:9093" });

        var partition = new PartitionTelemetry(consumer, new Confluent.Kafka.TopicPartition("orders", 3));

        Assert.Equal("process orders", partition.ProcessSpanName);
        var tags = partition.ProcessTags.ToDictionary(t => t.Key, t => t.Value);
        Assert.Equal(
            new Dictionary<string, object?>
            {
                ["messaging.system"] = "kafka",
                ["messaging.operation.name"] = "process",
                ["messaging.operation.type"] = "process",
                ["server.address"] = "kafka-1",
                ["server.port"] = 9093,
                ["messaging.destination.name"] = "orders",
                ["messaging.destination.partition.id"] = "3",
                ["messaging.consumer.group.name"] = "billing",
            },
            tags);
        Assert.True(partition.ProcessTags.Length <= 8, $"the OpenTelemetry SDK allocates per measurement beyond 8 tags; ProcessTags has {partition.ProcessTags.Length}");
        var spanTags = partition.SpanTags.ToDictionary(t => t.Key, t => t.Value);
        Assert.Equal("orders", spanTags["messaging.client.id"]);
        Assert.Equal("orders", spanTags["kafka.reliable.consumer"]);
        Assert.Equal("System.TimeoutException", partition.ProcessTagsWithError("System.TimeoutException").Single(t => t.Key == "error.type").Value);
        Assert.DoesNotContain(partition.ProcessTags, t => t.Key == "error.type");
    }

    [Fact]
    public void ConsumerTelemetry_ClientIdFromTheSettings_WinsOverTheName()
    {
        var options = new ReliableConsumerOptions { GroupId = "g", BootstrapServers = "k:1" };
        options.KafkaSettings["client.id"] = "billing-7";

        Assert.Equal("billing-7", new ConsumerTelemetry("orders", options).ClientId);
    }

    [Fact]
    public void RecordingARecord_WithTheConventionsInstrumentsListenedTo_AllocatesNothing()
    {
        using var metrics = new ReliableMetrics(meterFactory: null);
        var measured = 0L;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument, metrics.ProcessDuration) || ReferenceEquals(instrument, metrics.ConsumedMessages))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<double>((_, _, _, _) => Interlocked.Increment(ref measured));
        listener.SetMeasurementEventCallback<long>((_, _, _, _) => Interlocked.Increment(ref measured));
        listener.Start();
        var partition = new PartitionTelemetry(
            new ConsumerTelemetry("orders", new ReliableConsumerOptions { GroupId = "g", BootstrapServers = "kafka:9092" }), new Confluent.Kafka.TopicPartition("orders", 0));
        Record(metrics, partition);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            Record(metrics, partition);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(202, Interlocked.Read(ref measured));
        Assert.True(allocated == 0, $"recording 100 records' delivery and processing allocated {allocated} bytes; expected none (the partition's tags are built once)");

        static void Record(ReliableMetrics metrics, PartitionTelemetry partition)
        {
            metrics.Consumed(partition);
            metrics.Processing(Stopwatch.GetTimestamp(), partition, failure: null);
        }
    }
}
