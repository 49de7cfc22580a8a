using Kafka.Reliable.DeadLetter;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.DeadLetter;

public sealed class DeadLetterTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task MalformedPayload_IsDeadLetteredWithProvenance_AndConsumptionGoesOn()
    {
        var topic = await broker.CreateTopicAsync(1);
        var deadLetterTopic = topic + ".dlq";
        await broker.CreateTopicNamedAsync(deadLetterTopic, 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var records = TestConsumer.Events(10, 1).ToList();
        records[4] = (0, "poison-key", "{\"Id\": 4, \"Key\": ");
        var produced = await broker.ProduceAsync(topic, records);
        var headers = new Headers { { "trace", [1, 2, 3] } };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group);
        await Eventually.TrueAsync(() => consumer.Handler.Handled.Count >= 9, "the 9 good records are handled");
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 10, "the committed offset passes the dead-lettered record");

        var dead = Assert.Single(broker.ReadAll(deadLetterTopic, 1, expected: 1));
        Assert.Equal("poison-key", Encoding.UTF8.GetString(dead.Message.Key!));
        Assert.Equal("{\"Id\": 4, \"Key\": ", Encoding.UTF8.GetString(dead.Message.Value!));
        string Header(string key) => Encoding.UTF8.GetString(dead.Message.Headers.GetLastBytes(key));
        Assert.Equal(topic, Header(DeadLetterHeaders.OriginalTopic));
        Assert.Equal("0", Header(DeadLetterHeaders.OriginalPartition));
        Assert.Equal("4", Header(DeadLetterHeaders.OriginalOffset));
        Assert.Equal(produced[4].Offset.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), Header(DeadLetterHeaders.OriginalOffset));
        Assert.Equal(group, Header(DeadLetterHeaders.ConsumerGroup));
        Assert.Equal("deserialize", Header(DeadLetterHeaders.FailureStage));
        Assert.Equal(typeof(InvalidDataException).FullName, Header(DeadLetterHeaders.ExceptionType));
        Assert.Contains("not a valid TestEvent", Header(DeadLetterHeaders.ExceptionMessage), StringComparison.Ordinal);
        Assert.Equal("1", Header(DeadLetterHeaders.Attempts));
        Assert.True(long.Parse(Header(DeadLetterHeaders.OriginalTimestamp), System.Globalization.CultureInfo.InvariantCulture) > 0);
        Assert.True(DateTimeOffset.TryParse(Header(DeadLetterHeaders.FirstFailure), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out _));
        Assert.False(dead.Message.Headers.TryGetLastBytes(DeadLetterHeaders.ExceptionStackTrace, out _), "stack traces are off by default");
        Assert.Equal(1, consumer.Logs.CountOf(205));
        Assert.Equal(Enumerable.Range(0, 10).Where(i => i != 4), consumer.Handler.Handled.Select(h => h.Id));
    }

    [Fact]
    public async Task DeadLetterProducer_LibrdkafkaLogs_GoToTheConsumersLogger_NamingTheProducer()
    {
        // librdkafka writes a client's logs to stderr unless the client has a log handler: the dead-letter producer had
        // none, so its connection errors bypassed the application's logging. Its debug output makes it log at once.
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, [(0, "poison-key", "not json")]);

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, configure: o => o.DeadLetter.ProducerSettings["debug"] = "broker");
        await Eventually.TrueAsync(() => consumer.Logs.CountOf(205) == 1, "the record is dead-lettered", state: () => consumer.Logs.Dump());

        var producerLogs = consumer.Logs.GetSnapshot().Where(e => e.Id.Id == 502 && e.Message.Contains("-dlq#producer", StringComparison.Ordinal)).ToList();
        Assert.True(producerLogs.Count > 0, $"expected the dead-letter producer's librdkafka logs as event 502 naming the producer; saw:{Environment.NewLine}{consumer.Logs.Dump(10)}");
        Assert.All(producerLogs, e => Assert.StartsWith("Consumer ", e.Message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task DeadLetteringDisabled_MalformedPayload_HoldsThePartitionInsteadOfSkippingIt()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var records = TestConsumer.Events(6, 1).ToList();
        records[2] = (0, "k", "not json");
        await broker.ProduceAsync(topic, records);

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, configure: o =>
        {
            o.DeadLetter.Enabled = false;
            o.Commit.Strategy = CommitStrategy.PerMessage;
        });
        await Eventually.TrueAsync(() => consumer.Logs.CountOf(200) >= 3, "the malformed record is retried in place");
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 2, "records 0 and 1 are committed");

        Assert.Equal([0, 1], consumer.Handler.Handled.Select(h => h.Id));
        Assert.Equal(2, broker.GetCommittedOffsets(group, topic, 1)[0]);
    }

    [Fact]
    public async Task DeadLetterTopicNotWritable_PartitionHoldsAtTheRecord_UntilItCanBeWritten()
    {
        // Its own cluster: the injected Produce errors must not reach the other tests' producers.
        using var cluster = Kafka.Reliable.Testing.EmbeddedKafkaCluster.Start();
        const string Topic = "orders";
        cluster.CreateTopic(Topic);
        cluster.CreateTopic(Topic + ".dlq");
        var group = "g-" + Guid.NewGuid().ToString("N");
        var records = TestConsumer.Events(5, 1).Select(r => new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes(r.Key!), Value = Encoding.UTF8.GetBytes(r.Value!) }).ToList();
        records[1].Value = "[]"u8.ToArray();
        await cluster.ProduceAllAsync(Topic, records, TestContext.Current.CancellationToken);
        var handler = new RecordingHandler();

        // The dead-letter topic refuses writes until the test "fixes" it by clearing the injected errors.
        cluster.PushRequestErrors(Testing.KafkaApiKey.Produce, Enumerable.Repeat(ErrorCode.MsgSizeTooLarge, 100_000).ToArray());
        await using var consumer = await TestConsumer.StartAsync(cluster.BootstrapServers, Topic, group, handler, o => o.Commit.Strategy = CommitStrategy.PerMessage);
        await Eventually.TrueAsync(() => consumer.Logs.CountOf(206) >= 3, "failed dead-letter writes are reported");
        await Eventually.TrueAsync(() => cluster.GetCommittedOffsets(group, Topic)[0] == 1, "record 0 is committed");
        Assert.Equal([0], handler.Handled.Select(h => h.Id));
        await Eventually.TrueAsync(() => consumer.Logs.CountOf(206) >= 6, "more failed writes are reported");
        Assert.Equal(1, cluster.GetCommittedOffsets(group, Topic)[0]);
        Assert.Equal([0], handler.Handled.Select(h => h.Id));

        cluster.ClearRequestErrors(Testing.KafkaApiKey.Produce);

        await Eventually.TrueAsync(() => handler.Handled.Count == 4, "the records after the dead-lettered one are handled once the write succeeds");
        await Eventually.TrueAsync(() => cluster.GetCommittedOffsets(group, Topic)[0] == 5, "the partition is committed to its end");
        await consumer.StopAsync();
        Assert.Equal(1, cluster.GetHighWatermarks(Topic + ".dlq")[0]);
        Assert.Equal(1, consumer.Logs.CountOf(205));
    }
}
