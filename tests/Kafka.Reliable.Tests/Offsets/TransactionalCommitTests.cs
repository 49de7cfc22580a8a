using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Offsets;

public sealed class TransactionalCommitTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task ConsumeTransformProduce_EachRecordsOutputIsProducedInItsTransaction_AndTheInputIsCommitted()
    {
        var topic = await broker.CreateTopicAsync(2);
        var output = topic + ".out";
        await broker.CreateTopicNamedAsync(output, 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(100, 2));
        var handler = new RecordingHandler
        {
            Behavior = (message, context, _) =>
            {
                context.GetKafkaTransaction().Produce(output, new Message<byte[]?, byte[]?>
                {
                    Key = Encoding.UTF8.GetBytes(message.Key),
                    Value = Encoding.UTF8.GetBytes($"processed {message.Id}"),
                });
                return ValueTask.CompletedTask;
            },
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o => o.Commit.Strategy = CommitStrategy.Transactional);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2).Values.Sum() == 100, "the input is committed to its end", state: () => consumer.Logs.Dump());

        var outputs = broker.ReadAll(output, 1, expected: 100).Select(r => Encoding.UTF8.GetString(r.Message.Value!)).ToList();
        Assert.Equal(Enumerable.Range(0, 100).Select(i => $"processed {i}").Order(), outputs.Order());
    }

    /// <summary>
    /// The guarantee itself needs a broker with real transactions: the embedded broker only pretends (aborted records stay
    /// visible). Run with KAFKA_RELIABLE_TEST_BROKER=testcontainers (Docker) or KAFKA_RELIABLE_BOOTSTRAP_SERVERS.
    /// </summary>
    [Fact]
    public async Task AFailedAttempt_AbortsItsOutput_SoReadCommittedConsumersSeeExactlyOneOutputPerInput()
    {
        if (broker.Embedded is not null)
        {
            Assert.Skip("Needs a broker with real transactions (the embedded broker shows aborted records): set KAFKA_RELIABLE_TEST_BROKER=testcontainers with Docker, or KAFKA_RELIABLE_BOOTSTRAP_SERVERS.");
        }

        var topic = await broker.CreateTopicAsync(2);
        var output = topic + ".out";
        await broker.CreateTopicNamedAsync(output, 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(50, 2));
        var handler = new RecordingHandler
        {
            // Every record produces its output, and every fifth one fails after producing on its first attempt: that output is aborted.
            Behavior = (message, context, _) =>
            {
                context.GetKafkaTransaction().Produce(output, new Message<byte[]?, byte[]?> { Key = null, Value = Encoding.UTF8.GetBytes(message.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)) });
                return message.Id % 5 == 0 && context.Attempt == 1 ? throw new TimeoutException("failed after producing") : ValueTask.CompletedTask;
            },
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o => o.Commit.Strategy = CommitStrategy.Transactional);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2).Values.Sum() == 50, "the input is committed to its end");

        using var reader = new ConsumerBuilder<Ignore, string>(new ConsumerConfig
        {
            BootstrapServers = broker.BootstrapServers,
            GroupId = "reader-" + Guid.NewGuid().ToString("N"),
            IsolationLevel = IsolationLevel.ReadCommitted,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnablePartitionEof = true,
        }).Build();
        reader.Assign(new TopicPartitionOffset(output, 0, Offset.Beginning));
        var values = new List<string>();
        while (reader.Consume(TimeSpan.FromSeconds(10)) is { } record && !record.IsPartitionEOF)
        {
            values.Add(record.Message.Value);
        }

        Assert.Equal(Enumerable.Range(0, 50).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Order(), values.Order());
    }
}
