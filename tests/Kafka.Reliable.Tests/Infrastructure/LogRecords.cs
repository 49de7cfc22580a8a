using Microsoft.Extensions.Logging.Testing;

namespace Kafka.Reliable.Tests.Infrastructure;

/// <summary>Reads what a <see cref="FakeLogCollector"/> captured by the library's event ids.</summary>
public static class LogRecords
{
    /// <summary>The number of records with the event id.</summary>
    public static int CountOf(this FakeLogCollector logs, int eventId) => logs.GetSnapshot().Count(r => r.Id.Id == eventId);

    /// <summary>The last records, one a line, for a failure message.</summary>
    public static string Dump(this FakeLogCollector logs, int last = 30) =>
        string.Join(Environment.NewLine, logs.GetSnapshot().TakeLast(last).Select(r => $"{r.Timestamp:HH:mm:ss.fff} [{r.Level} {r.Id.Id}] {r.Message}"));
}
