// Compiled into each store package (linked from its project file): the parts of their options validation that are alike.
using Microsoft.Extensions.DependencyInjection;

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
