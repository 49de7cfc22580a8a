using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Kafka.Reliable.Torture.Protos;
#if !TORTURE_OLD_LIBRARY
using Avro.Generic;
using Confluent.SchemaRegistry;
using Confluent.SchemaRegistry.Serdes;
using Kafka.Reliable.SchemaRegistry;
using Kafka.Reliable.Testing;
#endif

namespace Kafka.Reliable.Torture;

/// <summary>
/// The jobs framed for a Schema Registry (<see cref="TortureConfig.Payload"/> Avro, JSON Schema or Protobuf): each run starts an
/// embedded registry and registers the format's job schema (id 1) and, for Avro, a schema the jobs cannot be read from
/// (id 2) first, so that the records can be drawn from the seed alone. Every poison kind has a counterpart in the format
/// with the same outcome.
/// </summary>
public static class RegistryJobs
{
    public const int SchemaId = 1;

    public const int IncompatibleSchemaId = 2;

    /// <summary>An id no run registers: a record framed with it names an unknown schema.</summary>
    public const int UnknownSchemaId = 999;

    public const string AvroSchema = """
        {"type": "record", "name": "Job", "namespace": "torture", "fields": [
          {"name": "Id", "type": "int"}, {"name": "Key", "type": "string"}, {"name": "Do", "type": "string"},
          {"name": "Ms", "type": "int"}, {"name": "N", "type": "int"}]}
        """;

    /// <summary>The job as an old producer wrote it in Avro, its id a string: not a job the consumer can read.</summary>
    public const string IncompatibleAvroSchema = """
        {"type": "record", "name": "Job", "namespace": "torture", "fields": [
          {"name": "Id", "type": "string"}, {"name": "Key", "type": "string"}]}
        """;

    public const string JsonSchema = """
        {"$schema": "http://json-schema.org/draft-07/schema#", "title": "Job", "type": "object",
         "properties": {"Id": {"type": "integer"}, "Key": {"type": "string"}, "Do": {"type": "string"}, "Ms": {"type": "integer"}, "N": {"type": "integer"}},
         "required": ["Id", "Key", "Do", "Ms", "N"]}
        """;

#if !TORTURE_OLD_LIBRARY
    /// <summary>Registers the format's schemas in the run's registry, in the order that gives them the ids the records name.</summary>
    public static void Register(EmbeddedSchemaRegistry registry, PayloadFormat format)
    {
        var ids = format switch
        {
            PayloadFormat.Avro => new[] { registry.RegisterSchema("torture-jobs-value", AvroSchema), registry.RegisterSchema("torture-jobs-legacy-value", IncompatibleAvroSchema) },
            PayloadFormat.JsonSchema => [registry.RegisterSchema("torture-jobs-value", JsonSchema, "JSON")],
            _ => [registry.RegisterSchema("torture-jobs-value", File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Protos", "job.proto")), "PROTOBUF")],
        };
        if (ids[0] != SchemaId || (ids.Length > 1 && ids[1] != IncompatibleSchemaId))
        {
            throw new InvalidOperationException("The embedded Schema Registry did not give the jobs' schemas the ids the records were drawn with.");
        }
    }
#endif

    /// <summary>The record's value in the format: the jobs, and for each poison kind what fails the same way.</summary>
    public static byte[]? Payload(Job job, int limit, PayloadFormat format) => job.Do switch
    {
        RecordKind.Tombstone => null,

        // Not framed for a registry (a plain JSON producer on the topic).
        RecordKind.PoisonJson => Encoding.UTF8.GetBytes($"{{\"Id\":{job.Id},\"Key\":"),

        // Framed, but not what the schema says: Avro written with a schema the consumer cannot read; JSON that fails the
        // schema; Protobuf whose message index names a message the schema does not have.
        RecordKind.PoisonShape => format switch
        {
            PayloadFormat.Avro => Frame(IncompatibleSchemaId, [.. String($"id-{job.Id}"), .. String(job.Key)]),
            PayloadFormat.JsonSchema => Frame(SchemaId, Encoding.UTF8.GetBytes($"{{\"Id\":\"id-{job.Id}\",\"Key\":\"{job.Key}\",\"Do\":\"Ok\",\"Ms\":0,\"N\":0}}")),
            _ => Frame(SchemaId, [2, 2, .. Protobuf(job with { Do = RecordKind.Ok })]),
        },

        // Framed with a schema id the registry does not know.
        RecordKind.PoisonDuplicate => Frame(UnknownSchemaId, Body(job with { Do = RecordKind.Ok }, format)),

        // Over MaxPayloadBytes (never read), and unframed bytes just under it.
        RecordKind.Oversize => Padding(limit + 100),
        RecordKind.BigPoison => Padding(limit - 200),
        _ => Frame(SchemaId, Body(job, format)),
    };

    private static byte[] Body(Job job, PayloadFormat format) => format switch
    {
        PayloadFormat.Avro => [.. Int(job.Id), .. String(job.Key), .. String(job.Do.ToString()), .. Int(job.Ms), .. Int(job.N)],
        PayloadFormat.JsonSchema => JsonSerializer.SerializeToUtf8Bytes(job, TortureJson.Default.Job),

        // The message index array [0] (the first message) as Confluent writes it: the single byte 0.
        _ => [0, .. Protobuf(job)],
    };

    private static byte[] Protobuf(Job job) => new JobMessage { Id = job.Id, Key = job.Key, Do = job.Do.ToString(), Ms = job.Ms, N = job.N }.ToByteArray();

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

    /// <summary>Avro's binary encoding of an int: a zigzag varint.</summary>
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

    /// <summary>Avro's binary encoding of a string: its length, then its UTF-8 bytes.</summary>
    private static byte[] String(string value)
    {
        var utf8 = Encoding.UTF8.GetBytes(value);
        return [.. Int(utf8.Length), .. utf8];
    }
}

#if !TORTURE_OLD_LIBRARY
/// <summary>A job as Confluent's JSON Schema deserializer (Newtonsoft.Json) reads it.</summary>
public sealed class JsonSchemaJob
{
    public int Id { get; set; }

    public string Key { get; set; } = string.Empty;

    public string Do { get; set; } = string.Empty;

    public int Ms { get; set; }

    public int N { get; set; }
}

/// <summary>
/// Reads the jobs through <c>Kafka.Reliable.SchemaRegistry</c>'s Avro (generic records), JSON Schema or Protobuf deserializer and maps
/// them to <see cref="Job"/>: a registry that is down makes the records wait; unframed values, unknown ids and values that
/// are not jobs of the current schema are poison.
/// </summary>
public sealed class RegistryJobDeserializer : IAsyncMessageDeserializer<Job>, IDisposable
{
    private readonly SchemaRegistryConnection _registry;
    private readonly IAsyncMessageDeserializer<GenericRecord>? _avro;
    private readonly IAsyncMessageDeserializer<JsonSchemaJob>? _json;
    private readonly IAsyncMessageDeserializer<JobMessage>? _protobuf;

    public RegistryJobDeserializer(string registryUrl, PayloadFormat format)
    {
        var client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = registryUrl, RequestTimeoutMs = 5_000, MaxRetries = 1 });
        _registry = new SchemaRegistryConnection(client, $"The Schema Registry at {registryUrl}", maxCachedSchemas: 100, owned: true);
        if (format == PayloadFormat.Avro)
        {
            _avro = new ConfluentSchemaDeserializer<GenericRecord>(new AvroDeserializer<GenericRecord>(client), _registry, "Avro");
        }
        else if (format == PayloadFormat.JsonSchema)
        {
            _json = new ConfluentSchemaDeserializer<JsonSchemaJob>(new JsonDeserializer<JsonSchemaJob>(client), _registry, "JSON Schema");
        }
        else
        {
            _protobuf = new ProtobufSchemaDeserializer<JobMessage>(_registry);
        }
    }

    public async ValueTask<Job> DeserializeAsync(ReadOnlyMemory<byte> value, bool isNull, MessageContext context, CancellationToken cancellationToken)
    {
        if (isNull)
        {
            // As JobDeserializer: a tombstone (under Tombstones: Handle) is a job of its own.
            return new Job(-1, string.Empty, RecordKind.Tombstone, 0, 0);
        }

        if (_protobuf is not null)
        {
            var message = await _protobuf.DeserializeAsync(value, isNull, context, cancellationToken).ConfigureAwait(false);
            return new Job(message.Id, message.Key, Enum.Parse<RecordKind>(message.Do), message.Ms, message.N);
        }

        if (_json is not null)
        {
            var job = await _json.DeserializeAsync(value, isNull, context, cancellationToken).ConfigureAwait(false);
            return new Job(job.Id, job.Key, Enum.Parse<RecordKind>(job.Do), job.Ms, job.N);
        }

        var record = await _avro!.DeserializeAsync(value, isNull, context, cancellationToken).ConfigureAwait(false);
        if (record["Id"] is not int id || !record.TryGetValue("Do", out var kind))
        {
            throw new SchemaPayloadException(
                SchemaPayloadFailure.SchemaMismatch, RegistryJobs.IncompatibleSchemaId.ToString(System.Globalization.CultureInfo.InvariantCulture), "The Avro record is not a job of the current schema.");
        }

        return new Job(id, (string)record["Key"], Enum.Parse<RecordKind>((string)kind), (int)record["Ms"], (int)record["N"]);
    }

    public void Dispose() => _registry.Dispose();
}
#endif
