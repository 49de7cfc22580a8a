namespace Kafka.Reliable;

/// <summary>Capped exponential backoff, without jitter: how long a held record waits (dead-lettering off, an idempotency store down). Dead-letter writes use Polly with the retry options instead (<c>DeadLetterPublisher.WriteUntilAcknowledgedAsync</c>).</summary>
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
