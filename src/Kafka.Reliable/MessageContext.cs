using Confluent.Kafka;
using Kafka.Reliable.Idempotency;

namespace Kafka.Reliable;

/// <summary>
/// Describes the record being processed: where it came from and which attempt this is.
/// </summary>
/// <remarks>
/// The library reuses context instances between records to keep the hot path free of allocations: a context is valid only
/// while the call it was passed to runs. Copy what you need to keep.
/// </remarks>
public sealed class MessageContext
{
    private Headers? _headers;
    private Offsets.PartitionOffsetTracker? _tracker;
    private long _sequence;

    internal MessageContext(string consumerName, string groupId)
    {
        ConsumerName = consumerName;
        GroupId = groupId;
    }

    /// <summary>Gets the name of the consumer the record was received by.</summary>
    public string ConsumerName { get; }

    /// <summary>Gets the consumer group.</summary>
    public string GroupId { get; }

    /// <summary>Gets the topic of the record.</summary>
    public string Topic { get; private set; } = string.Empty;

    /// <summary>Gets the partition of the record.</summary>
    public int Partition { get; private set; }

    /// <summary>Gets the offset of the record within its partition.</summary>
    public long Offset { get; private set; }

    /// <summary>Gets the record's key bytes; empty when the record has no key (see <see cref="HasKey"/>).</summary>
    public ReadOnlyMemory<byte> Key { get; private set; }

    /// <summary>Gets a value indicating whether the record has a key.</summary>
    public bool HasKey { get; private set; }

    /// <summary>Gets the record's headers.</summary>
    public Headers Headers => _headers ??= [];

    /// <summary>Gets the record's timestamp.</summary>
    public DateTimeOffset Timestamp { get; private set; }

    /// <summary>Gets the attempt number, starting at 1 and growing with each retry of the same record.</summary>
    public int Attempt { get; internal set; }

    /// <summary>
    /// Gets the retry tier the record is handled in (<see cref="RetryTierOptions"/>): 0 when it is handled where it was
    /// consumed, or parked only behind an earlier record of its key; from 1 when it failed before and is tried again from
    /// its retry topic. <see cref="Topic"/>, <see cref="Partition"/> and <see cref="Offset"/> are always the original record's.
    /// </summary>
    public int RetryTier { get; internal set; }

    /// <summary>
    /// Gets the database transaction the handler writes through, with a transactional idempotency store
    /// (<c>UsePostgreSqlIdempotency</c> in transactional mode): the handler's writes commit with the idempotency record, or not
    /// at all. <see langword="null"/> otherwise. The store's package has typed accessors.
    /// </summary>
    public IdempotencyTransaction? Transaction { get; internal set; }

    /// <summary>
    /// Gets the offset to read the record's partition again from if this message's effects are stored now: the lowest offset
    /// of the partition not known to be done, counting this message as done. Stores that keep a partition's offset with the
    /// handler's effects (transactional mode) store this value. It never passes a record that is still being handled, which
    /// <c>Offset + 1</c> would under <see cref="DispatchMode.ByKey"/> or <see cref="DispatchMode.Unordered"/> dispatch (a later
    /// record can finish before an earlier one). Records done beyond it are read again after a restart and skipped as
    /// duplicates by their idempotency keys.
    /// </summary>
    /// <remarks>Read it when the effects are stored (it moves as the partition's other records finish).</remarks>
    public long SafeNextOffset => _tracker is { } tracker
        ? (_sequence < 0 ? tracker.LowestUnfinishedOffset() : tracker.SafeNextOffset(_sequence, Offset, CommittedWith))
        : Offset + 1;

    /// <summary>Gets or sets the sequences of the records committed in one transaction with this one, its last (a batch); empty otherwise.</summary>
    internal ArraySegment<long> CommittedWith { get; set; }

    /// <summary>Gets the record's sequence in its partition's tracker.</summary>
    internal long Sequence => _sequence;

    /// <summary>Gets the tracker of the record's partition (for this assignment); null outside a consumer.</summary>
    internal Offsets.PartitionOffsetTracker? Tracker => _tracker;

    internal ConsumeResult<byte[]?, byte[]?>? Record { get; private set; }

    /// <summary>Gets or sets the record's acknowledgement, with <see cref="CommitStrategy.Manual"/>.</summary>
    internal MessageAcknowledgement? PendingAcknowledgement { get; set; }

    /// <summary>
    /// Gets or sets the assignment the record was read under: a number unique within the consumer's process, new each time a
    /// partition is assigned. It tells two runs of one record apart when its partition came back to the same member.
    /// </summary>
    internal long Assignment { get; set; }

    /// <summary>Gets or sets the failures of a parked record in earlier tiers (<see cref="RetryTierHeaders.History"/>), written to its dead letter; null otherwise.</summary>
    internal IReadOnlyList<string>? RetryHistory { get; set; }

    /// <summary>Gets or sets the size of the batch the record failed in, when it is handled alone to isolate that failure; 0 otherwise.</summary>
    internal int FailedInBatch { get; set; }

    /// <summary>
    /// Acknowledges the record, with <see cref="CommitStrategy.Manual"/>: it is done, and its offset may be committed once the
    /// records before it are done too. Call it when the record's effects are durable.
    /// </summary>
    /// <exception cref="InvalidOperationException">The consumer does not use <see cref="CommitStrategy.Manual"/>.</exception>
    public void Acknowledge() => DeferAcknowledgement().Acknowledge();

    /// <summary>
    /// Gets a handle that acknowledges the record later, after the handler returned (for example when the batch the record
    /// was added to is written), with <see cref="CommitStrategy.Manual"/>. Until then the record holds back its partition's watermark.
    /// </summary>
    /// <returns>The handle; it stays valid after the call, and acknowledging twice is harmless.</returns>
    /// <exception cref="InvalidOperationException">The consumer does not use <see cref="CommitStrategy.Manual"/>.</exception>
    public MessageAcknowledgement DeferAcknowledgement() =>
        PendingAcknowledgement ?? throw new InvalidOperationException("Records are acknowledged only with Commit:Strategy = Manual; with the other strategies a record is done when the handler returns.");

    /// <summary>
    /// Tells the context where its record sits in its partition's tracker, for <see cref="SafeNextOffset"/>; a negative
    /// sequence for a record that is not in it (a parked record, handled from its retry tier): its partition's oldest
    /// unfinished offset is then what may be stored.
    /// </summary>
    internal void Track(Offsets.PartitionOffsetTracker tracker, long sequence)
    {
        _tracker = tracker;
        _sequence = sequence;
    }

    internal void Initialize(ConsumeResult<byte[]?, byte[]?> record)
    {
        Record = record;
        Topic = record.Topic;
        Partition = record.Partition.Value;
        Offset = record.Offset.Value;
        var key = record.Message.Key;
        HasKey = key is not null;
        Key = key;
        _headers = record.Message.Headers;
        Timestamp = record.Message.Timestamp.Type == TimestampType.NotAvailable
            ? default
            : new DateTimeOffset(record.Message.Timestamp.UnixTimestampMs * TimeSpan.TicksPerMillisecond + DateTime.UnixEpoch.Ticks, TimeSpan.Zero);
        Attempt = 1;
    }

    internal void Reset()
    {
        Record = null;
        Topic = string.Empty;
        Key = default;
        HasKey = false;
        _headers = null;
        Attempt = 0;
        Transaction = null;
        PendingAcknowledgement = null;
        FailedInBatch = 0;
        RetryTier = 0;
        RetryHistory = null;
        CommittedWith = default;
        _tracker = null;
    }
}
