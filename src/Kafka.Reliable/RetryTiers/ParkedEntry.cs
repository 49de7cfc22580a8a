using Confluent.Kafka;

namespace Kafka.Reliable.RetryTiers;

/// <summary>Where a parked record stands in its partition's <see cref="ParkingLot"/>.</summary>
internal enum ParkedState
{
    /// <summary>Its copy is being written to the retry topic, or was written and is not read back yet: it holds its key, nothing runs it.</summary>
    Incoming,

    /// <summary>Read from the retry topic: it runs when it is the first of its key and, in a tier, when it is due.</summary>
    Waiting,

    /// <summary>Being handled.</summary>
    Running,
}

/// <summary>
/// One record of a partition parked in its retry topic: its place (the original offset, which orders a key's records) and
/// the copy it is read from now. Guarded by its <see cref="ParkingLot"/>'s lock.
/// </summary>
internal sealed class ParkedEntry(long originalOffset, ulong chain)
{
    public long OriginalOffset { get; } = originalOffset;

    /// <summary>Gets the chain the entry waits in: its key's, or its own (a record without a key, or unordered tiers).</summary>
    public ulong Chain { get; } = chain;

    public ParkedState State { get; set; } = ParkedState.Incoming;

    /// <summary>Gets or sets the entry's tier: 0 while it only waits behind its key, from 1 once it failed.</summary>
    public int Tier { get; set; }

    /// <summary>Gets or sets when the entry is tried again (Unix milliseconds); 0 for tier 0.</summary>
    public long DueMs { get; set; }

    /// <summary>Gets or sets when the record was first parked (Unix milliseconds).</summary>
    public long ParkedAtMs { get; set; }

    /// <summary>Gets or sets the offset of the copy in the retry topic the entry is read from; -1 before it is read.</summary>
    public long RetryOffset { get; set; } = -1;

    /// <summary>Gets or sets the original record, rebuilt from its copy: what the pipeline runs.</summary>
    public ConsumeResult<byte[]?, byte[]?>? Record { get; set; }

    /// <summary>Gets or sets the handler calls made for the record so far, over every tier.</summary>
    public int Attempts { get; set; }

    /// <summary>Gets or sets the <see cref="RetryTierHeaders.History"/> values of the copy, oldest first.</summary>
    public List<string> History { get; set; } = [];

    /// <summary>Gets or sets the trace context of the span that parked the record.</summary>
    public string? ParkedBy { get; set; }

    /// <summary>Gets or sets a copy read while the entry was running (a newer tier written before its move was confirmed): it takes over when the run ends.</summary>
    public ParkedCopy? Successor { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether the partition's worker has passed the record in this assignment: a record read
    /// from the retry topic at or after where the partition starts is read there again, and runs only once the worker has
    /// seen it (and left it parked), so that it is neither handled twice nor overtaken by an earlier record of its key.
    /// </summary>
    public bool Confirmed { get; set; }

    /// <summary>Gets or sets when the entry started running (Unix milliseconds); 0 while it does not run.</summary>
    public long RunningSinceMs { get; set; }

    /// <summary>Gets or sets a value indicating whether an operator asked to try the record now (<c>retry-now</c>), without waiting for its delay.</summary>
    public bool RetryNow { get; set; }

    /// <summary>Gets or sets a value indicating whether the operator released the key (<c>kafka-reliable retry release</c>): the entry is dead-lettered when it runs next.</summary>
    public bool Released { get; set; }

    /// <summary>Takes the copy's content.</summary>
    public void Adopt(ParkedCopy copy)
    {
        Tier = copy.Tier;
        DueMs = copy.DueMs;
        ParkedAtMs = copy.ParkedAtMs;
        RetryOffset = copy.RetryOffset;
        Record = copy.Record;
        Attempts = copy.Attempts;
        History = copy.History;
        ParkedBy = copy.ParkedBy;
        State = ParkedState.Waiting;
    }
}

/// <summary>A record read from a retry topic: the original record and what the copy says about it.</summary>
internal sealed class ParkedCopy
{
    public required long RetryOffset { get; init; }

    public required long OriginalOffset { get; init; }

    public required int Tier { get; init; }

    public required long DueMs { get; init; }

    public required long ParkedAtMs { get; init; }

    public required int Attempts { get; init; }

    public required List<string> History { get; init; }

    public string? ParkedBy { get; init; }

    public required ConsumeResult<byte[]?, byte[]?> Record { get; init; }
}
