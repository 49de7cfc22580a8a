using Kafka.Reliable.Idempotency;
using Kafka.Reliable.Pipeline;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable.Hosting;

/// <summary>The services a consumer uses besides its pipeline: named options, one per consumer, written by the builder's extension methods.</summary>
internal sealed class ConsumerServicesOptions
{
    /// <summary>Gets or sets the user's own resilience pipeline, which replaces the one built from the retry and circuit breaker options.</summary>
    public Func<IServiceProvider, Polly.ResiliencePipeline>? ResiliencePipeline { get; set; }

    /// <summary>Gets or sets the rebalance hooks; null without.</summary>
    public Func<IServiceProvider, IRebalanceHandler>? RebalanceHandler { get; set; }
}

/// <summary>How a consumer of <typeparamref name="TMessage"/> turns records into calls of its handler: named options, one per consumer.</summary>
/// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
internal sealed class ConsumerPipelineOptions<TMessage>
{
    /// <summary>Gets or sets the deserializer; null for JSON with System.Text.Json's default options (or an asynchronous one).</summary>
    public Func<IServiceProvider, IMessageDeserializer<TMessage>>? Deserializer { get; set; }

    /// <summary>Gets or sets the asynchronous deserializer; it takes the place of <see cref="Deserializer"/> (the last one set wins).</summary>
    public Func<IServiceProvider, IAsyncMessageDeserializer<TMessage>>? AsyncDeserializer { get; set; }

    /// <summary>Gets or sets the idempotency key function; null for the key header, then topic-partition-offset.</summary>
    public Func<TMessage, MessageContext, string?>? IdempotencyKey { get; set; }

    /// <summary>Gets or sets the translation step; null when the handler takes <typeparamref name="TMessage"/> itself.</summary>
    public ConsumerTranslation<TMessage>? Translation { get; set; }
}

/// <summary>The handler of a consumer's <typeparamref name="TDomain"/> messages: named options, one per consumer.</summary>
/// <typeparam name="TDomain">The type the handler receives.</typeparam>
internal sealed class ConsumerHandlerOptions<TDomain>
{
    /// <summary>Gets or sets the handler; null until <c>WithHandler</c> is called.</summary>
    public HandlerRegistration<TDomain>? Handler { get; set; }

    /// <summary>Gets or sets the batch handler; null until <c>WithBatchHandler</c> is called.</summary>
    public BatchHandlerRegistration<TDomain>? BatchHandler { get; set; }
}

/// <summary>Resolves a batch handler of <typeparamref name="TDomain"/> (from the batch's scope, or once when it is a singleton).</summary>
internal sealed class BatchHandlerRegistration<TDomain>(Func<IServiceProvider, IBatchMessageHandler<TDomain>> resolve, bool singleton)
{
    public Func<IServiceProvider, IBatchMessageHandler<TDomain>> Resolve { get; } = resolve;

    public bool Singleton { get; } = singleton;
}

/// <summary>Resolves a handler of <typeparamref name="TDomain"/> (from the message's scope, or once when it is a singleton).</summary>
internal sealed class HandlerRegistration<TDomain>(Func<IServiceProvider, IMessageHandler<TDomain>> resolve, bool singleton)
{
    public Func<IServiceProvider, IMessageHandler<TDomain>> Resolve { get; } = resolve;

    public bool Singleton { get; } = singleton;
}

/// <summary>The step between deserialization and the handler, which fixes the type the handler receives.</summary>
internal abstract class ConsumerTranslation<TMessage>
{
    /// <summary>Gets the type the handler receives.</summary>
    public abstract Type Domain { get; }

    public abstract bool HasHandler(IServiceProvider services, string name);

    /// <summary>Gets whether the consumer has a batch handler (and whether it has a message handler as well).</summary>
    public abstract (bool Batch, bool Both) HandlerKind(IServiceProvider services, string name);

    public abstract IRecordProcessor CreateProcessor(
        IServiceProvider services, string name, IMessageDeserializer<TMessage>? deserializer, IAsyncMessageDeserializer<TMessage>? asyncDeserializer, IdempotencyGate? gate,
        Func<TMessage, MessageContext, string?>? keySelector);
}

/// <summary>Translates <typeparamref name="TMessage"/> into <typeparamref name="TDomain"/> and hands it to the consumer's handler of <typeparamref name="TDomain"/>.</summary>
internal sealed class ConsumerTranslation<TMessage, TDomain>(Func<IServiceProvider, IMessageTranslator<TMessage, TDomain>> translator) : ConsumerTranslation<TMessage>
{
    public override Type Domain => typeof(TDomain);

    public override bool HasHandler(IServiceProvider services, string name) => Handlers(services, name) is { Handler: not null } or { BatchHandler: not null };

    public override (bool Batch, bool Both) HandlerKind(IServiceProvider services, string name)
    {
        var handlers = Handlers(services, name);
        return (handlers.BatchHandler is not null, handlers is { Handler: not null, BatchHandler: not null });
    }

    public override IRecordProcessor CreateProcessor(
        IServiceProvider services, string name, IMessageDeserializer<TMessage>? deserializer, IAsyncMessageDeserializer<TMessage>? asyncDeserializer, IdempotencyGate? gate,
        Func<TMessage, MessageContext, string?>? keySelector)
    {
        var handlers = Handlers(services, name);
        if (handlers.BatchHandler is { } batch)
        {
            var acrossPartitions = services.GetRequiredService<IOptionsMonitor<ReliableConsumerOptions>>().Get(name).Batch.AcrossPartitions;
            return new BatchProcessor<TMessage, TDomain>(deserializer, translator(services), batch, services, gate, keySelector, acrossPartitions, asyncDeserializer);
        }

        var handler = handlers.Handler ?? throw ConsumerPipeline<TMessage>.NoHandler(name);
        return new RecordProcessor<TMessage, TDomain>(deserializer, translator(services), handler.Resolve, handler.Singleton, services, gate, keySelector, asyncDeserializer);
    }

    private static ConsumerHandlerOptions<TDomain> Handlers(IServiceProvider services, string name) =>
        services.GetRequiredService<IOptionsMonitor<ConsumerHandlerOptions<TDomain>>>().Get(name);
}

/// <summary>Builds the pipeline of one consumer from its named options, each time a runner starts.</summary>
internal interface IConsumerPipeline
{
    /// <summary>Throws when the consumer has no handler, before anything is started.</summary>
    void EnsureHandler(IServiceProvider services);

    IRecordProcessor Create(IServiceProvider services, IdempotencyGate? gate);
}

internal sealed class ConsumerPipeline<TMessage>(string name) : IConsumerPipeline
{
    private static readonly ConsumerTranslation<TMessage, TMessage> Identity = new(static _ => IdentityTranslator<TMessage>.Instance);

    public static InvalidOperationException NoHandler(string name) => new(
        $"Reliable consumer '{name}' has no handler: call WithHandler<THandler>() on the builder that AddReliableConsumer returned " +
        "(after WithTranslator<TTranslator, TDomain>() when the consumer translates its messages).");

    public void EnsureHandler(IServiceProvider services)
    {
        var translation = Translation(services);
        if (!translation.HasHandler(services, name))
        {
            throw NoHandler(name);
        }

        var (batch, both) = translation.HandlerKind(services, name);
        if (both)
        {
            throw new InvalidOperationException(
                $"Reliable consumer '{name}' has both a message handler (WithHandler) and a batch handler (WithBatchHandler) of {translation.Domain.Name}: " +
                "only one of them can receive the messages. Remove one of the two calls.");
        }

        if (batch)
        {
            BatchRules.Ensure(name, services.GetRequiredService<IOptionsMonitor<ReliableConsumerOptions>>().Get(name));
        }

        if (translation.Domain != typeof(TMessage)
            && services.GetRequiredService<IOptionsMonitor<ConsumerHandlerOptions<TMessage>>>().Get(name) is { Handler: not null } or { BatchHandler: not null })
        {
            // A handler of the untranslated messages next to a translator: it would never run, and its effects would silently not happen.
            throw new InvalidOperationException(
                $"Reliable consumer '{name}' has a handler of {typeof(TMessage).Name} and a translator to {translation.Domain.Name}: only the handler of " +
                $"{translation.Domain.Name} runs. Remove the WithHandler call made before WithTranslator<TTranslator, TDomain>(), and register the handler " +
                "of the translated messages after it.");
        }
    }

    public IRecordProcessor Create(IServiceProvider services, IdempotencyGate? gate)
    {
        var options = Options(services);
        var asyncDeserializer = options.AsyncDeserializer?.Invoke(services);
        var deserializer = asyncDeserializer is not null ? null : options.Deserializer?.Invoke(services) ?? new JsonMessageDeserializer<TMessage>();
        return (options.Translation ?? Identity).CreateProcessor(services, name, deserializer, asyncDeserializer, gate, options.IdempotencyKey);
    }

    private ConsumerTranslation<TMessage> Translation(IServiceProvider services) => Options(services).Translation ?? Identity;

    private ConsumerPipelineOptions<TMessage> Options(IServiceProvider services) =>
        services.GetRequiredService<IOptionsMonitor<ConsumerPipelineOptions<TMessage>>>().Get(name);
}

internal static class IdempotencyStoreOptionsExtensions
{
    /// <summary>
    /// Reads a consumer's store choice while its options are validated. A store package chooses from its own options, and when
    /// those are invalid their own validation reports it (once): the consumer's validation then goes on as if without a store.
    /// </summary>
    public static IdempotencyStoreOptions GetUnlessInvalid(this IOptionsMonitor<IdempotencyStoreOptions> stores, string name)
    {
        try
        {
            return stores.Get(name);
        }
        catch (OptionsValidationException)
        {
            return new IdempotencyStoreOptions();
        }
    }
}
