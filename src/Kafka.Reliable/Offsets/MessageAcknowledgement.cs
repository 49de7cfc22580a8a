namespace Kafka.Reliable;

/// <summary>
/// Acknowledges one record with <see cref="CommitStrategy.Manual"/>, now or later, from any thread. Obtained from
/// <see cref="MessageContext.DeferAcknowledgement"/>. A handle of a partition that was revoked since is ignored: the
/// partition's new owner handles the record again.
/// </summary>
public sealed class MessageAcknowledgement
{
    private readonly Action<long> _complete;
    private readonly long _sequence;
    private int _acknowledged;

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

    /// <summary>Marks the record done; acknowledging twice is harmless.</summary>
    public void Acknowledge()
    {
        if (Interlocked.Exchange(ref _acknowledged, 1) == 0)
        {
            _complete(_sequence);
        }
    }
}
