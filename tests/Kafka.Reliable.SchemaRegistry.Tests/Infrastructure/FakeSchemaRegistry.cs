using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kafka.Reliable.SchemaRegistry.Tests.Infrastructure;

/// <summary>
/// A tiny Schema Registry on 127.0.0.1 for these tests: <c>GET /schemas/ids/{id}</c>, <c>GET /schemas/guids/{guid}</c> and
/// <c>POST /subjects/{subject}/versions</c>; any other path answers 404 as the registry does. It can be switched to answer 503.
/// Its members are those of <c>Kafka.Reliable.Testing.EmbeddedSchemaRegistry</c> (<c>Start</c>, <c>Url</c>, <c>SetAvailable</c>,
/// <c>RegisterSchema</c>, <c>RequestCount</c>), so that the tests can move to that one when it ships.
/// </summary>
public sealed class FakeSchemaRegistry : IDisposable
{
    private readonly HttpListener _listener;
    private readonly ConcurrentDictionary<int, (string Schema, string Type, Guid Guid)> _schemas = new();
    private readonly ConcurrentDictionary<string, int> _ids = new();
    private readonly Task _loop;
    private int _nextId;
    private int _requests;
    private volatile bool _available = true;

    private FakeSchemaRegistry(HttpListener listener, string url)
    {
        _listener = listener;
        Url = url;
        _loop = Task.Run(ServeAsync);
    }

    /// <summary>Gets the registry's URL, for example <c>http://127.0.0.1:41234</c>.</summary>
    public string Url { get; }

    /// <summary>Gets how many HTTP requests the registry received (answered or refused).</summary>
    public int RequestCount => Volatile.Read(ref _requests);

    public static FakeSchemaRegistry Start()
    {
        for (var attempt = 0; ; attempt++)
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            var url = $"http://127.0.0.1:{port}";
            var listener = new HttpListener();
            listener.Prefixes.Add(url + "/");
            try
            {
                listener.Start();
                return new FakeSchemaRegistry(listener, url);
            }
            catch (HttpListenerException) when (attempt < 10)
            {
                // The port was taken between the probe and the start: take another.
                listener.Close();
            }
        }
    }

    /// <summary>Makes every request answer 503 (false) or be served again (true).</summary>
    public void SetAvailable(bool available) => _available = available;

    /// <summary>Registers a schema under a subject and returns its id (the same text and type get the same id, as in the registry).</summary>
    public int RegisterSchema(string subject, string schema, string schemaType = "AVRO")
    {
        _ = subject;
        return _ids.GetOrAdd(schemaType + "\n" + schema, _ =>
        {
            var id = Interlocked.Increment(ref _nextId);
            _schemas[id] = (schema, schemaType, Guid.NewGuid());
            return id;
        });
    }

    /// <summary>Gets the GUID the registry gave a schema.</summary>
    public Guid GuidOf(int id) => _schemas[id].Guid;

    public void Dispose()
    {
        _listener.Close();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            Interlocked.Increment(ref _requests);
            try
            {
                await AnswerAsync(context);
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or IOException)
            {
                // The client went away.
            }
        }
    }

    private async Task AnswerAsync(HttpListenerContext context)
    {
        var request = context.Request;
        var path = request.Url!.AbsolutePath.TrimEnd('/');
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (!_available)
        {
            await WriteAsync(context, 503, new JsonObject { ["error_code"] = 50301, ["message"] = "Service unavailable (test)" });
        }
        else if (request.HttpMethod == "GET" && segments is ["schemas", "ids", var idText] && int.TryParse(idText, out var id) && _schemas.TryGetValue(id, out var byId))
        {
            await WriteAsync(context, 200, SchemaJson(id, byId));
        }
        else if (request.HttpMethod == "GET" && segments is ["schemas", "guids", var guidText] && Guid.TryParse(guidText, out var guid)
            && _schemas.FirstOrDefault(s => s.Value.Guid == guid) is { Value.Schema: not null } byGuid)
        {
            await WriteAsync(context, 200, SchemaJson(byGuid.Key, byGuid.Value));
        }
        else if (request.HttpMethod == "GET" && segments is ["schemas", "ids" or "guids", _])
        {
            await WriteAsync(context, 404, new JsonObject { ["error_code"] = 40403, ["message"] = "Schema not found" });
        }
        else if (request.HttpMethod == "POST" && segments is ["subjects", var subject, "versions"])
        {
            using var reader = new StreamReader(request.InputStream, Encoding.UTF8);
            var body = JsonNode.Parse(await reader.ReadToEndAsync())!;
            var registered = RegisterSchema(Uri.UnescapeDataString(subject), (string)body["schema"]!, (string?)body["schemaType"] ?? "AVRO");
            await WriteAsync(context, 200, new JsonObject { ["id"] = registered, ["guid"] = _schemas[registered].Guid.ToString("D") });
        }
        else
        {
            await WriteAsync(context, 404, new JsonObject { ["error_code"] = 40401, ["message"] = $"Not found: {request.HttpMethod} {path}" });
        }
    }

    private static JsonObject SchemaJson(int id, (string Schema, string Type, Guid Guid) schema) => new()
    {
        ["id"] = id,
        ["guid"] = schema.Guid.ToString("D"),
        ["schema"] = schema.Schema,
        ["schemaType"] = schema.Type,
        ["references"] = new JsonArray(),
    };

    private static async Task WriteAsync(HttpListenerContext context, int status, JsonObject body)
    {
        var bytes = Encoding.UTF8.GetBytes(body.ToJsonString(JsonSerializerOptions.Default));
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/vnd.schemaregistry.v1+json";
        context.Response.ContentLength64 = bytes.Length;
        await context.Response.OutputStream.WriteAsync(bytes);
        context.Response.Close();
    }
}
