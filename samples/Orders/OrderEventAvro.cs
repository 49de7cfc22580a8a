using Avro;
using Avro.Specific;

namespace Orders;

/// <summary>
/// The order event as an Avro record (the sample's <c>--format avro</c>): the same fields as <see cref="OrderEventMessage"/>.
/// Written by hand as <c>avrogen</c> would generate it: Confluent's Avro serdes read the schema from <c>_SCHEMA</c>.
/// </summary>
public sealed class OrderEventAvro : ISpecificRecord
{
    public static readonly Schema _SCHEMA = Schema.Parse("""
        {"type": "record", "name": "OrderEventAvro", "namespace": "Orders", "fields": [
          {"name": "order_id", "type": "string"},
          {"name": "created_at", "type": "string"},
          {"name": "customer_name", "type": "string"},
          {"name": "total_price", "type": "double"},
          {"name": "line_items", "type": {"type": "array", "items": {"type": "record", "name": "LineItemAvro", "namespace": "Orders", "fields": [
            {"name": "sku", "type": "string"},
            {"name": "quantity", "type": "int"},
            {"name": "unit_price", "type": "double"}]}}}]}
        """);

    public string OrderId { get; set; } = string.Empty;

    public string CreatedAt { get; set; } = string.Empty;

    public string CustomerName { get; set; } = string.Empty;

    public double TotalPrice { get; set; }

    public IList<LineItemAvro> LineItems { get; set; } = [];

    public Schema Schema => _SCHEMA;

    public static OrderEventAvro From(OrderEventMessage message) => new()
    {
        OrderId = message.OrderId ?? string.Empty,
        CreatedAt = message.CreatedAt ?? string.Empty,
        CustomerName = message.CustomerName ?? string.Empty,
        TotalPrice = (double)message.TotalPrice,
        LineItems = [.. (message.LineItems ?? []).Select(l => new LineItemAvro { Sku = l.Sku, Quantity = l.Quantity, UnitPrice = (double)l.UnitPrice })],
    };

    public OrderEventMessage ToMessage() =>
        new(OrderId, CreatedAt, CustomerName, (decimal)TotalPrice, [.. LineItems.Select(l => new LineItemMessage(l.Sku, l.Quantity, (decimal)l.UnitPrice))]);

    public object Get(int fieldPos) => fieldPos switch
    {
        0 => OrderId,
        1 => CreatedAt,
        2 => CustomerName,
        3 => TotalPrice,
        4 => LineItems,
        _ => throw new AvroRuntimeException($"Bad index {fieldPos} in Get()"),
    };

    public void Put(int fieldPos, object fieldValue)
    {
        switch (fieldPos)
        {
            case 0: OrderId = (string)fieldValue; break;
            case 1: CreatedAt = (string)fieldValue; break;
            case 2: CustomerName = (string)fieldValue; break;
            case 3: TotalPrice = (double)fieldValue; break;
            case 4: LineItems = (IList<LineItemAvro>)fieldValue; break;
            default: throw new AvroRuntimeException($"Bad index {fieldPos} in Put()");
        }
    }
}

/// <summary>A line of <see cref="OrderEventAvro"/>.</summary>
public sealed class LineItemAvro : ISpecificRecord
{
    public static readonly Schema _SCHEMA = ((ArraySchema)((RecordSchema)OrderEventAvro._SCHEMA)["line_items"].Schema).ItemSchema;

    public string Sku { get; set; } = string.Empty;

    public int Quantity { get; set; }

    public double UnitPrice { get; set; }

    public Schema Schema => _SCHEMA;

    public object Get(int fieldPos) => fieldPos switch
    {
        0 => Sku,
        1 => Quantity,
        2 => UnitPrice,
        _ => throw new AvroRuntimeException($"Bad index {fieldPos} in Get()"),
    };

    public void Put(int fieldPos, object fieldValue)
    {
        switch (fieldPos)
        {
            case 0: Sku = (string)fieldValue; break;
            case 1: Quantity = (int)fieldValue; break;
            case 2: UnitPrice = (double)fieldValue; break;
            default: throw new AvroRuntimeException($"Bad index {fieldPos} in Put()");
        }
    }
}

/// <summary>The Avro order event through the same validation as the JSON one.</summary>
public sealed class OrderEventAvroTranslator : Kafka.Reliable.IMessageTranslator<OrderEventAvro, Order>
{
    private readonly OrderEventTranslator _json = new();

    public Order Translate(OrderEventAvro message, Kafka.Reliable.MessageContext context) => _json.Translate(message.ToMessage(), context);
}
