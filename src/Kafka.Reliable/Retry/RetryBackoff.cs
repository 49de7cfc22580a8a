namespace Kafka.Reliable;

/// <summary>Capped exponential backoff, without jitter: used between attempts at writing to the dead-letter topic.</summary>
internal static class RetryBackoff
{
    /// <summary>Gets the delay after the failed attempt <paramref name="attempt"/> (1-based): Delay, 2 x Delay, 4 x Delay, ... capped at MaxDelay.</summary>
    public static TimeSpan Delay(RetryOptions options, int attempt)
    {
        var exponent = Math.Clamp(attempt - 1, 0, 30);
        var ticks = options.Delay.Ticks * (double)(1L << exponent);
        return ticks >= options.MaxDelay.Ticks ? options.MaxDelay : TimeSpan.FromTicks((long)ticks);
    }
}
