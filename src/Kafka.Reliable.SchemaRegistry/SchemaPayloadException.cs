using Kafka.Reliable.DeadLetter;

namespace Kafka.Reliable.SchemaRegistry;

/// <summary>Why a record's value cannot be read with the Schema Registry.</summary>
public enum SchemaPayloadFailure
{
    /// <summary>The value is not in the Confluent wire format: empty, shorter than 5 bytes, or a first byte other than 0, and no schema id header.</summary>
    NotFramed,

    /// <summary>The registry does not know the value's schema id (HTTP 404, error code 40403).</summary>
    UnknownSchema,

    /// <summary>The bytes do not match the writer schema, or the reader cannot resolve the writer schema (or, for Protobuf, the message index points elsewhere).</summary>
    SchemaMismatch,
}

/// <summary>
/// Thrown by the Schema Registry deserializers when a record's value cannot be read, whoever asks: the record is poison,
/// dead-lettered at stage <c>deserialize</c> without a retry. When the value names its schema, the dead letter carries the
/// id in the <c>dlq-schema-id</c> header (<see cref="DeadLetterHeaders.SchemaId"/>). It is a <see cref="FormatException"/>
/// (<see cref="InvalidDataException"/> is sealed), which the default exception classification also holds fatal.
/// </summary>
public sealed class SchemaPayloadException : FormatException, IDeadLetterHeaderSource
{
    /// <summary>Initializes a new instance of the <see cref="SchemaPayloadException"/> class.</summary>
    public SchemaPayloadException()
        : this("The record's value cannot be read with its schema.")
    {
    }

    /// <summary>Initializes a new instance of the <see cref="SchemaPayloadException"/> class.</summary>
    /// <param name="message">What is wrong with the value.</param>
    public SchemaPayloadException(string message)
        : this(message, innerException: null)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="SchemaPayloadException"/> class.</summary>
    /// <param name="message">What is wrong with the value.</param>
    /// <param name="innerException">The deserializer's own exception.</param>
    public SchemaPayloadException(string message, Exception? innerException)
        : this(SchemaPayloadFailure.SchemaMismatch, schemaId: null, message, innerException)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="SchemaPayloadException"/> class.</summary>
    /// <param name="failure">Why the value cannot be read.</param>
    /// <param name="schemaId">The schema id (or GUID) the value names, when it names one.</param>
    /// <param name="message">What is wrong with the value.</param>
    /// <param name="innerException">The deserializer's own exception.</param>
    public SchemaPayloadException(SchemaPayloadFailure failure, string? schemaId, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Failure = failure;
        SchemaId = schemaId;
        DeadLetterHeaders = schemaId is null ? [] : [new(Kafka.Reliable.DeadLetter.DeadLetterHeaders.SchemaId, schemaId)];
    }

    /// <summary>Gets why the value cannot be read.</summary>
    public SchemaPayloadFailure Failure { get; }

    /// <summary>Gets the schema id (or, from a header, GUID) the value names; <see langword="null"/> when it names none.</summary>
    public string? SchemaId { get; }

    /// <summary>Gets the <c>dlq-schema-id</c> header when the value names a schema; no header otherwise.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> DeadLetterHeaders { get; }
}
