namespace Kafka.Reliable;

/// <summary>
/// Translates a deserialized message into the domain type the handler works with: the anti-corruption layer between a
/// topic's schema and the application's model. Throw to reject a message that violates the domain's invariants.
/// </summary>
/// <typeparam name="TMessage">The deserialized message type.</typeparam>
/// <typeparam name="TDomain">The domain type the handler receives.</typeparam>
/// <remarks>A translation failure is deterministic: retrying it gives the same result, so it is never retried.</remarks>
public interface IMessageTranslator<in TMessage, out TDomain>
{
    /// <summary>Translates a message.</summary>
    /// <param name="message">The deserialized message.</param>
    /// <param name="context">Where the message came from.</param>
    /// <returns>The domain object.</returns>
    TDomain Translate(TMessage message, MessageContext context);
}
