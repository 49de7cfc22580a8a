namespace Kafka.Reliable.Idempotency;

/// <summary>
/// Remembers which messages were handled, so that a message delivered again (after a crash before the commit, a
/// rebalance, a replay) is not handled again (G2). Implementations must be safe to call from many partitions at once, and
/// from several consumer instances when the store is shared.
/// </summary>
/// <remarks>
/// <para>A key goes through three states: absent, <em>in progress</em> (held by one owner under a lease) and
/// <em>completed</em>. <see cref="TryBeginAsync"/> takes an absent key, or an in-progress key whose lease expired (its
/// holder crashed); <see cref="RenewAsync"/> extends the lease of a key whose handler is still running;
/// <see cref="CompleteAsync"/> marks it completed; <see cref="ReleaseAsync"/> gives it back after a failure so that a later
/// attempt may take it.</para>
/// <para>A completion or renewal by an owner that no longer holds the key (its lease expired and the key was removed, or
/// taken by another owner) changes nothing and returns <see cref="IdempotencyLeaseStatus.Lost"/>: the consumer then knows
/// that another run of the message may have happened, and says so.</para>
/// <para>Keys are opaque strings of at most 512 characters; the library prefixes them with the consumer group.</para>
/// </remarks>
public interface IIdempotencyStore
{
    /// <summary>Tries to take a key before its message is handled.</summary>
    /// <param name="key">The message's idempotency key.</param>
    /// <param name="owner">Who takes it: unique per consumer instance and attempt, so that only the holder can complete or release it.</param>
    /// <param name="lease">How long the key stays held if the holder neither completes nor releases it (because it crashed).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>Whether the message may be handled now, was handled already, or is being handled elsewhere.</returns>
    ValueTask<IdempotencyBeginResult> TryBeginAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>Marks a key taken by <paramref name="owner"/> as completed: its message will not be handled again until retention removes it.</summary>
    /// <param name="key">The key.</param>
    /// <param name="owner">The owner that took it.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>
    /// <see cref="IdempotencyLeaseStatus.Held"/> when the key is completed by <paramref name="owner"/> (now, or by an earlier
    /// call of the same owner: completing twice is harmless); <see cref="IdempotencyLeaseStatus.Lost"/> when
    /// <paramref name="owner"/> no longer holds the key, and nothing was changed.
    /// </returns>
    ValueTask<IdempotencyLeaseStatus> CompleteAsync(string key, string owner, CancellationToken cancellationToken);

    /// <summary>
    /// Extends the lease of a key taken by <paramref name="owner"/> to <paramref name="lease"/> from now, while its message is
    /// still being handled (or waits for its acknowledgement), so that no other consumer takes it meanwhile.
    /// </summary>
    /// <param name="key">The key.</param>
    /// <param name="owner">The owner that took it.</param>
    /// <param name="lease">The new lease, from now.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>
    /// <see cref="IdempotencyLeaseStatus.Held"/> when the lease was extended; <see cref="IdempotencyLeaseStatus.Lost"/> when
    /// <paramref name="owner"/> no longer holds the key in progress (removed, taken by another owner, or completed), and nothing was changed.
    /// </returns>
    ValueTask<IdempotencyLeaseStatus> RenewAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>Gives back a key taken by <paramref name="owner"/> whose handling failed, so that another attempt may take it at once.</summary>
    /// <param name="key">The key.</param>
    /// <param name="owner">The owner that took it.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the key is released.</returns>
    ValueTask ReleaseAsync(string key, string owner, CancellationToken cancellationToken);

    /// <summary>
    /// Removes completed keys older than <paramref name="completedBefore"/>, and leases that expired before that time too.
    /// A lease that expired recently is kept: its holder may still complete it (a handler slower than its lease whose
    /// renewal failed), and a key whose lease expired can be taken by another owner anyway.
    /// </summary>
    /// <param name="completedBefore">Completed keys from before this time, and leases expired before it, are removed.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many keys were removed.</returns>
    ValueTask<long> CleanupAsync(DateTimeOffset completedBefore, CancellationToken cancellationToken);
}

/// <summary>What <see cref="IIdempotencyStore.TryBeginAsync"/> found.</summary>
public enum IdempotencyStatus
{
    /// <summary>The key is taken by the caller: handle the message, then complete or release the key.</summary>
    Acquired,

    /// <summary>The message was handled already: skip it (it counts as done).</summary>
    AlreadyCompleted,

    /// <summary>Another owner holds the key under a lease that has not expired: try again later.</summary>
    HeldByAnother,
}

/// <summary>What <see cref="IIdempotencyStore.CompleteAsync"/> and <see cref="IIdempotencyStore.RenewAsync"/> found.</summary>
public enum IdempotencyLeaseStatus
{
    /// <summary>The caller held the key: it is completed, or its lease was extended.</summary>
    Held,

    /// <summary>
    /// The caller no longer holds the key: its lease expired and the key was removed, or taken (and perhaps completed) by
    /// another owner. Nothing was changed; another run of the message may have happened.
    /// </summary>
    Lost,
}

/// <summary>The result of <see cref="IIdempotencyStore.TryBeginAsync"/>.</summary>
/// <param name="Status">What the store found.</param>
/// <param name="RetryAfter">With <see cref="IdempotencyStatus.HeldByAnother"/>: how long until the other owner's lease expires.</param>
public readonly record struct IdempotencyBeginResult(IdempotencyStatus Status, TimeSpan RetryAfter = default)
{
    /// <summary>Gets the result for a key taken by the caller.</summary>
    public static IdempotencyBeginResult Acquired => new(IdempotencyStatus.Acquired);

    /// <summary>Gets the result for a message handled already.</summary>
    public static IdempotencyBeginResult AlreadyCompleted => new(IdempotencyStatus.AlreadyCompleted);

    /// <summary>Creates the result for a key held by another owner.</summary>
    /// <param name="retryAfter">How long until its lease expires.</param>
    /// <returns>The result.</returns>
    public static IdempotencyBeginResult HeldByAnother(TimeSpan retryAfter) => new(IdempotencyStatus.HeldByAnother, retryAfter);
}
