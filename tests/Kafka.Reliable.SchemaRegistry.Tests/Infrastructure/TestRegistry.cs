using System.Net.Http.Json;
using System.Text.Json;
using Confluent.SchemaRegistry;
using Kafka.Reliable.Testing;

namespace Kafka.Reliable.SchemaRegistry.Tests.Infrastructure;

/// <summary>
/// The Schema Registry the tests run against: the embedded one of <c>Kafka.Reliable.Testing</c> (a new one per test class
/// instance), or a real registry when <see cref="UrlVariable"/> is set. Against a real registry the tests that take the
/// registry down or count its requests are skipped (with the reason), and the subject the tests write under
/// (<c>orders-value</c>) is set to compatibility NONE first, since the tests register Avro, JSON and Protobuf schemas
/// under it: use a registry of the tests' own.
/// </summary>
public sealed class TestRegistry : IDisposable
{
    /// <summary>The environment variable naming a real registry to run the tests against, for example <c>http://localhost:8081</c>.</summary>
    public const string UrlVariable = "KAFKA_RELIABLE_SCHEMA_REGISTRY_URL";

    private static readonly HttpClient Http = new();
    private readonly EmbeddedSchemaRegistry? _embedded;
    private readonly CachedSchemaRegistryClient? _client;

    private TestRegistry(EmbeddedSchemaRegistry? embedded, string url)
    {
        _embedded = embedded;
        Url = url;
        if (embedded is null)
        {
            _client = new CachedSchemaRegistryClient(new SchemaRegistryConfig { Url = url });
            _client.UpdateCompatibilityAsync(Compatibility.None, TestSupport.Topic + "-value").GetAwaiter().GetResult();
        }
    }

    /// <summary>Gets the registry's URL.</summary>
    public string Url { get; }

    /// <summary>Gets how many requests the registry served (embedded registry only; skips the test against a real one).</summary>
    public int RequestCount => _embedded is { } embedded ? (int)embedded.RequestCount : Skip<int>("counting the registry's requests");

    public static TestRegistry Start() =>
        Environment.GetEnvironmentVariable(UrlVariable) is { Length: > 0 } url
            ? new TestRegistry(null, url.TrimEnd('/'))
            : Embedded(EmbeddedSchemaRegistry.Start());

    private static TestRegistry Embedded(EmbeddedSchemaRegistry registry) => new(registry, registry.Url);

    /// <summary>Takes the registry down (503 to every request) or brings it back (embedded registry only).</summary>
    public void SetAvailable(bool available)
    {
        if (_embedded is null)
        {
            Skip<int>("taking the registry down");
        }

        _embedded!.SetAvailable(available);
    }

    /// <summary>Registers a schema under a subject and returns its id.</summary>
    public int RegisterSchema(string subject, string schema, string schemaType = "AVRO") =>
        _embedded?.RegisterSchema(subject, schema, schemaType)
        ?? _client!.RegisterSchemaAsync(subject, new Schema(schema, Enum.Parse<SchemaType>(schemaType, ignoreCase: true))).GetAwaiter().GetResult();

    /// <summary>Reads the GUID the registry gave a schema (<c>GET /schemas/ids/{id}</c>).</summary>
    public Guid GuidOf(int id)
    {
        var url = Url + "/schemas/ids/" + id;
        var body = Http.GetFromJsonAsync<JsonElement>(url, TestContext.Current.CancellationToken).GetAwaiter().GetResult();
        return Guid.Parse(body.GetProperty("guid").GetString()!);
    }

    public void Dispose()
    {
        _embedded?.Dispose();
        _client?.Dispose();
    }

    private static T Skip<T>(string what)
    {
        Assert.Skip($"{what} needs the embedded Schema Registry; {UrlVariable} names a real one");
        return default!;
    }
}
