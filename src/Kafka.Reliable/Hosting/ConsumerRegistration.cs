namespace Kafka.Reliable.Hosting;

/// <summary>What <c>AddReliableConsumer</c> recorded about one consumer when it was registered; it does not change afterwards.</summary>
internal sealed class ConsumerRegistration(string name, string? configurationPath)
{
    public string Name { get; } = name;

    /// <summary>Gets the configuration section the options were bound from, to name settings in validation errors.</summary>
    public string? ConfigurationPath { get; } = configurationPath;

    public string SettingName(string property) => ConfigurationPath is null ? property : $"{ConfigurationPath}:{property}";
}

/// <summary>
/// The consumers registered in one service collection, by name: it refuses a name given twice, and lets validation errors name
/// the configuration section a setting came from. Everything else about a consumer is in its named options; its running state
/// is in its <see cref="ConsumerState"/>.
/// </summary>
internal sealed class ConsumerRegistry
{
    private readonly Dictionary<string, ConsumerRegistration> _registrations = new(StringComparer.Ordinal);

    public bool TryGet(string name, out ConsumerRegistration registration) => _registrations.TryGetValue(name, out registration!);

    public ConsumerRegistration Add(string name, string? configurationPath)
    {
        if (_registrations.ContainsKey(name))
        {
            throw new InvalidOperationException(
                $"A reliable consumer named '{name}' is already registered. Give each consumer its own name: AddReliableConsumer<T>(\"name\", ...).");
        }

        var registration = new ConsumerRegistration(name, configurationPath);
        _registrations.Add(name, registration);
        return registration;
    }
}
