using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Kafka.Reliable.Benchmarks;

/// <summary>
/// Throwaway database servers for the stores harness, modelled on the idempotency tests' fixtures (Servers.cs there, which
/// are xunit fixtures): the machine's own binaries, a temp folder, a free port on 127.0.0.1, stopped and deleted after.
/// <see cref="Stop"/> is synchronous and idempotent so that it can also run when the process is interrupted.
/// </summary>
internal abstract class LocalServer : IAsyncDisposable
{
    private int _stopped;

    protected LocalServer(string directory) => Directory = directory;

    /// <summary>Gets the temp folder the server keeps its files in.</summary>
    public string Directory { get; }

    /// <summary>Gets a free TCP port on the loopback interface (free when asked; the server binds it right after).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Stops the server and deletes its folder; does nothing the second time.</summary>
    public void Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        try
        {
            StopServer();
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"Stopping the server in {Directory} failed: {e.Message}");
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"Could not delete {Directory}: {e.Message}");
        }
    }

    public ValueTask DisposeAsync()
    {
        Stop();
        return ValueTask.CompletedTask;
    }

    protected abstract void StopServer();

    protected static string Run(string file, IEnumerable<string> arguments, bool asPostgres = false)
    {
        var start = new ProcessStartInfo(asPostgres ? "runuser" : file) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (asPostgres)
        {
            foreach (var argument in new[] { "-u", "postgres", "--", file })
            {
                start.ArgumentList.Add(argument);
            }
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"'{file} {string.Join(' ', start.ArgumentList)}' exited with {process.ExitCode}: {error.Result} {output.Result}");
        }

        return output.Result;
    }
}

/// <summary>
/// A throwaway PostgreSQL server: <c>initdb</c> into a temp folder, <c>pg_ctl start</c> listening on 127.0.0.1 and a free
/// port (and a Unix socket in the same folder), <c>pg_ctl stop -m immediate</c> and the folder deleted after. As root it
/// runs as Debian's <c>postgres</c> user, since PostgreSQL refuses to run as root.
/// </summary>
internal sealed class LocalPostgres : LocalServer
{
    private readonly string _pgCtl;
    private readonly bool _asPostgres;
    private bool _started;

    private LocalPostgres(string directory, string pgCtl, bool asPostgres)
        : base(directory)
    {
        _pgCtl = pgCtl;
        _asPostgres = asPostgres;
    }

    public string ConnectionString { get; private set; } = string.Empty;

    private string Data => Path.Combine(Directory, "data");

    /// <summary>Finds the newest <c>/usr/lib/postgresql/*/bin</c> with <c>initdb</c>, or null.</summary>
    public static string? FindBinaries() =>
        System.IO.Directory.Exists("/usr/lib/postgresql")
            ? System.IO.Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "initdb")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), out var v) ? v : 0).FirstOrDefault()
            : null;

    /// <summary>Starts a server; <paramref name="fsync"/> is PostgreSQL's <c>fsync</c> setting (its default is on).</summary>
    public static LocalPostgres Start(string bin, bool fsync)
    {
        var directory = Path.Combine(Path.GetTempPath(), "kafka-reliable-bench-pg-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(directory);
        var asPostgres = Environment.UserName == "root";
        var server = new LocalPostgres(directory, Path.Combine(bin, "pg_ctl"), asPostgres);
        try
        {
            if (asPostgres)
            {
                Run("chown", ["-R", "postgres:postgres", directory]);
            }

            Run(Path.Combine(bin, "initdb"), ["-D", server.Data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"], asPostgres);
            var port = FreePort();
            server._started = true;
            Run(server._pgCtl, ["-D", server.Data, "-l", Path.Combine(directory, "server.log"), "-w", "-t", "60",
                "-o", $"-p {port.ToString(CultureInfo.InvariantCulture)} -k {directory} -c listen_addresses=127.0.0.1 -c fsync={(fsync ? "on" : "off")}", "start"], asPostgres);
            server.ConnectionString = $"Host=127.0.0.1;Port={port.ToString(CultureInfo.InvariantCulture)};Username=postgres;Database=postgres;Timeout=30";
            return server;
        }
        catch
        {
            server.Stop();
            throw;
        }
    }

    protected override void StopServer()
    {
        Npgsql.NpgsqlConnection.ClearAllPools();
        if (_started)
        {
            Run(_pgCtl, ["-D", Data, "-m", "immediate", "-w", "stop"], _asPostgres);
        }
    }
}

/// <summary>
/// A throwaway Redis server: <c>redis-server --port N --bind 127.0.0.1 --save '' --appendonly no</c> in a temp folder,
/// killed and the folder deleted after.
/// </summary>
internal sealed class LocalRedis : LocalServer
{
    private readonly Process _process;

    private LocalRedis(string directory, Process process, int port)
        : base(directory)
    {
        _process = process;
        Configuration = $"127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}";
    }

    public string Configuration { get; }

    public static string? FindBinary() => new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists);

    public static async Task<LocalRedis> StartAsync(string binary)
    {
        var directory = Path.Combine(Path.GetTempPath(), "kafka-reliable-bench-redis-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(directory);
        var port = FreePort();
        var start = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = directory };
        foreach (var argument in new[] { "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory })
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start)!;
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        var server = new LocalRedis(directory, process, port);
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (true)
            {
                try
                {
                    using var client = new TcpClient();
                    await client.ConnectAsync(IPAddress.Loopback, port);
                    return server;
                }
                catch (SocketException) when (DateTime.UtcNow < deadline && !process.HasExited)
                {
                    await Task.Delay(50);
                }
            }
        }
        catch
        {
            server.Stop();
            throw;
        }
    }

    protected override void StopServer()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }

        _process.Dispose();
    }
}
