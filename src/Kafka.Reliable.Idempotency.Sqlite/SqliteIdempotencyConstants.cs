namespace Kafka.Reliable.Idempotency.Sqlite;

/// <summary>Defaults and limits of the SQLite idempotency store.</summary>
internal static class SqliteIdempotencyConstants
{
    /// <summary>The default <see cref="SqliteIdempotencyOptions.LockWaitLogInterval"/>.</summary>
    public static readonly TimeSpan DefaultLockWaitLogInterval = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long one <c>BEGIN IMMEDIATE</c> lets Microsoft.Data.Sqlite's own busy loop wait (in seconds, its unit; it sleeps the
    /// thread meanwhile) before the store waits asynchronously and tries again.
    /// </summary>
    public const int BeginBusyTimeoutSeconds = 1;

    /// <summary>The first pause before trying <c>BEGIN IMMEDIATE</c> again while another connection holds the write lock.</summary>
    public static readonly TimeSpan MinBusyDelay = TimeSpan.FromMilliseconds(50);

    /// <summary>The longest pause between two tries of <c>BEGIN IMMEDIATE</c>.</summary>
    public static readonly TimeSpan MaxBusyDelay = TimeSpan.FromSeconds(1);

    /// <summary>SQLite's SQLITE_BUSY: another connection holds the lock.</summary>
    public const int SqliteBusy = 5;

    /// <summary>SQLite's SQLITE_LOCKED: a conflict within a shared cache.</summary>
    public const int SqliteLocked = 6;
}
