using System.Globalization;

namespace Kafka.Reliable.SchemaRegistry;

/// <summary>The writer schema a record's value names: an id (the Confluent prefix, or a header) or a GUID (a header).</summary>
internal readonly record struct SchemaReference(int Id, Guid? Guid)
{
    /// <summary>Gets the id as the dead letter's <c>dlq-schema-id</c> header says it: the number, or the GUID.</summary>
    public override string ToString() => Guid is { } guid ? guid.ToString("D") : Id.ToString(CultureInfo.InvariantCulture);
}
