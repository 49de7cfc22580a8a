namespace Kafka.Reliable.Idempotency;

/// <summary>
/// The idempotency store of one consumer: named options (the consumer's name), written by <c>UseIdempotencyStore</c>,
/// <c>UseTransactionalIdempotencyStore</c>, <c>UseInMemoryIdempotency</c> and the store packages' <c>Use...Idempotency</c>
/// methods. The last store chosen is used. A store package whose mode comes from its own options (bound from configuration)
/// chooses here, when the options are first read, between <see cref="UseStore"/> and <see cref="UseTransactionalStore"/>.
/// </summary>
public sealed class IdempotencyStoreOptions
{
    /// <summary>Gets the factory of the lease store, when the consumer uses one (<see langword="null"/>: no store, or a transactional one).</summary>
    internal Func<IServiceProvider, IIdempotencyStore>? StoreFactory { get; private set; }

    /// <summary>Gets the factory of the transactional store, when the consumer uses one (<see langword="null"/>: no store, or a lease store).</summary>
    internal Func<IServiceProvider, ITransactionalIdempotencyStore>? TransactionalStoreFactory { get; private set; }

    /// <summary>Gets a value indicating whether the consumer uses an idempotency store.</summary>
    internal bool HasStore => StoreFactory is not null || TransactionalStoreFactory is not null;

    /// <summary>Gets a value indicating whether the consumer's store is transactional: the handler's writes commit with the idempotency record.</summary>
    internal bool IsTransactional => TransactionalStoreFactory is not null;

    /// <summary>Uses a lease store, which takes a message's key before the handler runs and completes it after; replaces any store chosen before.</summary>
    /// <param name="storeFactory">Creates the store when the consumer starts; the consumer disposes it when it is <see cref="IAsyncDisposable"/>.</param>
    public void UseStore(Func<IServiceProvider, IIdempotencyStore> storeFactory)
    {
        ArgumentNullException.ThrowIfNull(storeFactory);
        (StoreFactory, TransactionalStoreFactory) = (storeFactory, null);
    }

    /// <summary>Uses a transactional store, whose transaction the handler writes through; replaces any store chosen before.</summary>
    /// <param name="storeFactory">Creates the store when the consumer starts; the consumer disposes it when it is <see cref="IAsyncDisposable"/>.</param>
    public void UseTransactionalStore(Func<IServiceProvider, ITransactionalIdempotencyStore> storeFactory)
    {
        ArgumentNullException.ThrowIfNull(storeFactory);
        (StoreFactory, TransactionalStoreFactory) = (null, storeFactory);
    }
}
