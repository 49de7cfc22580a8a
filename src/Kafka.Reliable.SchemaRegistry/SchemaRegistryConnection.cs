using Confluent.SchemaRegistry;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable.SchemaRegistry;

/// <summary>
/// A consumer's registry: its own <see cref="CachedSchemaRegistryClient"/> (disposed with the host, as a singleton of the
/// container) or the application's client (never disposed here), and how to name it in messages without credentials.
/// </summary>
internal sealed class SchemaRegistryConnection : IDisposable
{
    private readonly ISchemaRegistryClient? _owned;

    public SchemaRegistryConnection(ISchemaRegistryClient client, string description, int maxCachedSchemas, bool owned)
    {
        Client = client;
        Description = description;
        MaxCachedSchemas = maxCachedSchemas;
        _owned = owned ? client : null;
    }

    /// <summary>Gets the client the deserializers look schemas up with; it caches them by id.</summary>
    public ISchemaRegistryClient Client { get; }

    /// <summary>Gets the registry as messages name it, for example <c>The Schema Registry at http://registry:8081</c>: never its credentials.</summary>
    public string Description { get; }

    /// <summary>Gets the bound of the Protobuf deserializer's own cache of parsed schemas.</summary>
    public int MaxCachedSchemas { get; }

    /// <summary>Connects a consumer to the registry its options name, or to the application's client.</summary>
    public static SchemaRegistryConnection Create(string consumerName, SchemaRegistryOptions options, IServiceProvider services)
    {
        if (string.IsNullOrWhiteSpace(options.Url))
        {
            var client = services.GetKeyedService<ISchemaRegistryClient>(consumerName) ?? services.GetRequiredService<ISchemaRegistryClient>();
            return new SchemaRegistryConnection(client, "The application's Schema Registry client", options.MaxCachedSchemas, owned: false);
        }

        var config = new SchemaRegistryConfig
        {
            // Confluent's client takes each URL as it is: 'http://a, http://b' would make ' http://b' unparsable.
            Url = string.Join(',', SplitUrls(options.Url)),
            RequestTimeoutMs = (int)Math.Ceiling(options.RequestTimeout.TotalMilliseconds),
            MaxCachedSchemas = options.MaxCachedSchemas,
            LatestCacheTtlSecs = options.LatestCacheTtl is { } ttl ? (int)Math.Ceiling(ttl.TotalSeconds) : -1,
            // Confluent's setting counts every attempt of a request, the first included.
            MaxRetries = options.MaxRetries + 1,
        };
        if (!string.IsNullOrEmpty(options.BasicAuthUserInfo))
        {
            config.BasicAuthCredentialsSource = AuthCredentialsSource.UserInfo;
            config.BasicAuthUserInfo = options.BasicAuthUserInfo;
        }

        return new SchemaRegistryConnection(new CachedSchemaRegistryClient(config), $"The Schema Registry at {Urls(options.Url)}", options.MaxCachedSchemas, owned: true);
    }

    /// <summary>Gets the URLs of a comma-separated list, trimmed, in order.</summary>
    public static string[] SplitUrls(string urls) => urls.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    public void Dispose() => _owned?.Dispose();

    private static string Urls(string urls) => string.Join(", ", SplitUrls(urls));
}
