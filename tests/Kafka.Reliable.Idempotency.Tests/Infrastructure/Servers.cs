using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Kafka.Reliable.Testing;
using Npgsql;

namespace Kafka.Reliable.Idempotency.Tests.Infrastructure;

/// <summary>
/// A throwaway PostgreSQL server: <c>initdb</c> and <c>pg_ctl</c> from the machine's binaries into a temp folder, on a free
/// loopback port, stopped and deleted after the tests. <c>KAFKA_RELIABLE_POSTGRES</c> points the tests at an existing server instead.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    public const string Variable = "KAFKA_RELIABLE_POSTGRES";
    private string? _directory;
    private string? _pgCtl;
    private int _port;

    public string ConnectionString { get; private set; } = string.Empty;

    /// <summary>Gets whether this fixture started the server itself (and so can stop and start it).</summary>
    public bool IsLocal => _directory is not null;

    /// <summary>Gets PostgreSQL's <c>fsync</c> setting for a server this fixture starts: off for the tests, on (PostgreSQL's default) to measure commits.</summary>
    public bool Fsync { get; init; }

    public async ValueTask InitializeAsync()
    {
        if (Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } existing)
        {
            ConnectionString = existing;
            return;
        }

        var bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "initdb")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), out var v) ? v : 0).FirstOrDefault()
            : null;
        if (bin is null)
        {
            throw new InvalidOperationException(
                $"PostgreSQL's initdb was not found under /usr/lib/postgresql/*/bin: install Debian's 'postgresql' package (scripts/test.sh does), or set {Variable} to a connection string.");
        }

        _directory = Path.Combine(Path.GetTempPath(), "kafka-reliable-pg-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_directory);
        var data = Path.Combine(_directory, "data");
        var port = _port = FreePort.Next();
        _pgCtl = Path.Combine(bin, "pg_ctl");

        // PostgreSQL refuses to run as root: run it as the 'postgres' user that Debian's package creates.
        var asRoot = Environment.UserName == "root";
        if (asRoot)
        {
            await Run("chown", ["-R", "postgres:postgres", _directory]);
        }

        await Run(Path.Combine(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"], asRoot);
        await StartAsync();
        ConnectionString = $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Maximum Pool Size=100;Timeout=30";
    }

    /// <summary>Stops the server at once (an outage: connections are cut, nothing is lost but what was not committed).</summary>
    public Task StopAsync() =>
        Run(_pgCtl!, ["-D", Path.Combine(_directory!, "data"), "-m", "immediate", "-w", "stop"], Environment.UserName == "root");

    /// <summary>Starts the server (again) on its port.</summary>
    public Task StartAsync() =>
        Run(_pgCtl!, ["-D", Path.Combine(_directory!, "data"), "-l", Path.Combine(_directory!, "server.log"), "-w", "-t", "60",
            "-o", $"-p {_port} -k {_directory} -c listen_addresses=127.0.0.1 -c fsync={(Fsync ? "on" : "off")} -c max_connections=300", "start"], Environment.UserName == "root");

    public async ValueTask DisposeAsync()
    {
        if (_directory is null)
        {
            return;
        }

        NpgsqlConnection.ClearAllPools();
        try
        {
            await Run(_pgCtl!, ["-D", Path.Combine(_directory, "data"), "-m", "immediate", "-w", "stop"], Environment.UserName == "root");
        }
        finally
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <summary>Creates a database of its own for one test, so that tests do not see each other's tables.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = "t_" + Guid.NewGuid().ToString("N")[..12];
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
        await create.ExecuteNonQueryAsync();
        return new NpgsqlConnectionStringBuilder(ConnectionString) { Database = name }.ConnectionString;
    }

    private static async Task Run(string file, string[] arguments, bool asPostgres = false)
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
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"'{file} {string.Join(' ', arguments)}' exited with {process.ExitCode}: {await error} {await output}");
        }
    }
}

/// <summary>
/// A throwaway Redis server (<c>redis-server --port &lt;free&gt; --save ''</c>) in a temp folder, stopped after the tests.
/// <c>KAFKA_RELIABLE_REDIS</c> points the tests at an existing server instead.
/// </summary>
public sealed class RedisServer : IAsyncLifetime, IAsyncDisposable
{
    public const string Variable = "KAFKA_RELIABLE_REDIS";
    private Process? _process;
    private string? _directory;

    public string Configuration { get; private set; } = string.Empty;

    /// <summary>Gets whether this fixture started the server itself (and so can stop and start it).</summary>
    public bool IsLocal => _directory is not null;

    public async ValueTask InitializeAsync()
    {
        if (Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } existing)
        {
            Configuration = existing;
            return;
        }

        await StartOnAsync(FreePort.Next());
    }

    /// <summary>
    /// Starts another throwaway server, on demand, on a given port: for a test whose store was first used while nothing
    /// listened there. Always a local process, even when <c>KAFKA_RELIABLE_REDIS</c> is set.
    /// </summary>
    public static async Task<RedisServer> StartAsync(int port)
    {
        var server = new RedisServer();
        try
        {
            await server.StartOnAsync(port);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Freezes the server (SIGSTOP): an outage where connections hang, with its data kept for <see cref="Resume"/>.</summary>
    public void Pause() => Signal("STOP");

    /// <summary>Lets a paused server go on (SIGCONT).</summary>
    public void Resume() => Signal("CONT");

    private void Signal(string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, _process!.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    private async Task StartOnAsync(int port)
    {
        var server = new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException($"redis-server was not found: install Debian's 'redis-server' package (scripts/test.sh does), or set {Variable}.");
        _directory = Path.Combine(Path.GetTempPath(), "kafka-reliable-redis-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_directory);
        var start = new ProcessStartInfo(server) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _directory };
        foreach (var argument in new[] { "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _directory })
        {
            start.ArgumentList.Add(argument);
        }

        _process = Process.Start(start)!;
        _ = _process.StandardOutput.ReadToEndAsync();
        _ = _process.StandardError.ReadToEndAsync();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                break;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline && !_process.HasExited)
            {
                await Task.Delay(50);
            }
        }

        Configuration = $"127.0.0.1:{port}";
    }

    public ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill();
            _process.WaitForExit();
        }

        _process?.Dispose();
        if (_directory is not null)
        {
            Directory.Delete(_directory, recursive: true);
        }

        return ValueTask.CompletedTask;
    }
}

/// <summary>The embedded Kafka broker the integration tests of this project share.</summary>
public sealed class BrokerFixture : IDisposable
{
    public BrokerFixture()
    {
        // The consumer protocol's session settings are the broker's: as short as the classic ones the tests set.
        Cluster.SetConsumerGroupSessionTimeout(TimeSpan.FromSeconds(3));
        Cluster.SetConsumerGroupHeartbeatInterval(TimeSpan.FromMilliseconds(300));
    }

    public EmbeddedKafkaCluster Cluster { get; } = EmbeddedKafkaCluster.Start();

    public string CreateTopic(int partitions)
    {
        var topic = "t-" + Guid.NewGuid().ToString("N");
        Cluster.CreateTopic(topic, partitions);
        return topic;
    }

    public void Dispose() => Cluster.Dispose();
}
