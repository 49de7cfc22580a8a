namespace Kafka.Reliable.SchemaRegistry;

/// <summary>The defaults and limits of <see cref="SchemaRegistryOptions"/>.</summary>
internal static class SchemaRegistryConstants
{
    /// <summary>Confluent's own default (<c>schema.registry.request.timeout.ms</c>).</summary>
    public static readonly TimeSpan DefaultRequestTimeout = TimeSpan.FromSeconds(30);

    /// <summary>A request the consumer would wait longer for holds its partition too long: wait with the retry policy instead.</summary>
    public static readonly TimeSpan MaxRequestTimeout = TimeSpan.FromMinutes(5);

    /// <summary>Confluent's own default (<c>schema.registry.max.cached.schemas</c>).</summary>
    public const int DefaultMaxCachedSchemas = 1000;

    /// <summary>
    /// One retry inside Confluent's client: the consumer's retry policy (backoff, circuit breaker, waiting) does the rest, so
    /// that a down registry fails an attempt quickly instead of holding it through Confluent's own backoff.
    /// </summary>
    public const int DefaultMaxRetries = 1;

    /// <summary>More retries inside one attempt only delay the consumer's own retry policy.</summary>
    public const int MaxMaxRetries = 10;

    /// <summary>The Confluent header a serializer writes the schema id (or GUID) of a record's value to, instead of a prefix.</summary>
    public const string ValueSchemaIdHeader = "__value_schema_id";
}
