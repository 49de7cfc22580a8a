using System.Threading.RateLimiting;

namespace Kafka.Reliable.DeadLetter;

/// <summary>The replay's rate limit (<see cref="DeadLetterReplayOptions.MaxRecordsPerSecond"/>) as a token bucket.</summary>
internal static class DeadLetterReplayRate
{
    /// <summary>The shortest replenishment step aimed at: a timer does not tick much faster reliably.</summary>
    private const int StepsPerSecond = 20;

    /// <summary>
    /// A token bucket that lets through at most <paramref name="recordsPerSecond"/> records per second: it holds one step's
    /// tokens (about 1/20 s worth, at least one), so no burst exceeds a step, and refills them every step, rounded so that the
    /// rate is never above the one asked for.
    /// </summary>
    public static TokenBucketRateLimiterOptions Options(int recordsPerSecond)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(recordsPerSecond, 1);
        var tokens = Math.Max(1, recordsPerSecond / StepsPerSecond);
        return new TokenBucketRateLimiterOptions
        {
            TokenLimit = tokens,
            TokensPerPeriod = tokens,
            ReplenishmentPeriod = TimeSpan.FromTicks(((TimeSpan.TicksPerSecond * tokens) + recordsPerSecond - 1) / recordsPerSecond),

            // One replay thread asks for one permit at a time.
            QueueLimit = 1,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            AutoReplenishment = true,
        };
    }

    public static RateLimiter Create(int recordsPerSecond) => new TokenBucketRateLimiter(Options(recordsPerSecond));
}
