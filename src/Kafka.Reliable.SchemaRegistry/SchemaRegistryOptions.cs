namespace Kafka.Reliable.SchemaRegistry;

/// <summary>
/// How a consumer reaches its Schema Registry: named options (the consumer's name), bindable from configuration (for example
/// the section <c>Kafka:Orders:SchemaRegistry</c>) and validated when the host starts.
/// </summary>
public sealed class SchemaRegistryOptions
{
    /// <summary>
    /// Gets or sets the registry's URL, or several separated by commas (tried in turn): absolute <c>http</c> or <c>https</c>
    /// URLs without credentials (put those in <see cref="BasicAuthUserInfo"/>). The consumer makes its own client, disposed with
    /// the host. Leave it empty to use the application's <c>ISchemaRegistryClient</c>: the one registered with the consumer's
    /// name as its key, otherwise the one registered without a key.
    /// </summary>
    /// <value>The default value is empty: the application's client.</value>
    public string Url { get; set; } = string.Empty;

    /// <summary>
    /// Gets or sets the basic authentication credentials, <c>user:password</c>. They are sent to the registry and never written
    /// to logs, exception messages or dead letters.
    /// </summary>
    /// <value>The default value is <see langword="null"/>: no authentication.</value>
    public string? BasicAuthUserInfo { get; set; }

    /// <summary>
    /// Gets or sets how long one request to the registry may take. A request that takes longer fails the record's attempt
    /// as an unavailable registry: the record waits and tries again, it is never dead-lettered for it.
    /// </summary>
    /// <value>The default value is 30 seconds; at most 5 minutes.</value>
    public TimeSpan RequestTimeout { get; set; } = SchemaRegistryConstants.DefaultRequestTimeout;

    /// <summary>Gets or sets how many schemas the client keeps in memory (by id); the cache is emptied when it is full.</summary>
    /// <value>The default value is 1000.</value>
    public int MaxCachedSchemas { get; set; } = SchemaRegistryConstants.DefaultMaxCachedSchemas;

    /// <summary>
    /// Gets or sets how long the client keeps a subject's latest version (only read by deserializers configured to use the
    /// latest version); <see langword="null"/> keeps it for the life of the client.
    /// </summary>
    /// <value>The default value is <see langword="null"/>: no expiry.</value>
    public TimeSpan? LatestCacheTtl { get; set; }

    /// <summary>
    /// Gets or sets how many times the client retries a request that failed for the registry (unreachable, timed out, 408,
    /// 429, 5xx) within one attempt of the record. The consumer's retry policy retries the record after that.
    /// </summary>
    /// <value>The default value is 1; between 0 and 10.</value>
    public int MaxRetries { get; set; } = SchemaRegistryConstants.DefaultMaxRetries;
}
