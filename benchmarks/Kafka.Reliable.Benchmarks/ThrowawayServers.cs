namespace Kafka.Reliable.Benchmarks;

/// <summary>
/// The throwaway servers a harness starts (the idempotency tests' PostgreSQL and Redis fixtures), stopped when it is disposed,
/// and also on Ctrl+C or SIGTERM, which skip a harness's finally blocks. Each server is stopped once.
/// </summary>
internal sealed class ThrowawayServers : IDisposable
{
    private readonly List<IAsyncDisposable> _servers = [];
    private readonly ConsoleCancelEventHandler _onCancel;
    private readonly EventHandler _onExit;

    public ThrowawayServers()
    {
        _onCancel = (_, _) => StopAll();
        _onExit = (_, _) => StopAll();
        Console.CancelKeyPress += _onCancel;
        AppDomain.CurrentDomain.ProcessExit += _onExit;
    }

    /// <summary>Lists a server before it starts, so that an interrupted start stops it too.</summary>
    public T Add<T>(T server)
        where T : IAsyncDisposable
    {
        lock (_servers)
        {
            _servers.Add(server);
        }

        return server;
    }

    public void Dispose()
    {
        Console.CancelKeyPress -= _onCancel;
        AppDomain.CurrentDomain.ProcessExit -= _onExit;
        StopAll();
    }

    private void StopAll()
    {
        IAsyncDisposable[] running;
        lock (_servers)
        {
            running = [.. _servers];
            _servers.Clear();
        }

        foreach (var server in running)
        {
            try
            {
                server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"Stopping a server failed: {e.Message}");
            }
        }
    }
}
