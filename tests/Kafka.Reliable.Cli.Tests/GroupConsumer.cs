using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Cli.Tests;

/// <summary>A host running one reliable consumer of a topic in a group, keeping where each handled record was.</summary>
internal sealed class GroupConsumer : IAsyncDisposable
{
    private readonly IHost _host;

    private readonly LogLines _logs;

    private GroupConsumer(IHost host, Seen seen, LogLines logs)
    {
        _host = host;
        _logs = logs;
        Handled = seen.Records;
    }

    /// <summary>Gets the consumer's last log lines, for failure messages.</summary>
    public string RecentLogs => string.Join(Environment.NewLine, _logs.Lines.TakeLast(20));

    /// <summary>Gets the handled records as (partition, offset), in completion order.</summary>
    public ConcurrentQueue<(int Partition, long Offset)> Handled { get; }

    public static async Task<GroupConsumer> StartAsync(string bootstrapServers, string topic, string group)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        var seen = new Seen();
        var logs = new LogLines();
        builder.Logging.ClearProviders().AddProvider(logs).SetMinimumLevel(LogLevel.Debug);
        builder.Services.AddSingleton(seen);
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
        return new GroupConsumer(host, seen, logs);
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync(CancellationToken.None);
        _host.Dispose();
    }

    private sealed class Seen
    {
        public ConcurrentQueue<(int Partition, long Offset)> Records { get; } = new();
    }

    private sealed class LogLines : ILoggerProvider, ILogger
    {
        public ConcurrentQueue<string> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Lines.Enqueue($"[{logLevel} {eventId.Id}] {formatter(state, exception)}");

        public void Dispose()
        {
        }
    }

    private sealed class RecordingHandler(Seen seen) : IMessageHandler<string>
    {
        public ValueTask HandleAsync(string message, MessageContext context, CancellationToken cancellationToken)
        {
            seen.Records.Enqueue((context.Partition, context.Offset));
            return ValueTask.CompletedTask;
        }
    }

    private sealed class Utf8Deserializer : IMessageDeserializer<string>
    {
        public string Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) => Encoding.UTF8.GetString(value);
    }
}

/// <summary>Waits on conditions with a timeout, and says what was expected when it gives up.</summary>
internal static class Eventually
{
    public static async Task TrueAsync(Func<bool> condition, string expectation, Func<string>? state = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out after 60 s waiting until {expectation}.{(state is null ? string.Empty : " State: " + state())}");
            }

            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }
}
