using Kafka.Reliable.Idempotency;
using Microsoft.Extensions.Configuration;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Kafka.Reliable.Tests.Batching;

/// <summary>The settings a batch handler cannot work with are refused when the host starts, with a message saying what to do.</summary>
public sealed class BatchConfigurationTests
{
    [Theory]
    [InlineData("ByKey", "Dispatch is ByKey: a batch handler takes the records of a partition in offset order, one batch at a time, so Dispatch must be Sequential")]
    [InlineData("Unordered", "Dispatch is Unordered")]
    [InlineData("Manual", "Commit:Strategy is Manual: a batch's messages are done when the batch handler returns")]
    [InlineData("Transactional", "Commit:Strategy is Transactional: Kafka transactions hold one record per partition at a time")]
    [InlineData("BufferTooSmall", "Batch:MaxSize (500) is more than PartitionBufferSize (100)")]
    [InlineData("RetryTiers", "RetryTiers:Enabled is true: retry tiers park single records")]
    public async Task Start_BatchHandlerWithASettingItCannotWorkWith_FailsSayingWhy(string setting, string expected)
    {
        using var host = Build(o =>
        {
            switch (setting)
            {
                case "ByKey":
                    o.Dispatch = DispatchMode.ByKey;
                    break;
                case "Unordered":
                    o.Dispatch = DispatchMode.Unordered;
                    break;
                case "Manual":
                    o.Commit.Strategy = CommitStrategy.Manual;
                    break;
                case "Transactional":
                    o.Commit.Strategy = CommitStrategy.Transactional;
                    break;
                case "RetryTiers":
                    o.RetryTiers.Enabled = true;
                    break;
                default:
                    o.PartitionBufferSize = 100;
                    break;
            }
        });

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("Reliable consumer 'orders' has a batch handler (WithBatchHandler) and settings it cannot work with", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_BothAMessageHandlerAndABatchHandler_FailsSayingToRemoveOne()
    {
        using var host = Build(customize: c => c.WithHandler<RecordingHandler>());

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("has both a message handler (WithHandler) and a batch handler (WithBatchHandler) of TestEvent", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_TransactionalStoreThatCannotHoldABatch_FailsNamingTheStore()
    {
        using var host = Build(customize: c => c.Services.Configure<IdempotencyStoreOptions>("orders", o => o.UseTransactionalStore(_ => new OneMessageOnly())));

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("a transactional idempotency store (OneMessageOnly) that cannot hold a batch in one transaction", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_AcrossPartitionsWithATransactionalStoreThatCommitsOnePartition_FailsNamingTheStore()
    {
        using var host = Build(
            o => o.Batch.AcrossPartitions = true,
            c => c.Services.Configure<IdempotencyStoreOptions>("orders", o => o.UseTransactionalStore(_ => new OnePartitionOnly())));

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("Batch:AcrossPartitions = true and a transactional idempotency store (OnePartitionOnly) whose batch transactions keep one partition's offset", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Across partitions a batch gathers several partitions' buffers, so MaxSize may exceed one partition's buffer; the setting binds from configuration.</summary>
    [Fact]
    public void AcrossPartitions_BindsFromConfiguration_AndAllowsAMaxSizeAboveThePartitionBuffer()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Batch:AcrossPartitions"] = "true",
            ["Batch:MaxSize"] = "2000",
            ["PartitionBufferSize"] = "100",
        }).Build();
        var options = new ReliableConsumerOptions();
        configuration.Bind(options);

        Assert.True(options.Batch.AcrossPartitions);
        Kafka.Reliable.Hosting.BatchRules.Ensure("orders", options);
        options.Batch.AcrossPartitions = false;
        var error = Assert.Throws<InvalidOperationException>(() => Kafka.Reliable.Hosting.BatchRules.Ensure("orders", options));
        Assert.Contains("Batch:MaxSize (2000) is more than PartitionBufferSize (100)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Builder_WithBatchHandler_RegistersTheHandlerWithTheLifetimeGiven_AfterATranslatorToo()
    {
        var services = new ServiceCollection();
        services.AddReliableConsumer<TestEvent>("orders", _ => { }).WithTranslator<IdTranslator, int>().WithBatchHandler<IdsHandler>(ServiceLifetime.Singleton);
        services.AddReliableConsumer<TestEvent>("other", _ => { }).WithBatchHandler<RecordingBatchHandler>();

        Assert.Equal(ServiceLifetime.Singleton, Assert.Single(services, d => d.ServiceType == typeof(IdsHandler)).Lifetime);
        Assert.Equal(ServiceLifetime.Scoped, Assert.Single(services, d => d.ServiceType == typeof(RecordingBatchHandler)).Lifetime);
    }

    private static IHost Build(Action<ReliableConsumerOptions>? configure = null, Action<IReliableConsumerBuilder<TestEvent>>? customize = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        var consumer = builder.Services.AddReliableConsumer<TestEvent>("orders", o =>
        {
            o.BootstrapServers = "127.0.0.1:9";
            o.GroupId = "orders-loader";
            o.Topics.Add("orders");
            configure?.Invoke(o);
        }).WithBatchHandler<RecordingBatchHandler>();
        customize?.Invoke(consumer);
        return builder.Build();
    }

    private sealed class OneMessageOnly : ITransactionalIdempotencyStore
    {
        public ValueTask<IdempotencyTransaction?> BeginTransactionAsync(string key, MessageContext context, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("The consumer must not start.");
    }

    private sealed class OnePartitionOnly : ITransactionalBatchIdempotencyStore
    {
        public ValueTask<IdempotencyTransaction?> BeginTransactionAsync(string key, MessageContext context, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("The consumer must not start.");

        public ValueTask<IdempotencyTransaction> BeginBatchTransactionAsync(IReadOnlyList<string> keys, IList<bool> handled, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("The consumer must not start.");
    }

    private sealed class IdTranslator : IMessageTranslator<TestEvent, int>
    {
        public int Translate(TestEvent message, MessageContext context) => message.Id;
    }

    private sealed class IdsHandler : IBatchMessageHandler<int>
    {
        public ValueTask HandleAsync(MessageBatch<int> batch, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
