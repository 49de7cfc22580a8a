using Kafka.Reliable.Idempotency;
using Polly.CircuitBreaker;

namespace Kafka.Reliable.Consuming;

/// <summary>
/// How long a record (or a batch) waits before its next attempt when it is not at fault: another consumer holds its key, or
/// the circuit is open. Shared by <see cref="RecordExecution"/> and <see cref="BatchExecution"/>.
/// </summary>
internal static class NotAtFaultWaits
{
    /// <summary>The shortest wait for a key another consumer holds: its lease may be about to end, but not sooner than this.</summary>
    public static readonly TimeSpan MinHeldWait = TimeSpan.FromMilliseconds(100);

    /// <summary>Until the other consumer's lease on the key ends, within <see cref="MinHeldWait"/> and the retry's MaxDelay.</summary>
    public static TimeSpan ForHeldKey(IdempotencyKeyHeldException held, ReliableConsumerOptions options) =>
        TimeSpan.FromTicks(Math.Clamp(held.RetryAfter.Ticks, MinHeldWait.Ticks, Math.Max(MinHeldWait.Ticks, options.Retry.MaxDelay.Ticks)));

    /// <summary>
    /// Until the circuit's break ends (Polly's <see cref="BrokenCircuitException.RetryAfter"/>), or one break when that is not
    /// ahead. Polly computes RetryAfter as the end of the break minus now; once the break is over and the half-open trial is
    /// still running (a trial slower than the break), that is negative, and a negative delay made the worker fail (torture
    /// seed 1820962582). The trial decides then: the circuit closes, or opens for another break.
    /// </summary>
    public static TimeSpan ForCircuit(BrokenCircuitException broken, ReliableConsumerOptions options) =>
        broken.RetryAfter is { } after && after > TimeSpan.Zero ? after : options.CircuitBreaker.BreakDuration;
}
