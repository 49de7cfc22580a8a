using Kafka.Reliable.DeadLetter;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Kafka.Reliable.Tests.FailureHandling;

public sealed class PoisonInputTests(KafkaBrokerFixture broker)
{
    private const int Partitions = 3;

    /// <summary>Each kind of bad record, with the stage it must be dead-lettered from.</summary>
    public static readonly (string Kind, string Stage, Func<Message<byte[]?, byte[]?>> Make)[] Corpus =
    [
        ("truncated JSON", "deserialize", () => Json("{\"Id\": 1, \"Key\": ")),
        ("wrong shape: an array", "deserialize", () => Json("[1, 2, 3]")),
        ("wrong type of a property", "deserialize", () => Json("{\"Id\": \"one\", \"Key\": \"k\"}")),
        ("empty value", "deserialize", () => new Message<byte[]?, byte[]?> { Key = "k"u8.ToArray(), Value = [] }),
        ("null value (tombstone)", "deserialize", () => new Message<byte[]?, byte[]?> { Key = "k"u8.ToArray(), Value = null }),
        ("the JSON literal null", "deserialize", () => Json("null")),
        ("invalid UTF-8", "deserialize", () => new Message<byte[]?, byte[]?> { Key = "k"u8.ToArray(), Value = [.. "{\"Id\": 1, \"Key\": \""u8, 0xC3, 0x28, .. "\"}"u8] }),
        ("oversize payload", "deserialize", () => Json("{\"Id\": 1, \"Key\": \"" + new string('x', 20_000) + "\"}")),
        ("binary (protobuf-like) bytes", "deserialize", () => new Message<byte[]?, byte[]?> { Key = "k"u8.ToArray(), Value = [0x08, 0x96, 0x01, 0x12, 0x03, 0x61, 0x62, 0x63] }),
        ("plain text", "deserialize", () => Json("order 17 shipped")),
        ("trailing garbage", "deserialize", () => Json("{\"Id\": 1, \"Key\": \"k\"} and more")),
        ("a property named twice", "deserialize", () => Json("{\"Id\": 1, \"Key\": \"k\", \"Id\": 2}")),
        ("nesting deeper than allowed", "deserialize", () => Json(new string('[', 500) + new string(']', 500))),
        ("rejected by the translator", "translate", () => Json("{\"Id\": -7, \"Key\": \"negative\"}")),
        ("rejected by the handler as fatal", "handle", () => Json("{\"Id\": 7, \"Key\": \"reject-me\"}")),
    ];

    [Fact]
    public async Task BadPayloadsMixedIntoGoodRecords_EveryGoodOneIsHandled_EveryBadOneIsDeadLetteredWithItsStage()
    {
        var topic = await broker.CreateTopicAsync(Partitions);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");

        // 1,000 good records (some with odd headers) with the 15 kinds of bad record spread among them, twice each.
        var random = new Random(20261123);
        var records = new List<(int Partition, Message<byte[]?, byte[]?> Message, string? BadKind, string? Stage)>();
        for (var id = 0; id < 1000; id++)
        {
            var message = Json($"{{\"Id\": {id}, \"Key\": \"k{id}\"}}");
            if (id % 97 == 0)
            {
                message.Headers = new Headers { { "unknown-header", [0xFF, 0x00] }, { "empty", [] }, { "unknown-header", "again"u8.ToArray() } };
            }

            records.Add((id % Partitions, message, null, null));
        }

        foreach (var (kind, stage, make) in Corpus.Concat(Corpus))
        {
            records.Insert(random.Next(records.Count), (random.Next(Partitions), make(), kind, stage));
        }

        var produced = await broker.ProduceMessagesAsync(topic, records.Select(r => (r.Partition, r.Message)));
        var expectedBad = produced.Zip(records).Where(p => p.Second.BadKind is not null)
            .ToDictionary(p => (p.First.Partition.Value, p.First.Offset.Value), p => (p.Second.BadKind!, p.Second.Stage!));

        var handler = new RecordingHandler
        {
            Behavior = (message, _, _) => message.Key == "reject-me" ? throw new NonRetryableException("rejected by the handler") : ValueTask.CompletedTask,
        };
        var logs = new FakeLogCollector();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders().AddProvider(new FakeLoggerProvider(logs)).SetMinimumLevel(LogLevel.Debug);
        builder.Services.AddSingleton(handler);
        builder.Services.AddReliableConsumer<TestEvent>("poison", o =>
            {
                o.BootstrapServers = broker.BootstrapServers;
                o.GroupId = group;
                o.Topics.Add(topic);
                o.Commit.Interval = TimeSpan.FromMilliseconds(200);
                o.MaxPayloadBytes = 10_000;
            })
            .WithTranslator<RejectNegativeIds, TestEvent>()
            .WithHandler<RecordingHandler>(ServiceLifetime.Singleton);
        using var host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);

        var dead = broker.ReadAll(topic + ".dlq", 1, expected: expectedBad.Count);
        var ends = broker.GetHighWatermarks(topic, Partitions);
        await Eventually.TrueAsync(
            () => broker.GetCommittedOffsets(group, topic, Partitions).All(c => c.Value == ends[c.Key]),
            "every partition is committed to its end",
            state: () => logs.Dump());
        await host.StopAsync(TestContext.Current.CancellationToken);

        Assert.Equal(Enumerable.Range(0, 1000), handler.Handled.Select(h => h.Id).Order());
        Assert.Equal(expectedBad.Count, dead.Count);
        foreach (var record in dead)
        {
            var partition = int.Parse(Encoding.UTF8.GetString(record.Message.Headers.GetLastBytes(DeadLetterHeaders.OriginalPartition)), System.Globalization.CultureInfo.InvariantCulture);
            var offset = long.Parse(Encoding.UTF8.GetString(record.Message.Headers.GetLastBytes(DeadLetterHeaders.OriginalOffset)), System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(expectedBad.Remove((partition, offset), out var expected), $"{partition}@{offset} was dead-lettered but is a good record");
            var stage = Encoding.UTF8.GetString(record.Message.Headers.GetLastBytes(DeadLetterHeaders.FailureStage));
            Assert.True(expected.Item2 == stage, $"'{expected.Item1}' was dead-lettered from stage '{stage}', expected '{expected.Item2}'");
            Assert.False(string.IsNullOrWhiteSpace(Encoding.UTF8.GetString(record.Message.Headers.GetLastBytes(DeadLetterHeaders.ExceptionMessage))), $"'{expected.Item1}' has a reason");
        }

        Assert.Empty(expectedBad);
        Assert.DoesNotContain(logs.GetSnapshot(), e => e.Level >= LogLevel.Critical);
    }

    [Fact]
    public async Task TombstonePolicySkip_CountsTombstonesAsDone_WithoutCallingTheHandler()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var records = TestConsumer.Events(5, 1).ToList();
        records[2] = (0, "k2", null);
        await broker.ProduceAsync(topic, records);

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, configure: o => o.Tombstones = TombstonePolicy.Skip);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 5, "the partition is committed past the tombstone");

        Assert.Equal([0, 1, 3, 4], consumer.Handler.Handled.Select(h => h.Id));
        Assert.Equal(1, consumer.Logs.CountOf(208));
        Assert.Equal(0, consumer.Logs.CountOf(205));
    }

    [Fact]
    public async Task TombstonePolicyHandle_PassesTombstonesToTheDeserializer()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var records = TestConsumer.Events(3, 1).ToList();
        records[1] = (0, "k1", null);
        await broker.ProduceAsync(topic, records);

        await using var consumer = await TestConsumer.StartAsync(
            broker, topic, group, configure: o => o.Tombstones = TombstonePolicy.Handle, customize: b => b.WithDeserializer(new DeletedWhenNull()));
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 3, "the partition is committed past the tombstone");

        Assert.Equal([0, -1, 2], consumer.Handler.Handled.Select(h => h.Id));
    }

    private static Message<byte[]?, byte[]?> Json(string text) => new() { Key = "k"u8.ToArray(), Value = Encoding.UTF8.GetBytes(text) };

    private sealed class RejectNegativeIds : IMessageTranslator<TestEvent, TestEvent>
    {
        public TestEvent Translate(TestEvent message, MessageContext context) =>
            message.Id >= 0 ? message : throw new ArgumentOutOfRangeException(nameof(message), message.Id, "an order id cannot be negative");
    }

    /// <summary>A compacted-topic style deserializer: a tombstone means "deleted".</summary>
    private sealed class DeletedWhenNull : IMessageDeserializer<TestEvent>
    {
        private readonly JsonMessageDeserializer<TestEvent> _json = new(System.Text.Json.JsonSerializerOptions.Default);

        public TestEvent Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) =>
            isNull ? new TestEvent(-1, "deleted") : _json.Deserialize(value, isNull, context);
    }
}
