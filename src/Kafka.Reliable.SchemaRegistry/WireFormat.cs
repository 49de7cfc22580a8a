using System.Buffers.Binary;
using Confluent.Kafka;

namespace Kafka.Reliable.SchemaRegistry;

/// <summary>
/// Reads the Confluent wire format: magic byte 0, the schema id as 4 bytes big-endian, for Protobuf the message-index
/// array, then the serialized value. Confluent's serializers may instead write the schema reference to the
/// <c>__value_schema_id</c> header (magic byte 0 and an id, or magic byte 1 and a 16-byte big-endian GUID, then for Protobuf
/// the message indexes), leaving the value unprefixed: when the header is present it is read, as Confluent's own
/// deserializers do, and the value is taken whole.
/// </summary>
internal static class WireFormat
{
    private const byte MagicByteId = 0;
    private const byte MagicByteGuid = 1;
    private const int PrefixLength = 5;
    private const int GuidLength = 16;

    // No .proto nests messages this deep; a longer array is garbage, refused before it costs anything.
    private const int MaxMessageIndexes = 64;

    private static readonly int[] FirstMessage = [0];

    /// <summary>Reads the schema reference of a value (prefix or header) without the Protobuf message indexes.</summary>
    /// <exception cref="SchemaPayloadException">The value is not framed.</exception>
    public static SchemaReference ReadSchema(ReadOnlySpan<byte> value, Headers? headers, string format) =>
        Read(value, headers, format, protobuf: false, out _, out _);

    /// <summary>Reads the schema reference and the message indexes of a Protobuf value; <paramref name="payloadStart"/> is where the message bytes begin.</summary>
    /// <exception cref="SchemaPayloadException">The value is not framed.</exception>
    public static SchemaReference ReadProtobuf(ReadOnlySpan<byte> value, Headers? headers, out int payloadStart, out int[] indexes) =>
        Read(value, headers, "Protobuf", protobuf: true, out payloadStart, out indexes);

    private static SchemaReference Read(ReadOnlySpan<byte> value, Headers? headers, string format, bool protobuf, out int payloadStart, out int[] indexes)
    {
        if (headers is not null && headers.TryGetLastBytes(SchemaRegistryConstants.ValueSchemaIdHeader, out var header))
        {
            payloadStart = 0;
            return ReadHeader(header, format, protobuf, out indexes);
        }

        if (value.Length < PrefixLength || value[0] != MagicByteId)
        {
            throw new SchemaPayloadException(
                SchemaPayloadFailure.NotFramed, schemaId: null,
                $"The value is not in the Confluent {format} wire format: {Describe(value)}; expected magic byte 0 and a 4-byte schema id before " +
                $"the {format} bytes, or the schema id in the '{SchemaRegistryConstants.ValueSchemaIdHeader}' header. Was it produced with " +
                "a Schema Registry serializer?");
        }

        var schema = new SchemaReference(BinaryPrimitives.ReadInt32BigEndian(value[1..]), Guid: null);
        payloadStart = PrefixLength;
        indexes = [];
        if (protobuf)
        {
            payloadStart += ReadMessageIndexes(value[PrefixLength..], schema, out indexes);
        }

        return schema;
    }

    private static SchemaReference ReadHeader(ReadOnlySpan<byte> header, string format, bool protobuf, out int[] indexes)
    {
        SchemaReference schema;
        int length;
        if (header.Length >= PrefixLength && header[0] == MagicByteId)
        {
            schema = new SchemaReference(BinaryPrimitives.ReadInt32BigEndian(header[1..]), Guid: null);
            length = PrefixLength;
        }
        else if (header.Length >= 1 + GuidLength && header[0] == MagicByteGuid)
        {
            schema = new SchemaReference(0, new Guid(header.Slice(1, GuidLength), bigEndian: true));
            length = 1 + GuidLength;
        }
        else
        {
            throw new SchemaPayloadException(
                SchemaPayloadFailure.NotFramed, schemaId: null,
                $"The '{SchemaRegistryConstants.ValueSchemaIdHeader}' header of the {format} value is not a schema reference: {Describe(header)}; " +
                "expected magic byte 0 and a 4-byte schema id, or magic byte 1 and a 16-byte schema GUID.");
        }

        indexes = [];
        if (protobuf)
        {
            _ = ReadMessageIndexes(header[length..], schema, out indexes);
        }

        return schema;
    }

    /// <summary>Reads the message-index array (a zigzag varint count, then that many zigzag varint indexes; a count of 0 means [0]).</summary>
    private static int ReadMessageIndexes(ReadOnlySpan<byte> bytes, SchemaReference schema, out int[] indexes)
    {
        var offset = ReadZigZag(bytes, schema, out var count);
        if (count == 0)
        {
            indexes = FirstMessage;
            return offset;
        }

        if (count < 0 || count > MaxMessageIndexes)
        {
            throw Malformed(schema, $"its message-index array claims {count} indexes");
        }

        indexes = new int[count];
        for (var i = 0; i < count; i++)
        {
            offset += ReadZigZag(bytes[offset..], schema, out indexes[i]);
            if (indexes[i] < 0)
            {
                throw Malformed(schema, $"its message index {i} is {indexes[i]}");
            }
        }

        return offset;
    }

    private static int ReadZigZag(ReadOnlySpan<byte> bytes, SchemaReference schema, out int value)
    {
        uint raw = 0;
        for (var i = 0; i < 5; i++)
        {
            if (i >= bytes.Length)
            {
                throw Malformed(schema, "its message-index array is cut short");
            }

            raw |= (uint)(bytes[i] & 0x7f) << (7 * i);
            if ((bytes[i] & 0x80) == 0)
            {
                value = (int)(raw >> 1) ^ -(int)(raw & 1);
                return i + 1;
            }
        }

        throw Malformed(schema, "its message-index array has a varint longer than 5 bytes");
    }

    private static SchemaPayloadException Malformed(SchemaReference schema, string what) =>
        new(SchemaPayloadFailure.NotFramed, schema.ToString(), $"The Protobuf value of schema {schema} is not in the Confluent wire format: {what}.");

    private static string Describe(ReadOnlySpan<byte> value) => value.Length switch
    {
        0 => "it is empty",
        < PrefixLength when value[0] == MagicByteId => $"it has only {value.Length} byte(s)",
        _ => $"its first byte is 0x{value[0]:x2}",
    };
}
