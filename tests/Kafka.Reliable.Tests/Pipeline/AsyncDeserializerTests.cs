using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Tests.Batching;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Pipeline;

/// <summary>
/// Asynchronous deserializers (a schema registry's): a bad payload is poison, dead-lettered at stage deserialize with the
/// headers its exception gives; an unavailable dependency is never the record's fault: the record is retried, then waits,
/// holding its partition, and is handled once the dependency answers.
/// </summary>
public sealed class AsyncDeserializerTests(KafkaBrokerFixture broker)
{
    [Theory]
    [InlineData("async")]
    [InlineData("confluent-sync")]
    [InlineData("confluent-async")]
    public async Task GoodRecordsAreHandled_BadOnesAreDeadLetteredAtStageDeserialize_WithTheHeadersTheirExceptionGives(string kind)
    {
        var topic = await broker.CreateTopicAsync(2);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var records = TestConsumer.Events(30, 2).ToList();
        records[7] = (1, "k7", "bad:7");
        records[20] = (0, "k20", "bad:20");
        await broker.ProduceAsync(topic, records);
        var registry = new FakeRegistry();

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, customize: c => _ = kind switch
        {
            "async" => c.WithDeserializer(registry),
            "confluent-sync" => c.WithConfluentDeserializer((IDeserializer<TestEvent>)registry),
            _ => c.WithConfluentDeserializer((IAsyncDeserializer<TestEvent>)registry),
        });
        var deadLetters = broker.ReadAll(topic + ".dlq", 1, expected: 2);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2).Values.Sum() == 30, "both partitions are committed to their end", state: () => consumer.Logs.Dump(10));

        Assert.Equal(Enumerable.Range(0, 30).Where(id => id is not (7 or 20)), consumer.Handler.Handled.Select(h => h.Id).Order());
        Assert.Equal(["bad:20", "bad:7"], deadLetters.Select(d => Encoding.UTF8.GetString(d.Message.Value!)).Order());
        Assert.All(deadLetters, d => Assert.Equal("deserialize", Header(d, DeadLetterHeaders.FailureStage)));
        Assert.All(deadLetters, d => Assert.Equal("42", Header(d, DeadLetterHeaders.SchemaId)));
        Assert.All(deadLetters, d => Assert.Equal("1", Header(d, DeadLetterHeaders.Attempts)));
    }

    /// <summary>
    /// The registry is down from the start: every record is retried (each attempt counts for the circuit, which opens), then
    /// waits, holding its partition; nothing is handled, committed or dead-lettered. Once the registry is back, every record
    /// is handled, in offset order.
    /// </summary>
    [Fact]
    public async Task DependencyDown_RecordsWaitHoldingTheirPartition_NothingIsDeadLettered_AllAreHandledInOrderWhenItReturns()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(20, 1));
        var registry = new FakeRegistry { Available = false };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, configure: o =>
        {
            o.CircuitBreaker.Enabled = true;
            o.CircuitBreaker.MinimumThroughput = 2;
            o.CircuitBreaker.SamplingDuration = TimeSpan.FromSeconds(30);
            o.CircuitBreaker.BreakDuration = TimeSpan.FromMilliseconds(500);
            o.Retry.MaxAttempts = 3;
        }, customize: c => c.WithDeserializer(registry));
        await Eventually.TrueAsync(() => consumer.Logs.CountOf(209) >= 1, "the circuit opens while the registry is down (log 209)", state: () => consumer.Logs.Dump(10));
        // Past the retries and as many circuit trials again (2 x MaxAttempts), after which a handler failure is dead-lettered (log 223).
        await Eventually.TrueAsync(() => registry.Calls >= 12, "the record keeps being tried while the registry is down", state: () => consumer.Logs.Dump(10));
        Assert.Equal(0, consumer.Logs.CountOf(223));
        Assert.Empty(consumer.Handler.Handled);
        Assert.Equal(0, broker.GetHighWatermarks(topic + ".dlq", 1)[0]);

        registry.Available = true;
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 20, "the partition is committed to its end once the registry is back", state: () => consumer.Logs.Dump(10));
        Assert.Equal(Enumerable.Range(0, 20), consumer.Handler.Handled.Select(h => h.Id));
        Assert.Equal(0, broker.GetHighWatermarks(topic + ".dlq", 1)[0]);
    }

    /// <summary>
    /// A record whose deserializer waits for its dependency holds its whole batch: the batch waits (log 234), nothing is
    /// dead-lettered, and once the dependency is back the batch is handled whole.
    /// </summary>
    [Fact]
    public async Task DependencyDown_WithABatchHandler_TheBatchWaits_ThenIsHandledWhole()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(20, 1));
        var registry = new FakeRegistry { Available = false };

        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, configure: o =>
        {
            o.Batch.MaxSize = 20;
            o.Batch.Linger = TimeSpan.FromSeconds(10);
        }, customize: c => c.WithDeserializer(registry));
        await Eventually.TrueAsync(() => consumer.Logs.CountOf(234) >= 3, "the batch waits for the registry (log 234)", state: () => consumer.Logs.Dump(10));
        Assert.Empty(consumer.Handler.Calls);

        registry.Available = true;
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 20, "the partition is committed to its end once the registry is back", state: () => consumer.Logs.Dump(10));
        Assert.Equal([20], consumer.Handler.Calls.Select(c => c.Ids.Count));
        Assert.Equal(0, broker.GetHighWatermarks(topic + ".dlq", 1)[0]);
    }

    private static string Header(ConsumeResult<byte[]?, byte[]?> record, string key) =>
        record.Message.Headers.TryGetLastBytes(key, out var value) ? Encoding.UTF8.GetString(value) : "(none)";

    /// <summary>A payload that names an unknown schema: poison, with the schema id for the dead letter.</summary>
    private sealed class UnknownSchemaException(string message) : FormatException(message), IDeadLetterHeaderSource
    {
        public IReadOnlyList<KeyValuePair<string, string>> DeadLetterHeaders { get; } = [new(Kafka.Reliable.DeadLetter.DeadLetterHeaders.SchemaId, "42")];
    }

    /// <summary>A deserializer that depends on a registry which can be down; payloads starting with "bad:" name an unknown schema.</summary>
    private sealed class FakeRegistry : IAsyncMessageDeserializer<TestEvent>, IDeserializer<TestEvent>, IAsyncDeserializer<TestEvent>
    {
        private int _calls;
        private volatile bool _available = true;

        public bool Available
        {
            get => _available;
            set => _available = value;
        }

        public int Calls => Volatile.Read(ref _calls);

        public async ValueTask<TestEvent> DeserializeAsync(ReadOnlyMemory<byte> value, bool isNull, MessageContext context, CancellationToken cancellationToken)
        {
            await Task.Yield();
            return Parse(value.Span);
        }

        public TestEvent Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context) => Parse(data);

        public async Task<TestEvent> DeserializeAsync(ReadOnlyMemory<byte> data, bool isNull, SerializationContext context)
        {
            await Task.Yield();
            return Parse(data.Span);
        }

        private TestEvent Parse(ReadOnlySpan<byte> value)
        {
            Interlocked.Increment(ref _calls);
            if (!_available)
            {
                throw new DependencyUnavailableException("The schema registry at http://127.0.0.1:1 did not answer.");
            }

            if (value.StartsWith("bad:"u8))
            {
                throw new UnknownSchemaException("Schema 42 is not in the registry.");
            }

            return JsonSerializer.Deserialize<TestEvent>(value)!;
        }
    }
}
