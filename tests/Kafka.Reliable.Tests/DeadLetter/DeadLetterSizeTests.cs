using Kafka.Reliable.DeadLetter;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.DeadLetter;

/// <summary>
/// Records near or above the size limits: they must reach the dead-letter topic (whole, or as a bounded copy) and never
/// stall their partition.
/// </summary>
public sealed class DeadLetterSizeTests(KafkaBrokerFixture broker)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task InvalidRecordJustUnderMaxPayloadBytes_IsDeadLetteredWithItsOriginalBytes_AndThePartitionGoesOn()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");

        // 1.02 MB: under MaxPayloadBytes (1 MiB), over librdkafka's default message.max.bytes (1,000,000).
        var bad = InvalidJson(1_020_000);
        await ProduceInOrderAsync(broker.BootstrapServers, topic, [Good(0), bad, Good(2), Good(3), Good(4), Good(5)]);

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group);
        await Eventually.TrueAsync(
            () => consumer.Handler.Handled.Count == 5, "the 5 good records are handled", Timeout, () => consumer.Logs.Dump());
        await Eventually.TrueAsync(
            () => broker.GetCommittedOffsets(group, topic, 1)[0] == 6, "the committed offset reaches the end of the partition", Timeout, () => consumer.Logs.Dump());

        var dead = Assert.Single(broker.ReadAll(topic + ".dlq", 1, expected: 1));
        Assert.True(bad.Value.AsSpan().SequenceEqual(dead.Message.Value), "the dead-letter record has the original value bytes");
        Assert.Equal(bad.Key, dead.Message.Key);
        Assert.Equal("1", Header(dead, DeadLetterHeaders.OriginalOffset));
        Assert.Equal("deserialize", Header(dead, DeadLetterHeaders.FailureStage));
        Assert.False(dead.Message.Headers.TryGetLastBytes(DeadLetterHeaders.ValueTruncated, out _), "the record fits: it is not truncated");
        Assert.Equal([0, 2, 3, 4, 5], consumer.Handler.Handled.Select(h => h.Id));
        Assert.Equal(0, consumer.Logs.CountOf(206));
    }

    /// <summary>
    /// librdkafka's mock broker serves a record larger than <c>max.partition.fetch.bytes</c> as a real broker does (KIP-74):
    /// its Fetch handler (src/rdkafka_mock_handlers.c) writes a partition's first message set whole whenever the partition
    /// has written nothing yet in the response (<c>partsize &lt; PartMaxBytes</c> with <c>partsize == 0</c>), and its only
    /// size limit is the request size of the cluster's own handle (<c>receive.message.max.bytes</c>, 100 MB).
    /// </summary>
    [Fact]
    public async Task RecordLargerThanMaxPartitionFetchBytes_IsFetchedAndDeadLetteredAsOversize_AndThePartitionGoesOn()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var huge = InvalidJson(2_000_000);
        await ProduceInOrderAsync(broker.BootstrapServers, topic, [Good(0), huge, Good(2), Good(3)]);
        using var meters = new TestMeters();
        var truncated = meters.Collect<long>("kafka.reliable.records.dead_lettered_truncated");
        var deadLettered = meters.Collect<long>("kafka.reliable.records.dead_lettered");

        await using var consumer = await TestConsumer.StartAsync(
            broker, topic, group, configure: o => o.KafkaSettings["max.partition.fetch.bytes"] = "1048576", meters: meters);
        await Eventually.TrueAsync(
            () => consumer.Handler.Handled.Count == 3, "the 3 good records are handled", Timeout, () => consumer.Logs.Dump());
        await Eventually.TrueAsync(
            () => broker.GetCommittedOffsets(group, topic, 1)[0] == 4, "the committed offset reaches the end of the partition", Timeout, () => consumer.Logs.Dump());

        // 2 MB is more than the dead-letter producer takes (MaxPayloadBytes plus room for key and headers): a bounded copy.
        var dead = Assert.Single(broker.ReadAll(topic + ".dlq", 1, expected: 1));
        Assert.Equal("deserialize", Header(dead, DeadLetterHeaders.FailureStage));
        Assert.Contains("more than MaxPayloadBytes", Header(dead, DeadLetterHeaders.ExceptionMessage), StringComparison.Ordinal);
        Assert.Equal("2000000", Header(dead, DeadLetterHeaders.ValueTruncated));
        Assert.Equal("1", Header(dead, DeadLetterHeaders.OriginalOffset));
        Assert.InRange(dead.Message.Value!.Length, 900_000, 1_000_000);
        Assert.True(huge.Value.AsSpan(0, dead.Message.Value.Length).SequenceEqual(dead.Message.Value), "the copy holds the start of the original value");
        Assert.Equal(1, consumer.Logs.CountOf(610));
        Assert.Equal(1, truncated.Sum());
        Assert.Equal(1, deadLettered.Sum());
        Assert.Equal([0, 2, 3], consumer.Handler.Handled.Select(h => h.Id));
    }

    [Fact]
    public async Task RecordLargerThanTheDeadLetterProducerTakes_IsWrittenAsABoundedCopy_WithTheOriginalLength()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var bad = InvalidJson(50_000);
        bad.Headers = new Headers { { "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"u8.ToArray() } };
        await ProduceInOrderAsync(broker.BootstrapServers, topic, [Good(0), bad, Good(2)]);

        // The dead-letter topic's limit, told to the dead-letter producer: the whole record is refused, locally.
        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, configure: o => o.DeadLetter.ProducerSettings["message.max.bytes"] = "20000");
        await Eventually.TrueAsync(
            () => broker.GetCommittedOffsets(group, topic, 1)[0] == 3, "the committed offset reaches the end of the partition", Timeout, () => consumer.Logs.Dump());

        var dead = Assert.Single(broker.ReadAll(topic + ".dlq", 1, expected: 1));
        Assert.Equal("50000", Header(dead, DeadLetterHeaders.ValueTruncated));
        Assert.InRange(dead.Message.Value!.Length, 15_000, 20_000);
        Assert.True(bad.Value.AsSpan(0, dead.Message.Value.Length).SequenceEqual(dead.Message.Value), "the copy holds the start of the original value");
        Assert.Equal(bad.Key, dead.Message.Key);
        Assert.Equal("1", Header(dead, DeadLetterHeaders.OriginalOffset));
        Assert.Equal(topic, Header(dead, DeadLetterHeaders.OriginalTopic));
        // The same trace: the header is the original's, or (when something listens to the library's activities, as another
        // test running meanwhile may) the dead-letter publish span's, a child in the same trace.
        Assert.StartsWith("00-0af7651916cd43dd8448eb211c80319c-", Header(dead, "traceparent"), StringComparison.Ordinal);
        var warning = Assert.Single(consumer.Logs.GetSnapshot(), e => e.Id.Id == 610);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, warning.Level);
        Assert.Contains($"{topic} [0] @1", warning.Message, StringComparison.Ordinal);
        Assert.Contains("50000", warning.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("xxxx", warning.Message, StringComparison.Ordinal);
        Assert.Equal([0, 2], consumer.Handler.Handled.Select(h => h.Id));
        Assert.Equal(0, consumer.Logs.CountOf(206));
    }

    [Fact]
    public async Task DeadLetterTopicRefusesTheRecordAsTooLarge_ABoundedCopyIsWritten_AndThePartitionGoesOn()
    {
        // Its own cluster: the injected Produce error must not reach the other tests' producers.
        using var cluster = Kafka.Reliable.Testing.EmbeddedKafkaCluster.Start();
        const string Topic = "orders";
        cluster.CreateTopic(Topic);
        cluster.CreateTopic(Topic + ".dlq");
        var group = "g-" + Guid.NewGuid().ToString("N");
        var bad = InvalidJson(1_020_000);
        await ProduceInOrderAsync(cluster.BootstrapServers, Topic, [Good(0), bad, Good(2)]);

        // The broker refuses the first dead-letter write (the whole record) as a real broker does above the topic's max.message.bytes.
        cluster.PushRequestErrors(Testing.KafkaApiKey.Produce, ErrorCode.MsgSizeTooLarge);
        var handler = new RecordingHandler();
        await using var consumer = await TestConsumer.StartAsync(cluster.BootstrapServers, Topic, group, handler);
        await Eventually.TrueAsync(
            () => cluster.GetCommittedOffsets(group, Topic)[0] == 3, "the committed offset reaches the end of the partition", Timeout, () => consumer.Logs.Dump());

        using var reader = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig { BootstrapServers = cluster.BootstrapServers, GroupId = "reader" }).Build();
        reader.Assign(new TopicPartitionOffset(Topic + ".dlq", 0, Offset.Beginning));
        var dead = reader.Consume(TestContext.Current.CancellationToken);
        Assert.Equal("1020000", Header(dead, DeadLetterHeaders.ValueTruncated));
        Assert.InRange(dead.Message.Value!.Length, 900_000, 1_000_000);
        Assert.Equal(1, cluster.GetHighWatermarks(Topic + ".dlq")[0]);
        Assert.Equal(1, consumer.Logs.CountOf(610));
        Assert.Equal([0, 2], handler.Handled.Select(h => h.Id));
    }

    private static string Header(ConsumeResult<byte[]?, byte[]?> record, string key) => Encoding.UTF8.GetString(record.Message.Headers.GetLastBytes(key));

    private static Message<byte[], byte[]> Good(int id) => new()
    {
        Key = Encoding.UTF8.GetBytes($"k{id}"),
        Value = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{{\"Id\": {id}, \"Key\": \"k{id}\"}}")),
    };

    /// <summary>A value of exactly <paramref name="length"/> bytes that is not valid JSON (an unterminated string).</summary>
    private static Message<byte[], byte[]> InvalidJson(int length)
    {
        var value = new byte[length];
        var start = "{\"Id\": 1, \"Key\": \""u8;
        start.CopyTo(value);
        value.AsSpan(start.Length).Fill((byte)'x');
        return new Message<byte[], byte[]> { Key = "poison"u8.ToArray(), Value = value };
    }

    /// <summary>Produces one record at a time to partition 0, with a producer that takes records of any test size.</summary>
    private static async Task ProduceInOrderAsync(string bootstrapServers, string topic, IEnumerable<Message<byte[], byte[]>> messages)
    {
        using var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            Acks = Acks.All,
            MessageMaxBytes = 8 * 1024 * 1024,
        }).Build();
        foreach (var message in messages)
        {
            await producer.ProduceAsync(
                new TopicPartition(topic, 0),
                new Message<byte[]?, byte[]?> { Key = message.Key, Value = message.Value, Headers = message.Headers },
                TestContext.Current.CancellationToken);
        }
    }
}
