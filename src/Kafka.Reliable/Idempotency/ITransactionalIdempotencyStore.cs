using Confluent.Kafka;

namespace Kafka.Reliable.Idempotency;

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

/// <summary>
/// A transactional store that can also hold a whole batch of messages in one database transaction
/// (<see cref="IBatchMessageHandler{TMessage}"/>): the batch handler's writes, the idempotency records of its messages and
/// the partition's next offset commit together or not at all.
/// </summary>
public interface ITransactionalBatchIdempotencyStore : ITransactionalIdempotencyStore
{
    /// <summary>
    /// Opens one transaction for a batch of messages and records their keys in it. A key recorded already
    /// (its message was handled) is reported in <paramref name="handled"/>, and its message is left out of the batch; of
    /// several messages with one key in a batch, all but the first are reported handled.
    /// </summary>
    /// <param name="keys">The messages' idempotency keys, in offset order.</param>
    /// <param name="handled">Set at each index to whether that message was handled already; as long as <paramref name="keys"/>.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>
    /// The open transaction. <see cref="IdempotencyTransaction.CommitAsync(MessageContext, CancellationToken)"/> is called with
    /// the context of the batch's last message, whose next offset is the one the store keeps for the partition; for a batch
    /// across partitions, <see cref="IdempotencyTransaction.CommitAsync(IReadOnlyList{MessageContext}, CancellationToken)"/> is
    /// called with the last message of each partition.
    /// </returns>
    ValueTask<IdempotencyTransaction> BeginBatchTransactionAsync(IReadOnlyList<string> keys, IList<bool> handled, CancellationToken cancellationToken);

    /// <summary>
    /// Gets a value indicating whether the store's batch transactions keep the next offsets of several partitions in one commit
    /// (<see cref="IdempotencyTransaction.CommitAsync(IReadOnlyList{MessageContext}, CancellationToken)"/>), which batches
    /// across partitions (<see cref="BatchOptions.AcrossPartitions"/>) need; a consumer refuses to start with such batches
    /// and a store that cannot.
    /// </summary>
    /// <value><see langword="false"/> unless the store says otherwise; the SQLite and PostgreSQL stores can.</value>
    bool CommitsSeveralPartitions => false;
}

/// <summary>An open database transaction for one message; disposing it without committing rolls it back.</summary>
public abstract class IdempotencyTransaction : IAsyncDisposable
{
    /// <summary>Commits the handler's writes together with the idempotency record, and the partition's next offset when the store keeps offsets.</summary>
    /// <param name="context">The message's context (topic, partition, offset).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the transaction is committed.</returns>
    public abstract ValueTask CommitAsync(MessageContext context, CancellationToken cancellationToken);

    /// <summary>
    /// Commits the writes of a batch across partitions together with its idempotency records, and the next offset of each
    /// partition when the store keeps offsets.
    /// </summary>
    /// <param name="contexts">The context of the batch's last message of each partition, one per partition.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the transaction is committed.</returns>
    /// <exception cref="NotSupportedException">The store cannot keep several partitions' offsets in one commit (see <see cref="ITransactionalBatchIdempotencyStore.CommitsSeveralPartitions"/>).</exception>
    public virtual ValueTask CommitAsync(IReadOnlyList<MessageContext> contexts, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(contexts);
        return contexts.Count == 1
            ? CommitAsync(contexts[0], cancellationToken)
            : throw new NotSupportedException($"{GetType().Name} commits the offset of one partition at a time; it cannot hold a batch across partitions.");
    }

    /// <summary>Rolls back what was not committed and frees the connection.</summary>
    /// <returns>A task that completes when the transaction is disposed.</returns>
    public abstract ValueTask DisposeAsync();
}

/// <summary>
/// A store that keeps each partition's next offset with the handler's effects (seeds/001's two-layer tracking). On
/// assignment the consumer starts each partition from the stored offset when it is ahead of the group's committed one, so
/// a crash between the database commit and the Kafka commit repeats nothing.
/// </summary>
/// <remarks>
/// The store also records the offsets the consumer committed to the group (<see cref="RecordCommittedAsync"/>). A group
/// offset found behind the last one recorded was moved back by someone else: an explicit offsets reset, or a topic deleted
/// and created again (Kafka drops the group's offsets with the topic). The consumer then starts from the group's offset and
/// forgets the stored one (<see cref="ForgetStoredOffsetsAsync"/>), instead of silently undoing the reset.
/// </remarks>
public interface IStoredOffsets
{
    /// <summary>Reads the stored offsets of the given partitions for a consumer group. Called on the poll thread during assignment.</summary>
    /// <param name="groupId">The consumer group.</param>
    /// <param name="partitions">The partitions being assigned.</param>
    /// <returns>The stored offsets of each partition that has some.</returns>
    IReadOnlyList<StoredOffset> GetStoredOffsets(string groupId, IReadOnlyList<TopicPartition> partitions);

    /// <summary>Records offsets the consumer committed to the group (best effort, off the poll thread; later calls carry higher offsets).</summary>
    /// <param name="groupId">The consumer group.</param>
    /// <param name="committed">The committed offsets.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when they are recorded.</returns>
    ValueTask RecordCommittedAsync(string groupId, IReadOnlyList<TopicPartitionOffset> committed, CancellationToken cancellationToken) => default;

    /// <summary>Forgets the stored offsets of partitions whose group offset was reset (best effort, off the poll thread).</summary>
    /// <param name="groupId">The consumer group.</param>
    /// <param name="partitions">The partitions.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when they are forgotten.</returns>
    ValueTask ForgetStoredOffsetsAsync(string groupId, IReadOnlyList<TopicPartition> partitions, CancellationToken cancellationToken) => default;
}

/// <summary>What a store keeps for one partition of a consumer group (see <see cref="IStoredOffsets"/>).</summary>
/// <param name="partition">The partition.</param>
/// <param name="nextOffset">The offset to read the partition again from, stored with the handler's effects.</param>
/// <param name="lastCommitted">The highest offset the consumer committed to the group, as recorded; -1 when none was.</param>
public sealed class StoredOffset(TopicPartition partition, long nextOffset, long lastCommitted)
{
    /// <summary>Gets the partition.</summary>
    public TopicPartition Partition { get; } = partition;

    /// <summary>Gets the offset to read the partition again from, stored with the handler's effects.</summary>
    public long NextOffset { get; } = nextOffset;

    /// <summary>Gets the highest offset the consumer committed to the group, as recorded; -1 when none was.</summary>
    public long LastCommitted { get; } = lastCommitted;
}

/// <summary>
/// An <see cref="IdempotencyTransaction"/> on an ADO.NET connection: the base of the SQL stores' transactions. The handler
/// writes through <see cref="Connection"/> and <see cref="Transaction"/>; committing runs the store's last statements (the
/// partition's offset) in the same transaction first.
/// </summary>
/// <typeparam name="TConnection">The provider's connection type.</typeparam>
/// <typeparam name="TTransaction">The provider's transaction type.</typeparam>
public abstract class DbIdempotencyTransaction<TConnection, TTransaction> : IdempotencyTransaction
    where TConnection : System.Data.Common.DbConnection
    where TTransaction : System.Data.Common.DbTransaction
{
    private bool _committed;

    /// <summary>Initializes a new instance of the <see cref="DbIdempotencyTransaction{TConnection, TTransaction}"/> class.</summary>
    /// <param name="connection">The open connection, owned by this transaction from now on.</param>
    /// <param name="transaction">The open transaction on it.</param>
    protected DbIdempotencyTransaction(TConnection connection, TTransaction transaction)
    {
        Connection = connection;
        Transaction = transaction;
    }

    /// <summary>Gets the open connection; create the handler's commands on it, with <see cref="Transaction"/>.</summary>
    public TConnection Connection { get; }

    /// <summary>Gets the open transaction.</summary>
    public TTransaction Transaction { get; }

    /// <inheritdoc />
    public sealed override async ValueTask CommitAsync(MessageContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        await BeforeCommitAsync(context, cancellationToken).ConfigureAwait(false);
        await Transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        _committed = true;
    }

    /// <inheritdoc />
    public sealed override async ValueTask CommitAsync(IReadOnlyList<MessageContext> contexts, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(contexts);
        foreach (var context in contexts)
        {
            await BeforeCommitAsync(context, cancellationToken).ConfigureAwait(false);
        }

        await Transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        _committed = true;
    }

    /// <inheritdoc />
    public sealed override async ValueTask DisposeAsync()
    {
        if (!_committed)
        {
            try
            {
                await Transaction.RollbackAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is System.Data.Common.DbException or InvalidOperationException)
            {
                // Already rolled back, or the connection is broken: the database rolls the transaction back itself.
            }
        }

        await Transaction.DisposeAsync().ConfigureAwait(false);
        await Connection.DisposeAsync().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }

    /// <summary>Runs the store's own statements in the transaction just before it commits (for example, storing the partition's offset).</summary>
    /// <param name="context">The message's context.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when the statements ran.</returns>
    protected abstract ValueTask BeforeCommitAsync(MessageContext context, CancellationToken cancellationToken);
}
