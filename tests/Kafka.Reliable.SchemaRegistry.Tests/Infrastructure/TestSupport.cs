using System.Buffers.Binary;
using System.Reflection;
using Confluent.Kafka;
using Google.Protobuf;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable.SchemaRegistry.Tests.Infrastructure;

/// <summary>What the deserializer tests share: record contexts, a registry connection, and a Protobuf producer's framing.</summary>
internal static class TestSupport
{
    public const string Topic = "orders";

    /// <summary>
    /// A record's context as the consumer gives it to a deserializer. The library makes these itself (its constructor is
    /// internal, for pooling): the tests make one the same way, through reflection, here only.
    /// </summary>
    public static MessageContext Context(byte[]? value, Headers? headers = null, string topic = Topic, long offset = 0)
    {
        var context = (MessageContext)Activator.CreateInstance(
            typeof(MessageContext), BindingFlags.NonPublic | BindingFlags.Instance, binder: null, ["test", "group"], culture: null)!;
        var record = new ConsumeResult<byte[]?, byte[]?>
        {
            TopicPartitionOffset = new TopicPartitionOffset(topic, 0, offset),
            Message = new Message<byte[]?, byte[]?> { Value = value, Headers = headers ?? [], Timestamp = new Timestamp(0, TimestampType.CreateTime) },
        };
        typeof(MessageContext).GetMethod("Initialize", BindingFlags.NonPublic | BindingFlags.Instance)!.Invoke(context, [record]);
        return context;
    }

    public static ValueTask<T> DeserializeAsync<T>(this IAsyncMessageDeserializer<T> deserializer, byte[] value, Headers? headers = null) =>
        deserializer.DeserializeAsync(value, isNull: false, Context(value, headers), TestContext.Current.CancellationToken);

    /// <summary>Connects to the fake registry as a consumer would, with no retry inside Confluent's client unless asked.</summary>
    public static SchemaRegistryConnection Connect(TestRegistry registry, Action<SchemaRegistryOptions>? configure = null)
    {
        var options = new SchemaRegistryOptions { Url = registry.Url, MaxRetries = 0, RequestTimeout = TimeSpan.FromSeconds(10) };
        configure?.Invoke(options);
        return SchemaRegistryConnection.Create("test", options, new ServiceCollection().BuildServiceProvider());
    }

    /// <summary>Frames a value the way Confluent's serializers do: magic byte 0, the schema id big-endian, then the bytes.</summary>
    public static byte[] Frame(int schemaId, ReadOnlySpan<byte> payload)
    {
        var bytes = new byte[5 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(1), schemaId);
        payload.CopyTo(bytes.AsSpan(5));
        return bytes;
    }

    /// <summary>
    /// Frames a Protobuf message as Confluent's Protobuf serializer does (it is not available here): magic byte 0, the schema
    /// id big-endian, the message-index array (zigzag varint count and indexes; [0] as the single byte 0), the message.
    /// </summary>
    public static byte[] FrameProtobuf(int schemaId, IReadOnlyList<int> indexes, IMessage message)
    {
        var stream = new MemoryStream();
        stream.WriteByte(0);
        Span<byte> id = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(id, schemaId);
        stream.Write(id);
        WriteIndexes(stream, indexes);
        message.WriteTo(stream);
        return stream.ToArray();
    }

    /// <summary>The <c>__value_schema_id</c> header's value as Confluent's header encoder writes it: magic byte 1, the GUID big-endian, the message indexes.</summary>
    public static byte[] GuidHeader(Guid guid, IReadOnlyList<int> indexes)
    {
        var stream = new MemoryStream();
        stream.WriteByte(1);
        var bytes = new byte[16];
        guid.TryWriteBytes(bytes, bigEndian: true, out _);
        stream.Write(bytes);
        WriteIndexes(stream, indexes);
        return stream.ToArray();
    }

    /// <summary>The <c>__value_schema_id</c> header's value with a numeric id: magic byte 0, the id big-endian, the message indexes.</summary>
    public static byte[] IdHeader(int schemaId, IReadOnlyList<int> indexes)
    {
        var framed = FrameProtobuf(schemaId, indexes, new Protos.Envelope());
        return framed; // An empty Envelope writes no bytes: the frame is the header.
    }

    /// <summary>The message-index path of a message type, as Confluent's serializer computes it: its index in each containing type, outermost first.</summary>
    public static int[] IndexesOf(Google.Protobuf.Reflection.MessageDescriptor descriptor)
    {
        var path = new List<int>();
        for (var d = descriptor; d is not null; d = d.ContainingType)
        {
            path.Insert(0, d.Index);
        }

        return [.. path];
    }

    private static void WriteIndexes(Stream stream, IReadOnlyList<int> indexes)
    {
        if (indexes.Count == 1 && indexes[0] == 0)
        {
            stream.WriteByte(0);
            return;
        }

        WriteZigZag(stream, indexes.Count);
        foreach (var index in indexes)
        {
            WriteZigZag(stream, index);
        }
    }

    private static void WriteZigZag(Stream stream, int value)
    {
        var raw = (uint)((value << 1) ^ (value >> 31));
        while (raw >= 0x80)
        {
            stream.WriteByte((byte)(raw | 0x80));
            raw >>= 7;
        }

        stream.WriteByte((byte)raw);
    }
}
