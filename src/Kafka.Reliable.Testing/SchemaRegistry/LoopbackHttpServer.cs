using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Kafka.Reliable.Testing.SchemaRegistry;

/// <summary>One parsed HTTP request.</summary>
internal sealed record HttpRequestData(string Method, string Target, string Path, IReadOnlyDictionary<string, string> Query, string Body);

/// <summary>
/// A minimal HTTP/1.1 server on a free 127.0.0.1 port: persistent connections, <c>Content-Length</c> and chunked request
/// bodies, one request at a time per connection. Enough for <see cref="HttpClient"/>; not a general web server.
/// </summary>
internal sealed class LoopbackHttpServer : IDisposable
{
    private const int MaxHeaderBytes = 64 * 1024;
    private const int MaxBodyBytes = 16 * 1024 * 1024;

    private readonly TcpListener _listener;
    private readonly Func<HttpRequestData, CancellationToken, Task<RegistryResponse>> _handle;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<TcpClient, Task> _connections = new();
    private readonly Task _acceptLoop;
    private int _disposed;

    public LoopbackHttpServer(Func<HttpRequestData, CancellationToken, Task<RegistryResponse>> handle)
    {
        _handle = handle;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public int Port { get; }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _stopping.Cancel();
        _listener.Stop();
        foreach (var connection in _connections.Keys)
        {
            connection.Dispose();
        }

        // The loops end on the cancellation or the closed sockets; do not hang a test run if one does not.
        try
        {
            _ = Task.WhenAll(_connections.Values.Append(_acceptLoop)).Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // Ended, which is all that matters here.
        }
    }

    private async Task AcceptLoopAsync()
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(token);
            }
            catch (Exception) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }

            client.NoDelay = true;
            var served = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _connections[client] = served.Task;
            _ = Task.Run(async () =>
            {
                try
                {
                    await ServeAsync(client, token);
                }
                catch (Exception)
                {
                    // A connection that breaks (client gone, server stopping) just ends.
                }
                finally
                {
                    client.Dispose();
                    _connections.TryRemove(client, out _);
                    served.TrySetResult();
                }
            }, CancellationToken.None);
        }
    }

    private async Task ServeAsync(TcpClient client, CancellationToken token)
    {
        var stream = client.GetStream();
        var reader = new Reader(stream);
        while (!token.IsCancellationRequested)
        {
            var requestLine = await reader.ReadLineAsync(token);
            if (requestLine is null)
            {
                return; // the client closed the connection
            }

            if (requestLine.Length == 0)
            {
                continue; // tolerated between requests
            }

            var parts = requestLine.Split(' ');
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            string? line;
            var headerBytes = 0;
            while ((line = await reader.ReadLineAsync(token)) is { Length: > 0 })
            {
                headerBytes += line.Length;
                var colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon <= 0 || headerBytes > MaxHeaderBytes)
                {
                    await WriteAsync(stream, new RegistryResponse(400, """{"error_code":400,"message":"Bad request header"}"""), close: true, token);
                    return;
                }

                headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
            }

            if (line is null || parts.Length != 3 || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
            {
                return;
            }

            byte[] body;
            if (headers.TryGetValue("Transfer-Encoding", out var encoding) && encoding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
            {
                body = await ReadChunkedAsync(reader, token);
            }
            else if (headers.TryGetValue("Content-Length", out var lengthText))
            {
                if (!int.TryParse(lengthText, NumberStyles.None, CultureInfo.InvariantCulture, out var length) || length > MaxBodyBytes)
                {
                    await WriteAsync(stream, new RegistryResponse(400, """{"error_code":400,"message":"Bad Content-Length"}"""), close: true, token);
                    return;
                }

                body = await reader.ReadExactlyAsync(length, token);
            }
            else
            {
                body = [];
            }

            var close = parts[2] == "HTTP/1.0"
                        || (headers.TryGetValue("Connection", out var connection) && connection.Contains("close", StringComparison.OrdinalIgnoreCase));
            var (path, query) = SplitTarget(parts[1]);
            var response = await _handle(new HttpRequestData(parts[0].ToUpperInvariant(), parts[1], path, query, Encoding.UTF8.GetString(body)), token);
            await WriteAsync(stream, response, close, token);
            if (close)
            {
                return;
            }
        }
    }

    private static async Task<byte[]> ReadChunkedAsync(Reader reader, CancellationToken token)
    {
        using var body = new MemoryStream();
        while (true)
        {
            var sizeLine = await reader.ReadLineAsync(token) ?? throw new IOException("The connection closed inside a chunked body.");
            var semicolon = sizeLine.IndexOf(';', StringComparison.Ordinal);
            var size = int.Parse(semicolon < 0 ? sizeLine : sizeLine[..semicolon], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (size == 0)
            {
                // Trailers, up to the empty line.
                while (await reader.ReadLineAsync(token) is { Length: > 0 })
                {
                }

                return body.ToArray();
            }

            if (body.Length + size > MaxBodyBytes)
            {
                throw new IOException("The request body is too large.");
            }

            body.Write(await reader.ReadExactlyAsync(size, token));
            _ = await reader.ReadLineAsync(token);
        }
    }

    private static (string Path, Dictionary<string, string> Query) SplitTarget(string target)
    {
        var query = new Dictionary<string, string>(StringComparer.Ordinal);
        var mark = target.IndexOf('?', StringComparison.Ordinal);
        if (mark < 0)
        {
            return (target, query);
        }

        foreach (var pair in target[(mark + 1)..].Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            var name = Uri.UnescapeDataString((equals < 0 ? pair : pair[..equals]).Replace('+', ' '));
            query[name] = equals < 0 ? string.Empty : Uri.UnescapeDataString(pair[(equals + 1)..].Replace('+', ' '));
        }

        return (target[..mark], query);
    }

    private static async Task WriteAsync(NetworkStream stream, RegistryResponse response, bool close, CancellationToken token)
    {
        var body = Encoding.UTF8.GetBytes(response.Body);
        var head = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {response.StatusCode} {ReasonPhrase(response.StatusCode)}\r\n")
            .Append("Content-Type: application/vnd.schemaregistry.v1+json\r\n")
            .Append(CultureInfo.InvariantCulture, $"Content-Length: {body.Length}\r\n")
            .Append(close ? "Connection: close\r\n" : string.Empty)
            .Append("\r\n")
            .ToString();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head), token);
        await stream.WriteAsync(body, token);
        await stream.FlushAsync(token);
    }

    private static string ReasonPhrase(int status) => status switch
    {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };

    /// <summary>Buffered reads of CRLF lines and exact byte counts from the connection.</summary>
    private sealed class Reader(NetworkStream stream)
    {
        private readonly byte[] _buffer = new byte[8192];
        private int _start;
        private int _end;

        /// <summary>Reads one line without its CRLF (a bare LF is accepted); null when the connection ends first.</summary>
        public async Task<string?> ReadLineAsync(CancellationToken token)
        {
            var line = new List<byte>();
            while (true)
            {
                if (_start == _end && !await FillAsync(token))
                {
                    return null;
                }

                while (_start < _end)
                {
                    var b = _buffer[_start++];
                    if (b == (byte)'\n')
                    {
                        if (line.Count > 0 && line[^1] == (byte)'\r')
                        {
                            line.RemoveAt(line.Count - 1);
                        }

                        return Encoding.ASCII.GetString([.. line]);
                    }

                    line.Add(b);
                    if (line.Count > MaxHeaderBytes)
                    {
                        throw new IOException("A request line or header is too long.");
                    }
                }
            }
        }

        public async Task<byte[]> ReadExactlyAsync(int count, CancellationToken token)
        {
            var result = new byte[count];
            var copied = 0;
            while (copied < count)
            {
                if (_start == _end && !await FillAsync(token))
                {
                    throw new IOException("The connection closed inside a request body.");
                }

                var n = Math.Min(count - copied, _end - _start);
                Array.Copy(_buffer, _start, result, copied, n);
                _start += n;
                copied += n;
            }

            return result;
        }

        private async Task<bool> FillAsync(CancellationToken token)
        {
            _start = 0;
            _end = await stream.ReadAsync(_buffer, token);
            return _end > 0;
        }
    }
}
