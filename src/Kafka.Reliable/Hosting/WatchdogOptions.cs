namespace Kafka.Reliable;

/// <summary>
/// The stuck-consumer watchdog: when a partition has records pending and finishes none for <see cref="StuckAfter"/> (a
/// handler that hangs, a partition worker that died), the consumer can restart itself instead of waiting for an
/// orchestrator to restart the process. Off by default: the health check reports a stuck consumer either way.
/// </summary>
/// <remarks>
/// A restart is the graceful stop followed by a new start: fetching stops, records being handled get up to
/// <see cref="ReliableConsumerOptions.ShutdownTimeout"/> to finish and are then cancelled through their handler's
/// <see cref="CancellationToken"/>, what is done is committed, the consumer leaves its group, and a new consumer joins it
/// and reads again from the committed offsets, so the stuck record is handled again. Nothing is skipped or committed
/// unfinished. A handler that ignores its cancellation token may still be running when its record is handled again: use
/// restarts with an idempotency store, or with handlers that honour cancellation.
/// </remarks>
public sealed class WatchdogOptions
{
    /// <summary>Gets or sets a value indicating whether the consumer restarts itself when a partition is stuck for <see cref="StuckAfter"/>.</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool RestartWhenStuck { get; set; }

    /// <summary>
    /// Gets or sets how long a partition with records pending may go without finishing one before the watchdog restarts the
    /// consumer. It must be longer than the slowest handler (with its retries), and it is also the shortest time between two
    /// restarts.
    /// </summary>
    /// <value>The default value is 10 minutes. Allowed: 1 second to 1 day.</value>
    public TimeSpan StuckAfter { get; set; } = ReliableConsumerConstants.DefaultStuckAfter;
}
