using System.Collections.Concurrent;
using Kafka.Reliable;

namespace Orders;

/// <summary>Where orders are stored. The demo keeps them in memory; a real loader writes to a database.</summary>
public sealed class OrderStore
{
    private readonly ConcurrentDictionary<string, Order> _orders = new();
    private int _writes;

    public int Count => _orders.Count;

    public int Writes => Volatile.Read(ref _writes);

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
        store.Save(message);
        return ValueTask.CompletedTask;
    }
}
