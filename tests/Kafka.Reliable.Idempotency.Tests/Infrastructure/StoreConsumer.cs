using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Kafka.Reliable.Idempotency.Tests.Infrastructure;

/// <summary>Counts the effects of each message id, as the side effects a handler must not repeat.</summary>
public sealed class EffectCounter : IMessageHandler<int>
{
    private readonly ConcurrentDictionary<int, int> _effects = new();

    public Func<int, MessageContext, CancellationToken, ValueTask>? Behavior { get; set; }

    public IReadOnlyDictionary<int, int> Effects => _effects;

    public int Total => _effects.Values.Sum();

    public async ValueTask HandleAsync(int message, MessageContext context, CancellationToken cancellationToken)
    {
        if (Behavior is { } behavior)
        {
            await behavior(message, context, cancellationToken);
        }

        _effects.AddOrUpdate(message, 1, static (_, count) => count + 1);
    }
}

/// <summary>A host running one reliable consumer of integer ids with an idempotency store, and what it logged.</summary>
public sealed class StoreConsumer : IAsyncDisposable
{
    private StoreConsumer(IHost host, FakeLogCollector logs)
    {
        Host = host;
        Logs = logs;
    }

    public IHost Host { get; }

    public FakeLogCollector Logs { get; }

    public static async Task<StoreConsumer> StartAsync(
        string bootstrapServers, string topic, string group, EffectCounter handler, Action<IReliableConsumerBuilder<int>> useStore, Action<ReliableConsumerOptions>? configure = null)
    {
        var logs = new FakeLogCollector();
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders().AddProvider(new FakeLoggerProvider(logs)).SetMinimumLevel(LogLevel.Information);
        // Longer than a stop can take by design (a revoke drain and the shutdown drain, 30 s each, then the leave): these
        // tests are about effects, and a loaded machine once needed more than 60 s to stop a member in mid-rebalance.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(150));
        builder.Services.AddSingleton(handler);
        var consumer = builder.Services.AddReliableConsumer<int>("ids", o =>
            {
                o.BootstrapServers = bootstrapServers;
                o.GroupId = group;
                o.Topics.Add(topic);
                o.Commit.Interval = TimeSpan.FromMilliseconds(200);
                o.Retry.Delay = TimeSpan.FromMilliseconds(10);
                o.Retry.MaxDelay = TimeSpan.FromMilliseconds(100);
                o.KafkaSettings["session.timeout.ms"] = "3000";
                o.KafkaSettings["heartbeat.interval.ms"] = "300";
                o.KafkaSettings["topic.metadata.refresh.interval.ms"] = "1000";
                o.GroupProtocol = Protocol.Value ?? o.GroupProtocol;
                configure?.Invoke(o);
                if (o.GroupProtocol == GroupProtocol.Consumer)
                {
                    // The broker owns the session settings under the consumer protocol (see BrokerFixture).
                    o.KafkaSettings.Remove("session.timeout.ms");
                    o.KafkaSettings.Remove("heartbeat.interval.ms");
                }
            })
            .WithDeserializer(new IdDeserializer());
        useStore(consumer);
        consumer.WithHandler<EffectCounter>(ServiceLifetime.Singleton);
        var host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        return new StoreConsumer(host, logs);
    }

    private static readonly AsyncLocal<GroupProtocol?> Protocol = new();

    /// <summary>Makes the members a test starts from here on (in its async flow) speak <paramref name="protocol"/>: a rebalance test runs under both protocols.</summary>
    public static IDisposable UseProtocol(GroupProtocol protocol)
    {
        var before = Protocol.Value;
        Protocol.Value = protocol;
        return new ProtocolScope(before);
    }

    internal static void RestoreProtocol(GroupProtocol? protocol) => Protocol.Value = protocol;

    public static Task ProduceIdsAsync(EmbeddedKafkaCluster cluster, string topic, IEnumerable<int> ids) =>
        cluster.ProduceAllAsync(topic, ids.Select(id => new Message<byte[]?, byte[]?>
        {
            Key = Encoding.ASCII.GetBytes(id.ToString(CultureInfo.InvariantCulture)),
            Value = Encoding.ASCII.GetBytes(id.ToString(CultureInfo.InvariantCulture)),
        }), TestContext.Current.CancellationToken);

    /// <summary>
    /// Sets the group's committed offsets back to the beginning, as an operator replaying a topic would: joins the (idle)
    /// group as its only member, so that the commit is accepted, and leaves.
    /// </summary>
    public static void ResetOffsets(string bootstrapServers, string topic, string group, int partitions)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = group,
            EnableAutoCommit = false,
            SessionTimeoutMs = 3000,
        }).Build();
        consumer.Subscribe(topic);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (consumer.Assignment.Count < partitions)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the reset joined the group but got {consumer.Assignment.Count} of {partitions} partitions");
            consumer.Consume(TimeSpan.FromMilliseconds(100));
        }

        consumer.Commit(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset(topic, p, 0)));
        consumer.Close();
    }

    public Task StopAsync() => Host.StopAsync(CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Host.StopAsync(CancellationToken.None);
        }
        catch (OperationCanceledException ex)
        {
            // Say what the member was doing when its stop ran out of time, rather than only that it did.
            throw new TimeoutException($"the member did not stop within the host's shutdown timeout; its last logs:{Environment.NewLine}{Logs.Dump(80)}", ex);
        }

        Host.Dispose();
    }

    private sealed class IdDeserializer : IMessageDeserializer<int>
    {
        public int Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) =>
            int.Parse(Encoding.ASCII.GetString(value), CultureInfo.InvariantCulture);
    }
}

/// <summary>Restores the protocol of <see cref="StoreConsumer.UseProtocol"/> when disposed.</summary>
file sealed class ProtocolScope(GroupProtocol? before) : IDisposable
{
    public void Dispose() => StoreConsumer.RestoreProtocol(before);
}
