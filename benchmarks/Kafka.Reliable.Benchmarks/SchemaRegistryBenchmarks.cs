using System.Buffers.Binary;
using Avro;
using Avro.Generic;
using BenchmarkDotNet.Attributes;
using Confluent.Kafka;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using Google.Protobuf;
using Kafka.Reliable.Pipeline;
using Kafka.Reliable.SchemaRegistry;
using Kafka.Reliable.SchemaRegistry.Tests.Protos;
using Kafka.Reliable.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable.Benchmarks;

/// <summary>
/// One record of each Schema Registry format through the library (the format's deserializer, translate, a no-op handler)
/// against the same deserializing done directly (Confluent's deserializer, or Google.Protobuf's parser after the framing):
/// the difference is the library's own cost per record. Schemas are cached by then on both sides (the embedded registry
/// serves the first lookup). The first two rows show what an asynchronous deserializer costs the pipeline itself, with
/// System.Text.Json on both.
/// </summary>
[MemoryDiagnoser]
public class SchemaRegistryBenchmarks
{
    private const int Records = 1024;
    // A topic per format: the serializers register under {topic}-value, and a subject holds one schema type.
    private const string AvroTopic = "orders-avro";
    private const string JsonTopic = "orders-json";
    private const string ProtobufTopic = "orders-protobuf";
    private readonly MessageContext _context = new("bench", "group");
    private EmbeddedSchemaRegistry _registry = null!;
    private CachedSchemaRegistryClient _client = null!;
    private ConsumeResult<byte[]?, byte[]?>[] _avro = null!;
    private ConsumeResult<byte[]?, byte[]?>[] _json = null!;
    private ConsumeResult<byte[]?, byte[]?>[] _protobuf = null!;
    private ConsumeResult<byte[]?, byte[]?>[] _plainJson = null!;
    private AvroDeserializer<GenericRecord> _avroAlone = null!;
    private JsonDeserializer<JsonOrder> _jsonAlone = null!;
    private RecordProcessor<GenericRecord, GenericRecord> _avroThroughLibrary = null!;
    private RecordProcessor<JsonOrder, JsonOrder> _jsonThroughLibrary = null!;
    private RecordProcessor<OrderPlaced, OrderPlaced> _protobufThroughLibrary = null!;
    private RecordProcessor<JsonOrder, JsonOrder> _plainSync = null!;
    private RecordProcessor<JsonOrder, JsonOrder> _plainAsync = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        _registry = EmbeddedSchemaRegistry.Start();
        _client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = _registry.Url });

        var schema = (RecordSchema)Avro.Schema.Parse("""
            {"type": "record", "name": "OrderPlaced", "namespace": "bench", "fields": [
              {"name": "order_id", "type": "string"}, {"name": "quantity", "type": "int"}, {"name": "total", "type": "double"}]}
            """);
        var record = new GenericRecord(schema);
        record.Add("order_id", "o-00042");
        record.Add("quantity", 3);
        record.Add("total", 59.85);
        _avro = RecordsOf(await new AvroSerializer<GenericRecord>(_client).SerializeAsync(record, new SerializationContext(MessageComponentType.Value, AvroTopic)), AvroTopic);
        _json = RecordsOf(
            await new JsonSerializer<JsonOrder>(_client).SerializeAsync(new JsonOrder { OrderId = "o-00042", Quantity = 3, Total = 59.85 }, new SerializationContext(MessageComponentType.Value, JsonTopic)),
            JsonTopic);

        // Confluent's Protobuf serializer is not available here: the value framed as it frames it, OrderPlaced at index [1].
        var proto = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "orders.proto"));
        var id = _registry.RegisterSchema(ProtobufTopic + "-value", proto, "PROTOBUF");
        var message = new OrderPlaced { OrderId = "o-00042", Quantity = 3 }.ToByteArray();
        var framed = new byte[7 + message.Length];
        BinaryPrimitives.WriteInt32BigEndian(framed.AsSpan(1), id);
        framed[5] = 2; // one index, zigzag
        framed[6] = 2; // index 1, zigzag
        message.CopyTo(framed, 7);
        _protobuf = RecordsOf(framed, ProtobufTopic);
        _plainJson = RecordsOf(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new JsonOrder { OrderId = "o-00042", Quantity = 3, Total = 59.85 }), JsonTopic);

        var services = new ServiceCollection().AddSingleton(typeof(NoOp<>)).BuildServiceProvider();
        var connection = new SchemaRegistryConnection(_client, _registry.Url, maxCachedSchemas: 1000, owned: false);
        _avroAlone = new AvroDeserializer<GenericRecord>(_client);
        _jsonAlone = new JsonDeserializer<JsonOrder>(_client);
        _avroThroughLibrary = Processor<GenericRecord>(services, null, new ConfluentSchemaDeserializer<GenericRecord>(new AvroDeserializer<GenericRecord>(_client), connection, "Avro"));
        _jsonThroughLibrary = Processor<JsonOrder>(services, null, new ConfluentSchemaDeserializer<JsonOrder>(new JsonDeserializer<JsonOrder>(_client), connection, "JSON Schema"));
        _protobufThroughLibrary = Processor<OrderPlaced>(services, null, new ProtobufSchemaDeserializer<OrderPlaced>(connection));
        var plain = new JsonMessageDeserializer<JsonOrder>();
        _plainSync = Processor<JsonOrder>(services, plain, null);
        _plainAsync = Processor<JsonOrder>(services, null, new Synchronously<JsonOrder>(plain));

        // The first lookup of each schema, outside the measurement.
        await AvroThroughLibrary();
        await JsonSchemaThroughLibrary();
        await ProtobufThroughLibrary();
        await AvroAlone();
        await JsonSchemaAlone();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _client.Dispose();
        _registry.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Records, Description = "JSON (System.Text.Json), synchronous deserializer, through the library")]
    public Task PlainJsonSync() => RunAsync(_plainSync, _plainJson);

    [Benchmark(OperationsPerInvoke = Records, Description = "JSON (System.Text.Json), the same as an asynchronous deserializer, through the library")]
    public Task PlainJsonAsync() => RunAsync(_plainAsync, _plainJson);

    [Benchmark(OperationsPerInvoke = Records, Description = "Avro (GenericRecord): Confluent's AvroDeserializer alone")]
    public async Task<int> AvroAlone()
    {
        var quantity = 0;
        for (var i = 0; i < Records; i++)
        {
            var value = _avro[i].Message.Value!;
            quantity += (int)(await _avroAlone.DeserializeAsync(value, isNull: false, new SerializationContext(MessageComponentType.Value, AvroTopic, _avro[i].Message.Headers)))["quantity"];
        }

        return quantity;
    }

    [Benchmark(OperationsPerInvoke = Records, Description = "Avro (GenericRecord): through the library")]
    public Task AvroThroughLibrary() => RunAsync(_avroThroughLibrary, _avro);

    [Benchmark(OperationsPerInvoke = Records, Description = "JSON Schema: Confluent's JsonDeserializer alone")]
    public async Task<int> JsonSchemaAlone()
    {
        var quantity = 0;
        for (var i = 0; i < Records; i++)
        {
            var value = _json[i].Message.Value!;
            quantity += (await _jsonAlone.DeserializeAsync(value, isNull: false, new SerializationContext(MessageComponentType.Value, JsonTopic, _json[i].Message.Headers))).Quantity;
        }

        return quantity;
    }

    [Benchmark(OperationsPerInvoke = Records, Description = "JSON Schema: through the library")]
    public Task JsonSchemaThroughLibrary() => RunAsync(_jsonThroughLibrary, _json);

    [Benchmark(OperationsPerInvoke = Records, Description = "Protobuf: Google.Protobuf's parser alone, after the framing")]
    public long ProtobufAlone()
    {
        long quantity = 0;
        for (var i = 0; i < Records; i++)
        {
            quantity += OrderPlaced.Parser.ParseFrom(_protobuf[i].Message.Value.AsSpan(7)).Quantity;
        }

        return quantity;
    }

    [Benchmark(OperationsPerInvoke = Records, Description = "Protobuf: through the library (framing, schema check, parse)")]
    public Task ProtobufThroughLibrary() => RunAsync(_protobufThroughLibrary, _protobuf);

    private async Task RunAsync<T>(RecordProcessor<T, T> processor, ConsumeResult<byte[]?, byte[]?>[] records)
    {
        for (var i = 0; i < Records; i++)
        {
            _context.Initialize(records[i]);
            var outcome = await processor.ProcessAsync(_context, CancellationToken.None);
            _context.Reset();
            if (!outcome.IsSuccess)
            {
                throw new InvalidOperationException($"The benchmark's record failed: {outcome.Exception}");
            }
        }
    }

    private static RecordProcessor<T, T> Processor<T>(IServiceProvider services, IMessageDeserializer<T>? deserializer, IAsyncMessageDeserializer<T>? asyncDeserializer) =>
        new(deserializer, IdentityTranslator<T>.Instance, static sp => sp.GetRequiredService<NoOp<T>>(), handlerIsSingleton: true, services, asyncDeserializer: asyncDeserializer);

    private static ConsumeResult<byte[]?, byte[]?>[] RecordsOf(byte[] value, string topic) =>
        [.. Enumerable.Range(0, Records).Select(i => new ConsumeResult<byte[]?, byte[]?>
        {
            Topic = topic,
            Partition = new Partition(i % 6),
            Offset = new Offset(i),
            Message = new Message<byte[]?, byte[]?> { Key = "o-00042"u8.ToArray(), Value = value, Headers = [], Timestamp = new Timestamp(1_700_000_000_000, TimestampType.CreateTime) },
        })];

    /// <summary>The order of the JSON rows (a class: Confluent's JSON serdes take reference types).</summary>
    public sealed class JsonOrder
    {
        public string OrderId { get; set; } = string.Empty;

        public int Quantity { get; set; }

        public double Total { get; set; }
    }

    private sealed class NoOp<T> : IMessageHandler<T>
    {
        public ValueTask HandleAsync(T message, MessageContext context, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    /// <summary>A synchronous deserializer seen as an asynchronous one: what the asynchronous step costs by itself.</summary>
    private sealed class Synchronously<T>(IMessageDeserializer<T> inner) : IAsyncMessageDeserializer<T>
    {
        public ValueTask<T> DeserializeAsync(ReadOnlyMemory<byte> value, bool isNull, MessageContext context, CancellationToken cancellationToken) =>
            new(inner.Deserialize(value.Span, isNull, context));
    }
}
