namespace Kafka.Reliable.Offsets;

/// <summary>
/// Tracks the records of one partition from the moment they are buffered until they are done, and yields the partition's
/// watermark: the lowest offset not yet done, which is the only offset that may be committed (G1).
/// </summary>
/// <remarks>
/// A fixed ring of slots, one per buffered record. Threading: the poll thread alone calls <see cref="TryAdd"/> and
/// <see cref="Advance"/>; any thread may call <see cref="MarkDone"/> for a sequence it was handed. No locks: slot states are
/// published with volatile writes, and the ring never grows, so a slot is reused only after the poll thread released it.
/// Completions may arrive in any order; the watermark moves only over a contiguous run of done records. Each record costs
/// O(1) amortized and memory is bounded by the capacity.
/// </remarks>
internal sealed class PartitionOffsetTracker
{
    private const int Free = 0;
    private const int Pending = 1;
    private const int Done = 2;

    private readonly long[] _offsets;
    private readonly int[] _states;
    private readonly int _mask;
    private long _head;
    private long _tail;
    private long _releasedWatermark = -1;

    public PartitionOffsetTracker(int minimumCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(minimumCapacity, 1);
        var capacity = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)minimumCapacity);
        _offsets = new long[capacity];
        _states = new int[capacity];
        _mask = capacity - 1;
    }

    /// <summary>Gets the number of slots.</summary>
    public int Capacity => _states.Length;

    /// <summary>Gets the number of records added and not yet released (poll thread).</summary>
    public int Count => (int)(_tail - _head);

    /// <summary>Gets the number of records added and not yet released, read from any thread (approximate while it changes).</summary>
    public int PendingCount => (int)(Volatile.Read(ref _tail) - Volatile.Read(ref _head));

    /// <summary>Gets the sequence of the oldest record not yet released, read from any thread (approximate while it changes).</summary>
    public long HeadSequence => Volatile.Read(ref _head);

    /// <summary>Gets a value indicating whether no slot is free (poll thread).</summary>
    public bool IsFull => _tail - _head == _states.Length;

    /// <summary>Gets the sequence the next added record will get (poll thread).</summary>
    public long NextSequence => _tail;

    /// <summary>Gets how many records were ever added; workers read it to learn which sequences are published.</summary>
    public long Published => Volatile.Read(ref _tail);

    /// <summary>
    /// Gets the watermark: the offset to commit, which is the lowest offset not yet done, or one past the last done offset
    /// when every added record is done; -1 until a record has been released (poll thread).
    /// </summary>
    public long Watermark => _releasedWatermark < 0 ? -1 : _head < _tail ? _offsets[_head & _mask] : _releasedWatermark;

    /// <summary>Maps a sequence to its slot index, for callers that keep a payload array of <see cref="Capacity"/> entries.</summary>
    public int SlotOf(long sequence) => (int)(sequence & _mask);

    /// <summary>
    /// Starts an empty tracker at a known offset (poll thread): the watermark is <paramref name="offset"/> until records are
    /// added, so that a partition whose earlier records are known to be done commits it even if nothing is fetched.
    /// </summary>
    public void StartAt(long offset)
    {
        if (_head == _tail && _releasedWatermark < 0)
        {
            _releasedWatermark = offset;
        }
    }

    /// <summary>Adds a record (poll thread). Offsets must be added in increasing order.</summary>
    /// <returns><see langword="false"/> when the ring is full.</returns>
    public bool TryAdd(long offset, out long sequence)
    {
        if (IsFull)
        {
            sequence = -1;
            return false;
        }

        sequence = _tail;
        var slot = (int)(sequence & _mask);
        _offsets[slot] = offset;
        _states[slot] = Pending;
        Volatile.Write(ref _tail, sequence + 1);
        return true;
    }

    /// <summary>Marks a record done (any thread). Marking a sequence twice is harmless.</summary>
    public void MarkDone(long sequence) => Volatile.Write(ref _states[(int)(sequence & _mask)], Done);

    /// <summary>
    /// Gets the offset the partition may be read again from once the record at <paramref name="sequence"/> is done (any thread,
    /// while that record is not yet marked done): the offset of the oldest other record not yet done, else one past
    /// <paramref name="offset"/>. Never above the true watermark, so that a value stored from it never passes a record still
    /// being handled; equal to it unless a record finishes during the call.
    /// </summary>
    /// <param name="sequence">The sequence of a record that is not marked done yet.</param>
    /// <param name="offset">That record's offset.</param>
    public long SafeNextOffset(long sequence, long offset) => SafeNextOffset(sequence, offset, default);

    /// <summary>
    /// As <see cref="SafeNextOffset(long, long)"/>, for a record committed together with others (a batch's transaction): the
    /// records of <paramref name="committedWith"/> count as done, since they are done exactly when this one is.
    /// </summary>
    /// <param name="sequence">The sequence of the last record committed, not yet marked done.</param>
    /// <param name="offset">That record's offset.</param>
    /// <param name="committedWith">The sequences of the other records committed with it, ascending, all below <paramref name="sequence"/>.</param>
    public long SafeNextOffset(long sequence, long offset, ReadOnlySpan<long> committedWith) =>
        FirstPendingOffset(sequence, committedWith) is var pending and >= 0 ? pending : offset + 1;

    /// <summary>
    /// Gets the offset of the partition's oldest record not yet done, or, when every buffered record is done, the last
    /// released watermark (-1 before one); any thread. Never above the true watermark: what a record handled outside the
    /// partition's order (a parked record, run from its retry tier) may store as the partition's next offset.
    /// </summary>
    public long LowestUnfinishedOffset() =>
        FirstPendingOffset(Volatile.Read(ref _tail), default) is var pending and >= 0 ? pending : Volatile.Read(ref _releasedWatermark);

    /// <summary>The offset of the first record before <paramref name="until"/> not done (nor in <paramref name="committedWith"/>); -1 when there is none (any thread).</summary>
    private long FirstPendingOffset(long until, ReadOnlySpan<long> committedWith)
    {
        // Scan from the head over the records marked done. The poll thread may release (and then reuse) slots meanwhile: a
        // slot is read before the head is read again, and if the head moved past it, it was released (done) and is skipped
        // without trusting what was read. The head is written after a slot is freed and before it is reused.
        var next = Volatile.Read(ref _head);
        while (next < until)
        {
            var slot = (int)(next & _mask);
            var state = Volatile.Read(ref _states[slot]);
            var slotOffset = Volatile.Read(ref _offsets[slot]);
            var head = Volatile.Read(ref _head);
            if (head > next)
            {
                next = head;
                continue;
            }

            if (state != Done && committedWith.BinarySearch(next) < 0)
            {
                // Pending, or freed a moment ago (then done, and its offset is still below the watermark): never too high.
                return slotOffset;
            }

            next++;
        }

        return -1;
    }

    /// <summary>Releases the contiguous run of done records at the head (poll thread).</summary>
    /// <returns>The number of records released; the watermark moved when it is above 0.</returns>
    public int Advance()
    {
        var released = 0;
        while (_head < _tail)
        {
            var slot = (int)(_head & _mask);
            if (Volatile.Read(ref _states[slot]) != Done)
            {
                break;
            }

            _releasedWatermark = _offsets[slot] + 1;
            _states[slot] = Free;
            Volatile.Write(ref _head, _head + 1);
            released++;
        }

        return released;
    }
}
