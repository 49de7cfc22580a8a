using System.Diagnostics.CodeAnalysis;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable;

/// <summary>Configures a reliable consumer registered with <c>AddReliableConsumer</c>.</summary>
/// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
public interface IReliableConsumerBuilder<TMessage>
{
    /// <summary>Gets the consumer's name: the name of its options, its log scope and its poll thread.</summary>
    string Name { get; }

    /// <summary>Gets the service collection the consumer is registered in.</summary>
    IServiceCollection Services { get; }

    /// <summary>Changes the consumer's options in code, after configuration binding.</summary>
    /// <param name="configure">Changes the options.</param>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> Configure(Action<ReliableConsumerOptions> configure);

    /// <summary>Says which handler exceptions are transient (retried) and which are fatal (dead-lettered at once).</summary>
    /// <param name="configure">Changes the classification, for example <c>c =&gt; c.Fatal&lt;ValidationException&gt;().Transient&lt;DbException&gt;()</c>.</param>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> ClassifyExceptions(Action<ExceptionClassification> configure);

    /// <summary>
    /// Runs every handler attempt through your own Polly pipeline instead of the one built from the <c>Retry</c> and
    /// <c>CircuitBreaker</c> options. Its result decides: a failure it returns is dead-lettered; a
    /// <see cref="Polly.CircuitBreaker.BrokenCircuitException"/> makes the record wait (its partition paused) and try again.
    /// </summary>
    /// <param name="pipeline">The pipeline; it is shared by all partitions of the consumer.</param>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> WithResiliencePipeline(Polly.ResiliencePipeline pipeline);

    /// <summary>Runs your code when partitions are assigned, revoked or lost (registered as a singleton if it is not registered yet).</summary>
    /// <typeparam name="THandler">The hooks' type.</typeparam>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> WithRebalanceHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>()
        where THandler : class, IRebalanceHandler;

    /// <summary>
    /// Makes the handler's effects happen once per message (G2): before the handler runs, the message's key is taken in the
    /// store; a message whose key is completed is skipped as a duplicate and counts as done. Store packages add shortcuts
    /// (<c>UseSqliteIdempotency</c>, <c>UsePostgreSqlIdempotency</c>, <c>UseRedisIdempotency</c>).
    /// </summary>
    /// <param name="storeFactory">Creates the store when the consumer starts.</param>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> UseIdempotencyStore(Func<IServiceProvider, IIdempotencyStore> storeFactory);

    /// <summary>Uses a transactional idempotency store: the handler writes through <see cref="MessageContext.Transaction"/>, and its writes commit with the idempotency record (G3).</summary>
    /// <param name="storeFactory">Creates the store when the consumer starts.</param>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> UseTransactionalIdempotencyStore(Func<IServiceProvider, ITransactionalIdempotencyStore> storeFactory);

    /// <summary>Keeps handled message keys in memory: for tests and single-instance consumers (nothing survives a restart).</summary>
    /// <param name="maxEntries">The most completed keys kept; the oldest go first.</param>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> UseInMemoryIdempotency(int maxEntries = 100_000);

    /// <summary>
    /// Sets the idempotency key of a message, for example its order id, so that the same order produced twice is handled
    /// once. Returning null or empty falls back to the <see cref="IdempotencyOptions.KeyHeader"/> header, then to topic-partition-offset.
    /// </summary>
    /// <param name="keySelector">Computes the key from the deserialized message.</param>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> WithIdempotencyKey(Func<TMessage, MessageContext, string?> keySelector);

    /// <summary>Uses a deserializer resolved from dependency injection (registered as a singleton if it is not registered yet).</summary>
    /// <typeparam name="TDeserializer">The deserializer type.</typeparam>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> WithDeserializer<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TDeserializer>()
        where TDeserializer : class, IMessageDeserializer<TMessage>;

    /// <summary>Uses the given deserializer instance.</summary>
    /// <param name="deserializer">The deserializer; it must be thread-safe.</param>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> WithDeserializer(IMessageDeserializer<TMessage> deserializer);

    /// <summary>Deserializes JSON with source-generated metadata (trimming and native AOT safe). Without a deserializer, JSON with System.Text.Json's default options is used.</summary>
    /// <param name="typeInfo">The metadata, for example <c>MyJsonContext.Default.OrderEvent</c>.</param>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> WithJsonDeserializer(JsonTypeInfo<TMessage> typeInfo);

    /// <summary>Adds a translation step between deserialization and the handler (an anti-corruption layer). The translator is resolved from dependency injection once per consumer and registered as a singleton if it is not registered yet.</summary>
    /// <typeparam name="TTranslator">The translator type.</typeparam>
    /// <typeparam name="TDomain">The domain type the handler receives.</typeparam>
    /// <returns>A builder to register the handler of <typeparamref name="TDomain"/> with.</returns>
    IReliableConsumerBuilder<TMessage, TDomain> WithTranslator<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TTranslator, TDomain>()
        where TTranslator : class, IMessageTranslator<TMessage, TDomain>;

    /// <summary>Sets the handler of the deserialized messages. It is registered with the given lifetime if it is not registered yet.</summary>
    /// <typeparam name="THandler">The handler type.</typeparam>
    /// <param name="lifetime">
    /// <see cref="ServiceLifetime.Scoped"/> (the default) resolves the handler in a new scope per message;
    /// <see cref="ServiceLifetime.Singleton"/> resolves it once and calls it concurrently from several partitions.
    /// </param>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> WithHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>(ServiceLifetime lifetime = ServiceLifetime.Scoped)
        where THandler : class, IMessageHandler<TMessage>;
}

/// <summary>Configures a reliable consumer that translates its messages into <typeparamref name="TDomain"/> before handling them.</summary>
/// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
/// <typeparam name="TDomain">The type the handler receives.</typeparam>
public interface IReliableConsumerBuilder<TMessage, TDomain>
{
    /// <summary>Gets the consumer's name.</summary>
    string Name { get; }

    /// <summary>Gets the service collection the consumer is registered in.</summary>
    IServiceCollection Services { get; }

    /// <summary>Sets the handler of the translated messages. It is registered with the given lifetime if it is not registered yet.</summary>
    /// <typeparam name="THandler">The handler type.</typeparam>
    /// <param name="lifetime"><see cref="ServiceLifetime.Scoped"/> (the default): a new scope per message; <see cref="ServiceLifetime.Singleton"/>: one instance, called concurrently.</param>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage, TDomain> WithHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>(ServiceLifetime lifetime = ServiceLifetime.Scoped)
        where THandler : class, IMessageHandler<TDomain>;
}
