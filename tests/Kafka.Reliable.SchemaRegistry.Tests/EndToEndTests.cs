using System.Collections.Concurrent;
using System.Text;
using Avro.Generic;
using Confluent.Kafka;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.SchemaRegistry.Tests.Avro;
using Kafka.Reliable.SchemaRegistry.Tests.Infrastructure;
using Kafka.Reliable.Testing;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Kafka.Reliable.SchemaRegistry.Tests;

/// <summary>An Avro consumer on the embedded broker, reading through the registry: poison dead-lettered, an outage waited out.</summary>
public sealed class EndToEndTests
{
    private const int DependencyWaitLogId = 234;

    [Fact]
    public async Task AvroConsumer_HandlesGoodRecords_DeadLettersUnframed_HoldsRecordsWhileRegistryIsDown()
    {
        using var registry = TestRegistry.Start();
        await using var cluster = EmbeddedKafkaCluster.Start();
        var topic = $"orders-{Guid.NewGuid():N}";
        cluster.CreateTopic(topic, 1);
        cluster.CreateTopic(topic + ".dlq", 1);
        var handler = new RecordingOrderHandler();
        var logs = new FakeLogCollector();
        using var host = BuildHost(cluster.BootstrapServers, topic, registry.Url, handler, logs);
        using var producer = new ProducerBuilder<byte[]?, byte[]>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers }).Build();
        using var writerClient = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        var context = new SerializationContext(MessageComponentType.Value, topic);
        var serializer = new AvroSerializer<Order>(writerClient);

        await producer.ProduceAsync(topic, new Message<byte[]?, byte[]> { Value = await serializer.SerializeAsync(new Order { Id = "good-1", Quantity = 1 }, context) }, TestContext.Current.CancellationToken);
        await producer.ProduceAsync(topic, new Message<byte[]?, byte[]> { Value = Encoding.UTF8.GetBytes("""{"Id":"not-avro"}""") }, TestContext.Current.CancellationToken);
        await producer.ProduceAsync(topic, new Message<byte[]?, byte[]> { Value = await serializer.SerializeAsync(new Order { Id = "good-2", Quantity = 2 }, context) }, TestContext.Current.CancellationToken);
        await host.StartAsync(TestContext.Current.CancellationToken);

        await Eventually.TrueAsync(() => handler.Ids.Count == 2, "the two good records are handled", state: () => string.Join(",", handler.Ids));
        var deadLetter = Assert.Single(ReadDeadLetters(cluster.BootstrapServers, topic + ".dlq", expected: 1));
        Assert.Equal("deserialize", Header(deadLetter, DeadLetterHeaders.FailureStage));
        Assert.Equal("""{"Id":"not-avro"}""", Encoding.UTF8.GetString(deadLetter.Message.Value!));

        // A record written with schema v1, which the consumer has not looked up yet: it needs the registry, which is down.
        var v1 = new GenericRecord((global::Avro.RecordSchema)global::Avro.Schema.Parse(OrderSchemas.V1));
        v1.Add("Id", "during-outage");
        v1.Add("Quantity", 3);
        var written = await new AvroSerializer<GenericRecord>(writerClient).SerializeAsync(v1, context);
        registry.SetAvailable(false);
        await producer.ProduceAsync(topic, new Message<byte[]?, byte[]> { Value = written }, TestContext.Current.CancellationToken);

        await Eventually.TrueAsync(
            () => logs.GetSnapshot().Count(r => r.Id.Id == DependencyWaitLogId) >= 2,
            "the record waits for the registry (log 234) at least twice");
        Assert.Equal(2, handler.Ids.Count);

        registry.SetAvailable(true);
        await Eventually.TrueAsync(() => handler.Ids.Count == 3, "the held record is handled once the registry is back");
        Assert.Equal(["good-1", "good-2", "during-outage"], handler.Ids);
        Assert.Equal("EUR", handler.Currencies.Last());
        await host.StopAsync(CancellationToken.None);
        Assert.Single(ReadDeadLetters(cluster.BootstrapServers, topic + ".dlq", expected: 1));
    }

    private static IHost BuildHost(string bootstrapServers, string topic, string registryUrl, RecordingOrderHandler handler, FakeLogCollector logs)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders().AddProvider(new FakeLoggerProvider(logs)).SetMinimumLevel(LogLevel.Debug);
        builder.Services.AddSingleton(handler);
        builder.Services
            .AddReliableConsumer<Order>("orders", o =>
            {
                o.BootstrapServers = bootstrapServers;
                o.GroupId = "g-" + Guid.NewGuid().ToString("N");
                o.Topics.Add(topic);
                o.Commit.Interval = TimeSpan.FromMilliseconds(200);
                o.Retry.Delay = TimeSpan.FromMilliseconds(10);
                o.Retry.MaxDelay = TimeSpan.FromMilliseconds(50);
                o.KafkaSettings["session.timeout.ms"] = "6000";
                o.KafkaSettings["heartbeat.interval.ms"] = "500";
            })
            .UseSchemaRegistry(o =>
            {
                o.Url = registryUrl;
                o.MaxRetries = 0;
            })
            .WithAvroDeserializer()
            .WithHandler<RecordingOrderHandler>(ServiceLifetime.Singleton);
        return builder.Build();
    }

    private static List<ConsumeResult<byte[]?, byte[]?>> ReadDeadLetters(string bootstrapServers, string topic, int expected)
    {
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "reader-" + Guid.NewGuid().ToString("N"),
            EnableAutoCommit = false,
        }).Build();
        consumer.Assign(new TopicPartitionOffset(topic, 0, Offset.Beginning));
        var records = new List<ConsumeResult<byte[]?, byte[]?>>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (records.Count < expected && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is { IsPartitionEOF: false } record)
            {
                records.Add(record);
            }
        }

        // Anything more than expected already written is read too: the end of the partition is its high watermark.
        var high = consumer.QueryWatermarkOffsets(new TopicPartition(topic, 0), TimeSpan.FromSeconds(10)).High.Value;
        while (records.Count < high && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is { IsPartitionEOF: false } record)
            {
                records.Add(record);
            }
        }

        return records;
    }

    private static string? Header(ConsumeResult<byte[]?, byte[]?> record, string name) =>
        record.Message.Headers.TryGetLastBytes(name, out var value) ? Encoding.UTF8.GetString(value) : null;

    public sealed class RecordingOrderHandler : IMessageHandler<Order>
    {
        private readonly ConcurrentQueue<(string Id, string Currency)> _handled = new();

        public List<string> Ids => [.. _handled.Select(h => h.Id)];

        public List<string> Currencies => [.. _handled.Select(h => h.Currency)];

        public ValueTask HandleAsync(Order message, MessageContext context, CancellationToken cancellationToken)
        {
            _handled.Enqueue((message.Id, message.Currency));
            return ValueTask.CompletedTask;
        }
    }
}
