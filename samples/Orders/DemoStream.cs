using System.Text;
using System.Text.Json;
using Confluent.Kafka;

namespace Orders;

/// <summary>The demo's order events: thousands of valid orders and a few malformed ones, as a real topic has.</summary>
internal static class DemoStream
{
    public const int ValidOrders = 3000;

    /// <summary>How many orders are sent twice, as a producer that retried after a lost acknowledgement would.</summary>
    public const int Resent = ValidOrders / ResendEvery;

    private const int ResendEvery = 120;

    /// <summary>Gets malformed records: each is a kind of bad input a loader meets in production.</summary>
    public static IReadOnlyList<(string Key, byte[]? Value, string Why)> Malformed { get; } =
    [
        ("bad-1", Encoding.UTF8.GetBytes("{\"order_id\": \"o-bad-1\", \"total_price\": "), "truncated JSON"),
        ("bad-2", Encoding.UTF8.GetBytes("""{"order_id": "", "created_at": "2026-11-01T10:00:00Z", "total_price": 10, "line_items": [{"sku": "A", "quantity": 1, "unit_price": 10}]}"""), "no order id"),
        ("bad-3", Encoding.UTF8.GetBytes("""{"order_id": "o-bad-3", "created_at": "2026-11-01T10:00:00Z", "total_price": 0, "line_items": []}"""), "no line items"),
        ("bad-4", Encoding.UTF8.GetBytes("""["not", "an", "order"]"""), "wrong shape"),
        ("bad-5", null, "null value (tombstone)"),
        ("bad-6", [0xC3, 0x28, 0xFF], "invalid UTF-8"),
    ];

    public static IEnumerable<Message<byte[]?, byte[]?>> Create()
    {
        var badEvery = ValidOrders / (Malformed.Count + 1);
        var bad = 0;
        for (var i = 0; i < ValidOrders; i++)
        {
            if (i > 0 && i % badEvery == 0 && bad < Malformed.Count)
            {
                var (key, value, _) = Malformed[bad++];
                yield return new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes(key), Value = value };
            }

            var orderId = $"o-{i:D5}";
            var order = new OrderEventMessage(
                orderId,
                new DateTimeOffset(2026, 11, 1, 10, 0, 0, TimeSpan.Zero).AddSeconds(i).ToString("O"),
                $"customer-{i % 97}",
                19.90m + i % 7,
                [new LineItemMessage($"sku-{i % 13}", 1 + i % 3, 9.95m)]);
            var message = new Message<byte[]?, byte[]?>
            {
                Key = Encoding.UTF8.GetBytes(orderId),
                Value = JsonSerializer.SerializeToUtf8Bytes(order, OrdersJsonContext.Default.OrderEventMessage),
            };
            yield return message;
            if (i % ResendEvery == ResendEvery - 1)
            {
                // The same order again: a different record (a new offset), the same order id.
                yield return new Message<byte[]?, byte[]?> { Key = message.Key, Value = message.Value };
            }
        }
    }
}
