using System.Diagnostics.CodeAnalysis;
using System.Text.Json.Serialization.Metadata;
using Kafka.Reliable.Pipeline;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Kafka.Reliable.Hosting;

internal sealed class ReliableConsumerBuilder<TMessage>(IServiceCollection services, ConsumerRegistration registration) : IReliableConsumerBuilder<TMessage>
{
    public string Name => registration.Name;

    public IServiceCollection Services { get; } = services;

    public IReliableConsumerBuilder<TMessage> Configure(Action<ReliableConsumerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        Services.Configure(Name, configure);
        return this;
    }

    public IReliableConsumerBuilder<TMessage> ClassifyExceptions(Action<ExceptionClassification> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        configure(registration.Classification);
        return this;
    }

    public IReliableConsumerBuilder<TMessage> WithResiliencePipeline(Polly.ResiliencePipeline pipeline)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        registration.ResiliencePipelineFactory = _ => pipeline;
        return this;
    }

    public IReliableConsumerBuilder<TMessage> WithRebalanceHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>()
        where THandler : class, IRebalanceHandler
    {
        Services.TryAddSingleton<THandler>();
        registration.RebalanceHandlerFactory = static sp => sp.GetRequiredService<THandler>();
        return this;
    }

    public IReliableConsumerBuilder<TMessage> UseIdempotencyStore(Func<IServiceProvider, IIdempotencyStore> storeFactory)
    {
        ArgumentNullException.ThrowIfNull(storeFactory);
        registration.IdempotencyStoreFactory = storeFactory;
        registration.IdempotencyTransactional = false;
        return this;
    }

    public IReliableConsumerBuilder<TMessage> UseTransactionalIdempotencyStore(Func<IServiceProvider, ITransactionalIdempotencyStore> storeFactory)
    {
        ArgumentNullException.ThrowIfNull(storeFactory);
        registration.IdempotencyStoreFactory = storeFactory;
        registration.IdempotencyTransactional = true;
        return this;
    }

    public IReliableConsumerBuilder<TMessage> UseInMemoryIdempotency(int maxEntries = 100_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEntries, 1);
        return UseIdempotencyStore(sp => new InMemoryIdempotencyStore(maxEntries, sp.GetService<TimeProvider>()));
    }

    public IReliableConsumerBuilder<TMessage> WithIdempotencyKey(Func<TMessage, MessageContext, string?> keySelector)
    {
        ArgumentNullException.ThrowIfNull(keySelector);
        registration.IdempotencyKeySelector = keySelector;
        return this;
    }

    public IReliableConsumerBuilder<TMessage> WithDeserializer<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TDeserializer>()
        where TDeserializer : class, IMessageDeserializer<TMessage>
    {
        Services.TryAddSingleton<TDeserializer>();
        registration.DeserializerFactory = static sp => sp.GetRequiredService<TDeserializer>();
        return this;
    }

    public IReliableConsumerBuilder<TMessage> WithDeserializer(IMessageDeserializer<TMessage> deserializer)
    {
        ArgumentNullException.ThrowIfNull(deserializer);
        registration.DeserializerFactory = _ => deserializer;
        return this;
    }

    public IReliableConsumerBuilder<TMessage> WithJsonDeserializer(JsonTypeInfo<TMessage> typeInfo) =>
        WithDeserializer(new JsonMessageDeserializer<TMessage>(typeInfo));

    public IReliableConsumerBuilder<TMessage, TDomain> WithTranslator<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TTranslator, TDomain>()
        where TTranslator : class, IMessageTranslator<TMessage, TDomain>
    {
        Services.TryAddSingleton<TTranslator>();
        return new ReliableConsumerBuilder<TMessage, TDomain>(this, static sp => sp.GetRequiredService<TTranslator>());
    }

    public IReliableConsumerBuilder<TMessage> WithHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>(ServiceLifetime lifetime = ServiceLifetime.Scoped)
        where THandler : class, IMessageHandler<TMessage>
    {
        SetHandler<THandler, TMessage>(static _ => IdentityTranslator<TMessage>.Instance, lifetime);
        return this;
    }

    internal void SetHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler, TDomain>(
        Func<IServiceProvider, IMessageTranslator<TMessage, TDomain>> translatorFactory, ServiceLifetime lifetime)
        where THandler : class, IMessageHandler<TDomain>
    {
        if (lifetime == ServiceLifetime.Transient)
        {
            lifetime = ServiceLifetime.Scoped;
        }

        Services.TryAdd(new ServiceDescriptor(typeof(THandler), typeof(THandler), lifetime));
        var singleton = lifetime == ServiceLifetime.Singleton;
        registration.ProcessorFactory = (sp, idempotency) => new RecordProcessor<TMessage, TDomain>(
            ResolveDeserializer(sp),
            translatorFactory(sp),
            static scoped => scoped.GetRequiredService<THandler>(),
            singleton,
            sp,
            idempotency,
            (Func<TMessage, MessageContext, string?>?)registration.IdempotencyKeySelector);
    }

    private IMessageDeserializer<TMessage> ResolveDeserializer(IServiceProvider services) =>
        registration.DeserializerFactory is { } factory
            ? (IMessageDeserializer<TMessage>)factory(services)
            : new JsonMessageDeserializer<TMessage>();
}

internal sealed class ReliableConsumerBuilder<TMessage, TDomain>(
    ReliableConsumerBuilder<TMessage> inner,
    Func<IServiceProvider, IMessageTranslator<TMessage, TDomain>> translatorFactory) : IReliableConsumerBuilder<TMessage, TDomain>
{
    public string Name => inner.Name;

    public IServiceCollection Services => inner.Services;

    public IReliableConsumerBuilder<TMessage, TDomain> WithHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>(ServiceLifetime lifetime = ServiceLifetime.Scoped)
        where THandler : class, IMessageHandler<TDomain>
    {
        inner.SetHandler<THandler, TDomain>(translatorFactory, lifetime);
        return this;
    }
}
