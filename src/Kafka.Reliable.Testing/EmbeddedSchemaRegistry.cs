using System.Collections.Concurrent;
using System.Globalization;
using Kafka.Reliable.Testing.SchemaRegistry;

namespace Kafka.Reliable.Testing;

/// <summary>
/// An in-process Confluent Schema Registry for tests: an HTTP server on a free <c>127.0.0.1</c> port that answers the
/// part of the Schema Registry REST API used by Confluent's <c>CachedSchemaRegistryClient</c> and its Avro, JSON Schema
/// and Protobuf serializers and deserializers. Pass <see cref="Url"/> as <c>SchemaRegistryConfig.Url</c>.
/// State lives in memory and dies with the instance. No Docker, no JVM, starts in milliseconds.
/// </summary>
/// <remarks>
/// <para>
/// Endpoints: <c>POST /subjects/{subject}/versions</c> (register), <c>POST /subjects/{subject}</c> (look up),
/// <c>GET /schemas/ids/{id}</c> (also <c>/schema</c>, <c>/subjects</c>, <c>/versions</c> under it),
/// <c>GET /schemas/guids/{guid}</c>, <c>GET /schemas/types</c>, <c>GET /subjects</c>, <c>GET /subjects/{subject}/versions</c>,
/// <c>GET|DELETE /subjects/{subject}/versions/{version|latest}</c> (and <c>/schema</c> under it), <c>DELETE /subjects/{subject}</c>,
/// <c>POST /compatibility/subjects/{subject}/versions[/{version|latest}]</c>, <c>GET|PUT /config</c>,
/// <c>GET|PUT|DELETE /config/{subject}</c>, <c>GET /mode</c>. Errors are the registry's:
/// <c>{"error_code": 40403, "message": "..."}</c> with its HTTP status. Anything else, such as the association lookup
/// that the 2.16 serializers make once per topic (<c>GET /associations/...</c>), is answered 404 like a registry
/// without that API, and the client falls back to its subject name strategy.
/// </para>
/// <para>
/// Compatibility (default level BACKWARD) is checked for Avro only, on registration (409, error code 409) and by the
/// compatibility endpoints: reader/writer resolution of records, defaults, promotions, enums, fixed sizes, unions and
/// logical types (named types match by unqualified name; their aliases are not honoured, fields' aliases are), for every level (NONE, BACKWARD, FORWARD, FULL and their _TRANSITIVE forms). JSON Schema and Protobuf
/// schemas are always compatible with their subject's earlier versions of the same type (JSON Schema text must parse
/// as JSON; Protobuf text is not parsed). An invalid schema is refused with 422, error code 42201.
/// </para>
/// <para>
/// Not implemented: authentication, TLS, schema contexts, modes other than READWRITE, soft deletion (a deleted
/// version is gone, though its id stays readable), metadata and rule sets (accepted, ignored), the
/// <c>format=serialized</c> Protobuf rendering, and resolving schema references (they are stored as given; an Avro
/// schema with references is not parsed, so it is neither validated nor checked for compatibility). Two schemas are
/// the same schema when their Avro parsed form, minified JSON, or exact Protobuf text is equal.
/// </para>
/// </remarks>
public sealed class EmbeddedSchemaRegistry : IDisposable, IAsyncDisposable
{
    private readonly RegistryStore _store = new();
    private readonly LoopbackHttpServer _server;
    private volatile bool _available = true;
    private long _latencyTicks;
    private long _requestCount;
    private readonly ConcurrentQueue<string> _requests = new();
    private int _disposed;

    private EmbeddedSchemaRegistry()
    {
        _server = new LoopbackHttpServer(HandleAsync);
        Url = string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{_server.Port}");
    }

    /// <summary>Gets the registry's address, <c>http://127.0.0.1:port</c>, for <c>SchemaRegistryConfig.Url</c>.</summary>
    public string Url { get; }

    /// <summary>Gets the number of HTTP requests the registry has answered, including those refused while unavailable.</summary>
    /// <remarks>Counted before the answer is sent, so a client call that has returned is already counted.</remarks>
    public long RequestCount => Interlocked.Read(ref _requestCount);

    /// <summary>Gets the requests answered so far, in the order received, as <c>METHOD /path?query</c> (for example
    /// <c>GET /schemas/ids/1?subject=orders-value</c>), including those refused while unavailable.</summary>
    /// <returns>A copy of the list.</returns>
    /// <remarks>Use it to see what a client asked for, and how often (its caches, its retries).</remarks>
    public IReadOnlyList<string> GetRequests() => [.. _requests];

    /// <summary>Gets a value indicating whether the registry answers requests (see <see cref="SetAvailable"/>).</summary>
    public bool IsAvailable => _available;

    /// <summary>Starts an empty registry on a free 127.0.0.1 port.</summary>
    /// <returns>The running registry.</returns>
    public static EmbeddedSchemaRegistry Start() => new();

    /// <summary>Makes the registry unavailable or available again, on the same port, keeping its schemas.</summary>
    /// <param name="available">
    /// <see langword="false"/>: every request is answered <c>503 Service Unavailable</c> with
    /// <c>{"error_code": 50003, "message": "..."}</c>; <see langword="true"/>: requests are served again.
    /// </param>
    /// <remarks>
    /// Confluent.SchemaRegistry 2.16.0 retries a 503 (<c>schema.registry.max.retries</c> requests in all, with a jittered
    /// backoff of <c>schema.registry.retries.wait.ms</c>), then throws a <c>SchemaRegistryException</c> (an
    /// <see cref="HttpRequestException"/>) with <c>Status</c> 503 and <c>ErrorCode</c> 50003. Other versions of the client
    /// may throw a plain <see cref="HttpRequestException"/> instead: catch that type. A failed call is not cached by the
    /// client, so the same call succeeds once the registry is available again.
    /// </remarks>
    public void SetAvailable(bool available)
    {
        ThrowIfDisposed();
        _available = available;
    }

    /// <summary>Delays every answer, for tests of a slow registry (and of client timeouts).</summary>
    /// <param name="latency">The delay before each answer; <see cref="TimeSpan.Zero"/> for none.</param>
    public void SetLatency(TimeSpan latency)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(latency, TimeSpan.Zero);
        ThrowIfDisposed();
        Interlocked.Exchange(ref _latencyTicks, latency.Ticks);
    }

    /// <summary>
    /// Registers a schema under a subject, as a client's <c>POST /subjects/{subject}/versions</c> would (same checks, same
    /// id for the same schema), without HTTP: it works while the registry is unavailable and is not counted in
    /// <see cref="RequestCount"/>.
    /// </summary>
    /// <param name="subject">The subject, for example <c>orders-value</c>.</param>
    /// <param name="schema">The schema text.</param>
    /// <param name="schemaType"><c>AVRO</c>, <c>JSON</c> or <c>PROTOBUF</c> (any case).</param>
    /// <returns>The schema's id, as written in the serialized records.</returns>
    /// <exception cref="ArgumentException">The schema or its type is invalid (the registry's 422).</exception>
    /// <exception cref="InvalidOperationException">The schema is incompatible with the subject's earlier versions (the registry's 409).</exception>
    public int RegisterSchema(string subject, string schema, string schemaType = "AVRO")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(subject);
        ArgumentNullException.ThrowIfNull(schema);
        ArgumentNullException.ThrowIfNull(schemaType);
        ThrowIfDisposed();
        try
        {
            return _store.Register(subject, schema, schemaType);
        }
        catch (RegistryError error) when (error.StatusCode == 422)
        {
            throw new ArgumentException($"The registry refused the schema ({error.ErrorCode}): {error.Message}", nameof(schema), error);
        }
        catch (RegistryError error)
        {
            throw new InvalidOperationException($"The registry refused the schema ({error.ErrorCode}): {error.Message}", error);
        }
    }

    /// <summary>Stops the server and closes its connections. Its port is released; its schemas are gone.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _server.Dispose();
        }
    }

    /// <inheritdoc cref="Dispose"/>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task<RegistryResponse> HandleAsync(HttpRequestData request, CancellationToken cancellationToken)
    {
        var latency = TimeSpan.FromTicks(Interlocked.Read(ref _latencyTicks));
        if (latency > TimeSpan.Zero)
        {
            await Task.Delay(latency, cancellationToken);
        }

        _requests.Enqueue(request.Method + " " + request.Target);
        Interlocked.Increment(ref _requestCount);
        if (!_available)
        {
            return new RegistryError(503, 50003, "The embedded schema registry is unavailable (EmbeddedSchemaRegistry.SetAvailable(false)).").ToResponse();
        }

        return _store.Handle(request.Method, request.Path, request.Query, request.Body);
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this);
}
