using Kafka.Reliable.Idempotency;
using System.Collections.Concurrent;
using Kafka.Reliable.Hosting;
using Kafka.Reliable.Pipeline;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;

namespace Kafka.Reliable.Tests.Hosting;

/// <summary>The builder writes named options, so its calls may come in any order and each consumer keeps its own.</summary>
public sealed class BuilderTests(KafkaBrokerFixture broker)
{
    public static TheoryData<string> Orders => new()
    {
        "store, classification, translator, handler",
        "translator, store, handler, classification",
        "translator, handler, store, key, rebalance",
        "classification, rebalance, translator, key, handler, store, resilience",
        "deserializer, translator, deserializer again, handler, store",
    };

    [Theory]
    [MemberData(nameof(Orders))]
    public void TranslatedConsumer_AnyOrderOfCalls_ConfiguresTheSameConsumer(string order)
    {
        var services = new ServiceCollection();
        var consumer = services.AddReliableConsumer<TestEvent>("orders", Valid);
        var pipeline = ResiliencePipeline.Empty;
        switch (order)
        {
            case "store, classification, translator, handler":
                consumer.UseInMemoryIdempotency().ClassifyExceptions(c => c.Fatal<TimeoutException>()).WithTranslator<ToDomain, DomainEvent>().WithHandler<DomainHandler>();
                break;
            case "translator, store, handler, classification":
                consumer.WithTranslator<ToDomain, DomainEvent>().UseInMemoryIdempotency().WithHandler<DomainHandler>().ClassifyExceptions(c => c.Fatal<TimeoutException>());
                break;
            case "translator, handler, store, key, rebalance":
                consumer.WithTranslator<ToDomain, DomainEvent>().WithHandler<DomainHandler>().UseInMemoryIdempotency().WithIdempotencyKey((e, _) => e.Key)
                    .WithRebalanceHandler<NoHooks>().ClassifyExceptions(c => c.Fatal<TimeoutException>());
                break;
            case "classification, rebalance, translator, key, handler, store, resilience":
                consumer.ClassifyExceptions(c => c.Fatal<TimeoutException>()).WithRebalanceHandler<NoHooks>().WithTranslator<ToDomain, DomainEvent>()
                    .WithIdempotencyKey((e, _) => e.Key).WithHandler<DomainHandler>().UseInMemoryIdempotency().WithResiliencePipeline(pipeline);
                break;
            case "deserializer, translator, deserializer again, handler, store":
                consumer.WithDeserializer<NullDeserializer>().WithTranslator<ToDomain, DomainEvent>().WithDeserializer<NullDeserializer>()
                    .WithHandler<DomainHandler>().UseInMemoryIdempotency().ClassifyExceptions(c => c.Fatal<TimeoutException>());
                break;
            default:
                Assert.Fail($"unknown order '{order}'");
                break;
        }

        using var provider = services.BuildServiceProvider();
        var store = provider.GetRequiredService<IOptionsMonitor<IdempotencyStoreOptions>>().Get("orders");
        Assert.True(store.HasStore, $"{order}: the consumer has its store");
        Assert.IsType<InMemoryIdempotencyStore>(store.StoreFactory!(provider));
        Assert.Equal(FailureKind.Fatal, provider.GetRequiredService<IOptionsMonitor<ExceptionClassification>>().Get("orders").Classify(new TimeoutException()));

        var consumerPipeline = new ConsumerPipeline<TestEvent>("orders");
        consumerPipeline.EnsureHandler(provider);
        Assert.IsType<RecordProcessor<TestEvent, DomainEvent>>(consumerPipeline.Create(provider, gate: null));
        if (order.Contains("rebalance", StringComparison.Ordinal))
        {
            Assert.IsType<NoHooks>(provider.GetRequiredService<IOptionsMonitor<ConsumerServicesOptions>>().Get("orders").RebalanceHandler!(provider));
        }

        if (order.Contains("resilience", StringComparison.Ordinal))
        {
            Assert.Same(pipeline, provider.GetRequiredService<IOptionsMonitor<ConsumerServicesOptions>>().Get("orders").ResiliencePipeline!(provider));
        }

        if (order.Contains("deserializer", StringComparison.Ordinal))
        {
            Assert.IsType<NullDeserializer>(provider.GetRequiredService<IOptionsMonitor<ConsumerPipelineOptions<TestEvent>>>().Get("orders").Deserializer!(provider));
        }
    }

    [Fact]
    public void HandlerFirst_ThenStoreAndClassification_ConfiguresTheConsumer()
    {
        var services = new ServiceCollection();
        services.AddReliableConsumer<TestEvent>("orders", Valid)
            .WithHandler<RecordingHandler>(ServiceLifetime.Singleton)
            .UseTransactionalIdempotencyStore(_ => new NoTransactions())
            .ClassifyExceptions(c => c.Transient<ArgumentException>());
        services.AddSingleton(new RecordingHandler());

        using var provider = services.BuildServiceProvider();
        var store = provider.GetRequiredService<IOptionsMonitor<IdempotencyStoreOptions>>().Get("orders");
        Assert.True(store.IsTransactional, "the transactional store chosen after the handler is the consumer's");
        Assert.Equal(FailureKind.Transient, provider.GetRequiredService<IOptionsMonitor<ExceptionClassification>>().Get("orders").Classify(new ArgumentException("x")));
        Assert.IsType<RecordProcessor<TestEvent, TestEvent>>(new ConsumerPipeline<TestEvent>("orders").Create(provider, gate: null));
    }

    [Fact]
    public void TheLastStoreChosen_IsUsed()
    {
        var services = new ServiceCollection();
        services.AddReliableConsumer<TestEvent>("orders", Valid)
            .UseTransactionalIdempotencyStore(_ => new NoTransactions())
            .WithHandler<RecordingHandler>()
            .UseInMemoryIdempotency(maxEntries: 10);

        using var provider = services.BuildServiceProvider();
        var store = provider.GetRequiredService<IOptionsMonitor<IdempotencyStoreOptions>>().Get("orders");
        Assert.False(store.IsTransactional, "the in-memory store chosen last replaces the transactional one");
        Assert.IsType<InMemoryIdempotencyStore>(store.StoreFactory!(provider));
    }

    [Fact]
    public void ABuilderOfYourOwn_ImplementsNameAndServicesOnly_AndGetsEveryMethod()
    {
        var services = new ServiceCollection();
        services.AddReliableConsumer<TestEvent>("orders", Valid);
        IReliableConsumerBuilder<TestEvent> wrapper = new OwnBuilder("orders", services);

        wrapper.WithTranslator<ToDomain, DomainEvent>().UseInMemoryIdempotency().WithHandler<DomainHandler>();

        using var provider = services.BuildServiceProvider();
        Assert.IsType<RecordProcessor<TestEvent, DomainEvent>>(new ConsumerPipeline<TestEvent>("orders").Create(provider, gate: null));
        Assert.True(provider.GetRequiredService<IOptionsMonitor<IdempotencyStoreOptions>>().Get("orders").HasStore, "the store is the consumer's");
    }

    [Fact]
    public async Task HandlerOfUntranslatedMessagesBesideATranslator_FailsAtStart_InsteadOfNeverRunning()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddLogging();
        builder.Services.AddSingleton<DomainLog>();
        builder.Services.AddReliableConsumer<TestEvent>("orders", Valid).WithHandler<RecordingHandler>().WithTranslator<ToDomain, DomainEvent>().WithHandler<DomainHandler>();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("Reliable consumer 'orders' has a handler of TestEvent and a translator to DomainEvent: only the handler of DomainEvent runs", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TranslatorWithoutHandler_FailsAtStart_SayingWhereWithHandlerGoes()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddReliableConsumer<TestEvent>("orders", Valid).WithHandler<RecordingHandler>().WithTranslator<ToDomain, DomainEvent>();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("Reliable consumer 'orders' has no handler: call WithHandler<THandler>()", error.Message, StringComparison.Ordinal);
        Assert.Contains("after WithTranslator<TTranslator, TDomain>()", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoreKeyAndHandler_AfterTheTranslator_DeduplicateTheTranslatedMessages()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(6, 1));
        var handled = new DomainLog();

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(handled);
        builder.Services.AddReliableConsumer<TestEvent>("orders", o => Configure(o, topic, group))
            .WithTranslator<ToDomain, DomainEvent>()
            .WithHandler<DomainHandler>(ServiceLifetime.Singleton)
            .UseInMemoryIdempotency()
            .WithIdempotencyKey((e, _) => "order-" + (e.Id % 3));
        using var host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        try
        {
            await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 6, "all 6 records are committed");
            Assert.Equal([0, 1, 2], handled.Ids("orders").Order());
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task TwoConsumersInOneHost_EachUsesItsOwnStoreAndClassification()
    {
        var topicA = await broker.CreateTopicAsync(1);
        var topicB = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topicA + ".dlq", 1);
        await broker.CreateTopicNamedAsync(topicB + ".dlq", 1);
        var (groupA, groupB) = ("g-" + Guid.NewGuid().ToString("N"), "g-" + Guid.NewGuid().ToString("N"));

        // Ids 0..5: id 0 fails with InvalidOperationException (transient by default); ids 3, 4, 5 repeat the keys of 0, 1, 2.
        await broker.ProduceAsync(topicA, TestConsumer.Events(6, 1));
        await broker.ProduceAsync(topicB, TestConsumer.Events(6, 1));
        var log = new DomainLog();

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(log);
        builder.Services.AddReliableConsumer<TestEvent>("a", o => Configure(o, topicA, groupA))
            .WithHandler<FailingFirstHandlerA>(ServiceLifetime.Singleton)
            .UseInMemoryIdempotency()
            .WithIdempotencyKey((e, _) => "key-" + (e.Id % 3))
            .ClassifyExceptions(c => c.Fatal<InvalidOperationException>());
        builder.Services.AddReliableConsumer<TestEvent>("b", o => Configure(o, topicB, groupB))
            .WithHandler<FailingFirstHandlerB>(ServiceLifetime.Singleton);
        using var host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        try
        {
            await Eventually.TrueAsync(
                () => broker.GetCommittedOffsets(groupA, topicA, 1)[0] == 6 && broker.GetCommittedOffsets(groupB, topicB, 1)[0] == 6,
                "both consumers commit their 6 records");

            // a: its classification makes id 0 fatal (one attempt, dead-lettered, its key released); its store skips ids 4 and 5,
            // whose keys ids 1 and 2 completed, and lets id 3 through (the key of the dead-lettered id 0 was not completed).
            Assert.Equal([0], log.Attempts("a").Where(id => id == 0));
            Assert.Equal([1, 2, 3], log.Ids("a").Order());

            // b: no store, default classification: id 0 is retried up to Retry:MaxAttempts, and every id is handled once.
            Assert.Equal([0, 0, 0], log.Attempts("b").Where(id => id == 0));
            Assert.Equal([1, 2, 3, 4, 5], log.Ids("b").Order());
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    private static void Valid(ReliableConsumerOptions o)
    {
        o.BootstrapServers = "127.0.0.1:9";
        o.GroupId = "orders";
        o.Topics.Add("orders");
    }

    private void Configure(ReliableConsumerOptions o, string topic, string group)
    {
        o.BootstrapServers = broker.BootstrapServers;
        o.GroupId = group;
        o.Topics.Add(topic);
        o.Commit.Interval = TimeSpan.FromMilliseconds(100);
        o.Retry.MaxAttempts = 3;
        o.Retry.Delay = TimeSpan.FromMilliseconds(10);
        o.Retry.MaxDelay = TimeSpan.FromMilliseconds(50);
        o.KafkaSettings["session.timeout.ms"] = "6000";
        o.KafkaSettings["heartbeat.interval.ms"] = "500";
    }

    public sealed record DomainEvent(int Id, string Key);

    public sealed class ToDomain : IMessageTranslator<TestEvent, DomainEvent>
    {
        public DomainEvent Translate(TestEvent message, MessageContext context) => new(message.Id, message.Key);
    }

    /// <summary>What each consumer's handlers saw, by consumer.</summary>
    public sealed class DomainLog
    {
        private readonly ConcurrentDictionary<string, ConcurrentQueue<int>> _handled = new();
        private readonly ConcurrentDictionary<string, ConcurrentQueue<int>> _attempts = new();

        public void Attempt(string consumer, int id) => _attempts.GetOrAdd(consumer, _ => new()).Enqueue(id);

        public void Handle(string consumer, int id) => _handled.GetOrAdd(consumer, _ => new()).Enqueue(id);

        public IEnumerable<int> Ids(string consumer) => _handled.TryGetValue(consumer, out var ids) ? ids : [];

        public IEnumerable<int> Attempts(string consumer) => _attempts.TryGetValue(consumer, out var ids) ? ids : [];
    }

    public sealed class DomainHandler(DomainLog log) : IMessageHandler<DomainEvent>
    {
        public ValueTask HandleAsync(DomainEvent message, MessageContext context, CancellationToken cancellationToken)
        {
            log.Handle("orders", message.Id);
            return ValueTask.CompletedTask;
        }
    }

    public sealed class FailingFirstHandlerA(DomainLog log) : IMessageHandler<TestEvent>
    {
        public ValueTask HandleAsync(TestEvent message, MessageContext context, CancellationToken cancellationToken) => FailFirst("a", log, message);
    }

    public sealed class FailingFirstHandlerB(DomainLog log) : IMessageHandler<TestEvent>
    {
        public ValueTask HandleAsync(TestEvent message, MessageContext context, CancellationToken cancellationToken) => FailFirst("b", log, message);
    }

    public sealed class NoHooks : IRebalanceHandler
    {
    }

    public sealed class NullDeserializer : IMessageDeserializer<TestEvent>
    {
        public TestEvent Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) => new(-1, string.Empty);
    }

    private static ValueTask FailFirst(string consumer, DomainLog log, TestEvent message)
    {
        log.Attempt(consumer, message.Id);
        if (message.Id == 0)
        {
            throw new InvalidOperationException("the order is closed");
        }

        log.Handle(consumer, message.Id);
        return ValueTask.CompletedTask;
    }

    private sealed class OwnBuilder(string name, IServiceCollection services) : IReliableConsumerBuilder<TestEvent>
    {
        public string Name { get; } = name;

        public IServiceCollection Services { get; } = services;
    }

    private sealed class NoTransactions : ITransactionalIdempotencyStore
    {
        public ValueTask<IdempotencyTransaction?> BeginTransactionAsync(string key, MessageContext context, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("The consumer must not start.");
    }
}
