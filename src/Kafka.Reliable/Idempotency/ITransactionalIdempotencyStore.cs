using Confluent.Kafka;

namespace Kafka.Reliable;

/// <summary>
/// An idempotency store that records a message as handled in the same database transaction as the handler's own writes
/// (G3: exactly-once effects). Instead of leases, it opens a transaction per message: the handler writes through
/// <see cref="MessageContext.Transaction"/>, and the idempotency record (and optionally the partition's next offset) commit
/// with those writes or not at all.
/// </summary>
public interface ITransactionalIdempotencyStore
{
    /// <summary>Opens a transaction for a message and records its key in it.</summary>
    /// <param name="key">The message's idempotency key.</param>
    /// <param name="context">The message's context.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The open transaction, or <see langword="null"/> when the message was handled already (skip it).</returns>
    ValueTask<IdempotencyTransaction?> BeginTransactionAsync(string key, MessageContext context, CancellationToken cancellationToken);
}

/// <summary>An open database transaction for one message; disposing it without committing rolls it back.</summary>
public abstract class IdempotencyTransaction : IAsyncDisposable
{
    /// <summary>Commits the handler's writes together with the idempotency record, and the partition's next offset when the store keeps offsets.</summary>
    /// <param name="context">The message's context (topic, partition, offset).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the transaction is committed.</returns>
    public abstract ValueTask CommitAsync(MessageContext context, CancellationToken cancellationToken);

    /// <summary>Rolls back what was not committed and frees the connection.</summary>
    /// <returns>A task that completes when the transaction is disposed.</returns>
    public abstract ValueTask DisposeAsync();
}

/// <summary>
/// A store that keeps each partition's next offset with the handler's effects (seeds/001's two-layer tracking). On
/// assignment the consumer starts each partition from the stored offset when it is ahead of the group's committed one, so
/// a crash between the database commit and the Kafka commit repeats nothing.
/// </summary>
public interface IStoredOffsets
{
    /// <summary>Reads the stored next offsets of the given partitions for a consumer group. Called on the poll thread during assignment.</summary>
    /// <param name="groupId">The consumer group.</param>
    /// <param name="partitions">The partitions being assigned.</param>
    /// <returns>The stored next offset of each partition that has one.</returns>
    IReadOnlyList<TopicPartitionOffset> GetStoredOffsets(string groupId, IReadOnlyList<TopicPartition> partitions);
}
