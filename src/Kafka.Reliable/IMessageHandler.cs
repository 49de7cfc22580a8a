namespace Kafka.Reliable;

/// <summary>
/// Handles one message of a reliable consumer. Implementations are resolved from dependency injection:
/// in a new scope per message when registered as scoped (the default), or once per consumer when registered as a singleton.
/// </summary>
/// <typeparam name="TMessage">The message type the handler receives: the deserialized payload, or the translated domain type when a translator is configured.</typeparam>
/// <remarks>
/// A handler that returns normally marks the record done; its offset may then be committed once every earlier record of its
/// partition is done too. A handler that throws never lets the committed offset pass its record.
/// </remarks>
public interface IMessageHandler<in TMessage>
{
    /// <summary>Handles one message.</summary>
    /// <param name="message">The message.</param>
    /// <param name="context">Where the message came from (topic, partition, offset, key, headers, timestamp) and the current attempt. Valid only until the returned task completes.</param>
    /// <param name="cancellationToken">Signalled when the consumer stops or loses the partition and the drain timeout has passed.</param>
    /// <returns>A task that completes when the message is handled.</returns>
    ValueTask HandleAsync(TMessage message, MessageContext context, CancellationToken cancellationToken);
}
