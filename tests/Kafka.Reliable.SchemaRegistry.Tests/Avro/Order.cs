using Avro;
using Avro.Specific;

namespace Kafka.Reliable.SchemaRegistry.Tests.Avro;

/// <summary>
/// An Avro specific record as avrogen writes one (written by hand: avrogen is not a dependency of the tests). Version 2 of
/// the order schema: <see cref="OrderSchemas.V1"/> without the <c>currency</c> field, which has a default.
/// </summary>
public sealed class Order : ISpecificRecord
{
    public static readonly Schema _SCHEMA = Schema.Parse(OrderSchemas.V2);

    public string Id { get; set; } = string.Empty;

    public int Quantity { get; set; }

    public string Currency { get; set; } = "EUR";

    public Schema Schema => _SCHEMA;

    public object Get(int fieldPos) => fieldPos switch
    {
        0 => Id,
        1 => Quantity,
        2 => Currency,
        _ => throw new AvroRuntimeException($"Bad index {fieldPos} in Get()"),
    };

    public void Put(int fieldPos, object fieldValue)
    {
        switch (fieldPos)
        {
            case 0: Id = (string)fieldValue; break;
            case 1: Quantity = (int)fieldValue; break;
            case 2: Currency = (string)fieldValue; break;
            default: throw new AvroRuntimeException($"Bad index {fieldPos} in Put()");
        }
    }
}

public static class OrderSchemas
{
    public const string V1 = """
        {"type":"record","name":"Order","namespace":"Kafka.Reliable.SchemaRegistry.Tests.Avro","fields":[
          {"name":"Id","type":"string"},{"name":"Quantity","type":"int"}]}
        """;

    public const string V2 = """
        {"type":"record","name":"Order","namespace":"Kafka.Reliable.SchemaRegistry.Tests.Avro","fields":[
          {"name":"Id","type":"string"},{"name":"Quantity","type":"int"},{"name":"Currency","type":"string","default":"EUR"}]}
        """;

    /// <summary>The same record with a field the reader cannot resolve: Quantity is a string.</summary>
    public const string Incompatible = """
        {"type":"record","name":"Order","namespace":"Kafka.Reliable.SchemaRegistry.Tests.Avro","fields":[
          {"name":"Id","type":"string"},{"name":"Quantity","type":"string"}]}
        """;
}
