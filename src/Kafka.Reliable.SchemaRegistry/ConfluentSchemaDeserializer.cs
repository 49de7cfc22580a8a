using Confluent.Kafka;

namespace Kafka.Reliable.SchemaRegistry;

/// <summary>
/// One of Confluent's Schema Registry deserializers (Avro, JSON Schema) with the consumer's failure semantics: the framing is
/// checked first (an unframed value is poison before any request), then Confluent's deserializer looks the writer schema up
/// (cached by its client) and reads the value; its failures are translated by <see cref="RegistryFailures"/>.
/// </summary>
internal sealed class ConfluentSchemaDeserializer<TMessage>(IAsyncDeserializer<TMessage> inner, SchemaRegistryConnection registry, string format)
    : IAsyncMessageDeserializer<TMessage>
{
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TMessage> DeserializeAsync(ReadOnlyMemory<byte> value, bool isNull, MessageContext context, CancellationToken cancellationToken)
    {
        var serialization = new SerializationContext(MessageComponentType.Value, context.Topic, context.Headers);
        if (isNull)
        {
            // Only with Tombstones: Handle; Confluent's deserializers give null for a null value.
            return await inner.DeserializeAsync(value, isNull: true, serialization).ConfigureAwait(false);
        }

        var schema = WireFormat.ReadSchema(value.Span, context.Headers, format);
        try
        {
            // Confluent's deserializers take no token: a revoked partition stops waiting for them. With the writer schema cached
            // they complete at once, and waiting with the token would allocate for nothing.
            var task = inner.DeserializeAsync(value, isNull: false, serialization);
            return await (task.IsCompleted ? task : task.WaitAsync(cancellationToken)).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex) when (RegistryFailures.Translate(ex, schema, registry, format) is { } translated)
        {
            throw translated;
        }
    }
}
