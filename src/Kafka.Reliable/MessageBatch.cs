using System.Collections;
using Kafka.Reliable.Idempotency;

namespace Kafka.Reliable;

/// <summary>
/// The messages an <see cref="IBatchMessageHandler{TMessage}"/> receives: an ordered, read-only list of messages with their
/// contexts, all of one partition. The consumer reuses the batch: keep nothing from it after the handler returns.
/// </summary>
/// <typeparam name="TMessage">The message type.</typeparam>
public sealed class MessageBatch<TMessage> : IReadOnlyList<BatchItem<TMessage>>
{
    private TMessage[] _messages = [];
    private MessageContext[] _contexts = [];
    private Exception?[] _failures = [];
    private int[] _indexes = [];
    private int _count;
    private int _failed;

    internal MessageBatch()
    {
    }

    /// <summary>Gets the number of messages in the batch.</summary>
    public int Count => _count;

    /// <summary>Gets the attempt at this batch, starting at 1; a batch that is part of a failed one being isolated starts again at 1.</summary>
    public int Attempt { get; internal set; }

    /// <summary>
    /// Gets a value indicating whether this batch is part of a larger batch that failed: the consumer is isolating the
    /// failing messages by running smaller batches.
    /// </summary>
    public bool IsIsolating { get; internal set; }

    /// <summary>
    /// Gets the open transaction of a transactional idempotency store that the handler writes through (with the provider's
    /// accessor, e.g. <c>GetNpgsqlTransaction()</c> on any message's context); null without such a store. It commits the
    /// handler's writes with the idempotency records of every message of the batch and the partition's next offset.
    /// </summary>
    public IdempotencyTransaction? Transaction { get; internal set; }

    /// <summary>Gets the message at <paramref name="index"/>, with its context.</summary>
    /// <param name="index">The position in the batch, from 0.</param>
    /// <returns>The message and its context.</returns>
    public BatchItem<TMessage> this[int index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)_count, nameof(index));
            return new BatchItem<TMessage>(_messages[index], _contexts[index]);
        }
    }

    /// <summary>
    /// Reports that the message at <paramref name="index"/> failed, while the handler goes on with the others: when the handler
    /// returns, the other messages are done and this one is retried alone (a transient failure) or dead-lettered (a fatal one),
    /// as <paramref name="exception"/> is classified. With a transactional idempotency store the batch's transaction is rolled
    /// back and the batch is handled again without the failed messages, so that no effect of theirs is kept.
    /// </summary>
    /// <param name="index">The position of the failed message in the batch.</param>
    /// <param name="exception">Why it failed.</param>
    public void Fail(int index, Exception exception)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)_count, nameof(index));
        ArgumentNullException.ThrowIfNull(exception);
        if (_failures[index] is null)
        {
            _failed++;
        }

        _failures[index] = exception;
    }

    /// <summary>Gets an enumerator over the messages in offset order.</summary>
    /// <returns>The enumerator.</returns>
    public Enumerator GetEnumerator() => new(this);

    IEnumerator<BatchItem<TMessage>> IEnumerable<BatchItem<TMessage>>.GetEnumerator() => GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Gets the number of messages reported failed with <see cref="Fail"/>.</summary>
    internal int FailedCount => _failed;

    /// <summary>Gets the failure reported for a message, or null.</summary>
    internal Exception? FailureOf(int index) => _failures[index];

    /// <summary>Gets where the message at a position came from in the records the consumer is running (its index there).</summary>
    internal int SourceOf(int index) => _indexes[index];

    /// <summary>Empties the batch for a new use, with room for <paramref name="capacity"/> messages.</summary>
    internal void Clear(int capacity)
    {
        if (_messages.Length < capacity)
        {
            _messages = new TMessage[capacity];
            _contexts = new MessageContext[capacity];
            _failures = new Exception?[capacity];
            _indexes = new int[capacity];
        }
        else
        {
            Array.Clear(_messages, 0, _count);
            Array.Clear(_contexts, 0, _count);
            Array.Clear(_failures, 0, _count);
        }

        _count = 0;
        _failed = 0;
        Attempt = 0;
        IsIsolating = false;
        Transaction = null;
    }

    internal void Add(TMessage message, MessageContext context, int source)
    {
        _messages[_count] = message;
        _contexts[_count] = context;
        _indexes[_count] = source;
        _count++;
    }

    /// <summary>Forgets the failures reported by an attempt, before the next one.</summary>
    internal void ClearFailures()
    {
        Array.Clear(_failures, 0, _count);
        _failed = 0;
    }

    /// <summary>Enumerates the messages of a batch without allocating.</summary>
    public struct Enumerator : IEnumerator<BatchItem<TMessage>>
    {
        private readonly MessageBatch<TMessage> _batch;
        private int _index;

        internal Enumerator(MessageBatch<TMessage> batch)
        {
            _batch = batch;
            _index = -1;
        }

        /// <summary>Gets the current message and its context.</summary>
        public readonly BatchItem<TMessage> Current => _batch[_index];

        readonly object IEnumerator.Current => Current;

        /// <summary>Moves to the next message.</summary>
        /// <returns><see langword="false"/> after the last one.</returns>
        public bool MoveNext() => ++_index < _batch._count;

        /// <summary>Moves back before the first message.</summary>
        public void Reset() => _index = -1;

        /// <summary>Does nothing.</summary>
        public readonly void Dispose()
        {
        }
    }
}

/// <summary>A message of a <see cref="MessageBatch{TMessage}"/> with its context.</summary>
/// <typeparam name="TMessage">The message type.</typeparam>
public readonly struct BatchItem<TMessage>
{
    internal BatchItem(TMessage message, MessageContext context)
    {
        Message = message;
        Context = context;
    }

    /// <summary>Gets the message.</summary>
    public TMessage Message { get; }

    /// <summary>Gets where the message came from (topic, partition, offset, key, headers, timestamp).</summary>
    public MessageContext Context { get; }
}
