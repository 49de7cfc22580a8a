using System.Collections.Concurrent;
using Kafka.Reliable;

namespace Orders;

/// <summary>Where orders are stored. The demo keeps them in memory; a real loader writes to a database.</summary>
public sealed class OrderStore
{
    private readonly ConcurrentDictionary<string, Order> _orders = new();
    private int _writes;
    private int _timeouts;

    public int Count => _orders.Count;

    public int Writes => Volatile.Read(ref _writes);

    /// <summary>Gets how many writes timed out (and were retried by the consumer).</summary>
    public int Timeouts => Volatile.Read(ref _timeouts);

    /// <summary>Plays a database that times out now and then: the first attempt at every 250th record of a partition.</summary>
    public void ThrowIfFlaky(MessageContext context)
    {
        if (context.Offset % 250 == 0 && context.Attempt == 1)
        {
            Interlocked.Increment(ref _timeouts);
            throw new TimeoutException("the database did not answer in time");
        }
    }

    public void Save(Order order)
    {
        Interlocked.Increment(ref _writes);
        _orders[order.OrderId] = order;
    }
}

/// <summary>Stores each valid order. Scoped: one instance per message, as a handler with a database context would be.</summary>
public sealed class LoadOrderHandler(OrderStore store) : IMessageHandler<Order>
{
    public ValueTask HandleAsync(Order message, MessageContext context, CancellationToken cancellationToken)
    {
        // A TimeoutException is transient: the consumer retries the record in place, with backoff, and it succeeds.
        store.ThrowIfFlaky(context);
        store.Save(message);
        return ValueTask.CompletedTask;
    }
}
