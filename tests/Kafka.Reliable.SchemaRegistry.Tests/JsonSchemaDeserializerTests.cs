using System.Text;
using Confluent.Kafka;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.SchemaRegistry.Tests.Infrastructure;

namespace Kafka.Reliable.SchemaRegistry.Tests;

public sealed class JsonSchemaDeserializerTests : IDisposable
{
    private const string OrderSchema = """
        {"$schema":"http://json-schema.org/draft-07/schema#","title":"JsonOrder","type":"object",
         "properties":{"Id":{"type":"string"},"Quantity":{"type":"integer","minimum":0}},"required":["Id","Quantity"]}
        """;

    private readonly TestRegistry _registry = TestRegistry.Start();

    public void Dispose() => _registry.Dispose();

    [Fact]
    public async Task WrittenByConfluentSerializer_RoundTrips()
    {
        using var connection = TestSupport.Connect(_registry);
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = _registry.Url });
        var bytes = await new JsonSerializer<JsonOrder>(client).SerializeAsync(
            new JsonOrder { Id = "j-1", Quantity = 4 }, new SerializationContext(MessageComponentType.Value, TestSupport.Topic));

        var order = await Deserializer(connection).DeserializeAsync(bytes);

        Assert.Equal(("j-1", 4), (order.Id, order.Quantity));
    }

    [Fact]
    public async Task ValueFailingSchemaValidation_IsPoisonWithSchemaId()
    {
        using var connection = TestSupport.Connect(_registry);
        var id = _registry.RegisterSchema("orders-value", OrderSchema, "JSON");
        var bytes = TestSupport.Frame(id, Encoding.UTF8.GetBytes("""{"Id":"j-2","Quantity":-5}"""));

        var ex = await Assert.ThrowsAsync<SchemaPayloadException>(() => Deserializer(connection).DeserializeAsync(bytes).AsTask());

        Assert.Equal(SchemaPayloadFailure.SchemaMismatch, ex.Failure);
        Assert.Contains(new KeyValuePair<string, string>(DeadLetterHeaders.SchemaId, id.ToString()), ex.DeadLetterHeaders);
    }

    [Fact]
    public async Task ValidValueAgainstRegisteredSchema_IsRead()
    {
        using var connection = TestSupport.Connect(_registry);
        var id = _registry.RegisterSchema("orders-value", OrderSchema, "JSON");

        var order = await Deserializer(connection).DeserializeAsync(TestSupport.Frame(id, Encoding.UTF8.GetBytes("""{"Id":"j-3","Quantity":2}""")));

        Assert.Equal(("j-3", 2), (order.Id, order.Quantity));
    }

    /// <summary>
    /// A compatible evolution: a newer producer's schema adds an optional property; the consumer's type, written for the older
    /// schema, reads such values (the new property is ignored), validated against the newer writer schema.
    /// </summary>
    [Fact]
    public async Task WrittenWithANewerSchemaAddingAnOptionalProperty_IsRead()
    {
        using var connection = TestSupport.Connect(_registry);
        _registry.RegisterSchema("orders-value", OrderSchema, "JSON");
        var v2 = _registry.RegisterSchema("orders-value", OrderSchema.Replace("\"Quantity\":{\"type\":\"integer\",\"minimum\":0}}", "\"Quantity\":{\"type\":\"integer\",\"minimum\":0},\"Currency\":{\"type\":\"string\"}}", StringComparison.Ordinal), "JSON");

        var order = await Deserializer(connection).DeserializeAsync(TestSupport.Frame(v2, Encoding.UTF8.GetBytes("""{"Id":"j-4","Quantity":1,"Currency":"EUR"}""")));

        Assert.Equal(("j-4", 1), (order.Id, order.Quantity));
    }

    [Fact]
    public async Task UnknownSchemaId_IsPoisonWithTheId()
    {
        using var connection = TestSupport.Connect(_registry);

        var ex = await Assert.ThrowsAsync<SchemaPayloadException>(
            () => Deserializer(connection).DeserializeAsync(TestSupport.Frame(77, Encoding.UTF8.GetBytes("{}"))).AsTask());

        Assert.Equal((SchemaPayloadFailure.UnknownSchema, "77"), (ex.Failure, ex.SchemaId));
    }

    [Fact]
    public async Task UnframedJson_IsPoison()
    {
        using var connection = TestSupport.Connect(_registry);

        var ex = await Assert.ThrowsAsync<SchemaPayloadException>(
            () => Deserializer(connection).DeserializeAsync(Encoding.UTF8.GetBytes("""{"Id":"x","Quantity":1}""")).AsTask());

        Assert.Equal(SchemaPayloadFailure.NotFramed, ex.Failure);
    }

    [Fact]
    public async Task RegistryUnavailable_ThrowsDependencyUnavailable_ThenReadsOnceItIsBack()
    {
        using var connection = TestSupport.Connect(_registry);
        var id = _registry.RegisterSchema("orders-value", OrderSchema, "JSON");
        var bytes = TestSupport.Frame(id, Encoding.UTF8.GetBytes("""{"Id":"j-4","Quantity":1}"""));
        var deserializer = Deserializer(connection);
        _registry.SetAvailable(false);

        await Assert.ThrowsAsync<DependencyUnavailableException>(() => deserializer.DeserializeAsync(bytes).AsTask());

        _registry.SetAvailable(true);
        Assert.Equal("j-4", (await deserializer.DeserializeAsync(bytes)).Id);
    }

    [Fact]
    public async Task SecondRecordWithSameSchemaId_MakesNoRegistryRequest()
    {
        using var connection = TestSupport.Connect(_registry);
        var id = _registry.RegisterSchema("orders-value", OrderSchema, "JSON");
        var deserializer = Deserializer(connection);
        _ = await deserializer.DeserializeAsync(TestSupport.Frame(id, Encoding.UTF8.GetBytes("""{"Id":"j-5","Quantity":1}""")));
        var before = _registry.RequestCount;

        var order = await deserializer.DeserializeAsync(TestSupport.Frame(id, Encoding.UTF8.GetBytes("""{"Id":"j-6","Quantity":1}""")));

        Assert.Equal("j-6", order.Id);
        Assert.Equal(before, _registry.RequestCount);
    }

    private static ConfluentSchemaDeserializer<JsonOrder> Deserializer(SchemaRegistryConnection connection) =>
        new(new JsonDeserializer<JsonOrder>(connection.Client), connection, "JSON Schema");

    public sealed class JsonOrder
    {
        public string Id { get; set; } = string.Empty;

        public int Quantity { get; set; }
    }
}
