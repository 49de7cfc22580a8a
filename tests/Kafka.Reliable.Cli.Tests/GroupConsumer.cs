using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Kafka.Reliable.Cli.Tests;

/// <summary>A host running one reliable consumer of a topic in a group, keeping where each handled record was.</summary>
internal sealed class GroupConsumer : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly FakeLogCollector _logs;

    private GroupConsumer(IHost host, ConcurrentQueue<(int Partition, long Offset)> handled, FakeLogCollector logs)
    {
        _host = host;
        _logs = logs;
        Handled = handled;
    }

    /// <summary>Gets the consumer's last log lines, for failure messages.</summary>
    public string RecentLogs => _logs.Dump(20);

    /// <summary>Gets the handled records as (partition, offset), in completion order.</summary>
    public ConcurrentQueue<(int Partition, long Offset)> Handled { get; }

    public static async Task<GroupConsumer> StartAsync(string bootstrapServers, string topic, string group)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        var handled = new ConcurrentQueue<(int Partition, long Offset)>();
        var logs = new FakeLogCollector();
        builder.Logging.ClearProviders().AddProvider(new FakeLoggerProvider(logs)).SetMinimumLevel(LogLevel.Debug);
        builder.Services.AddSingleton(handled);
        builder.Services.AddReliableConsumer<string>("cli-test", o =>
            {
                o.BootstrapServers = bootstrapServers;
                o.GroupId = group;
                o.Topics.Add(topic);
                o.Commit.Interval = TimeSpan.FromMilliseconds(100);
                o.KafkaSettings["session.timeout.ms"] = "6000"; // the offsets reset joins with the same value (--session-timeout-ms)
                o.KafkaSettings["heartbeat.interval.ms"] = "500";
            })
            .WithDeserializer(new Utf8Deserializer())
            .WithHandler<RecordingHandler>(ServiceLifetime.Singleton);
        var host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        return new GroupConsumer(host, handled, logs);
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync(CancellationToken.None);
        _host.Dispose();
    }

    private sealed class RecordingHandler(ConcurrentQueue<(int Partition, long Offset)> handled) : IMessageHandler<string>
    {
        public ValueTask HandleAsync(string message, MessageContext context, CancellationToken cancellationToken)
        {
            handled.Enqueue((context.Partition, context.Offset));
            return ValueTask.CompletedTask;
        }
    }

    private sealed class Utf8Deserializer : IMessageDeserializer<string>
    {
        public string Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) => Encoding.UTF8.GetString(value);
    }
}
