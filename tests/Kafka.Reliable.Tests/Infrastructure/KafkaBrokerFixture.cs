using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Kafka.Reliable.Testing;
using Testcontainers.Kafka;

[assembly: AssemblyFixture(typeof(Kafka.Reliable.Tests.Infrastructure.KafkaBrokerFixture))]

namespace Kafka.Reliable.Tests.Infrastructure;

/// <summary>
/// The broker every integration test uses: the embedded broker by default; an existing cluster when
/// <c>KAFKA_RELIABLE_BOOTSTRAP_SERVERS</c> is set; a Testcontainers.Kafka broker when <c>KAFKA_RELIABLE_TEST_BROKER=testcontainers</c>
/// and Docker is available. Tests create their own Guid-named topics, so one broker serves them all.
/// </summary>
public sealed class KafkaBrokerFixture : IAsyncLifetime
{
    public const string BootstrapServersVariable = "KAFKA_RELIABLE_BOOTSTRAP_SERVERS";
    public const string BrokerKindVariable = "KAFKA_RELIABLE_TEST_BROKER";

    private KafkaContainer? _container;
    private IProducer<byte[]?, byte[]?>? _producer;

    public string BootstrapServers { get; private set; } = string.Empty;

    /// <summary>Gets the embedded broker, or null when the tests run against another cluster (fault injection tests need it).</summary>
    public EmbeddedKafkaCluster? Embedded { get; private set; }

    public string Description { get; private set; } = string.Empty;

    public async ValueTask InitializeAsync()
    {
        var external = Environment.GetEnvironmentVariable(BootstrapServersVariable);
        var kind = Environment.GetEnvironmentVariable(BrokerKindVariable);
        var reason = string.Empty;
        if (!string.IsNullOrWhiteSpace(external))
        {
            BootstrapServers = external;
            Description = $"existing cluster at {external}";
        }
        else if (string.Equals(kind, "testcontainers", StringComparison.OrdinalIgnoreCase) && DockerAvailability.IsAvailable(out reason))
        {
            _container = new KafkaBuilder("confluentinc/cp-kafka:7.7.1").Build();
            await _container.StartAsync();
            BootstrapServers = _container.GetBootstrapAddress();
            Description = $"Testcontainers Kafka at {BootstrapServers}";
        }
        else
        {
            if (string.Equals(kind, "testcontainers", StringComparison.OrdinalIgnoreCase))
            {
                Console.WriteLine($"Testcontainers broker requested but Docker is not available ({reason}); using the embedded broker.");
            }

            Embedded = EmbeddedKafkaCluster.Start(brokerCount: 3);

            // The consumer protocol's session settings are the broker's: as short as the classic ones the tests set.
            Embedded.SetConsumerGroupSessionTimeout(TimeSpan.FromSeconds(6));
            Embedded.SetConsumerGroupHeartbeatInterval(TimeSpan.FromMilliseconds(500));
            BootstrapServers = Embedded.BootstrapServers;
            Description = $"embedded broker at {BootstrapServers}";
        }

        _producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig
        {
            BootstrapServers = BootstrapServers,
            Acks = Acks.All,
            EnableIdempotence = false,
            LingerMs = 5,
        }).Build();
    }

    public async ValueTask DisposeAsync()
    {
        _producer?.Dispose();
        Embedded?.Dispose();
        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
    }

    public async Task<string> CreateTopicAsync(int partitions, string prefix = "t")
    {
        var topic = $"{prefix}-{Guid.NewGuid():N}";
        if (Embedded is not null)
        {
            Embedded.CreateTopic(topic, partitions);
        }
        else
        {
            using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = BootstrapServers }).Build();
            await admin.CreateTopicsAsync([new TopicSpecification { Name = topic, NumPartitions = partitions, ReplicationFactor = 1 }]);
        }

        return topic;
    }

    /// <summary>Creates a topic with the given name (for dead-letter topics, whose name follows the consumed one).</summary>
    public async Task CreateTopicNamedAsync(string name, int partitions)
    {
        if (Embedded is not null)
        {
            Embedded.CreateTopic(name, partitions);
        }
        else
        {
            using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = BootstrapServers }).Build();
            await admin.CreateTopicsAsync([new TopicSpecification { Name = name, NumPartitions = partitions, ReplicationFactor = 1 }]);
        }
    }

    /// <summary>Produces records to explicit partitions, waits for every acknowledgement, and returns their offsets in order.</summary>
    public Task<IReadOnlyList<TopicPartitionOffset>> ProduceAsync(string topic, IEnumerable<(int Partition, string? Key, string? Value)> records) =>
        ProduceMessagesAsync(topic, records.Select(r => (r.Partition, new Message<byte[]?, byte[]?>
        {
            Key = r.Key is null ? null : System.Text.Encoding.UTF8.GetBytes(r.Key),
            Value = r.Value is null ? null : System.Text.Encoding.UTF8.GetBytes(r.Value),
        })));

    /// <summary>Produces raw messages (any bytes, headers) to explicit partitions, waits for every acknowledgement, and returns their offsets in order.</summary>
    public async Task<IReadOnlyList<TopicPartitionOffset>> ProduceMessagesAsync(string topic, IEnumerable<(int Partition, Message<byte[]?, byte[]?> Message)> records)
    {
        var producer = _producer!;
        var pending = records.Select(r => producer.ProduceAsync(new TopicPartition(topic, r.Partition), r.Message)).ToList();
        var results = await Task.WhenAll(pending);
        return results.Select(r => r.TopicPartitionOffset).ToList();
    }

    /// <summary>Gets the group's committed offset per partition (Offset.Unset when none) without joining the group.</summary>
    public IReadOnlyDictionary<int, long> GetCommittedOffsets(string groupId, string topic, int partitions)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
        {
            BootstrapServers = BootstrapServers,
            GroupId = groupId,
            EnableAutoCommit = false,
        }).Build();
        var committed = consumer.Committed(Enumerable.Range(0, partitions).Select(p => new TopicPartition(topic, p)), TimeSpan.FromSeconds(10));
        return committed.ToDictionary(c => c.Partition.Value, c => c.Offset.Value);
    }

    /// <summary>Reads a topic from the beginning until <paramref name="expected"/> records arrived (or fails saying how many did).</summary>
    public List<ConsumeResult<byte[]?, byte[]?>> ReadAll(string topic, int partitions, int expected, TimeSpan? timeout = null)
    {
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = BootstrapServers,
            GroupId = "reader-" + Guid.NewGuid().ToString("N"),
            EnableAutoCommit = false,
        }).Build();
        consumer.Assign(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        var records = new List<ConsumeResult<byte[]?, byte[]?>>();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (records.Count < expected && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is { } record)
            {
                records.Add(record);
            }
        }

        Assert.True(records.Count >= expected, $"expected {expected} records in {topic}, found {records.Count}");
        return records;
    }

    public IReadOnlyDictionary<int, long> GetHighWatermarks(string topic, int partitions)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
        {
            BootstrapServers = BootstrapServers,
            GroupId = "watermarks-" + Guid.NewGuid().ToString("N"),
        }).Build();
        return Enumerable.Range(0, partitions).ToDictionary(
            p => p,
            p => consumer.QueryWatermarkOffsets(new TopicPartition(topic, p), TimeSpan.FromSeconds(10)).High.Value);
    }
}

internal static class DockerAvailability
{
    public static bool IsAvailable(out string reason)
    {
        var socket = Environment.GetEnvironmentVariable("DOCKER_HOST") ?? "unix:///var/run/docker.sock";
        if (socket.StartsWith("unix://", StringComparison.Ordinal) && !File.Exists(socket["unix://".Length..]))
        {
            reason = $"no Docker engine socket at {socket}";
            return false;
        }

        reason = string.Empty;
        return true;
    }
}
