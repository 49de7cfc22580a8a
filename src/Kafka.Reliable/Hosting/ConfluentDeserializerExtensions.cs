using Confluent.Kafka;

namespace Kafka.Reliable;

/// <summary>
/// Plugs Confluent.Kafka's deserializers (<see cref="IDeserializer{T}"/>, <see cref="IAsyncDeserializer{T}"/>, such as the
/// Schema Registry serdes) into a reliable consumer. A deserializer's exception makes the record poison (dead-lettered at
/// stage <c>deserialize</c>) unless it is a <see cref="DependencyUnavailableException"/>; the <c>Kafka.Reliable.SchemaRegistry</c>
/// package wraps Confluent's Schema Registry deserializers so that a registry outage is one.
/// </summary>
public static class ConfluentDeserializerExtensions
{
    /// <summary>Uses a Confluent.Kafka synchronous deserializer (it takes the place of any deserializer chosen before).</summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="deserializer">The deserializer; it must be thread-safe.</param>
    /// <returns>The builder.</returns>
    public static TBuilder WithConfluentDeserializer<TBuilder, TMessage>(this TBuilder builder, IDeserializer<TMessage> deserializer)
        where TBuilder : IReliableConsumerBuilder<TMessage>
    {
        ArgumentNullException.ThrowIfNull(deserializer);
        return builder.WithDeserializer<TBuilder, TMessage>(new ConfluentDeserializer<TMessage>(deserializer));
    }

    /// <summary>Uses a Confluent.Kafka asynchronous deserializer (it takes the place of any deserializer chosen before).</summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="deserializer">The deserializer; it must be thread-safe.</param>
    /// <returns>The builder.</returns>
    public static TBuilder WithConfluentDeserializer<TBuilder, TMessage>(this TBuilder builder, IAsyncDeserializer<TMessage> deserializer)
        where TBuilder : IReliableConsumerBuilder<TMessage>
    {
        ArgumentNullException.ThrowIfNull(deserializer);
        return builder.WithDeserializer<TBuilder, TMessage>(new ConfluentAsyncDeserializer<TMessage>(deserializer));
    }

    /// <summary>What Confluent's deserializers are told about a record: its value, topic and headers.</summary>
    internal static SerializationContext SerializationContextOf(MessageContext context) =>
        new(MessageComponentType.Value, context.Topic, context.Record?.Message.Headers);
}

/// <summary>A Confluent.Kafka synchronous deserializer seen as a message deserializer: no allocation of its own per record.</summary>
internal sealed class ConfluentDeserializer<TMessage>(IDeserializer<TMessage> inner) : IMessageDeserializer<TMessage>
{
    public TMessage Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) =>
        inner.Deserialize(value, isNull, ConfluentDeserializerExtensions.SerializationContextOf(context));
}

/// <summary>A Confluent.Kafka asynchronous deserializer seen as a message deserializer.</summary>
internal sealed class ConfluentAsyncDeserializer<TMessage>(IAsyncDeserializer<TMessage> inner) : IAsyncMessageDeserializer<TMessage>
{
    public ValueTask<TMessage> DeserializeAsync(ReadOnlyMemory<byte> value, bool isNull, MessageContext context, CancellationToken cancellationToken) =>
        new(inner.DeserializeAsync(value, isNull, ConfluentDeserializerExtensions.SerializationContextOf(context)));
}
