namespace Kafka.Reliable.Idempotency;

/// <summary>
/// A key taken under a lease by one attempt at a record, from the take until it is completed or released: what the lease
/// renewer, the completion and a deferred acknowledgement need, copied out of the record's context (which is reused for
/// the next record while an acknowledgement may still be pending).
/// </summary>
internal sealed class HeldKey(IdempotencyGate gate, string key, string owner, MessageContext context, long takenAt, CancellationToken abort)
{
    public const int Holding = 0;
    public const int Completing = 1;
    public const int Done = 2;

    public IdempotencyGate Gate { get; } = gate;

    public string Key { get; } = key;

    public string Owner { get; } = owner;

    public string Consumer { get; } = context.ConsumerName;

    public string Topic { get; } = context.Topic;

    public int Partition { get; } = context.Partition;

    public long Offset { get; } = context.Offset;

    /// <summary>Gets the token that signals the partition's worker was aborted (lost partition, shutdown, drain timeout).</summary>
    public CancellationToken Abort { get; } = abort;

    /// <summary>Gets or sets the acknowledgement that completes the key, with <see cref="CommitStrategy.Manual"/>; null when the key is completed when the handler returns.</summary>
    public MessageAcknowledgement? Acknowledgement { get; set; }

    /// <summary>Gets or sets a value indicating whether the handler still runs: its lease is renewed even once the worker is aborted, as long as it does.</summary>
    public volatile bool HandlerRunning = true;

    /// <summary>Gets or sets where the key is: <see cref="Holding"/>, <see cref="Completing"/> or <see cref="Done"/> (completed or released).</summary>
    public int State;

    /// <summary>1 once a lost lease was counted, so that a record is counted once.</summary>
    public int LostCounted;

    // Owned by the LeaseRenewer, under its lock.
    public long RenewedAt = takenAt;
    public bool Renewing;
    public bool Listed;
    public HeldKey? Previous;
    public HeldKey? Next;
}
