using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Avro;
using Avro.Generic;
using Avro.IO;
using Confluent.Kafka;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using Kafka.Reliable.Testing;

namespace Orders;

/// <summary>
/// The demo's order events in Avro (<c>--format avro</c>), produced with Confluent's Avro serializer through the embedded
/// Schema Registry: the valid orders as <see cref="OrderEventAvro"/>, the malformed records as they are (not Avro at all), and
/// one record written with an incompatible schema (its total as a string), which the consumer cannot read.
/// </summary>
internal static class AvroDemo
{
    /// <summary>The records that are dead-lettered besides <see cref="DemoStream.Malformed"/>: the incompatible one.</summary>
    public const int IncompatibleRecords = 1;

    public static async Task<List<Message<byte[]?, byte[]?>>> CreateAsync(EmbeddedSchemaRegistry registry, string topic)
    {
        using var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registry.Url });
        var serializer = new AvroSerializer<OrderEventAvro>(client);
        var context = new SerializationContext(MessageComponentType.Value, topic);
        var records = new List<Message<byte[]?, byte[]?>>();
        var encoded = new Dictionary<string, byte[]>();
        foreach (var message in DemoStream.Create())
        {
            var key = Encoding.UTF8.GetString(message.Key!);
            if (key.StartsWith("bad-", StringComparison.Ordinal))
            {
                records.Add(message);
                continue;
            }

            // An order sent twice is the same Avro bytes twice.
            if (!encoded.TryGetValue(key, out var value))
            {
                var order = JsonSerializer.Deserialize(message.Value, OrdersJsonContext.Default.OrderEventMessage)!;
                encoded[key] = value = await serializer.SerializeAsync(OrderEventAvro.From(order), context);
            }

            records.Add(new Message<byte[]?, byte[]?> { Key = message.Key, Value = value });
        }

        records.Insert(records.Count / 2, new Message<byte[]?, byte[]?> { Key = "bad-avro"u8.ToArray(), Value = IncompatibleRecord(registry) });
        return records;
    }

    /// <summary>
    /// An order written by an old producer whose schema (registered under another subject) has the total as a string: framed
    /// for the registry like any record, but Avro cannot resolve a string into the consumer's double.
    /// </summary>
    private static byte[] IncompatibleRecord(EmbeddedSchemaRegistry registry)
    {
        const string Legacy = """
            {"type": "record", "name": "OrderEventAvro", "namespace": "Orders", "fields": [
              {"name": "order_id", "type": "string"},
              {"name": "total_price", "type": "string"}]}
            """;
        var id = registry.RegisterSchema("orders-legacy-value", Legacy);
        var schema = (RecordSchema)Avro.Schema.Parse(Legacy);
        var record = new GenericRecord(schema);
        record.Add("order_id", "o-legacy-1");
        record.Add("total_price", "19.90 EUR");
        using var body = new MemoryStream();
        body.WriteByte(0);
        Span<byte> idBytes = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(idBytes, id);
        body.Write(idBytes);
        new GenericDatumWriter<GenericRecord>(schema).Write(record, new BinaryEncoder(body));
        return body.ToArray();
    }
}
