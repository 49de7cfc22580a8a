using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable.Tests.Offsets;

public sealed class TransactionalCommitTests(KafkaBrokerFixture broker)
{
    /// <summary>
    /// With Kafka transactions, a record's offset is committed by its transaction and by nothing else: a plain commit beside
    /// the transactions could move the group's offset back after a transaction moved it forward. The embedded broker does not
    /// store offsets sent in a transaction, so on it the test watches the clients: no plain commit is ever made, and each
    /// record's transaction sends exactly its own next offset. On a real broker, the committed offsets reach the end too.
    /// </summary>
    [Fact]
    public async Task ConsumeTransformProduce_EachRecordsOutputAndOffsetGoThroughItsTransaction_AndNothingIsCommittedOtherwise()
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
        var clients = new ClientWatch();

        await using (var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o => o.Commit.Strategy = CommitStrategy.Transactional,
            services: s => s.AddSingleton<Kafka.Reliable.Consuming.IClientInterceptor>(clients)))
        {
            await Eventually.TrueAsync(() => clients.TransactionOffsets.Count == 100, "every record's transaction sent its offset", state: () => consumer.Logs.Dump());
            if (broker.Embedded is null)
            {
                await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2).Values.Sum() == 100, "the input is committed to its end by the transactions");
            }
        }

        Assert.Empty(clients.PlainCommits);
        var sent = clients.TransactionOffsets.ToArray();
        Assert.All(sent, offsets => Assert.Single(offsets));
        foreach (var partition in sent.Select(o => o[0]).GroupBy(o => o.Partition.Value))
        {
            // Sequential dispatch: each partition's transactions send 1, 2, ... 50, in order, one per record.
            Assert.Equal(Enumerable.Range(1, 50).Select(i => (long)i), partition.Select(o => o.Offset.Value));
        }

        var outputs = broker.ReadAll(output, 1, expected: 100).Select(r => Encoding.UTF8.GetString(r.Message.Value!)).ToList();
        Assert.Equal(Enumerable.Range(0, 100).Select(i => $"processed {i}").Order(), outputs.Order());
    }

    /// <summary>Sees the offsets each transaction sends, and any plain commit the consumer makes.</summary>
    private sealed class ClientWatch : Kafka.Reliable.Consuming.IClientInterceptor
    {
        public System.Collections.Concurrent.ConcurrentQueue<string> PlainCommits { get; } = new();

        public System.Collections.Concurrent.ConcurrentQueue<TopicPartitionOffset[]> TransactionOffsets { get; } = new();

        public IConsumer<byte[]?, byte[]?> Wrap(IConsumer<byte[]?, byte[]?> client) =>
            CallInterceptor.Wrap(client, (method, _) =>
            {
                if (method.Name is "Commit" or "StoreOffset")
                {
                    PlainCommits.Enqueue(method.Name);
                }

                return null;
            });

        public IProducer<byte[]?, byte[]?> WrapTransactional(IProducer<byte[]?, byte[]?> producer) =>
            CallInterceptor.Wrap(producer, (method, args) =>
            {
                if (method.Name == "SendOffsetsToTransaction")
                {
                    TransactionOffsets.Enqueue([.. (IEnumerable<TopicPartitionOffset>)args![0]!]);
                }

                return null;
            });
    }

    /// <summary>
    /// The guarantee itself needs a broker with real transactions: the embedded broker only pretends (aborted records stay
    /// visible). The test uses the suite's broker when it is a real one (KAFKA_RELIABLE_BOOTSTRAP_SERVERS or
    /// KAFKA_RELIABLE_TEST_BROKER=testcontainers), else starts Apache Kafka with Testcontainers, and is skipped, saying why,
    /// when Docker is not available.
    /// </summary>
    [Fact]
    public async Task AFailedAttempt_AbortsItsOutput_SoReadCommittedConsumersSeeExactlyOneOutputPerInput()
    {
        Testcontainers.Kafka.KafkaContainer? container = null;
        var bootstrapServers = broker.BootstrapServers;
        if (broker.Embedded is not null)
        {
            if (!DockerAvailability.IsAvailable(out var reason))
            {
                Assert.Skip($"Needs a broker with real Kafka transactions (the embedded broker shows aborted records) and Docker is not available: {reason}.");
            }

            container = new Testcontainers.Kafka.KafkaBuilder("confluentinc/cp-kafka:7.7.1").Build();
            await container.StartAsync(TestContext.Current.CancellationToken);
            bootstrapServers = container.GetBootstrapAddress();
        }

        try
        {
            await RunAbortScenarioAsync(bootstrapServers);
        }
        finally
        {
            if (container is not null)
            {
                await container.DisposeAsync();
            }
        }
    }

    private static async Task RunAbortScenarioAsync(string bootstrapServers)
    {
        var topic = "t-" + Guid.NewGuid().ToString("N");
        var output = topic + ".out";
        using (var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).Build())
        {
            await admin.CreateTopicsAsync(
            [
                new Confluent.Kafka.Admin.TopicSpecification { Name = topic, NumPartitions = 2, ReplicationFactor = 1 },
                new Confluent.Kafka.Admin.TopicSpecification { Name = output, NumPartitions = 1, ReplicationFactor = 1 },
            ]);
        }

        using (var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = bootstrapServers, Acks = Acks.All }).Build())
        {
            foreach (var (partition, key, value) in TestConsumer.Events(50, 2))
            {
                await producer.ProduceAsync(new TopicPartition(topic, partition), new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes(key!), Value = Encoding.UTF8.GetBytes(value!) });
            }
        }

        var group = "g-" + Guid.NewGuid().ToString("N");
        var handler = new RecordingHandler
        {
            // Every record produces its output, and every fifth one fails after producing on its first attempt: that output is aborted.
            Behavior = (message, context, _) =>
            {
                context.GetKafkaTransaction().Produce(output, new Message<byte[]?, byte[]?> { Key = null, Value = Encoding.UTF8.GetBytes(message.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)) });
                return message.Id % 5 == 0 && context.Attempt == 1 ? throw new TimeoutException("failed after producing") : ValueTask.CompletedTask;
            },
        };

        await using (var consumer = await TestConsumer.StartAsync(bootstrapServers, topic, group, handler, o => o.Commit.Strategy = CommitStrategy.Transactional))
        {
            await Eventually.TrueAsync(() => handler.Handled.Count == 50, "every input record is handled");
        }

        using var reader = new ConsumerBuilder<Ignore, string>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "reader-" + Guid.NewGuid().ToString("N"),
            IsolationLevel = IsolationLevel.ReadCommitted,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnablePartitionEof = true,
        }).Build();
        reader.Assign(new TopicPartitionOffset(output, 0, Offset.Beginning));
        var values = new List<string>();
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            // A slow first fetch returns nothing: keep waiting (within the deadline) until the end of the partition.
            Assert.True(DateTime.UtcNow < deadline, $"the output partition's end was reached within 90 s ({values.Count} values read)");
            if (reader.Consume(TimeSpan.FromSeconds(1)) is not { } record)
            {
                continue;
            }

            if (record.IsPartitionEOF)
            {
                break;
            }

            values.Add(record.Message.Value);
        }

        Assert.Equal(Enumerable.Range(0, 50).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Order(), values.Order());

        using var committed = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = bootstrapServers, GroupId = group }).Build();
        var offsets = committed.Committed([new TopicPartition(topic, 0), new TopicPartition(topic, 1)], TimeSpan.FromSeconds(10));
        Assert.Equal(50, offsets.Sum(o => o.Offset.Value));
    }
}
