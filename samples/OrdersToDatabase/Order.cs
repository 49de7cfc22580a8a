namespace OrdersToDatabase;

/// <summary>The domain order: only orders that passed the translator exist.</summary>
public sealed record Order(string OrderId, DateTimeOffset CreatedAt, string CustomerName, decimal TotalPrice, IReadOnlyList<OrderLine> Lines);

public sealed record OrderLine(string Sku, int Quantity, decimal UnitPrice);
