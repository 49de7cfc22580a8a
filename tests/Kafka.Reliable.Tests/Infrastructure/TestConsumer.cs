using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Kafka.Reliable.Tests.Infrastructure;

public sealed record TestEvent(int Id, string Key);

/// <summary>A handled record as a test saw it.</summary>
public sealed record Handled(int Id, int Partition, long Offset, int Attempt, string Thread);

/// <summary>Records every message it handles; an optional behaviour can fail, block or slow chosen records.</summary>
public sealed class RecordingHandler : IMessageHandler<TestEvent>
{
    private readonly ConcurrentQueue<Handled> _handled = new();
    private readonly ConcurrentQueue<Handled> _attempts = new();

    public Func<TestEvent, MessageContext, CancellationToken, ValueTask>? Behavior { get; set; }

    /// <summary>Gets the records handled successfully, in completion order.</summary>
    public IReadOnlyCollection<Handled> Handled => _handled;

    /// <summary>Gets every attempt, including failed ones.</summary>
    public IReadOnlyCollection<Handled> Attempts => _attempts;

    public async ValueTask HandleAsync(TestEvent message, MessageContext context, CancellationToken cancellationToken)
    {
        var entry = new Handled(message.Id, context.Partition, context.Offset, context.Attempt, Thread.CurrentThread.Name ?? string.Empty);
        _attempts.Enqueue(entry);
        if (Behavior is { } behavior)
        {
            await behavior(message, context, cancellationToken);
        }

        _handled.Enqueue(entry);
    }
}

/// <summary>A generic host running one reliable consumer of <see cref="TestEvent"/> against the test broker.</summary>
public sealed class TestConsumer : IAsyncDisposable
{
    private TestConsumer(IHost host, RecordingHandler handler, FakeLogCollector logs)
    {
        Host = host;
        Handler = handler;
        Logs = logs;
    }

    public IHost Host { get; }

    public RecordingHandler Handler { get; }

    public FakeLogCollector Logs { get; }

    public static IHost Build(
        string bootstrapServers, string topic, string groupId, RecordingHandler handler, FakeLogCollector logs, Action<ReliableConsumerOptions>? configure = null,
        Action<IReliableConsumerBuilder<TestEvent>>? customize = null, Action<IServiceCollection>? services = null, TestMeters? meters = null)
    {
        var (builder, consumer) = CreateBuilder("test", bootstrapServers, topic, groupId, logs, configure, services, meters);
        builder.Services.AddSingleton(handler);
        customize?.Invoke(consumer);
        consumer.WithHandler<RecordingHandler>(ServiceLifetime.Singleton);
        return builder.Build();
    }

    /// <summary>
    /// A host builder with one consumer of <see cref="TestEvent"/> set up for the test broker (short commit interval, retry
    /// delays and session), its logs collected; the caller adds the handler.
    /// </summary>
    public static (HostApplicationBuilder Builder, IReliableConsumerBuilder<TestEvent> Consumer) CreateBuilder(
        string name, string bootstrapServers, string topic, string groupId, FakeLogCollector logs, Action<ReliableConsumerOptions>? configure = null,
        Action<IServiceCollection>? services = null, TestMeters? meters = null)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders().AddProvider(new FakeLoggerProvider(logs)).SetMinimumLevel(LogLevel.Debug);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(60));
        meters?.Use(builder.Services);
        services?.Invoke(builder.Services);
        var consumer = builder.Services
            .AddReliableConsumer<TestEvent>(name, o =>
            {
                o.BootstrapServers = bootstrapServers;
                o.GroupId = groupId;
                o.Topics.Add(topic);
                o.Commit.Interval = TimeSpan.FromMilliseconds(200);
                o.Retry.Delay = TimeSpan.FromMilliseconds(10);
                o.Retry.MaxDelay = TimeSpan.FromMilliseconds(50);
                o.KafkaSettings["session.timeout.ms"] = "6000";
                o.KafkaSettings["heartbeat.interval.ms"] = "500";
                o.KafkaSettings["topic.metadata.refresh.interval.ms"] = "1000";
                o.GroupProtocol = Protocol.Value ?? o.GroupProtocol;
                configure?.Invoke(o);
                ForProtocol(o);
            });
        return (builder, consumer);
    }

    public static Task<TestConsumer> StartAsync(
        KafkaBrokerFixture broker, string topic, string groupId, RecordingHandler? handler = null, Action<ReliableConsumerOptions>? configure = null,
        Action<IReliableConsumerBuilder<TestEvent>>? customize = null, Action<IServiceCollection>? services = null, TestMeters? meters = null) =>
        StartAsync(broker.BootstrapServers, topic, groupId, handler, configure, customize, services, meters);

    public static async Task<TestConsumer> StartAsync(
        string bootstrapServers, string topic, string groupId, RecordingHandler? handler = null, Action<ReliableConsumerOptions>? configure = null,
        Action<IReliableConsumerBuilder<TestEvent>>? customize = null, Action<IServiceCollection>? services = null, TestMeters? meters = null)
    {
        handler ??= new RecordingHandler();
        var logs = new FakeLogCollector();
        var host = Build(bootstrapServers, topic, groupId, handler, logs, configure, customize, services, meters);
        await host.StartAsync(TestContext.Current.CancellationToken);
        return new TestConsumer(host, handler, logs);
    }

    private static readonly AsyncLocal<GroupProtocol?> Protocol = new();

    /// <summary>
    /// Makes the consumers a test starts from here on (in its async flow) speak <paramref name="protocol"/>, unless the test
    /// sets another itself: a test of rebalances runs under both protocols with one line.
    /// </summary>
    public static IDisposable UseProtocol(GroupProtocol protocol)
    {
        var before = Protocol.Value;
        Protocol.Value = protocol;
        return new Restore(() => Protocol.Value = before);
    }

    /// <summary>
    /// Under the consumer group protocol, drops the classic protocol's session settings the tests set by default (the
    /// broker owns them there: the test broker's are as short, see <see cref="KafkaBrokerFixture"/>).
    /// </summary>
    public static void ForProtocol(ReliableConsumerOptions options)
    {
        if (options.GroupProtocol == GroupProtocol.Consumer)
        {
            options.KafkaSettings.Remove("session.timeout.ms");
            options.KafkaSettings.Remove("heartbeat.interval.ms");
            options.KafkaSettings.Remove("partition.assignment.strategy");
        }
    }

    public static IEnumerable<(int Partition, string? Key, string? Value)> Events(int count, int partitions, int firstId = 0) =>
        Enumerable.Range(firstId, count).Select(id =>
        {
            var key = $"k{id % 1000}";
            return (id % partitions, (string?)key, (string?)JsonSerializer.Serialize(new TestEvent(id, key)));
        });

    public Task StopAsync() => Host.StopAsync(CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        await Host.StopAsync(CancellationToken.None);
        Host.Dispose();
    }
}

file sealed class Restore(Action restore) : IDisposable
{
    public void Dispose() => restore();
}
