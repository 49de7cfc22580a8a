namespace Kafka.Reliable.DeadLetter;

/// <summary>
/// Implemented by an exception that knows more about why a record failed than its type and message: the headers it gives
/// are added to the record's dead letter, besides the provenance headers (<see cref="DeadLetterHeaders"/>). For example,
/// the schema id of a payload that does not match its schema.
/// </summary>
public interface IDeadLetterHeaderSource
{
    /// <summary>Gets the headers to add to the dead letter: names (prefer a <c>dlq-</c> prefix) and UTF-8 text values.</summary>
    IReadOnlyList<KeyValuePair<string, string>> DeadLetterHeaders { get; }
}
