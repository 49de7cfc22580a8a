using Kafka.Reliable;
using Kafka.Reliable.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers reliable Kafka consumers as hosted services.</summary>
public static class ReliableConsumerServiceCollectionExtensions
{
    /// <summary>
    /// Registers a reliable consumer whose options are bound from <paramref name="configuration"/>. Its name is the
    /// section's key (for <c>GetSection("Kafka:Orders")</c>, <c>Orders</c>).
    /// </summary>
    /// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The configuration section holding <see cref="ReliableConsumerOptions"/>.</param>
    /// <returns>A builder to choose the deserializer, translator and handler with.</returns>
    public static IReliableConsumerBuilder<TMessage> AddReliableConsumer<TMessage>(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var name = configuration is IConfigurationSection section ? section.Key : typeof(TMessage).Name;
        return services.AddReliableConsumer<TMessage>(name, configuration);
    }

    /// <summary>Registers a reliable consumer with the given name whose options are bound from <paramref name="configuration"/>.</summary>
    /// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The consumer's name, unique in the service collection.</param>
    /// <param name="configuration">The configuration section holding <see cref="ReliableConsumerOptions"/>.</param>
    /// <returns>A builder to choose the deserializer, translator and handler with.</returns>
    public static IReliableConsumerBuilder<TMessage> AddReliableConsumer<TMessage>(this IServiceCollection services, string name, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var builder = services.AddReliableConsumerCore<TMessage>(name, (configuration as IConfigurationSection)?.Path);
        services.AddOptions<ReliableConsumerOptions>(name).Bind(configuration);
        return builder;
    }

    /// <summary>Registers a reliable consumer configured in code. Its name is the message type's name.</summary>
    /// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the options.</param>
    /// <returns>A builder to choose the deserializer, translator and handler with.</returns>
    public static IReliableConsumerBuilder<TMessage> AddReliableConsumer<TMessage>(this IServiceCollection services, Action<ReliableConsumerOptions> configure) =>
        services.AddReliableConsumer<TMessage>(typeof(TMessage).Name, configure);

    /// <summary>Registers a reliable consumer with the given name, configured in code.</summary>
    /// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The consumer's name, unique in the service collection.</param>
    /// <param name="configure">Sets the options.</param>
    /// <returns>A builder to choose the deserializer, translator and handler with.</returns>
    public static IReliableConsumerBuilder<TMessage> AddReliableConsumer<TMessage>(this IServiceCollection services, string name, Action<ReliableConsumerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var builder = services.AddReliableConsumerCore<TMessage>(name, configurationPath: null);
        services.Configure(name, configure);
        return builder;
    }

    private static ReliableConsumerBuilder<TMessage> AddReliableConsumerCore<TMessage>(this IServiceCollection services, string name, string? configurationPath)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);

        GetOrAddRegistry(services).Add(name, configurationPath);

        services.AddOptions<ReliableConsumerOptions>(name).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ReliableConsumerOptions>, ReliableConsumerOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new Kafka.Reliable.Diagnostics.ReliableMetrics(sp.GetService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.AddKeyedSingleton<ConsumerState>(name);
        var pipeline = new ConsumerPipeline<TMessage>(name);
        services.AddSingleton<IHostedService>(sp => new ReliableConsumerHostedService(name, pipeline, sp));
        return new ReliableConsumerBuilder<TMessage>(name, services);
    }

    // Read when consumers are registered (to refuse a name given twice, and to name settings in validation errors), never
    // while they run: their running state is a keyed ConsumerState each.
    private static ConsumerRegistry GetOrAddRegistry(IServiceCollection services)
    {
        foreach (var descriptor in services)
        {
            if (descriptor.ServiceType == typeof(ConsumerRegistry) && descriptor.ImplementationInstance is ConsumerRegistry existing)
            {
                return existing;
            }
        }

        var registry = new ConsumerRegistry();
        services.AddSingleton(registry);
        return registry;
    }
}
