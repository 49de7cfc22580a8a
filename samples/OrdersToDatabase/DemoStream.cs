using System.Text;
using System.Text.Json;
using Confluent.Kafka;

namespace OrdersToDatabase;

/// <summary>
/// The demo's order events (the idea of samples/Orders' stream, larger): 10,000 orders, a few sent twice as a producer that
/// retried after a lost acknowledgement would, a few with a negative total that the handler rejects, and a few malformed
/// records that never reach the handler.
/// </summary>
internal static class DemoStream
{
    /// <summary>The number of orders (distinct order ids) published.</summary>
    public const int Orders = 10_000;

    private const int ResendEvery = 120;
    private const int RejectEvery = 2_500;

    /// <summary>Gets how many orders are sent twice: a second record (a new offset) with the same order id.</summary>
    public static int Resent { get; } = Enumerable.Range(0, Orders).Count(IsResent);

    /// <summary>Gets how many orders carry a negative total, which the batch handler reports failed (dead-lettered).</summary>
    public static int Rejected { get; } = Enumerable.Range(0, Orders).Count(IsRejected);

    /// <summary>Gets how many orders must end up in the database, each exactly once.</summary>
    public static int GoodOrders => Orders - Rejected;

    /// <summary>Gets how many records must end up on the dead-letter topic: the malformed ones and the rejected orders.</summary>
    public static int DeadLetters => Malformed.Count + Rejected;

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

    public static string OrderId(int i) => $"o-{i:D5}";

    /// <summary>Gets the order ids the database must hold when the run is over.</summary>
    public static IEnumerable<string> GoodOrderIds() => Enumerable.Range(0, Orders).Where(i => !IsRejected(i)).Select(OrderId);

    public static IEnumerable<Message<byte[]?, byte[]?>> Create()
    {
        var badEvery = Orders / (Malformed.Count + 1);
        var bad = 0;
        for (var i = 0; i < Orders; i++)
        {
            if (i > 0 && i % badEvery == 0 && bad < Malformed.Count)
            {
                var (key, value, _) = Malformed[bad++];
                yield return new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes(key), Value = value };
            }

            var orderId = OrderId(i);
            var total = 19.90m + i % 7;
            var order = new OrderEventMessage(
                orderId,
                new DateTimeOffset(2026, 11, 1, 10, 0, 0, TimeSpan.Zero).AddSeconds(i).ToString("O"),
                $"customer-{i % 97}",
                IsRejected(i) ? -total : total,
                [new LineItemMessage($"sku-{i % 13}", 1 + i % 3, 9.95m)]);
            var message = new Message<byte[]?, byte[]?>
            {
                Key = Encoding.UTF8.GetBytes(orderId),
                Value = JsonSerializer.SerializeToUtf8Bytes(order, OrdersJsonContext.Default.OrderEventMessage),
            };
            yield return message;
            if (IsResent(i))
            {
                // The same order again: a different record (a new offset, the same partition), the same order id.
                yield return new Message<byte[]?, byte[]?> { Key = message.Key, Value = message.Value };
            }
        }
    }

    private static bool IsResent(int i) => i % ResendEvery == ResendEvery - 1 && !IsRejected(i);

    private static bool IsRejected(int i) => i % RejectEvery == RejectEvery / 2;
}
