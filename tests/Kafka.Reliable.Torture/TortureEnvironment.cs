using Kafka.Reliable.Idempotency.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Kafka.Reliable.Torture;

/// <summary>
/// What the runs of one process share: the throwaway PostgreSQL and Redis servers (started on first use) and a temp
/// folder. Each run gets a database, a SQLite file and a Redis key prefix of its own.
/// </summary>
public sealed class TortureEnvironment : IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private PostgresServer? _postgres;
    private RedisServer? _redis;

    public TortureEnvironment()
    {
        Directory = Path.Combine(Path.GetTempPath(), "kafka-reliable-torture-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    /// <summary>Gets the path of the harness's own assembly, which child members run.</summary>
    public string HarnessPath { get; } = Path.Combine(AppContext.BaseDirectory, "Kafka.Reliable.Torture.dll");

    public PostgresServer? Postgres => _postgres;

    public RedisServer? Redis => _redis;

    /// <summary>Creates what the store of a run needs: a database (with an <c>effects</c> table) or a file, or a key prefix.</summary>
    public async Task<(string? Postgres, string? Sqlite, string? Redis)> PrepareStoreAsync(StoreKind store, string run)
    {
        switch (store)
        {
            case StoreKind.PostgresLease or StoreKind.PostgresTransactional:
                {
                    var server = await PostgresAsync();
                    var name = "torture_" + run;
                    // Not pooled: a store-down fault of an earlier run restarted the server, which breaks pooled connections.
                    await using (var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.ConnectionString) { Pooling = false }.ConnectionString))
                    {
                        await connection.OpenAsync();
                        await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
                        await create.ExecuteNonQueryAsync();
                    }

                    var connectionString = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = name, MaxPoolSize = 40 }.ConnectionString;
                    await using (var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString))
                    {
                        await connection.OpenAsync();
                        await using var create = new NpgsqlCommand("CREATE TABLE effects (partition int NOT NULL, record_offset bigint NOT NULL)", connection);
                        await create.ExecuteNonQueryAsync();
                    }

                    return (connectionString, null, null);
                }

            case StoreKind.SqliteLease or StoreKind.SqliteTransactional:
                {
                    var path = Path.Combine(Directory, run + ".db");
                    await using var connection = new SqliteConnection($"Data Source={path};Pooling=False");
                    await connection.OpenAsync();
                    await using var create = new SqliteCommand("PRAGMA journal_mode=WAL; CREATE TABLE effects (partition INTEGER NOT NULL, record_offset INTEGER NOT NULL)", connection);
                    await create.ExecuteNonQueryAsync();
                    return (null, path, null);
                }

            case StoreKind.Redis:
                return (null, null, (await RedisAsync()).Configuration);
            default:
                return (null, null, null);
        }
    }

    /// <summary>Counts the effects a transactional store committed, per record.</summary>
    public static async Task<Dictionary<(int Partition, long Offset), int>> ReadEffectsAsync(StoreKind store, MemberEnvironment environment)
    {
        var effects = new Dictionary<(int, long), int>();
        if (store == StoreKind.PostgresTransactional)
        {
            NpgsqlConnection.ClearAllPools();
            await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(environment.Postgres) { Pooling = false }.ConnectionString);
            await connection.OpenAsync();
            await using var select = new NpgsqlCommand("SELECT partition, record_offset, count(*) FROM effects GROUP BY partition, record_offset", connection);
            await using var reader = await select.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                effects[(reader.GetInt32(0), reader.GetInt64(1))] = (int)reader.GetInt64(2);
            }
        }
        else if (store == StoreKind.SqliteTransactional)
        {
            await using var connection = new SqliteConnection($"Data Source={environment.SqlitePath};Pooling=False");
            await connection.OpenAsync();
            await using var select = new SqliteCommand("SELECT partition, record_offset, count(*) FROM effects GROUP BY partition, record_offset", connection);
            await using var reader = await select.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                effects[(reader.GetInt32(0), reader.GetInt64(1))] = reader.GetInt32(2);
            }
        }

        return effects;
    }

    public async ValueTask DisposeAsync()
    {
        if (_postgres is not null)
        {
            await _postgres.DisposeAsync();
        }

        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A child process may still hold a file for a moment; the folder is in the temp directory.
        }

        _gate.Dispose();
    }

    private Task<PostgresServer> PostgresAsync() => StartOnceAsync(() => _postgres, started => _postgres = started);

    private Task<RedisServer> RedisAsync() => StartOnceAsync(() => _redis, started => _redis = started);

    private async Task<T> StartOnceAsync<T>(Func<T?> current, Action<T> keep)
        where T : class, IAsyncLifetime, new()
    {
        await _gate.WaitAsync();
        try
        {
            if (current() is { } running)
            {
                return running;
            }

            var server = new T();
            await server.InitializeAsync();
            keep(server);
            return server;
        }
        finally
        {
            _gate.Release();
        }
    }
}
