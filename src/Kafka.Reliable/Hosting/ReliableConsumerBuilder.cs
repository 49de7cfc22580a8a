using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Kafka.Reliable.Hosting;

internal sealed class ReliableConsumerBuilder<TMessage>(string name, IServiceCollection services) : IReliableConsumerBuilder<TMessage>
{
    public string Name { get; } = name;

    public IServiceCollection Services { get; } = services;
}

internal sealed class ReliableConsumerBuilder<TMessage, TDomain>(string name, IServiceCollection services) : IReliableConsumerBuilder<TMessage, TDomain>
{
    public string Name { get; } = name;

    public IServiceCollection Services { get; } = services;
}

/// <summary>What the builder's members write: each one a named option of the consumer, so that the order of the calls does not matter.</summary>
internal static class ConsumerBuilderRegistrations
{
    public static void SetHandler<TDomain, [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>(IReliableConsumerBuilder builder, ServiceLifetime lifetime)
        where THandler : class, IMessageHandler<TDomain>
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (lifetime == ServiceLifetime.Transient)
        {
            lifetime = ServiceLifetime.Scoped;
        }

        builder.Services.TryAdd(new ServiceDescriptor(typeof(THandler), typeof(THandler), lifetime));
        var handler = new HandlerRegistration<TDomain>(static services => services.GetRequiredService<THandler>(), lifetime == ServiceLifetime.Singleton);
        builder.Services.Configure<ConsumerHandlerOptions<TDomain>>(builder.Name, o => o.Handler = handler);
    }

    public static void SetBatchHandler<TDomain, [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>(IReliableConsumerBuilder builder, ServiceLifetime lifetime)
        where THandler : class, IBatchMessageHandler<TDomain>
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (lifetime == ServiceLifetime.Transient)
        {
            lifetime = ServiceLifetime.Scoped;
        }

        builder.Services.TryAdd(new ServiceDescriptor(typeof(THandler), typeof(THandler), lifetime));
        var handler = new BatchHandlerRegistration<TDomain>(static services => services.GetRequiredService<THandler>(), lifetime == ServiceLifetime.Singleton);
        builder.Services.Configure<ConsumerHandlerOptions<TDomain>>(builder.Name, o => o.BatchHandler = handler);
    }

    public static void SetTranslator<TMessage, [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TTranslator, TDomain>(IReliableConsumerBuilder builder)
        where TTranslator : class, IMessageTranslator<TMessage, TDomain>
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton<TTranslator>();
        var translation = new ConsumerTranslation<TMessage, TDomain>(static services => services.GetRequiredService<TTranslator>());
        builder.Services.Configure<ConsumerPipelineOptions<TMessage>>(builder.Name, o => o.Translation = translation);
    }

    public static void SetDeserializer<TMessage, [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TDeserializer>(IReliableConsumerBuilder builder)
        where TDeserializer : class, IMessageDeserializer<TMessage>
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton<TDeserializer>();
        builder.Services.Configure<ConsumerPipelineOptions<TMessage>>(builder.Name, static o =>
        {
            o.Deserializer = static services => services.GetRequiredService<TDeserializer>();
            o.AsyncDeserializer = null;
        });
    }

    public static void SetRebalanceHandler<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>(IReliableConsumerBuilder builder)
        where THandler : class, IRebalanceHandler
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton<THandler>();
        builder.Services.Configure<ConsumerServicesOptions>(builder.Name, static o => o.RebalanceHandler = static services => services.GetRequiredService<THandler>());
    }
}
