using Avro.Generic;
using Confluent.Kafka;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.SchemaRegistry.Tests.Avro;
using Kafka.Reliable.SchemaRegistry.Tests.Infrastructure;

namespace Kafka.Reliable.SchemaRegistry.Tests;

public sealed class AvroDeserializerTests : IDisposable
{
    private readonly TestRegistry _registry = TestRegistry.Start();

    public void Dispose() => _registry.Dispose();

    [Fact]
    public async Task SpecificRecord_WrittenByConfluentSerializer_RoundTrips()
    {
        using var connection = TestSupport.Connect(_registry);
        var bytes = await SerializeAsync(new Order { Id = "o-1", Quantity = 3, Currency = "USD" });

        var order = await Deserializer<Order>(connection).DeserializeAsync(bytes);

        Assert.Equal(("o-1", 3, "USD"), (order.Id, order.Quantity, order.Currency));
    }

    [Fact]
    public async Task GenericRecord_WrittenByConfluentSerializer_RoundTrips()
    {
        using var connection = TestSupport.Connect(_registry);
        var bytes = await SerializeGenericAsync(OrderSchemas.V1, ("Id", "o-2"), ("Quantity", 5));

        var record = await Deserializer<GenericRecord>(connection).DeserializeAsync(bytes);

        Assert.Equal("o-2", record["Id"]);
        Assert.Equal(5, record["Quantity"]);
    }

    [Fact]
    public async Task WrittenWithV1_ReadWithV2AddingFieldWithDefault_FillsTheDefault()
    {
        using var connection = TestSupport.Connect(_registry);
        var bytes = await SerializeGenericAsync(OrderSchemas.V1, ("Id", "o-3"), ("Quantity", 7));

        var order = await Deserializer<Order>(connection).DeserializeAsync(bytes);

        Assert.Equal(("o-3", 7, "EUR"), (order.Id, order.Quantity, order.Currency));
    }

    [Fact]
    public async Task IncompatibleWriterSchema_IsPoisonWithSchemaId()
    {
        using var connection = TestSupport.Connect(_registry);
        var bytes = await SerializeGenericAsync(OrderSchemas.Incompatible, ("Id", "o-4"), ("Quantity", "many"));
        var id = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(1));

        var ex = await Assert.ThrowsAsync<SchemaPayloadException>(() => Deserializer<Order>(connection).DeserializeAsync(bytes).AsTask());

        Assert.Equal(SchemaPayloadFailure.SchemaMismatch, ex.Failure);
        Assert.Contains(new KeyValuePair<string, string>(DeadLetterHeaders.SchemaId, id.ToString()), ex.DeadLetterHeaders);
    }

    [Fact]
    public async Task UnknownSchemaId_IsPoisonWithTheId()
    {
        using var connection = TestSupport.Connect(_registry);
        var bytes = TestSupport.Frame(4242, [2, 0x61, 0]);

        var ex = await Assert.ThrowsAsync<SchemaPayloadException>(() => Deserializer<Order>(connection).DeserializeAsync(bytes).AsTask());

        Assert.Equal(SchemaPayloadFailure.UnknownSchema, ex.Failure);
        Assert.Equal("4242", ex.SchemaId);
        Assert.Contains(new KeyValuePair<string, string>(DeadLetterHeaders.SchemaId, "4242"), ex.DeadLetterHeaders);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0, 0, 1 })]
    [InlineData(new byte[] { 1, 0, 0, 0, 1, 2, 0x61 })]
    [InlineData(new byte[] { (byte)'{', (byte)'"', (byte)'I', (byte)'d', (byte)'"', (byte)':', (byte)'1', (byte)'}' })]
    public async Task UnframedValue_IsPoisonWithoutRegistryRequest(byte[] value)
    {
        using var connection = TestSupport.Connect(_registry);

        var ex = await Assert.ThrowsAsync<SchemaPayloadException>(() => Deserializer<Order>(connection).DeserializeAsync(value).AsTask());

        Assert.Equal(SchemaPayloadFailure.NotFramed, ex.Failure);
        Assert.Empty(ex.DeadLetterHeaders);
        Assert.Contains("wire format", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, _registry.RequestCount);
    }

    [Fact]
    public async Task RegistryUnavailable_ThrowsDependencyUnavailable_ThenReadsOnceItIsBack()
    {
        using var connection = TestSupport.Connect(_registry, o => o.BasicAuthUserInfo = "reader:s3cret-password");
        var bytes = await SerializeAsync(new Order { Id = "o-5", Quantity = 1 });
        var deserializer = Deserializer<Order>(connection);
        _registry.SetAvailable(false);

        var ex = await Assert.ThrowsAsync<DependencyUnavailableException>(() => deserializer.DeserializeAsync(bytes).AsTask());

        Assert.Contains(_registry.Url, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret", ex.ToString(), StringComparison.Ordinal);
        _registry.SetAvailable(true);
        Assert.Equal("o-5", (await deserializer.DeserializeAsync(bytes)).Id);
    }

    [Fact]
    public async Task RegistryUnavailable_MaxRetriesZero_MakesOneRequestPerAttempt()
    {
        using var connection = TestSupport.Connect(_registry);
        var id = _registry.RegisterSchema("orders-value", OrderSchemas.V2);
        var deserializer = Deserializer<Order>(connection);
        _registry.SetAvailable(false);
        // The subject is looked up by association first (one request); it fails too.
        await Assert.ThrowsAsync<DependencyUnavailableException>(() => deserializer.DeserializeAsync(TestSupport.Frame(id, [2, 0x61, 2])).AsTask());
        var before = _registry.RequestCount;

        await Assert.ThrowsAsync<DependencyUnavailableException>(() => deserializer.DeserializeAsync(TestSupport.Frame(id, [2, 0x61, 2])).AsTask());

        Assert.Equal(1, _registry.RequestCount - before);
    }

    [Fact]
    public async Task SecondRecordWithSameSchemaId_MakesNoRegistryRequest()
    {
        using var connection = TestSupport.Connect(_registry);
        var first = await SerializeAsync(new Order { Id = "o-6", Quantity = 1 });
        var second = await SerializeAsync(new Order { Id = "o-7", Quantity = 2 });
        var deserializer = Deserializer<Order>(connection);
        _ = await deserializer.DeserializeAsync(first);
        var before = _registry.RequestCount;

        var order = await deserializer.DeserializeAsync(second);

        Assert.Equal("o-7", order.Id);
        Assert.Equal(before, _registry.RequestCount);
    }

    private static ConfluentSchemaDeserializer<T> Deserializer<T>(SchemaRegistryConnection connection) =>
        new(new AvroDeserializer<T>(connection.Client), connection, "Avro");

    /// <summary>Serializes as a producer would, with its own client (so that the consumer's cache starts empty).</summary>
    private async Task<byte[]> SerializeAsync(Order order)
    {
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = _registry.Url });
        var serializer = new AvroSerializer<Order>(client);
        var bytes = await serializer.SerializeAsync(order, new SerializationContext(MessageComponentType.Value, TestSupport.Topic));
        return bytes;
    }

    private async Task<byte[]> SerializeGenericAsync(string schema, params (string Field, object Value)[] fields)
    {
        var record = new GenericRecord((global::Avro.RecordSchema)global::Avro.Schema.Parse(schema));
        foreach (var (field, value) in fields)
        {
            record.Add(field, value);
        }

        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = _registry.Url });
        var bytes = await new AvroSerializer<GenericRecord>(client).SerializeAsync(record, new SerializationContext(MessageComponentType.Value, TestSupport.Topic));
        return bytes;
    }
}
