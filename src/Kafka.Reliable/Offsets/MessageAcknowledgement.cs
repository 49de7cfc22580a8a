using Kafka.Reliable.Idempotency;

namespace Kafka.Reliable;

/// <summary>
/// Acknowledges one record with <see cref="CommitStrategy.Manual"/>, now or later, from any thread. Obtained from
/// <see cref="MessageContext.DeferAcknowledgement"/>. A handle of a partition that was revoked since is ignored: the
/// partition's new owner handles the record again.
/// </summary>
/// <remarks>
/// With an idempotency store that takes keys under a lease (<c>UseInMemoryIdempotency</c>, <c>UseSqliteIdempotency</c>,
/// <c>UsePostgreSqlIdempotency</c> or <c>UseRedisIdempotency</c> without transactional mode), acknowledging is what completes
/// the message's key, not the handler's return: a record deferred and never acknowledged is handled again when it is
/// delivered again, instead of being skipped as a duplicate. Until then the key's lease is renewed.
/// </remarks>
public sealed class MessageAcknowledgement
{
    private readonly Action<long> _complete;
    private readonly long _sequence;
    private int _acknowledged;

    // The idempotency key the acknowledgement completes before the record counts as done; null without one.
    private HeldKey? _held;

    internal MessageAcknowledgement(Action<long> complete, long sequence, string topic, int partition, long offset)
    {
        _complete = complete;
        _sequence = sequence;
        Topic = topic;
        Partition = partition;
        Offset = offset;
    }

    /// <summary>Gets the record's topic.</summary>
    public string Topic { get; }

    /// <summary>Gets the record's partition.</summary>
    public int Partition { get; }

    /// <summary>Gets the record's offset.</summary>
    public long Offset { get; }

    /// <summary>Gets a value indicating whether the record was acknowledged.</summary>
    public bool IsAcknowledged => Volatile.Read(ref _acknowledged) != 0;

    /// <summary>
    /// Marks the record done; acknowledging twice is harmless. With a lease idempotency store, the message's key is completed
    /// first, in the background (the call returns at once): the record is done once the key is, and a failing store is tried
    /// again until it is, or until the partition is given up (then the record stays undone and is read again).
    /// </summary>
    public void Acknowledge()
    {
        if (Interlocked.Exchange(ref _acknowledged, 1) == 0)
        {
            if (Interlocked.Exchange(ref _held, null) is { } held)
            {
                held.Gate.CompleteAcknowledged(held, _complete, _sequence);
            }
            else
            {
                _complete(_sequence);
            }
        }
    }

    /// <summary>Makes the acknowledgement complete <paramref name="held"/> before the record counts as done.</summary>
    /// <returns><see langword="false"/> when the record was acknowledged already, without the key: the caller completes it.</returns>
    internal bool TryAttach(HeldKey held)
    {
        Interlocked.Exchange(ref _held, held);
        if (Volatile.Read(ref _acknowledged) == 0)
        {
            return true;
        }

        // Acknowledged meanwhile: either Acknowledge took the key (it completes it) or it did not, and the caller does.
        return Interlocked.CompareExchange(ref _held, null, held) != held;
    }

    /// <summary>Takes the key back after the handler failed, unless an acknowledgement took it already.</summary>
    /// <returns><see langword="true"/> when the key was taken back: the caller releases it.</returns>
    internal bool TryDetach(HeldKey held) => Interlocked.CompareExchange(ref _held, null, held) == held;
}
