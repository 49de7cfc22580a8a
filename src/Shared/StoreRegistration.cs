// Compiled into each store package (linked from its project file): the parts of their registration and validation that are alike.
using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable.Idempotency;

/// <summary>Where one consumer's store options come from: the consumer's name, and the configuration section they were bound from.</summary>
/// <typeparam name="TOptions">The store's options, so that each store's sources are registered apart.</typeparam>
internal sealed record StoreOptionsSource<TOptions>(string ConsumerName, string? ConfigurationPath)
{
    /// <summary>Finds the source of the named consumer's options (the last registration wins); null for options no consumer uses.</summary>
    public static StoreOptionsSource<TOptions>? Find(IEnumerable<StoreOptionsSource<TOptions>> sources, string? name) =>
        sources.LastOrDefault(s => string.Equals(s.ConsumerName, name, StringComparison.Ordinal));

    /// <summary>Names a setting the way the user wrote it: its configuration path, or the store and consumer it belongs to.</summary>
    public string Setting(string store, string property) => ConfigurationPath is { } path
        ? $"{path}:{property}"
        : $"The {store} idempotency store of consumer '{ConsumerName}': {property}";
}

/// <summary>Whether the application registered a service a store can use instead of a connection of its own.</summary>
internal static class ApplicationServices
{
    /// <summary>Gets whether <typeparamref name="TService"/> is registered (keyed when <paramref name="key"/> is set); true when the container cannot tell.</summary>
    public static bool IsRegistered<TService>(IServiceProvider services, string? key) => key is null
        ? services.GetService<IServiceProviderIsService>()?.IsService(typeof(TService)) ?? true
        : services.GetService<IServiceProviderIsKeyedService>()?.IsKeyedService(typeof(TService), key) ?? true;
}

/// <summary>Registers a store's options for one consumer, the same way for every store package.</summary>
internal static class StoreRegistration
{
    /// <summary>
    /// Completes the registration of the consumer's store options, bound from <paramref name="configuration"/> by the caller
    /// (with the concrete type, so that the configuration binder's source generator serves trimmed applications): changed by
    /// <paramref name="configure"/>, validated at start by <typeparamref name="TValidator"/>, which names each setting as the
    /// user wrote it (its configuration path, or the store and consumer).
    /// </summary>
    public static void AddStoreOptions<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicParameterlessConstructor)] TOptions, [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TValidator>(
        OptionsBuilder<TOptions> options, IConfiguration? configuration, Action<TOptions>? configure)
        where TOptions : class
        where TValidator : class, IValidateOptions<TOptions>
    {
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        options.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TOptions>, TValidator>());
        options.Services.AddSingleton(new StoreOptionsSource<TOptions>(options.Name, (configuration as IConfigurationSection)?.Path));
    }

    /// <summary>
    /// Makes the consumer use the store, in the mode its options say: the mode may come from configuration, so it is chosen
    /// when the consumer's store is first read.
    /// </summary>
    public static void UseStoreOf<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicParameterlessConstructor)] TOptions, TStore>(IServiceCollection services, string name, Func<TOptions, bool> transactional, Func<IServiceProvider, TOptions, TStore> create)
        where TOptions : class
        where TStore : IIdempotencyStore, ITransactionalIdempotencyStore =>
        services.AddOptions<IdempotencyStoreOptions>(name).Configure<IOptionsMonitor<TOptions>>((store, monitor) =>
        {
            var options = monitor.Get(name);
            if (transactional(options))
            {
                store.UseTransactionalStore(sp => create(sp, options));
            }
            else
            {
                store.UseStore(sp => create(sp, options));
            }
        });
}
