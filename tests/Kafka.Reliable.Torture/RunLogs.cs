using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Torture;

/// <summary>What the members of a run logged (Information and above), kept to explain a violation and to tell a clean run.</summary>
public sealed class RunLogs
{
    /// <summary>
    /// Events after which a record may be handled again without an exactly-once store: a drain that timed out, a watchdog
    /// restart, a fatal error, a static id refused or commits refused as an unknown member's (the consumer joins again with a
    /// new client), a stop abandoned at its bound (maybe before its final commit), a lost partition, a refused final commit, a lost or uncompletable idempotency lease.
    /// </summary>
    public static readonly IReadOnlySet<int> RedeliveryEvents = new HashSet<int> { 103, 104, 107, 110, 111, 112, 216, 217, 218, 219, 402, 403 };

    /// <summary>
    /// librdkafka's debug contexts to keep in the run's log (the environment variable <c>TORTURE_CLIENT_DEBUG</c>, e.g.
    /// <c>cgrp,protocol</c>; members in child processes inherit it): for a failure that the library's own lines do not explain.
    /// </summary>
    public static readonly string? ClientDebug = Environment.GetEnvironmentVariable("TORTURE_CLIENT_DEBUG") is { Length: > 0 } debug ? debug : null;

    /// <summary>Gets the lowest level kept: Debug with <see cref="ClientDebug"/>, else Information.</summary>
    public static LogLevel MinimumLevel => ClientDebug is null ? LogLevel.Information : LogLevel.Debug;

    private readonly ConcurrentQueue<Entry> _entries = new();

    public IReadOnlyCollection<Entry> Entries => _entries;

    public ILoggerProvider For(int member, long incarnation) => new Provider(this, member, incarnation);

    public void Add(int member, long incarnation, LogLevel level, int eventId, string message) =>
        _entries.Enqueue(new Entry(DateTime.UtcNow, member, incarnation, level, eventId, message));

    /// <summary>The events the faults are meant to cause, counted (those that happened), e.g. <c>lost 2, waited for an earlier handler 1</c>.</summary>
    public string Summary()
    {
        (int Id, string Name)[] events =
        [
            (402, "partitions lost"), (408, "waited for an earlier assignment's handler"), (103, "drains timed out"), (108, "watchdog restarts"),
            (224, "store waits"), (409, "stored offsets unreadable"), (216, "leases lost"), (503, "client calls refused"), (209, "circuit opened"),
            (241, "moved to a retry tier"), (243, "read again while parked"), (240, "retry copies not written"),
            (110, "static id refused, joined again"), (111, "commits refused as an unknown member's, joined again"),
            (112, "stops abandoned at their bound"),
        ];
        var counts = _entries.GroupBy(e => e.EventId).ToDictionary(g => g.Key, g => g.Count());
        return string.Join(", ", events.Where(e => counts.ContainsKey(e.Id)).Select(e => string.Create(CultureInfo.InvariantCulture, $"{e.Name} {counts[e.Id]}")));
    }

    public string Tail(int count) => Lines(_entries.TakeLast(count));

    /// <summary>The last lines one member incarnation logged.</summary>
    public string TailOf(int member, long incarnation, int count) =>
        Lines(_entries.Where(e => e.Member == member && e.Incarnation == incarnation).TakeLast(count));

    private static string Lines(IEnumerable<Entry> entries) =>
        string.Join(Environment.NewLine, entries.Select(e => string.Create(CultureInfo.InvariantCulture, $"  {e.At:HH:mm:ss.fff} m{e.Member}.{e.Incarnation} [{e.Level} {e.EventId}] {e.Message}")));

    public sealed record Entry(DateTime At, int Member, long Incarnation, LogLevel Level, int EventId, string Message);

    private sealed class Provider(RunLogs owner, int member, long incarnation) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(owner, member, incarnation);

        public void Dispose()
        {
        }
    }

    private sealed class Logger(RunLogs owner, int member, long incarnation) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= MinimumLevel;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                var message = formatter(state, exception);
                owner.Add(member, incarnation, logLevel, eventId.Id, exception is null ? message : $"{message} ({exception.GetType().Name}: {exception.Message})");
            }
        }
    }
}
