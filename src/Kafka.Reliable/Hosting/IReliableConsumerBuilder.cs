using System.Diagnostics.CodeAnalysis;
using Kafka.Reliable.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable;

/// <summary>
/// Configures a reliable consumer registered with <c>AddReliableConsumer</c>: the consumer's name and the service collection
/// it is registered in. Every configuration method is an extension method (or a default interface method) that writes the
/// consumer's named options, so the calls may come in any order and a new capability never breaks an implementation.
/// </summary>
public interface IReliableConsumerBuilder
{
    /// <summary>Gets the consumer's name: the name of its options, its log scope and its poll thread.</summary>
    string Name { get; }

    /// <summary>Gets the service collection the consumer is registered in.</summary>
    IServiceCollection Services { get; }
}

/// <summary>Configures a reliable consumer whose record values are deserialized to <typeparamref name="TMessage"/>.</summary>
/// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
/// <remarks>
/// An implementation implements only <see cref="IReliableConsumerBuilder.Name"/> and
/// <see cref="IReliableConsumerBuilder.Services"/>. The members below take a type argument explicitly while the message type
/// comes from the builder, which C# cannot infer for an extension method; they are default interface methods for that reason.
/// </remarks>
public interface IReliableConsumerBuilder<TMessage> : IReliableConsumerBuilder
{
    /// <summary>Sets the handler of the deserialized messages. It is registered with the given lifetime if it is not registered yet.</summary>
    /// <typeparam name="THandler">The handler type.</typeparam>
    /// <param name="lifetime">
    /// <see cref="ServiceLifetime.Scoped"/> (the default) resolves the handler in a new scope per message;
    /// <see cref="ServiceLifetime.Singleton"/> resolves it once and calls it concurrently from several partitions.
    /// </param>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> WithHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>(ServiceLifetime lifetime = ServiceLifetime.Scoped)
        where THandler : class, IMessageHandler<TMessage>
    {
        ConsumerBuilderRegistrations.SetHandler<TMessage, THandler>(this, lifetime);
        return this;
    }

    /// <summary>
    /// Sets a batch handler of the deserialized messages, in place of a message handler: the consumer hands it the records of
    /// one partition in batches (see <see cref="ReliableConsumerOptions.Batch"/>). It is registered with the given lifetime
    /// if it is not registered yet.
    /// </summary>
    /// <typeparam name="THandler">The batch handler type.</typeparam>
    /// <param name="lifetime"><see cref="ServiceLifetime.Scoped"/> (the default): a new scope per batch; <see cref="ServiceLifetime.Singleton"/>: one instance, called concurrently from several partitions.</param>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> WithBatchHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>(ServiceLifetime lifetime = ServiceLifetime.Scoped)
        where THandler : class, IBatchMessageHandler<TMessage>
    {
        ConsumerBuilderRegistrations.SetBatchHandler<TMessage, THandler>(this, lifetime);
        return this;
    }

    /// <summary>
    /// Adds a translation step between deserialization and the handler (an anti-corruption layer). The translator is resolved
    /// from dependency injection once per consumer and registered as a singleton if it is not registered yet. The last
    /// translator chosen is used.
    /// </summary>
    /// <typeparam name="TTranslator">The translator type.</typeparam>
    /// <typeparam name="TDomain">The domain type the handler receives.</typeparam>
    /// <returns>A builder of the same consumer, whose <c>WithHandler</c> takes a handler of <typeparamref name="TDomain"/>.</returns>
    IReliableConsumerBuilder<TMessage, TDomain> WithTranslator<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TTranslator, TDomain>()
        where TTranslator : class, IMessageTranslator<TMessage, TDomain>
    {
        ConsumerBuilderRegistrations.SetTranslator<TMessage, TTranslator, TDomain>(this);
        return new ReliableConsumerBuilder<TMessage, TDomain>(Name, Services);
    }

    /// <summary>Uses a deserializer resolved from dependency injection (registered as a singleton if it is not registered yet).</summary>
    /// <typeparam name="TDeserializer">The deserializer type.</typeparam>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> WithDeserializer<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TDeserializer>()
        where TDeserializer : class, IMessageDeserializer<TMessage>
    {
        ConsumerBuilderRegistrations.SetDeserializer<TMessage, TDeserializer>(this);
        return this;
    }

    /// <summary>Runs your code when partitions are assigned, revoked or lost (registered as a singleton if it is not registered yet).</summary>
    /// <typeparam name="THandler">The hooks' type.</typeparam>
    /// <returns>This builder.</returns>
    IReliableConsumerBuilder<TMessage> WithRebalanceHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>()
        where THandler : class, IRebalanceHandler
    {
        ConsumerBuilderRegistrations.SetRebalanceHandler<THandler>(this);
        return this;
    }
}

/// <summary>Configures a reliable consumer that translates its messages into <typeparamref name="TDomain"/> before handling them.</summary>
/// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
/// <typeparam name="TDomain">The type the handler receives.</typeparam>
/// <remarks>Everything that configures <see cref="IReliableConsumerBuilder{TMessage}"/> configures this builder too, and returns it.</remarks>
public interface IReliableConsumerBuilder<TMessage, TDomain> : IReliableConsumerBuilder<TMessage>
{
    /// <summary>Sets the handler of the translated messages. It is registered with the given lifetime if it is not registered yet.</summary>
    /// <typeparam name="THandler">The handler type.</typeparam>
    /// <param name="lifetime"><see cref="ServiceLifetime.Scoped"/> (the default): a new scope per message; <see cref="ServiceLifetime.Singleton"/>: one instance, called concurrently.</param>
    /// <returns>This builder.</returns>
    new IReliableConsumerBuilder<TMessage, TDomain> WithHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>(ServiceLifetime lifetime = ServiceLifetime.Scoped)
        where THandler : class, IMessageHandler<TDomain>
    {
        ConsumerBuilderRegistrations.SetHandler<TDomain, THandler>(this, lifetime);
        return this;
    }

    /// <summary>Sets a batch handler of the translated messages, in place of a message handler (see <see cref="IReliableConsumerBuilder{TMessage}.WithBatchHandler{THandler}"/>).</summary>
    /// <typeparam name="THandler">The batch handler type.</typeparam>
    /// <param name="lifetime"><see cref="ServiceLifetime.Scoped"/> (the default): a new scope per batch; <see cref="ServiceLifetime.Singleton"/>: one instance, called concurrently.</param>
    /// <returns>This builder.</returns>
    new IReliableConsumerBuilder<TMessage, TDomain> WithBatchHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>(ServiceLifetime lifetime = ServiceLifetime.Scoped)
        where THandler : class, IBatchMessageHandler<TDomain>
    {
        ConsumerBuilderRegistrations.SetBatchHandler<TDomain, THandler>(this, lifetime);
        return this;
    }

    /// <summary>Uses a deserializer resolved from dependency injection (registered as a singleton if it is not registered yet).</summary>
    /// <typeparam name="TDeserializer">The deserializer type.</typeparam>
    /// <returns>This builder.</returns>
    new IReliableConsumerBuilder<TMessage, TDomain> WithDeserializer<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TDeserializer>()
        where TDeserializer : class, IMessageDeserializer<TMessage>
    {
        ConsumerBuilderRegistrations.SetDeserializer<TMessage, TDeserializer>(this);
        return this;
    }

    /// <summary>Runs your code when partitions are assigned, revoked or lost (registered as a singleton if it is not registered yet).</summary>
    /// <typeparam name="THandler">The hooks' type.</typeparam>
    /// <returns>This builder.</returns>
    new IReliableConsumerBuilder<TMessage, TDomain> WithRebalanceHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>()
        where THandler : class, IRebalanceHandler
    {
        ConsumerBuilderRegistrations.SetRebalanceHandler<THandler>(this);
        return this;
    }
}
