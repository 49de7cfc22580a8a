using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Idempotency.Sqlite;

/// <summary>
/// The SQLite store's log messages, source-generated. Event ids continue the core's 2xx records group (213-215 are the
/// idempotency store's there): 220-222 a record waiting for the database's write lock, 225-227 a batch waiting for it
/// (223-224 are the core's).
/// </summary>
internal static partial class Log
{
    [LoggerMessage(220, LogLevel.Information, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} has waited {Waited} for the SQLite write lock of {Database}, held by another message's transaction in this process (transactional mode runs one transaction at a time per database file); waiting is not a failure, it goes on")]
    public static partial void WaitingForWriteLock(ILogger logger, string consumer, string topic, int partition, long offset, TimeSpan waited, string database);

    [LoggerMessage(221, LogLevel.Information, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} has waited {Waited} for the SQLite write lock of {Database}, held by another connection or process; waiting is not a failure, BEGIN IMMEDIATE is tried again")]
    public static partial void WaitingForDatabase(ILogger logger, string consumer, string topic, int partition, long offset, TimeSpan waited, string database);

    [LoggerMessage(222, LogLevel.Debug, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} began its SQLite transaction after waiting {Waited} for the write lock")]
    public static partial void WriteLockTaken(ILogger logger, string consumer, string topic, int partition, long offset, TimeSpan waited);

    [LoggerMessage(225, LogLevel.Information, "A batch of {Count} message(s), first key {FirstKey}, has waited {Waited} for the SQLite write lock of {Database}, held by another transaction in this process (transactional mode runs one transaction at a time per database file); waiting is not a failure, it goes on")]
    public static partial void BatchWaitingForWriteLock(ILogger logger, int count, string firstKey, TimeSpan waited, string database);

    [LoggerMessage(226, LogLevel.Information, "A batch of {Count} message(s), first key {FirstKey}, has waited {Waited} for the SQLite write lock of {Database}, held by another connection or process; waiting is not a failure, BEGIN IMMEDIATE is tried again")]
    public static partial void BatchWaitingForDatabase(ILogger logger, int count, string firstKey, TimeSpan waited, string database);

    [LoggerMessage(227, LogLevel.Debug, "A batch of {Count} message(s), first key {FirstKey}, began its SQLite transaction after waiting {Waited} for the write lock")]
    public static partial void BatchWriteLockTaken(ILogger logger, int count, string firstKey, TimeSpan waited);
}
