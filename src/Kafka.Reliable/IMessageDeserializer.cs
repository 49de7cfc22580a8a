namespace Kafka.Reliable;

/// <summary>Turns a record's value bytes into a message.</summary>
/// <typeparam name="TMessage">The message type.</typeparam>
/// <remarks>
/// Deserializers run on the partition's worker, not on the poll thread, and must be thread-safe: one instance serves every
/// partition of a consumer. Throw to reject a payload; a deserialization failure is never retried.
/// </remarks>
public interface IMessageDeserializer<out TMessage>
{
    /// <summary>Deserializes a record's value.</summary>
    /// <param name="value">The value bytes, read in place; empty when the record's value is null.</param>
    /// <param name="isNull"><see langword="true"/> when the record has a null value (a tombstone).</param>
    /// <param name="context">Where the record came from.</param>
    /// <returns>The message.</returns>
    TMessage Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context);
}
