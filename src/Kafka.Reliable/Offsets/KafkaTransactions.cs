using Kafka.Reliable.Idempotency;
using System.Collections.Concurrent;
using Confluent.Kafka;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Consuming;

namespace Kafka.Reliable;

/// <summary>
/// The Kafka transaction of one record, with <see cref="CommitStrategy.Transactional"/>: what the handler produces through
/// <see cref="Produce"/> and the record's offset commit together, or not at all (consume-transform-produce, exactly once).
/// </summary>
public sealed class KafkaTransaction : IdempotencyTransaction
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private const int AmbiguousRetries = 5;
    private readonly KafkaTransactionStore _store;
    private readonly LeasedProducer _lease;
    private readonly IProducer<byte[]?, byte[]?> _producer;
    private readonly TopicPartition _partition;
    private bool _completed;
    private bool _returned;

    internal KafkaTransaction(KafkaTransactionStore store, LeasedProducer lease, TopicPartition partition)
    {
        _store = store;
        _lease = lease;
        _producer = lease.Producer;
        _partition = partition;
    }

    /// <summary>Produces a record in the transaction; it becomes visible to <c>read_committed</c> consumers when the transaction commits.</summary>
    /// <param name="topic">The output topic.</param>
    /// <param name="message">The record.</param>
    public void Produce(string topic, Message<byte[]?, byte[]?> message)
    {
        ArgumentException.ThrowIfNullOrEmpty(topic);
        ArgumentNullException.ThrowIfNull(message);
        _producer.Produce(topic, message);
    }

    /// <inheritdoc />
    /// <remarks>
    /// A step that fails with a retriable error (a timeout: the outcome is unknown) is tried again, up to a bound, rather than
    /// aborting the transaction and running the record again: the transaction may have committed, and librdkafka resolves
    /// its outcome when the same call is made again. An error that requires an abort, or a fatal one, is thrown: the
    /// transaction is aborted and the record runs again.
    /// </remarks>
    public override async ValueTask CommitAsync(MessageContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);

        // Sequential dispatch (required by this strategy): the record is its partition's oldest not done, so Offset + 1 is its watermark.
        var offsets = new[] { new TopicPartitionOffset(_partition, new Offset(context.Offset + 1)) };
        var metadata = _store.GroupMetadata();

        // Confluent's transaction calls block on the network: off the worker's thread.
        await Task.Run(
            () =>
            {
                Retrying(() => _producer.SendOffsetsToTransaction(offsets, metadata, Timeout));
                Retrying(() => _producer.CommitTransaction(Timeout));
            },
            cancellationToken).ConfigureAwait(false);
        _completed = true;
    }

    private static void Retrying(Action step)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                step();
                return;
            }
            catch (KafkaRetriableException) when (attempt < AmbiguousRetries)
            {
                // Outcome unknown (e.g. a timeout): the same call again finds out, and commits at most once.
            }
        }
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        try
        {
            if (!_completed)
            {
                _completed = true;
                try
                {
                    await Task.Run(() => _producer.AbortTransaction(Timeout)).ConfigureAwait(false);
                }
                catch (KafkaException)
                {
                    // Fenced by a newer owner of the partition, or broken: this producer is done; the next record gets a new one.
                    _store.Discard(_partition, _lease);
                }
            }
        }
        finally
        {
            // The producer is disposed only once no transaction uses it: a native call on a disposed client crashes the process.
            if (!_returned)
            {
                _returned = true;
                _lease.Return();
            }
        }
    }
}

/// <summary>
/// A transactional producer and the transactions using it. It is disposed once it is retired (its partition released, its
/// transactional id fenced, or the consumer stopped) and no transaction uses it: a handler that ignored its cancellation
/// may still be committing on it, and a client disposed under a native call is freed under that call (seen as a crash of
/// the torture harness with Kafka transactions).
/// </summary>
internal sealed class LeasedProducer(IProducer<byte[]?, byte[]?> producer)
{
    private int _users;
    private int _retired;
    private int _disposed;

    public IProducer<byte[]?, byte[]?> Producer => producer;

    /// <summary>Takes the producer for one transaction; false once it is retired.</summary>
    public bool TryAcquire()
    {
        Interlocked.Increment(ref _users);
        if (Volatile.Read(ref _retired) == 0)
        {
            return true;
        }

        Return();
        return false;
    }

    /// <summary>Gives the producer back after a transaction; the last user of a retired producer disposes it.</summary>
    public void Return()
    {
        if (Interlocked.Decrement(ref _users) == 0 && Volatile.Read(ref _retired) == 1)
        {
            DisposeOnce();
        }
    }

    /// <summary>Takes no new transaction; disposes the producer now if none uses it, else when the last one returns it.</summary>
    public void Retire()
    {
        Interlocked.Exchange(ref _retired, 1);
        if (Volatile.Read(ref _users) == 0)
        {
            DisposeOnce();
        }
    }

    private void DisposeOnce()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            producer.Dispose();
        }
    }
}

/// <summary>Gives a handler the Kafka transaction of its record, with <see cref="CommitStrategy.Transactional"/>.</summary>
public static class KafkaTransactionMessageContextExtensions
{
    /// <summary>Gets the transaction to produce the handler's output records in.</summary>
    /// <param name="context">The record's context.</param>
    /// <returns>The transaction.</returns>
    /// <exception cref="InvalidOperationException">The consumer does not use <see cref="CommitStrategy.Transactional"/>.</exception>
    public static KafkaTransaction GetKafkaTransaction(this MessageContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Transaction as KafkaTransaction
            ?? throw new InvalidOperationException("This record has no Kafka transaction: set Commit:Strategy = Transactional.");
    }
}

/// <summary>
/// One transactional producer per assigned partition (<c>transactional.id</c> = prefix-topic-partition, so a partition's
/// next owner fences its previous one), opening a transaction per record. Sequential dispatch keeps one record of a
/// partition in flight, so a producer never has two transactions open.
/// </summary>
internal sealed class KafkaTransactionStore(ConsumerContext consumer, ProducerConfig template, string transactionalIdPrefix) : ITransactionalIdempotencyStore, IAsyncDisposable
{
    private static readonly TimeSpan InitTimeout = TimeSpan.FromSeconds(30);
    private readonly ConcurrentDictionary<TopicPartition, Lazy<Task<LeasedProducer>>> _producers = new();

    public IConsumerGroupMetadata GroupMetadata() =>
        consumer.GroupMetadata?.Invoke() ?? throw new InvalidOperationException("The consumer has not joined its group yet.");

    public async ValueTask<IdempotencyTransaction?> BeginTransactionAsync(string key, MessageContext context, CancellationToken cancellationToken)
    {
        var partition = new TopicPartition(context.Topic, new Partition(context.Partition));
        var lease = await _producers.GetOrAdd(partition, p => new Lazy<Task<LeasedProducer>>(() => CreateAsync(p))).Value.ConfigureAwait(false);
        if (!lease.TryAcquire())
        {
            // Released meanwhile: a new producer here would fence the partition's new owner.
            throw new OperationCanceledException($"{partition} was released: its record is not handled here.");
        }

        try
        {
            lease.Producer.BeginTransaction();
        }
        catch
        {
            lease.Return();
            throw;
        }

        return new KafkaTransaction(this, lease, partition);
    }

    /// <summary>
    /// Lets the producers of released partitions go (poll thread): the partition's next assignment, here or on another member,
    /// starts with a new producer whose InitTransactions fences every earlier one of that transactional id, including one a
    /// handler that ignored cancellation may still be using; that one is disposed when its transaction ends. Retired off the
    /// poll thread (a disposal waits for the client's threads).
    /// </summary>
    public void Release(IReadOnlyList<TopicPartition> partitions)
    {
        foreach (var partition in partitions)
        {
            if (_producers.TryRemove(partition, out var released))
            {
                _ = Task.Run(async () =>
                {
                    try
                    {
                        (await released.Value.ConfigureAwait(false)).Retire();
                    }
                    catch (Exception)
                    {
                        // It never started, or failed: nothing to release.
                    }
                });
            }
        }
    }

    /// <summary>Retires a partition's producer that failed (fenced, or broken), if it is still the partition's: its next record gets a new one.</summary>
    public void Discard(TopicPartition partition, LeasedProducer lease)
    {
        if (_producers.TryGetValue(partition, out var current) && current.IsValueCreated && current.Value.IsCompletedSuccessfully && current.Value.Result == lease
            && _producers.TryRemove(new KeyValuePair<TopicPartition, Lazy<Task<LeasedProducer>>>(partition, current)))
        {
            lease.Retire();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var lease in _producers.Values)
        {
            if (lease.IsValueCreated && lease.Value.IsCompletedSuccessfully)
            {
                await Task.Run(lease.Value.Result.Retire).ConfigureAwait(false);
            }
        }

        _producers.Clear();
    }

    private Task<LeasedProducer> CreateAsync(TopicPartition partition) => Task.Run(() =>
    {
        var config = new ProducerConfig(new Dictionary<string, string>(template))
        {
            TransactionalId = $"{transactionalIdPrefix}-{partition.Topic}-{partition.Partition.Value}",
        };
        var built = new ProducerBuilder<byte[]?, byte[]?>(config).SetLogHandler((_, message) => ClientLogs.Forward(consumer.Logger, consumer.Name, message)).Build();
        var producer = consumer.ClientInterceptor?.WrapTransactional(built) ?? built;
        try
        {
            producer.InitTransactions(InitTimeout);
            return new LeasedProducer(producer);
        }
        catch
        {
            producer.Dispose();
            throw;
        }
    });
}
