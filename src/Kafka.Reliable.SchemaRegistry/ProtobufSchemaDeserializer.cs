using System.Collections.Concurrent;
using Confluent.SchemaRegistry;
using Google.Protobuf;

namespace Kafka.Reliable.SchemaRegistry;

/// <summary>
/// Reads Protobuf values in the Confluent wire format with Google.Protobuf (Confluent's Protobuf serdes is not used). For each
/// value it checks, in order: the framing (prefix or <c>__value_schema_id</c> header, see <see cref="WireFormat"/>); that the
/// registry has the writer schema, a Protobuf one (looked up by id or GUID once, then kept in a bounded cache of its own);
/// that the message-index path points at <typeparamref name="TMessage"/>'s full name in that schema (when the schema text
/// can be outlined, see <see cref="ProtobufSchemaOutline"/>); and that the bytes parse as <typeparamref name="TMessage"/>.
/// Fields of the writer schema unknown to the reader are kept as unknown fields, as Protobuf does: their compatibility is the
/// registry's to enforce when schemas are registered.
/// </summary>
internal sealed class ProtobufSchemaDeserializer<TMessage> : IAsyncMessageDeserializer<TMessage>
    where TMessage : IMessage<TMessage>, new()
{
    private const string Format = "Protobuf";

    private static readonly MessageParser<TMessage> Parser = new(static () => new TMessage());
    private static readonly string ExpectedName = new TMessage().Descriptor.FullName;

    private readonly SchemaRegistryConnection _registry;
    private readonly ConcurrentDictionary<SchemaReference, WriterSchema> _schemas = new();

    public ProtobufSchemaDeserializer(SchemaRegistryConnection registry) => _registry = registry;

    /// <summary>Gets how many writer schemas are cached (for tests).</summary>
    internal int CachedSchemas => _schemas.Count;

    public ValueTask<TMessage> DeserializeAsync(ReadOnlyMemory<byte> value, bool isNull, MessageContext context, CancellationToken cancellationToken)
    {
        if (isNull)
        {
            // Only with Tombstones: Handle, as Confluent's deserializers do.
            return new(default(TMessage)!);
        }

        var schema = WireFormat.ReadProtobuf(value.Span, context.Headers, out var payloadStart, out var indexes);
        return _schemas.TryGetValue(schema, out var writer)
            ? new(Read(value.Span[payloadStart..], schema, writer, indexes))
            : LookUpAndReadAsync(value[payloadStart..], schema, indexes, cancellationToken);
    }

    private async ValueTask<TMessage> LookUpAndReadAsync(ReadOnlyMemory<byte> payload, SchemaReference schema, int[] indexes, CancellationToken cancellationToken)
    {
        WriterSchema writer;
        try
        {
            var task = schema.Guid is { } guid ? _registry.Client.GetSchemaByGuidAsync(guid.ToString("D")) : _registry.Client.GetSchemaAsync(schema.Id);
            var found = await task.WaitAsync(cancellationToken).ConfigureAwait(false);
            writer = new WriterSchema(found.SchemaType, found.SchemaType == SchemaType.Protobuf ? ProtobufSchemaOutline.TryParse(found.SchemaString) : null);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex) when (RegistryFailures.Translate(ex, schema, _registry, Format) is { } translated)
        {
            throw translated;
        }

        // Bounded the way Confluent's client bounds its own: emptied when full.
        if (_schemas.Count >= _registry.MaxCachedSchemas)
        {
            _schemas.Clear();
        }

        _schemas[schema] = writer;
        return Read(payload.Span, schema, writer, indexes);
    }

    private static TMessage Read(ReadOnlySpan<byte> payload, SchemaReference schema, WriterSchema writer, int[] indexes)
    {
        if (writer.Type != SchemaType.Protobuf)
        {
            throw new SchemaPayloadException(
                SchemaPayloadFailure.SchemaMismatch, schema.ToString(),
                $"Schema {schema} is a {writer.Type} schema, not a Protobuf one: the value cannot be read as {ExpectedName}.");
        }

        if (writer.Outline is { } outline && outline.FullNameAt(indexes) is var name && !string.Equals(name, ExpectedName, StringComparison.Ordinal))
        {
            throw new SchemaPayloadException(
                SchemaPayloadFailure.SchemaMismatch, schema.ToString(),
                name is null
                    ? $"The message index [{string.Join(", ", indexes)}] of the Protobuf value points at no message type of schema {schema}: expected {ExpectedName}."
                    : $"The message index [{string.Join(", ", indexes)}] of the Protobuf value points at {name} in schema {schema}, not at {ExpectedName}.");
        }

        try
        {
            return Parser.ParseFrom(payload);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new SchemaPayloadException(
                SchemaPayloadFailure.SchemaMismatch, schema.ToString(),
                $"The Protobuf value of schema {schema} does not parse as {ExpectedName}: {ex.Message}", ex);
        }
    }

    /// <summary>What is kept of a writer schema: its type, and the outline of its message types (null when it cannot be outlined).</summary>
    private sealed record WriterSchema(SchemaType Type, ProtobufSchemaOutline? Outline);
}
