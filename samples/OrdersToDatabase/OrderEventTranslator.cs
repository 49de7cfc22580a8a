using System.Globalization;
using Kafka.Reliable;

namespace OrdersToDatabase;

/// <summary>
/// The anti-corruption layer: validates the message's shape and builds the domain order. A message it rejects is
/// dead-lettered before any batch is formed, so the batch handler only ever sees well-formed orders.
/// </summary>
public sealed class OrderEventTranslator : IMessageTranslator<OrderEventMessage, Order>
{
    public Order Translate(OrderEventMessage message, MessageContext context)
    {
        if (string.IsNullOrWhiteSpace(message.OrderId))
        {
            throw new ArgumentException("order_id is required");
        }

        if (message.LineItems is null || message.LineItems.Count == 0)
        {
            throw new ArgumentException($"order {message.OrderId} must have at least one line item");
        }

        if (!DateTimeOffset.TryParse(message.CreatedAt, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var createdAt))
        {
            throw new ArgumentException($"order {message.OrderId} has no valid created_at timestamp");
        }

        var lines = message.LineItems.Select(l => new OrderLine(l.Sku, l.Quantity, l.UnitPrice)).ToList();
        return new Order(message.OrderId, createdAt, message.CustomerName ?? string.Empty, message.TotalPrice, lines);
    }
}
