using Kafka.Reliable.Idempotency.PostgreSql;
using Kafka.Reliable.Idempotency.Sqlite;
using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Npgsql;
using StackExchange.Redis;

namespace Kafka.Reliable.Benchmarks;

/// <summary>One durable store of the stores harness: how its physical limit is measured, and how a consumer uses it.</summary>
internal abstract class StoreBench(string name, string description, int commitsPerRecord, string perRecord)
{
    /// <summary>Gets the name used by <c>--stores</c>.</summary>
    public string Name { get; } = name;

    /// <summary>Gets what the consumer runs, printed at the top.</summary>
    public string Description { get; } = description;

    /// <summary>Gets how many of the limit's operations (commits, or Redis round trips) the store spends per record.</summary>
    public int CommitsPerRecord { get; } = commitsPerRecord;

    /// <summary>Gets what the store does per record, printed at the top.</summary>
    public string PerRecord { get; } = perRecord;

    /// <summary>Gets what the limit measures, printed at the top.</summary>
    public abstract string LimitDescription { get; }

    /// <summary>Gets the server's version and the settings that decide its commit cost.</summary>
    public abstract Task<string> DescribeServerAsync();

    /// <summary>Runs <paramref name="warmup"/> operations untimed, then <paramref name="operations"/> timed, one after another; returns the elapsed time of the timed ones.</summary>
    public abstract Task<TimeSpan> MeasureLimitAsync(int warmup, int operations);

    /// <summary>Creates a fresh store (file, database or key prefix) for one consumer run.</summary>
    public abstract Task<StoreRun> PrepareRunAsync();

    /// <summary>
    /// Runs <paramref name="operation"/> on <paramref name="warmup"/> fresh keys untimed, then on <paramref name="operations"/>
    /// fresh keys timed, one after another; returns the elapsed time of the timed ones.
    /// </summary>
    protected static async Task<TimeSpan> TimeSequentialAsync(int warmup, int operations, Func<string, Task> operation)
    {
        for (var i = 0; i < warmup; i++)
        {
            await operation($"warmup-{i}");
        }

        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < operations; i++)
        {
            await operation($"key-{i}");
        }

        return Stopwatch.GetElapsedTime(started);
    }
}

/// <summary>A fresh store for one run: how the consumer is configured with it, and what it holds after the run.</summary>
internal abstract class StoreRun : IAsyncDisposable
{
    /// <summary>Adds the store (and, for a transactional store, the handler writing through its transaction) to the consumer.</summary>
    public abstract void Configure(IReliableConsumerBuilder<Order> consumer);

    /// <summary>Counts what the store recorded after the run: completed keys, and the effect rows of a transactional handler.</summary>
    public abstract Task<(long Completed, long? Effects)> CountAsync();

    public abstract ValueTask DisposeAsync();
}

/// <summary>The lease-mode handler: the store takes and completes the key around it; it only checks and counts.</summary>
internal sealed class LeaseStoreHandler(ThroughputRecorder recorder) : IMessageHandler<Order>
{
    public ValueTask HandleAsync(Order message, MessageContext context, CancellationToken cancellationToken)
    {
        recorder.Record(message);
        return ValueTask.CompletedTask;
    }
}

/// <summary>The transactional SQLite handler, as the tests' minimal one: one effect row through the store's transaction.</summary>
internal sealed class SqliteEffectHandler(ThroughputRecorder recorder) : IMessageHandler<Order>
{
    public async ValueTask HandleAsync(Order message, MessageContext context, CancellationToken cancellationToken)
    {
        var transaction = context.GetSqliteTransaction();
        await using (var insert = new SqliteCommand("INSERT INTO effects (id) VALUES ($id)", transaction.Connection, transaction.Transaction))
        {
            insert.Parameters.AddWithValue("$id", message.Id);
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        recorder.Record(message);
    }
}

/// <summary>The transactional PostgreSQL handler, as the tests' minimal one: one effect row through the store's transaction.</summary>
internal sealed class PostgresEffectHandler(ThroughputRecorder recorder) : IMessageHandler<Order>
{
    public async ValueTask HandleAsync(Order message, MessageContext context, CancellationToken cancellationToken)
    {
        var transaction = context.GetNpgsqlTransaction();
        await using (var insert = new NpgsqlCommand("INSERT INTO effects (id) VALUES (@id)", transaction.Connection, transaction.Transaction))
        {
            insert.Parameters.AddWithValue("id", message.Id);
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        recorder.Record(message);
    }
}

/// <summary>SQLite, lease or transactional: a database file in a temp folder.</summary>
internal sealed class SqliteBench(string folder, bool transactional) : StoreBench(
    transactional ? "sqlite-transactional" : "sqlite-lease",
    transactional
        ? "UseSqliteIdempotency(path, o => o.Transactional = true) (StoreOffsets default true); handler inserts one effect row through GetSqliteTransaction()"
        : "UseSqliteIdempotency(path), lease mode; handler only checks and counts",
    transactional ? 1 : 2,
    transactional
        ? "1 commit: BEGIN IMMEDIATE, key INSERT, effect INSERT, offset upsert, COMMIT; one transaction at a time per file (the store's write lock), handler included"
        : "2 autocommit writes: take (INSERT .. ON CONFLICT .. RETURNING) and complete (UPDATE), each on a pooled connection that runs PRAGMA synchronous = NORMAL when opened")
{
    public override string LimitDescription =>
        "sequential INSERTs of fresh keys, each its own autocommit transaction, into the store's own table (its SchemaScript) on one open connection, "
        + "PRAGMA journal_mode = WAL and synchronous = NORMAL as the store sets them";

    public override async Task<string> DescribeServerAsync()
    {
        await using var connection = new SqliteConnection("Data Source=:memory:");
        await connection.OpenAsync();
        return $"SQLite {connection.ServerVersion} (Microsoft.Data.Sqlite), files in {folder}; WAL + synchronous = NORMAL: no fsync at commit, only at checkpoints";
    }

    public override async Task<TimeSpan> MeasureLimitAsync(int warmup, int operations)
    {
        var path = Path.Combine(folder, $"limit-{Guid.NewGuid():N}.db");
        var connectionString = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = true }.ToString();
        try
        {
            var schema = new SqliteIdempotencyStore(new SqliteIdempotencyOptions { ConnectionString = connectionString }).SchemaScript;
            await using var connection = new SqliteConnection(connectionString);
            await connection.OpenAsync();
            foreach (var sql in new[] { "PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", schema })
            {
                await using var setup = new SqliteCommand(sql, connection);
                await setup.ExecuteNonQueryAsync();
            }

            await using var insert = new SqliteCommand(
                "INSERT INTO kafka_reliable_idempotency (key, owner, status, lease_until) VALUES ($key, 'limit', 0, $lease_until)", connection);
            var key = insert.Parameters.Add("$key", SqliteType.Text);
            insert.Parameters.AddWithValue("$lease_until", DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeMilliseconds());
            return await TimeSequentialAsync(warmup, operations, async fresh =>
            {
                key.Value = fresh;
                await insert.ExecuteNonQueryAsync();
            });
        }
        finally
        {
            DeleteDatabase(path);
        }
    }

    public override Task<StoreRun> PrepareRunAsync() => Task.FromResult<StoreRun>(new Run(Path.Combine(folder, $"run-{Guid.NewGuid():N}.db"), transactional));

    private static void DeleteDatabase(string path)
    {
        SqliteConnection.ClearAllPools();
        foreach (var file in new[] { path, path + "-wal", path + "-shm" })
        {
            File.Delete(file);
        }
    }

    private sealed class Run(string path, bool transactional) : StoreRun
    {
        public override void Configure(IReliableConsumerBuilder<Order> consumer)
        {
            if (transactional)
            {
                // The effects table exists before the store creates its own tables on first use.
                using (var connection = new SqliteConnection($"Data Source={path}"))
                {
                    connection.Open();
                    using var create = new SqliteCommand("CREATE TABLE effects (id INTEGER PRIMARY KEY)", connection);
                    create.ExecuteNonQuery();
                }

                consumer.UseSqliteIdempotency(path, o => o.Transactional = true).WithHandler<SqliteEffectHandler>();
            }
            else
            {
                consumer.UseSqliteIdempotency(path).WithHandler<LeaseStoreHandler>();
            }
        }

        public override async Task<(long Completed, long? Effects)> CountAsync()
        {
            await using var connection = new SqliteConnection($"Data Source={path}");
            await connection.OpenAsync();
            await using var completed = new SqliteCommand("SELECT count(*) FROM kafka_reliable_idempotency WHERE status = 1", connection);
            var keys = (long)(await completed.ExecuteScalarAsync())!;
            if (!transactional)
            {
                return (keys, null);
            }

            await using var effects = new SqliteCommand("SELECT count(*) FROM effects", connection);
            return (keys, (long)(await effects.ExecuteScalarAsync())!);
        }

        public override ValueTask DisposeAsync()
        {
            DeleteDatabase(path);
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>PostgreSQL, lease or transactional: a fresh database of the throwaway server per measurement and per run.</summary>
internal sealed class PostgresBench(PostgresServer server, bool transactional) : StoreBench(
    transactional ? "postgresql-transactional" : "postgresql-lease",
    transactional
        ? "UsePostgreSqlIdempotency(cs, o => o.Transactional = true) (StoreOffsets default true); handler inserts one effect row through GetNpgsqlTransaction()"
        : "UsePostgreSqlIdempotency(cs), lease mode; handler only checks and counts",
    transactional ? 1 : 2,
    transactional
        ? "1 commit: BEGIN, key INSERT .. ON CONFLICT DO NOTHING, effect INSERT, offset upsert, COMMIT (several round trips, one WAL flush)"
        : "2 autocommit writes: take (INSERT .. ON CONFLICT .. RETURNING) and complete (UPDATE), each one round trip and one WAL flush")
{
    public override string LimitDescription =>
        "sequential INSERTs of fresh keys, each its own autocommit transaction, into a table made by the store's SchemaScript (same columns and index), "
        + "one open Npgsql connection, prepared statement";

    public override async Task<string> DescribeServerAsync()
    {
        await using var connection = new NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync();
        var settings = new List<string>();
        foreach (var setting in new[] { "server_version", "fsync", "synchronous_commit", "wal_sync_method", "shared_buffers" })
        {
            await using var show = new NpgsqlCommand($"SHOW {setting}", connection);
            settings.Add($"{setting} = {await show.ExecuteScalarAsync()}");
        }

        return $"PostgreSQL (Npgsql), throwaway server on 127.0.0.1: {string.Join(", ", settings)}";
    }

    public override async Task<TimeSpan> MeasureLimitAsync(int warmup, int operations)
    {
        var database = await server.CreateDatabaseAsync();
        try
        {
            var store = new PostgreSqlIdempotencyStore(new PostgreSqlIdempotencyOptions { ConnectionString = database });
            var schema = store.SchemaScript;
            await store.DisposeAsync();
            await using var connection = new NpgsqlConnection(database);
            await connection.OpenAsync();
            await using (var create = new NpgsqlCommand(schema, connection))
            {
                await create.ExecuteNonQueryAsync();
            }

            await using var insert = new NpgsqlCommand(
                "INSERT INTO public.kafka_reliable_idempotency (key, owner, status, lease_until) VALUES (@key, 'limit', 0, @lease_until)", connection);
            var key = new NpgsqlParameter<string>("key", string.Empty);
            insert.Parameters.Add(key);
            insert.Parameters.Add(new NpgsqlParameter<DateTime>("lease_until", DateTime.UtcNow.AddMinutes(5)));
            await insert.PrepareAsync();
            return await TimeSequentialAsync(warmup, operations, async fresh =>
            {
                key.TypedValue = fresh;
                await insert.ExecuteNonQueryAsync();
            });
        }
        finally
        {
            await DropDatabaseAsync(database);
        }
    }

    public override async Task<StoreRun> PrepareRunAsync() => new Run(this, await server.CreateDatabaseAsync(), transactional);

    private async Task DropDatabaseAsync(string database)
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {new NpgsqlConnectionStringBuilder(database).Database} WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
    }

    private sealed class Run(PostgresBench bench, string database, bool transactional) : StoreRun
    {
        public override void Configure(IReliableConsumerBuilder<Order> consumer)
        {
            if (transactional)
            {
                using (var connection = new NpgsqlConnection(database))
                {
                    connection.Open();
                    using var create = new NpgsqlCommand("CREATE TABLE effects (id bigint PRIMARY KEY)", connection);
                    create.ExecuteNonQuery();
                }

                consumer.UsePostgreSqlIdempotency(database, o => o.Transactional = true).WithHandler<PostgresEffectHandler>();
            }
            else
            {
                consumer.UsePostgreSqlIdempotency(database).WithHandler<LeaseStoreHandler>();
            }
        }

        public override async Task<(long Completed, long? Effects)> CountAsync()
        {
            await using var connection = new NpgsqlConnection(database);
            await connection.OpenAsync();
            await using var completed = new NpgsqlCommand("SELECT count(*) FROM public.kafka_reliable_idempotency WHERE status = 1", connection);
            var keys = (long)(await completed.ExecuteScalarAsync())!;
            if (!transactional)
            {
                return (keys, null);
            }

            await using var effects = new NpgsqlCommand("SELECT count(*) FROM effects", connection);
            return (keys, (long)(await effects.ExecuteScalarAsync())!);
        }

        public override async ValueTask DisposeAsync() => await bench.DropDatabaseAsync(database);
    }
}

/// <summary>Redis (lease mode only): a fresh key prefix of the throwaway server per measurement and per run.</summary>
internal sealed class RedisBench(string configuration) : StoreBench(
    "redis",
    "UseRedisIdempotency(configuration), fresh KeyPrefix per run; handler only checks and counts",
    2,
    "2 round trips: take (SET key owner NX PX lease) and complete (EVALSHA of the completion script)")
{
    private const string CountCompleted = """
        local n = 0
        for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
          if string.sub(redis.call('GET', k), 1, 2) == 'c:' then n = n + 1 end
        end
        return n
        """;

    public override string LimitDescription =>
        "sequential SET key value NX PX 300000 of fresh keys (StackExchange.Redis, one multiplexer, each awaited before the next); "
        + "the store needs 2 such round trips per record";

    public override async Task<string> DescribeServerAsync()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(configuration);
        var version = connection.GetServer(connection.GetEndPoints()[0]).Version;
        return $"Redis {version}, throwaway server on {configuration}: --save '' --appendonly no (nothing written to disk: its limit is a loopback round trip)";
    }

    public override async Task<TimeSpan> MeasureLimitAsync(int warmup, int operations)
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(configuration);
        var database = connection.GetDatabase();
        var prefix = $"limit-{Guid.NewGuid():N}:";
        var lease = TimeSpan.FromMinutes(5);
        return await TimeSequentialAsync(warmup, operations, async fresh =>
        {
            if (!await database.StringSetAsync(prefix + fresh, "p:limit", lease, When.NotExists))
            {
                throw new InvalidOperationException($"SET NX of the fresh key {prefix}{fresh} found it taken.");
            }
        });
    }

    public override Task<StoreRun> PrepareRunAsync() => Task.FromResult<StoreRun>(new Run(configuration, $"bench-{Guid.NewGuid():N}:"));

    private sealed class Run(string configuration, string prefix) : StoreRun
    {
        public override void Configure(IReliableConsumerBuilder<Order> consumer) =>
            consumer.UseRedisIdempotency(configuration, o => o.KeyPrefix = prefix).WithHandler<LeaseStoreHandler>();

        public override async Task<(long Completed, long? Effects)> CountAsync()
        {
            await using var connection = await ConnectionMultiplexer.ConnectAsync(configuration);
            var completed = await connection.GetDatabase().ScriptEvaluateAsync(CountCompleted, values: [prefix + "*"]);
            return ((long)completed, null);
        }

        public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
