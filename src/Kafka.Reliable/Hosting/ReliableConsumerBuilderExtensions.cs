using System.Text.Json.Serialization.Metadata;
using Kafka.Reliable.Hosting;
using Kafka.Reliable.Idempotency;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable;

/// <summary>
/// Configures a reliable consumer through its builder. Each method writes the consumer's named options (its name is the
/// options' name), so the calls may come in any order, before or after <c>WithTranslator</c> and <c>WithHandler</c>, and each
/// returns the builder it was called on. They live in the builder's namespace, beside the store packages' <c>Use...Idempotency</c>.
/// </summary>
public static class ReliableConsumerBuilderExtensions
{
    /// <summary>Changes the consumer's options in code, after configuration binding.</summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="configure">Changes the options.</param>
    /// <returns>The builder.</returns>
    public static TBuilder Configure<TBuilder>(this TBuilder builder, Action<ReliableConsumerOptions> configure)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.Configure(builder.Name, configure);
        return builder;
    }

    /// <summary>Says which handler exceptions are transient (retried) and which are fatal (dead-lettered at once).</summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="configure">Changes the classification, for example <c>c =&gt; c.Fatal&lt;ValidationException&gt;().Transient&lt;DbException&gt;()</c>.</param>
    /// <returns>The builder.</returns>
    public static TBuilder ClassifyExceptions<TBuilder>(this TBuilder builder, Action<ExceptionClassification> configure)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.Configure(builder.Name, configure);
        return builder;
    }

    /// <summary>
    /// Runs every handler attempt through your own Polly pipeline instead of the one built from the <c>Retry</c> and
    /// <c>CircuitBreaker</c> options. Its result decides: a failure it returns is dead-lettered; a
    /// <see cref="Polly.CircuitBreaker.BrokenCircuitException"/> makes the record wait (its partition paused) and try again.
    /// </summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="pipeline">The pipeline; it is shared by all partitions of the consumer.</param>
    /// <returns>The builder.</returns>
    public static TBuilder WithResiliencePipeline<TBuilder>(this TBuilder builder, Polly.ResiliencePipeline pipeline)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        return builder.WithResiliencePipeline(_ => pipeline);
    }

    /// <summary>
    /// Runs every handler attempt through a Polly pipeline created when the consumer starts, for example one resolved from
    /// <c>ResiliencePipelineProvider&lt;string&gt;</c>, instead of the one built from the <c>Retry</c> and <c>CircuitBreaker</c> options.
    /// </summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="pipelineFactory">Creates the pipeline; it is shared by all partitions of the consumer.</param>
    /// <returns>The builder.</returns>
    public static TBuilder WithResiliencePipeline<TBuilder>(this TBuilder builder, Func<IServiceProvider, Polly.ResiliencePipeline> pipelineFactory)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(pipelineFactory);
        builder.Services.Configure<ConsumerServicesOptions>(builder.Name, o => o.ResiliencePipeline = pipelineFactory);
        return builder;
    }

    /// <summary>
    /// Makes the handler's effects happen once per message (G2): before the handler runs, the message's key is taken in the
    /// store; a message whose key is completed is skipped as a duplicate and counts as done. Store packages add shortcuts
    /// (<c>UseSqliteIdempotency</c>, <c>UsePostgreSqlIdempotency</c>, <c>UseRedisIdempotency</c>). The last store chosen is used.
    /// </summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="storeFactory">Creates the store when the consumer starts; the consumer disposes it when it is <see cref="IAsyncDisposable"/>.</param>
    /// <returns>The builder.</returns>
    public static TBuilder UseIdempotencyStore<TBuilder>(this TBuilder builder, Func<IServiceProvider, IIdempotencyStore> storeFactory)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(storeFactory);
        builder.Services.Configure<IdempotencyStoreOptions>(builder.Name, o => o.UseStore(storeFactory));
        return builder;
    }

    /// <summary>Uses a transactional idempotency store: the handler writes through <see cref="MessageContext.Transaction"/>, and its writes commit with the idempotency record (G3).</summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="storeFactory">Creates the store when the consumer starts; the consumer disposes it when it is <see cref="IAsyncDisposable"/>.</param>
    /// <returns>The builder.</returns>
    public static TBuilder UseTransactionalIdempotencyStore<TBuilder>(this TBuilder builder, Func<IServiceProvider, ITransactionalIdempotencyStore> storeFactory)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(storeFactory);
        builder.Services.Configure<IdempotencyStoreOptions>(builder.Name, o => o.UseTransactionalStore(storeFactory));
        return builder;
    }

    /// <summary>Keeps handled message keys in memory: for tests and single-instance consumers (nothing survives a restart).</summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="maxEntries">The most completed keys kept; the oldest go first.</param>
    /// <returns>The builder.</returns>
    public static TBuilder UseInMemoryIdempotency<TBuilder>(this TBuilder builder, int maxEntries = 100_000)
        where TBuilder : IReliableConsumerBuilder
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEntries, 1);
        return builder.UseIdempotencyStore(sp => new InMemoryIdempotencyStore(maxEntries, sp.GetService<TimeProvider>()));
    }

    /// <summary>
    /// Sets the idempotency key of a message, for example its order id, so that the same order produced twice is handled
    /// once. Returning null or empty falls back to the <see cref="IdempotencyOptions.KeyHeader"/> header, then to topic-partition-offset.
    /// </summary>
    /// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="keySelector">Computes the key from the deserialized message.</param>
    /// <returns>The builder.</returns>
    public static IReliableConsumerBuilder<TMessage> WithIdempotencyKey<TMessage>(this IReliableConsumerBuilder<TMessage> builder, Func<TMessage, MessageContext, string?> keySelector)
    {
        SetIdempotencyKey(builder, keySelector);
        return builder;
    }

    /// <summary>
    /// Sets the idempotency key of a message from the deserialized message (before translation), for example its order id.
    /// Returning null or empty falls back to the <see cref="IdempotencyOptions.KeyHeader"/> header, then to topic-partition-offset.
    /// </summary>
    /// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
    /// <typeparam name="TDomain">The type the handler receives.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="keySelector">Computes the key from the deserialized message.</param>
    /// <returns>The builder.</returns>
    public static IReliableConsumerBuilder<TMessage, TDomain> WithIdempotencyKey<TMessage, TDomain>(
        this IReliableConsumerBuilder<TMessage, TDomain> builder, Func<TMessage, MessageContext, string?> keySelector)
    {
        SetIdempotencyKey(builder, keySelector);
        return builder;
    }

    /// <summary>Uses the given deserializer instance.</summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="deserializer">The deserializer; it must be thread-safe.</param>
    /// <returns>The builder.</returns>
    public static TBuilder WithDeserializer<TBuilder, TMessage>(this TBuilder builder, IMessageDeserializer<TMessage> deserializer)
        where TBuilder : IReliableConsumerBuilder<TMessage>
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(deserializer);
        builder.Services.Configure<ConsumerPipelineOptions<TMessage>>(builder.Name, o =>
        {
            o.Deserializer = _ => deserializer;
            o.AsyncDeserializer = null;
        });
        return builder;
    }

    /// <summary>
    /// Uses the given asynchronous deserializer instance: for deserializing that may need I/O (a schema registry). It takes the
    /// place of any deserializer chosen before (the last one chosen is used).
    /// </summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="deserializer">The deserializer; it must be thread-safe.</param>
    /// <returns>The builder.</returns>
    public static TBuilder WithDeserializer<TBuilder, TMessage>(this TBuilder builder, IAsyncMessageDeserializer<TMessage> deserializer)
        where TBuilder : IReliableConsumerBuilder<TMessage>
    {
        ArgumentNullException.ThrowIfNull(deserializer);
        return builder.WithDeserializer<TBuilder, TMessage>(_ => deserializer);
    }

    /// <summary>
    /// Uses an asynchronous deserializer made from the application's services when the consumer starts (for example one that
    /// takes the registered <c>ISchemaRegistryClient</c>). It takes the place of any deserializer chosen before.
    /// </summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="factory">Makes the deserializer, once per consumer start; it must be thread-safe.</param>
    /// <returns>The builder.</returns>
    public static TBuilder WithDeserializer<TBuilder, TMessage>(this TBuilder builder, Func<IServiceProvider, IAsyncMessageDeserializer<TMessage>> factory)
        where TBuilder : IReliableConsumerBuilder<TMessage>
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(factory);
        builder.Services.Configure<ConsumerPipelineOptions<TMessage>>(builder.Name, o =>
        {
            o.AsyncDeserializer = factory;
            o.Deserializer = null;
        });
        return builder;
    }

    /// <summary>Deserializes JSON with source-generated metadata (trimming and native AOT safe). Without a deserializer, JSON with System.Text.Json's default options is used.</summary>
    /// <typeparam name="TBuilder">The builder's type.</typeparam>
    /// <typeparam name="TMessage">The type the record values are deserialized to.</typeparam>
    /// <param name="builder">The consumer's builder.</param>
    /// <param name="typeInfo">The metadata, for example <c>MyJsonContext.Default.OrderEvent</c>.</param>
    /// <returns>The builder.</returns>
    public static TBuilder WithJsonDeserializer<TBuilder, TMessage>(this TBuilder builder, JsonTypeInfo<TMessage> typeInfo)
        where TBuilder : IReliableConsumerBuilder<TMessage> =>
        builder.WithDeserializer(new JsonMessageDeserializer<TMessage>(typeInfo));

    private static void SetIdempotencyKey<TMessage>(IReliableConsumerBuilder<TMessage> builder, Func<TMessage, MessageContext, string?> keySelector)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(keySelector);
        builder.Services.Configure<ConsumerPipelineOptions<TMessage>>(builder.Name, o => o.IdempotencyKey = keySelector);
    }
}
