namespace Kafka.Reliable.Consuming;

/// <summary>
/// The records of one partition in a batch, in offset order: a run of the partition's buffered records, or, when a batch
/// across partitions was stopped by another of its partitions, the records of such a run that were not done yet. One per
/// partition worker, reused from batch to batch; a partition has at most one slice in a batch at a time, which keeps its
/// records in offset order.
/// </summary>
internal sealed class BatchSlice(PartitionWorker worker)
{
    private long[] _sequences = new long[16];
    private bool[] _done = new bool[16];
    private bool _contiguous;

    /// <summary>Gets the partition's worker.</summary>
    public PartitionWorker Worker { get; } = worker;

    /// <summary>Gets the number of records in the slice.</summary>
    public int Count { get; private set; }

    /// <summary>Gets the sequence after the last record ever added: where the partition's next slice starts.</summary>
    public long End { get; private set; }

    /// <summary>Gets or sets what the worker waits on while the slice is in the consumer's batches across partitions.</summary>
    public TaskCompletionSource<bool>? Result { get; set; }

    /// <summary>Gets or sets the collector the slice is offered to, for batches across partitions.</summary>
    public BatchCollector? Collector { get; set; }

    /// <summary>Gets or sets the worker's stop while the slice is offered to the consumer's batches across partitions.</summary>
    public CancellationToken Stop { get; set; }

    /// <summary>Gets or sets the worker's abort while the slice is offered to the consumer's batches across partitions.</summary>
    public CancellationToken Abort { get; set; }

    /// <summary>Gets the sequence of the record at a position of the slice.</summary>
    public long SequenceAt(int position) => _sequences[position];

    /// <summary>Empties the slice; the next records it takes start at <paramref name="first"/>.</summary>
    public void Reset(long first)
    {
        Count = 0;
        End = first;
        _contiguous = true;
    }

    /// <summary>
    /// Adds the partition's published records after <see cref="End"/>, in offset order, while the batch stays within
    /// <paramref name="maxCount"/> records and <paramref name="maxBytes"/> bytes (a batch's first record is taken however large).
    /// A slice of records handed back undone takes no more records: it is taken whole, or not at all when the batch is
    /// not empty and it does not fit.
    /// </summary>
    /// <param name="batchCount">The records in the batch so far; the records taken are added.</param>
    /// <param name="batchBytes">The bytes in the batch so far; the bytes taken are added.</param>
    /// <param name="maxCount">The most records in a batch.</param>
    /// <param name="maxBytes">The most bytes in a batch.</param>
    /// <returns><see langword="true"/> when the slice has records for the batch.</returns>
    public bool Extend(ref int batchCount, ref long batchBytes, int maxCount, long maxBytes)
    {
        if (!_contiguous)
        {
            if (batchCount > 0 && batchCount + Count > maxCount)
            {
                return false;
            }

            batchCount += Count;
            for (var i = 0; i < Count; i++)
            {
                batchBytes += Worker.SizeAt(_sequences[i]);
            }

            return Count > 0;
        }

        var published = Worker.Tracker.Published;
        while (End < published && batchCount < maxCount)
        {
            var size = Worker.SizeAt(End);
            if (batchCount > 0 && batchBytes + size > maxBytes)
            {
                break;
            }

            if (Count == _sequences.Length)
            {
                Array.Resize(ref _sequences, Count * 2);
                Array.Resize(ref _done, Count * 2);
            }

            _sequences[Count] = End;
            _done[Count] = false;
            Count++;
            End++;
            batchCount++;
            batchBytes += size;
        }

        return Count > 0;
    }

    /// <summary>Completes the record at a position of the slice.</summary>
    public void Complete(int position)
    {
        _done[position] = true;
        Worker.CompleteRecord(_sequences[position]);
    }

    /// <summary>Keeps only the records not done yet (a batch was stopped before they were) and returns how many there are.</summary>
    public int KeepUndone()
    {
        var kept = 0;
        for (var i = 0; i < Count; i++)
        {
            if (!_done[i])
            {
                _sequences[kept] = _sequences[i];
                _done[kept] = false;
                kept++;
            }
        }

        Count = kept;
        _contiguous = false;
        return kept;
    }
}
