using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Pipeline;

public sealed partial class JsonMessageDeserializerTests
{
    private static readonly MessageContext Context = new("test", "group");

    [Fact]
    public void Deserialize_SourceGeneratedMetadata_ReadsThePayload()
    {
        var deserializer = new JsonMessageDeserializer<TestEvent>(TestJsonContext.Default.TestEvent);
        var message = deserializer.Deserialize("""{"Id":7,"Key":"k7"}"""u8, isNull: false, Context);
        Assert.Equal(new TestEvent(7, "k7"), message);
    }

    [Fact]
    public void Deserialize_DefaultOptions_ReadsThePayload()
    {
        var deserializer = new JsonMessageDeserializer<TestEvent>();
        Assert.Equal(new TestEvent(1, "a"), deserializer.Deserialize("""{"Id":1,"Key":"a"}"""u8, false, Context));
    }

    [Theory]
    [InlineData(null, "null value (a tombstone)")]
    [InlineData("", "value is empty")]
    [InlineData("null", "JSON literal null")]
    [InlineData("{\"Id\":", "not a valid TestEvent")]
    [InlineData("{\"Id\":\"seven\"}", "not a valid TestEvent")]
    [InlineData("[1,2]", "not a valid TestEvent")]
    public void Deserialize_BadPayload_ThrowsInvalidDataSayingWhy(string? payload, string reason)
    {
        var deserializer = new JsonMessageDeserializer<TestEvent>(new JsonSerializerOptions());
        var bytes = payload is null ? [] : Encoding.UTF8.GetBytes(payload);

        var error = Assert.Throws<InvalidDataException>(() => deserializer.Deserialize(bytes, payload is null, Context));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Deserialize_PropertyNamedTwice_IsPoisonOnEveryDefaultPath()
    {
        var payload = """{"Id":1,"Key":"a","Id":2}"""u8.ToArray();
        JsonMessageDeserializer<TestEvent>[] deserializers =
        [
            new(TestJsonContext.Default.TestEvent),
            new(new JsonSerializerOptions()),
            new(),
        ];

        foreach (var deserializer in deserializers)
        {
            var error = Assert.Throws<InvalidDataException>(() => deserializer.Deserialize(payload, false, Context));
            Assert.Contains("not a valid TestEvent", error.Message, StringComparison.Ordinal);
            Assert.Contains("Id", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Deserialize_PropertyNamedTwice_AllowedOnRequest_LastValueWins()
    {
        var payload = """{"Id":1,"Key":"a","Id":2}"""u8.ToArray();
        Assert.Equal(new TestEvent(2, "a"), new JsonMessageDeserializer<TestEvent>(TestJsonContext.Default.TestEvent, allowDuplicateProperties: true).Deserialize(payload, false, Context));
        Assert.Equal(new TestEvent(2, "a"), new JsonMessageDeserializer<TestEvent>(new JsonSerializerOptions(), allowDuplicateProperties: true).Deserialize(payload, false, Context));
    }

    [Fact]
    public void Deserialize_InvalidUtf8_ThrowsInvalidData()
    {
        var deserializer = new JsonMessageDeserializer<TestEvent>(TestJsonContext.Default.TestEvent);
        byte[] payload = [.. "{\"Id\":1,\"Key\":\""u8, 0xC3, 0x28, .. "\"}"u8];
        Assert.Throws<InvalidDataException>(() => deserializer.Deserialize(payload, false, Context));
    }

    [JsonSerializable(typeof(TestEvent))]
    internal sealed partial class TestJsonContext : JsonSerializerContext;
}
