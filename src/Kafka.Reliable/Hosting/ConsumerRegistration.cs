using Kafka.Reliable.Pipeline;

namespace Kafka.Reliable.Hosting;

/// <summary>What <c>AddReliableConsumer</c> and its builder recorded about one consumer.</summary>
internal sealed class ConsumerRegistration(string name, string? configurationPath)
{
    public string Name { get; } = name;

    /// <summary>Gets the configuration section the options were bound from, to name settings in validation errors.</summary>
    public string? ConfigurationPath { get; } = configurationPath;

    /// <summary>Gets or sets the factory of the message deserializer; null until one is chosen (JSON by default).</summary>
    public Func<IServiceProvider, object>? DeserializerFactory { get; set; }

    /// <summary>Gets or sets the factory of the pipeline, given the idempotency gate if any; set by <c>WithHandler</c>.</summary>
    public Func<IServiceProvider, Idempotency.IdempotencyGate?, IRecordProcessor>? ProcessorFactory { get; set; }

    /// <summary>Gets how handler exceptions are classified; changed by <c>ClassifyExceptions</c>.</summary>
    public ExceptionClassification Classification { get; } = new();

    /// <summary>Gets or sets the user's own resilience pipeline, which replaces the one built from the retry and circuit breaker options.</summary>
    public Func<IServiceProvider, Polly.ResiliencePipeline>? ResiliencePipelineFactory { get; set; }

    /// <summary>Gets or sets the factory of the idempotency store (an <see cref="IIdempotencyStore"/> or an <see cref="ITransactionalIdempotencyStore"/>); null without one.</summary>
    public Func<IServiceProvider, object>? IdempotencyStoreFactory { get; set; }

    /// <summary>Gets or sets a value indicating whether the idempotency store is used in transactional mode.</summary>
    public bool IdempotencyTransactional { get; set; }

    /// <summary>Gets or sets the idempotency key function, a <c>Func&lt;TMessage, MessageContext, string?&gt;</c>.</summary>
    public Delegate? IdempotencyKeySelector { get; set; }

    /// <summary>Gets or sets the factory of the rebalance hooks; null without.</summary>
    public Func<IServiceProvider, IRebalanceHandler>? RebalanceHandlerFactory { get; set; }

    /// <summary>Gets or sets the running consumer, for health checks; null before it starts.</summary>
    public Consuming.ConsumerRunner? Runner { get; set; }

    public string SettingName(string property) => ConfigurationPath is null ? property : $"{ConfigurationPath}:{property}";
}

/// <summary>The consumers registered in one service collection, by name.</summary>
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
