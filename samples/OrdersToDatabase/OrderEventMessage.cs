using System.Text.Json.Serialization;

namespace OrdersToDatabase;

/// <summary>The order event as it travels on the "orders" topic (the same schema as samples/Orders).</summary>
public sealed record OrderEventMessage(
    string? OrderId,
    string? CreatedAt,
    string? CustomerName,
    decimal TotalPrice,
    IReadOnlyList<LineItemMessage>? LineItems);

public sealed record LineItemMessage(string Sku, int Quantity, decimal UnitPrice);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(OrderEventMessage))]
internal sealed partial class OrdersJsonContext : JsonSerializerContext;
