using System.Collections.Concurrent;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Testing;

namespace Kafka.Reliable.Tests.Batching;

/// <summary>One call of a batch handler as a test saw it.</summary>
/// <remarks><see cref="Partition"/> is the first record's; <see cref="Partitions"/> has each record's (batches across partitions).</remarks>
public sealed record BatchCall(int Partition, IReadOnlyList<int> Ids, IReadOnlyList<long> Offsets, int Attempt, bool Isolating, bool Succeeded)
{
    public IReadOnlyList<int> Partitions { get; init; } = [];
}

/// <summary>Records every batch it is handed; an optional behaviour can fail whole batches or report records failed.</summary>
public sealed class RecordingBatchHandler : IBatchMessageHandler<TestEvent>
{
    private readonly ConcurrentQueue<BatchCall> _calls = new();
    private readonly ConcurrentQueue<int> _handled = new();

    public Func<MessageBatch<TestEvent>, CancellationToken, ValueTask>? Behavior { get; set; }

    /// <summary>Gets every call, in the order they ended.</summary>
    public IReadOnlyCollection<BatchCall> Calls => _calls;

    /// <summary>Gets the ids of the records of every batch that succeeded, except those the handler reported failed, in completion order.</summary>
    public IReadOnlyCollection<int> Handled => _handled;

    public async ValueTask HandleAsync(MessageBatch<TestEvent> batch, CancellationToken cancellationToken)
    {
        var ids = batch.Select(item => item.Message.Id).ToList();
        var offsets = batch.Select(item => item.Context.Offset).ToList();
        var partition = batch[0].Context.Partition;
        var partitions = batch.Select(item => item.Context.Partition).ToList();
        try
        {
            if (Behavior is { } behavior)
            {
                await behavior(batch, cancellationToken);
            }
        }
        catch
        {
            _calls.Enqueue(new BatchCall(partition, ids, offsets, batch.Attempt, batch.IsIsolating, Succeeded: false) { Partitions = partitions });
            throw;
        }

        var failed = FailedIndexes(batch);
        for (var i = 0; i < ids.Count; i++)
        {
            if (!failed.Contains(i))
            {
                _handled.Enqueue(ids[i]);
            }
        }

        _calls.Enqueue(new BatchCall(partition, ids, offsets, batch.Attempt, batch.IsIsolating, Succeeded: true) { Partitions = partitions });
    }

    /// <summary>The indexes the behaviour reported with <see cref="MessageBatch{TMessage}.Fail"/>.</summary>
    private static HashSet<int> FailedIndexes(MessageBatch<TestEvent> batch) => [.. Enumerable.Range(0, batch.Count).Where(i => batch.FailureOf(i) is not null)];
}

/// <summary>A generic host running one reliable consumer of <see cref="TestEvent"/> with a batch handler against the test broker.</summary>
public sealed class BatchTestConsumer : IAsyncDisposable
{
    private BatchTestConsumer(IHost host, RecordingBatchHandler handler, FakeLogCollector logs)
    {
        Host = host;
        Handler = handler;
        Logs = logs;
    }

    public IHost Host { get; }

    public RecordingBatchHandler Handler { get; }

    public FakeLogCollector Logs { get; }

    public static IHost Build(
        string bootstrapServers, string topic, string groupId, RecordingBatchHandler handler, FakeLogCollector logs, Action<ReliableConsumerOptions>? configure = null,
        Action<IReliableConsumerBuilder<TestEvent>>? customize = null, Action<IServiceCollection>? services = null)
    {
        var (builder, consumer) = TestConsumer.CreateBuilder("batch", bootstrapServers, topic, groupId, logs, configure, services);
        builder.Services.AddSingleton(handler);
        consumer.WithBatchHandler<RecordingBatchHandler>(ServiceLifetime.Singleton);
        customize?.Invoke(consumer);
        return builder.Build();
    }

    public static async Task<BatchTestConsumer> StartAsync(
        KafkaBrokerFixture broker, string topic, string groupId, RecordingBatchHandler? handler = null, Action<ReliableConsumerOptions>? configure = null,
        Action<IReliableConsumerBuilder<TestEvent>>? customize = null, Action<IServiceCollection>? services = null)
    {
        handler ??= new RecordingBatchHandler();
        var logs = new FakeLogCollector();
        var host = Build(broker.BootstrapServers, topic, groupId, handler, logs, configure, customize, services);
        await host.StartAsync(TestContext.Current.CancellationToken);
        return new BatchTestConsumer(host, handler, logs);
    }

    public Task StopAsync() => Host.StopAsync(CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        await Host.StopAsync(CancellationToken.None);
        Host.Dispose();
    }
}
