namespace Kafka.Reliable;

/// <summary>
/// Turns a record's value bytes into a message asynchronously: for deserializers that may need I/O, such as fetching a
/// schema from a schema registry (<c>Kafka.Reliable.SchemaRegistry</c>). Use <see cref="IMessageDeserializer{TMessage}"/>
/// when deserializing needs no I/O: it costs nothing per record beyond the deserializing itself.
/// </summary>
/// <typeparam name="TMessage">The message type.</typeparam>
/// <remarks>
/// <para>
/// Deserializers run on the partition's worker, never on the poll thread, and must be thread-safe: one instance serves every
/// partition of a consumer.
/// </para>
/// <para>
/// A failure of the payload (not framed as expected, an unknown schema, bytes that do not match their schema) is thrown as
/// any exception: the record is poison, dead-lettered at stage <c>deserialize</c> without a retry. A failure of what the
/// deserializer depends on (the registry is down or too slow) is thrown as a <see cref="DependencyUnavailableException"/>:
/// the record is retried with the retry policy, counts for the circuit breaker, and then waits, holding its partition,
/// until the dependency answers; it is never dead-lettered for it.
/// </para>
/// </remarks>
public interface IAsyncMessageDeserializer<TMessage>
{
    /// <summary>Deserializes a record's value.</summary>
    /// <param name="value">The value bytes; empty when the record's value is null. Valid until the returned task completes.</param>
    /// <param name="isNull"><see langword="true"/> when the record has a null value (a tombstone).</param>
    /// <param name="context">Where the record came from.</param>
    /// <param name="cancellationToken">Cancelled when the record's partition is given up.</param>
    /// <returns>The message.</returns>
    ValueTask<TMessage> DeserializeAsync(ReadOnlyMemory<byte> value, bool isNull, MessageContext context, CancellationToken cancellationToken);
}
