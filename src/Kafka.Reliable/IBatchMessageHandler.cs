namespace Kafka.Reliable;

/// <summary>
/// Handles a batch of messages of a reliable consumer at once: for bulk writes (one multi-row insert or <c>COPY</c> per
/// batch instead of one transaction per message). Registered with <c>WithBatchHandler&lt;THandler&gt;()</c> in place of a
/// message handler; resolved from dependency injection in a new scope per batch (scoped, the default) or once (singleton).
/// </summary>
/// <typeparam name="TMessage">The message type: the deserialized payload, or the translated domain type when a translator is configured.</typeparam>
/// <remarks>
/// <para>
/// A batch holds records of one partition in offset order, after the deserialize and translate steps: a record that fails
/// those is dead-lettered before the batch is formed. A handler that returns normally marks every message of the batch
/// done, except those it reported with <see cref="MessageBatch{TMessage}.Fail"/>.
/// </para>
/// <para>
/// A handler that throws has failed the whole batch. A transient failure retries the batch as a whole (the retry policy and
/// circuit breaker apply per attempt); a fatal failure, or a transient one that outlasts the retries, makes the consumer
/// isolate the failing messages by bisecting: it runs each half of the batch again, and so on down to single messages.
/// Only a message that fails alone is dead-lettered, with headers saying it failed in a batch. Every message that succeeds
/// in a smaller batch has been part of the failed ones, so a handler whose writes are not transactional should make them
/// idempotent (or use a transactional idempotency store, which rolls each failed batch back).
/// </para>
/// </remarks>
public interface IBatchMessageHandler<TMessage>
{
    /// <summary>Handles a batch of messages.</summary>
    /// <param name="batch">The messages, in offset order, each with its context. Valid only until the returned task completes.</param>
    /// <param name="cancellationToken">Signalled when the consumer stops or loses the partition and the drain timeout has passed.</param>
    /// <returns>A task that completes when the batch is handled.</returns>
    ValueTask HandleAsync(MessageBatch<TMessage> batch, CancellationToken cancellationToken);
}
