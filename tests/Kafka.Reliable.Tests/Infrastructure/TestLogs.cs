using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Tests.Infrastructure;

/// <summary>Captures log events (level, event id, message) so tests can assert on what the library reported.</summary>
public sealed class TestLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<LogEntry> _entries = new();

    public IReadOnlyCollection<LogEntry> Entries => _entries;

    public int Count(int eventId) => _entries.Count(e => e.EventId == eventId);

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    public string Dump(int last = 30) =>
        string.Join(Environment.NewLine, _entries.TakeLast(last).Select(e => $"{e.At:HH:mm:ss.fff} [{e.Level} {e.EventId}] {e.Message}"));

    public sealed record LogEntry(string Category, LogLevel Level, int EventId, string Message)
    {
        public DateTime At { get; } = DateTime.UtcNow;
    }

    private sealed class Logger(TestLogs owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner._entries.Enqueue(new LogEntry(category, logLevel, eventId.Id, formatter(state, exception)));
    }
}
