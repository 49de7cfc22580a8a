using System.Buffers.Binary;
using System.Text;
#if !TORTURE_OLD_LIBRARY
using Avro.Generic;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using Kafka.Reliable.SchemaRegistry;
#endif

namespace Kafka.Reliable.Torture;

/// <summary>
/// The jobs as Avro records framed for a Schema Registry (<see cref="TortureConfig.AvroPayload"/>): each run starts an
/// embedded registry and registers <see cref="Schema"/> (id 1) and <see cref="IncompatibleSchema"/> (id 2) first, so that
/// the records can be drawn from the seed alone. Every poison kind has an Avro counterpart with the same outcome.
/// </summary>
public static class AvroJobs
{
    public const int SchemaId = 1;

    public const int IncompatibleSchemaId = 2;

    /// <summary>An id no run registers: a record framed with it names an unknown schema.</summary>
    public const int UnknownSchemaId = 999;

    public const string Subject = "torture-jobs-value";

    public const string IncompatibleSubject = "torture-jobs-legacy-value";

    public const string Schema = """
        {"type": "record", "name": "Job", "namespace": "torture", "fields": [
          {"name": "Id", "type": "int"}, {"name": "Key", "type": "string"}, {"name": "Do", "type": "string"},
          {"name": "Ms", "type": "int"}, {"name": "N", "type": "int"}]}
        """;

    /// <summary>The job as an old producer wrote it, its id a string: Avro cannot resolve it into the int of <see cref="Schema"/>... read as written, the consumer's mapping refuses it.</summary>
    public const string IncompatibleSchema = """
        {"type": "record", "name": "Job", "namespace": "torture", "fields": [
          {"name": "Id", "type": "string"}, {"name": "Key", "type": "string"}]}
        """;

    /// <summary>The record's value: Avro for the jobs, and for each poison kind what fails the same way in Avro.</summary>
    public static byte[]? Payload(Job job, int limit) => job.Do switch
    {
        RecordKind.Tombstone => null,

        // Not framed for a registry (a JSON producer on the topic).
        RecordKind.PoisonJson => Encoding.UTF8.GetBytes($"{{\"Id\":{job.Id},\"Key\":"),

        // Framed with a schema the consumer cannot read.
        RecordKind.PoisonShape => Frame(IncompatibleSchemaId, [.. String($"id-{job.Id}"), .. String(job.Key)]),

        // Framed with a schema id the registry does not know.
        RecordKind.PoisonDuplicate => Frame(UnknownSchemaId, Encode(job with { Do = RecordKind.Ok })),

        // Over MaxPayloadBytes (never read), and unframed bytes just under it.
        RecordKind.Oversize => Padding(limit + 100),
        RecordKind.BigPoison => Padding(limit - 200),
        _ => Frame(SchemaId, Encode(job)),
    };

    private static byte[] Padding(int size)
    {
        var bytes = new byte[size];
        bytes.AsSpan().Fill((byte)'x');
        return bytes;
    }

    private static byte[] Frame(int schemaId, byte[] body)
    {
        var bytes = new byte[5 + body.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(1), schemaId);
        body.CopyTo(bytes, 5);
        return bytes;
    }

    /// <summary>Avro's binary encoding of a job: ints as zigzag varints, strings as their length and UTF-8 bytes.</summary>
    private static byte[] Encode(Job job) => [.. Int(job.Id), .. String(job.Key), .. String(job.Do.ToString()), .. Int(job.Ms), .. Int(job.N)];

    private static byte[] Int(long value)
    {
        var bytes = new List<byte>();
        var zigzag = (ulong)((value << 1) ^ (value >> 63));
        do
        {
            var b = (byte)(zigzag & 0x7F);
            zigzag >>= 7;
            bytes.Add(zigzag == 0 ? b : (byte)(b | 0x80));
        }
        while (zigzag != 0);
        return [.. bytes];
    }

    private static byte[] String(string value)
    {
        var utf8 = Encoding.UTF8.GetBytes(value);
        return [.. Int(utf8.Length), .. utf8];
    }
}

#if !TORTURE_OLD_LIBRARY
/// <summary>
/// Reads the Avro jobs through <c>Kafka.Reliable.SchemaRegistry</c>'s Avro deserializer (generic records, mapped to
/// <see cref="Job"/>): a registry that is down makes the records wait; unframed values, unknown ids and a writer schema
/// the jobs cannot be read from are poison.
/// </summary>
public sealed class AvroJobDeserializer : IAsyncMessageDeserializer<Job>, IDisposable
{
    private readonly SchemaRegistryConnection _registry;
    private readonly IAsyncMessageDeserializer<GenericRecord> _avro;

    public AvroJobDeserializer(string registryUrl)
    {
        var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registryUrl, RequestTimeoutMs = 5_000, MaxRetries = 1 });
        _registry = new SchemaRegistryConnection(client, $"The Schema Registry at {registryUrl}", maxCachedSchemas: 100, owned: true);
        _avro = new ConfluentSchemaDeserializer<GenericRecord>(new AvroDeserializer<GenericRecord>(client), _registry, "Avro");
    }

    public async ValueTask<Job> DeserializeAsync(ReadOnlyMemory<byte> value, bool isNull, MessageContext context, CancellationToken cancellationToken)
    {
        if (isNull)
        {
            // As JobDeserializer: a tombstone (under Tombstones: Handle) is a job of its own.
            return new Job(-1, string.Empty, RecordKind.Tombstone, 0, 0);
        }

        var record = await _avro.DeserializeAsync(value, isNull, context, cancellationToken).ConfigureAwait(false);
        if (record["Id"] is not int id || !record.TryGetValue("Do", out var kind))
        {
            throw new SchemaPayloadException(SchemaPayloadFailure.SchemaMismatch, AvroJobs.IncompatibleSchemaId.ToString(System.Globalization.CultureInfo.InvariantCulture), "The Avro record is not a job of the current schema.");
        }

        return new Job(id, (string)record["Key"], Enum.Parse<RecordKind>((string)kind), (int)record["Ms"], (int)record["N"]);
    }

    public void Dispose() => _registry.Dispose();
}
#endif
