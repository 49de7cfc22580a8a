using Confluent.Kafka;
using Google.Protobuf;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.SchemaRegistry.Tests.Infrastructure;
using Kafka.Reliable.SchemaRegistry.Tests.Protos;

namespace Kafka.Reliable.SchemaRegistry.Tests;

public sealed class ProtobufDeserializerTests : IDisposable
{
    private static readonly string OrdersProto = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Protos", "orders.proto"));

    private readonly TestRegistry _registry = TestRegistry.Start();

    public void Dispose() => _registry.Dispose();

    [Fact]
    public async Task FramedMessage_RoundTrips()
    {
        using var connection = TestSupport.Connect(_registry);
        var id = Register();
        var sent = new OrderPlaced { OrderId = "p-1", Quantity = 9, Tags = { ["a"] = "b" }, Lines = { new OrderPlaced.Types.Line { Sku = "s" } } };

        var order = await new ProtobufSchemaDeserializer<OrderPlaced>(connection).DeserializeAsync(TestSupport.FrameProtobuf(id, [1], sent));

        Assert.Equal(sent, order);
    }

    /// <summary>
    /// A compatible evolution: a newer producer's schema adds a field to the message; the consumer's type, compiled from the
    /// older schema, reads such messages (the new field is kept as an unknown field), and the index still names the message.
    /// </summary>
    [Fact]
    public async Task WrittenWithANewerSchemaAddingAField_IsRead()
    {
        using var connection = TestSupport.Connect(_registry);
        var v2 = _registry.RegisterSchema("orders-value", OrdersProto.Replace("  Status status = 5;", "  Status status = 5;\n  string currency = 6;", StringComparison.Ordinal), "PROTOBUF");
        var sent = new OrderPlaced { OrderId = "p-2", Quantity = 3 };

        // Field 6 (a string, "EUR"), as the newer producer writes it after the fields the consumer knows.
        byte[] newerBytes = [.. sent.ToByteArray(), 0x32, 3, (byte)'E', (byte)'U', (byte)'R'];
        var framed = TestSupport.FrameProtobuf(v2, [1], sent);
        var value = framed.AsSpan(0, framed.Length - sent.CalculateSize()).ToArray().Concat(newerBytes).ToArray();

        var order = await new ProtobufSchemaDeserializer<OrderPlaced>(connection).DeserializeAsync(value);

        Assert.Equal(("p-2", 3L), (order.OrderId, order.Quantity));
    }

    [Fact]
    public async Task FirstMessage_WrittenAsSingleZeroByte_IsRead()
    {
        using var connection = TestSupport.Connect(_registry);
        var bytes = TestSupport.FrameProtobuf(Register(), [0], new Envelope { Note = "n" });

        Assert.Equal(0, bytes[5]);
        Assert.Equal("n", (await new ProtobufSchemaDeserializer<Envelope>(connection).DeserializeAsync(bytes)).Note);
    }

    [Fact]
    public async Task NestedMessage_IndexPathCountsMapEntryTypes_IsRead()
    {
        using var connection = TestSupport.Connect(_registry);
        var indexes = TestSupport.IndexesOf(OrderPlaced.Types.Line.Descriptor);

        var line = await new ProtobufSchemaDeserializer<OrderPlaced.Types.Line>(connection)
            .DeserializeAsync(TestSupport.FrameProtobuf(Register(), indexes, new OrderPlaced.Types.Line { Sku = "sku-1" }));

        Assert.Equal([1, 1], indexes);
        Assert.Equal("sku-1", line.Sku);
    }

    [Fact]
    public async Task MessageIndexPointingAtAnotherType_IsPoisonWithSchemaId()
    {
        using var connection = TestSupport.Connect(_registry);
        var id = Register();

        var ex = await Assert.ThrowsAsync<SchemaPayloadException>(() => new ProtobufSchemaDeserializer<OrderPlaced>(connection)
            .DeserializeAsync(TestSupport.FrameProtobuf(id, [0], new Envelope { Note = "n" })).AsTask());

        Assert.Equal(SchemaPayloadFailure.SchemaMismatch, ex.Failure);
        Assert.Contains("kafka.reliable.tests.Envelope", ex.Message, StringComparison.Ordinal);
        Assert.Contains(new KeyValuePair<string, string>(DeadLetterHeaders.SchemaId, id.ToString()), ex.DeadLetterHeaders);
    }

    [Fact]
    public async Task MessageIndexOutOfRange_IsPoison()
    {
        using var connection = TestSupport.Connect(_registry);

        var ex = await Assert.ThrowsAsync<SchemaPayloadException>(() => new ProtobufSchemaDeserializer<OrderPlaced>(connection)
            .DeserializeAsync(TestSupport.FrameProtobuf(Register(), [5], new OrderPlaced())).AsTask());

        Assert.Contains("points at no message type", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BytesThatDoNotParse_ArePoisonWithSchemaId()
    {
        using var connection = TestSupport.Connect(_registry);
        var id = Register();
        var framed = TestSupport.FrameProtobuf(id, [1], new OrderPlaced());
        // Field 1, length-delimited, claiming 100 bytes that are not there.
        byte[] bytes = [.. framed, 0x0a, 100, 1, 2];

        var ex = await Assert.ThrowsAsync<SchemaPayloadException>(() => new ProtobufSchemaDeserializer<OrderPlaced>(connection).DeserializeAsync(bytes).AsTask());

        Assert.Equal((SchemaPayloadFailure.SchemaMismatch, id.ToString()), (ex.Failure, ex.SchemaId));
    }

    [Fact]
    public async Task WriterSchemaNotProtobuf_IsPoison()
    {
        using var connection = TestSupport.Connect(_registry);
        var id = _registry.RegisterSchema("orders-value", """{"type":"string"}""");

        var ex = await Assert.ThrowsAsync<SchemaPayloadException>(() => new ProtobufSchemaDeserializer<OrderPlaced>(connection)
            .DeserializeAsync(TestSupport.FrameProtobuf(id, [0], new OrderPlaced())).AsTask());

        Assert.Contains("not a Protobuf one", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SchemaIdInHeader_WithGuid_ReadsTheUnprefixedValue()
    {
        using var connection = TestSupport.Connect(_registry);
        var id = Register();
        var sent = new OrderPlaced { OrderId = "p-2", Quantity = 2 };
        var headers = new Headers { { "__value_schema_id", TestSupport.GuidHeader(_registry.GuidOf(id), [1]) } };

        var order = await new ProtobufSchemaDeserializer<OrderPlaced>(connection).DeserializeAsync(sent.ToByteArray(), headers);

        Assert.Equal(sent, order);
    }

    [Fact]
    public async Task SchemaIdInHeader_WithId_ReadsTheUnprefixedValue()
    {
        using var connection = TestSupport.Connect(_registry);
        var id = Register();
        var sent = new OrderPlaced { OrderId = "p-3" };
        var headers = new Headers { { "__value_schema_id", TestSupport.IdHeader(id, [1]) } };

        var order = await new ProtobufSchemaDeserializer<OrderPlaced>(connection).DeserializeAsync(sent.ToByteArray(), headers);

        Assert.Equal(sent, order);
    }

    [Fact]
    public async Task UnknownSchemaId_IsPoisonWithTheId()
    {
        using var connection = TestSupport.Connect(_registry);

        var ex = await Assert.ThrowsAsync<SchemaPayloadException>(() => new ProtobufSchemaDeserializer<OrderPlaced>(connection)
            .DeserializeAsync(TestSupport.FrameProtobuf(31337, [1], new OrderPlaced())).AsTask());

        Assert.Equal((SchemaPayloadFailure.UnknownSchema, "31337"), (ex.Failure, ex.SchemaId));
        Assert.Contains(new KeyValuePair<string, string>(DeadLetterHeaders.SchemaId, "31337"), ex.DeadLetterHeaders);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0, 0, 0 })]
    [InlineData(new byte[] { 8, 1, 0x12, 1, 0x61 })]
    [InlineData(new byte[] { 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 })]
    [InlineData(new byte[] { 0, 0, 0, 0, 1, 0x7f })]
    public async Task UnframedValue_IsPoisonWithoutRegistryRequest(byte[] value)
    {
        using var connection = TestSupport.Connect(_registry);

        var ex = await Assert.ThrowsAsync<SchemaPayloadException>(() => new ProtobufSchemaDeserializer<OrderPlaced>(connection).DeserializeAsync(value).AsTask());

        Assert.Equal(SchemaPayloadFailure.NotFramed, ex.Failure);
        Assert.Equal(0, _registry.RequestCount);
    }

    [Fact]
    public async Task RegistryUnavailable_ThrowsDependencyUnavailable_ThenReadsOnceItIsBack()
    {
        using var connection = TestSupport.Connect(_registry);
        var bytes = TestSupport.FrameProtobuf(Register(), [1], new OrderPlaced { OrderId = "p-4" });
        var deserializer = new ProtobufSchemaDeserializer<OrderPlaced>(connection);
        _registry.SetAvailable(false);

        var ex = await Assert.ThrowsAsync<DependencyUnavailableException>(() => deserializer.DeserializeAsync(bytes).AsTask());

        Assert.Contains(_registry.Url, ex.Message, StringComparison.Ordinal);
        _registry.SetAvailable(true);
        Assert.Equal("p-4", (await deserializer.DeserializeAsync(bytes)).OrderId);
    }

    [Fact]
    public async Task SecondRecordWithSameSchemaId_MakesNoRegistryRequest()
    {
        using var connection = TestSupport.Connect(_registry);
        var id = Register();
        var deserializer = new ProtobufSchemaDeserializer<OrderPlaced>(connection);
        _ = await deserializer.DeserializeAsync(TestSupport.FrameProtobuf(id, [1], new OrderPlaced { OrderId = "p-5" }));
        var before = _registry.RequestCount;

        var order = await deserializer.DeserializeAsync(TestSupport.FrameProtobuf(id, [1], new OrderPlaced { OrderId = "p-6" }));

        Assert.Equal("p-6", order.OrderId);
        Assert.Equal(before, _registry.RequestCount);
        Assert.Equal(1, deserializer.CachedSchemas);
    }

    [Fact]
    public async Task Cache_IsBoundedByMaxCachedSchemas()
    {
        using var connection = TestSupport.Connect(_registry, o => o.MaxCachedSchemas = 2);
        var deserializer = new ProtobufSchemaDeserializer<OrderPlaced>(connection);
        foreach (var comment in new[] { "a", "b", "c" })
        {
            var id = _registry.RegisterSchema("orders-value", $"// {comment}\n{OrdersProto}", "PROTOBUF");
            _ = await deserializer.DeserializeAsync(TestSupport.FrameProtobuf(id, [1], new OrderPlaced()));
        }

        Assert.True(deserializer.CachedSchemas <= 2, $"Expected at most 2 cached schemas, found {deserializer.CachedSchemas}.");
    }

    private int Register() => _registry.RegisterSchema("orders-value", OrdersProto, "PROTOBUF");
}
