using System.Globalization;
using Kafka.Reliable;

namespace Orders;

/// <summary>
/// The anti-corruption layer of seeds/004: validates the message and builds the domain order. A message that violates the
/// domain's rules is rejected here; the library never commits past it silently.
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
