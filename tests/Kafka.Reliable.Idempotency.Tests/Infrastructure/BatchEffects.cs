using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Npgsql;

namespace Kafka.Reliable.Idempotency.Tests.Infrastructure;

/// <summary>One row of the <c>effects</c> table: the record it stands for and the handler call that wrote it.</summary>
public sealed record EffectRow(int Id, int Partition, long Offset, long Call);

/// <summary>
/// A database with an <c>effects</c> table (no unique constraint: a duplicate is counted, not refused) and the transactional
/// idempotency store on the same database, so that a batch handler's rows commit with the batch's idempotency records and
/// its partition's offset. <c>pg</c> (a database of its own on the throwaway server) or <c>sqlite</c> (a temp file).
/// </summary>
public abstract class EffectsDatabase : IAsyncDisposable
{
    public const string CreateTable = "CREATE TABLE effects (id integer NOT NULL, partition integer NOT NULL, record_offset bigint NOT NULL, call bigint NOT NULL)";

    /// <summary>Gets the store's name as the crash host takes it: <c>pg</c> or <c>sqlite</c>.</summary>
    public abstract string Store { get; }

    /// <summary>Gets the connection string (PostgreSQL) or the database file (SQLite), as the crash host takes it.</summary>
    public abstract string Connection { get; }

    public static async Task<EffectsDatabase> CreateAsync(string store, PostgresServer postgres)
    {
        EffectsDatabase database = store switch
        {
            "pg" => new PostgreSqlEffects(await postgres.CreateDatabaseAsync()),
            "sqlite" => new SqliteEffects(Path.Combine(Path.GetTempPath(), $"kafka-reliable-batch-{Guid.NewGuid():N}.db")),
            _ => throw new ArgumentOutOfRangeException(nameof(store), store, "pg or sqlite"),
        };
        await database.ExecuteAsync(store == "sqlite" ? "PRAGMA journal_mode = WAL; " + CreateTable : CreateTable);
        return database;
    }

    /// <summary>Registers the store of this database in transactional mode (offsets stored with the effects, the default).</summary>
    public abstract void UseStore(IReliableConsumerBuilder<int> builder);

    /// <summary>Writes one row per message of the batch with ONE multi-row INSERT, through the batch's transaction.</summary>
    public abstract Task InsertAsync(MessageBatch<int> batch, long call, CancellationToken cancellationToken);

    public abstract Task ExecuteAsync(string sql);

    /// <summary>Gets the number of rows and of distinct ids, cheaply enough to be polled.</summary>
    public abstract Task<(long Rows, long Ids)> CountAsync();

    public abstract Task<IReadOnlyList<EffectRow>> ReadAsync();

    /// <summary>Gets the next offsets the store keeps with the effects for a group's partitions of a topic.</summary>
    public abstract Task<IReadOnlyDictionary<int, long>> StoredOffsetsAsync(string group, string topic);

    public abstract ValueTask DisposeAsync();

    private sealed class PostgreSqlEffects(string connectionString) : EffectsDatabase
    {
        public override string Store => "pg";

        public override string Connection => connectionString;

        public override void UseStore(IReliableConsumerBuilder<int> builder) => builder.UsePostgreSqlIdempotency(connectionString, o => o.Transactional = true);

        public override async Task InsertAsync(MessageBatch<int> batch, long call, CancellationToken cancellationToken)
        {
            var transaction = batch[0].Context.GetNpgsqlTransaction();
            await using var insert = new NpgsqlCommand(
                "INSERT INTO effects (id, partition, record_offset, call) SELECT u.id, u.partition, u.record_offset, @call FROM unnest(@ids, @partitions, @offsets) AS u(id, partition, record_offset)",
                transaction.Connection,
                transaction.Transaction);
            insert.Parameters.AddWithValue("call", call);
            insert.Parameters.AddWithValue("ids", batch.Select(item => item.Message).ToArray());
            insert.Parameters.AddWithValue("partitions", batch.Select(item => item.Context.Partition).ToArray());
            insert.Parameters.AddWithValue("offsets", batch.Select(item => item.Context.Offset).ToArray());
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        public override async Task ExecuteAsync(string sql)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(sql, connection);
            await command.ExecuteNonQueryAsync();
        }

        public override async Task<(long Rows, long Ids)> CountAsync()
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var count = new NpgsqlCommand("SELECT count(*), count(DISTINCT id) FROM effects", connection);
            await using var reader = await count.ExecuteReaderAsync();
            await reader.ReadAsync();
            return (reader.GetInt64(0), reader.GetInt64(1));
        }

        public override async Task<IReadOnlyList<EffectRow>> ReadAsync()
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var read = new NpgsqlCommand("SELECT id, partition, record_offset, call FROM effects", connection);
            await using var reader = await read.ExecuteReaderAsync();
            var rows = new List<EffectRow>();
            while (await reader.ReadAsync())
            {
                rows.Add(new EffectRow(reader.GetInt32(0), reader.GetInt32(1), reader.GetInt64(2), reader.GetInt64(3)));
            }

            return rows;
        }

        public override async Task<IReadOnlyDictionary<int, long>> StoredOffsetsAsync(string group, string topic)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var read = new NpgsqlCommand("SELECT partition, next_offset FROM kafka_reliable_idempotency_offsets WHERE group_id = @group AND topic = @topic", connection);
            read.Parameters.AddWithValue("group", group);
            read.Parameters.AddWithValue("topic", topic);
            await using var reader = await read.ExecuteReaderAsync();
            var offsets = new Dictionary<int, long>();
            while (await reader.ReadAsync())
            {
                offsets[reader.GetInt32(0)] = reader.GetInt64(1);
            }

            return offsets;
        }

        public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private sealed class SqliteEffects(string path) : EffectsDatabase
    {
        public override string Store => "sqlite";

        public override string Connection => path;

        public override void UseStore(IReliableConsumerBuilder<int> builder) => builder.UseSqliteIdempotency(path, o => o.Transactional = true);

        public override async Task InsertAsync(MessageBatch<int> batch, long call, CancellationToken cancellationToken)
        {
            var transaction = batch[0].Context.GetSqliteTransaction();
            var sql = new StringBuilder("INSERT INTO effects (id, partition, record_offset, call) VALUES ");
            await using var insert = new SqliteCommand { Connection = transaction.Connection, Transaction = transaction.Transaction };
            insert.Parameters.AddWithValue("$call", call);
            for (var i = 0; i < batch.Count; i++)
            {
                sql.Append(CultureInfo.InvariantCulture, $"{(i == 0 ? string.Empty : ", ")}($i{i}, $p{i}, $o{i}, $call)");
                insert.Parameters.AddWithValue($"$i{i}", batch[i].Message);
                insert.Parameters.AddWithValue($"$p{i}", batch[i].Context.Partition);
                insert.Parameters.AddWithValue($"$o{i}", batch[i].Context.Offset);
            }

            insert.CommandText = sql.ToString();
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        public override async Task ExecuteAsync(string sql)
        {
            await using var connection = Open();
            await using var command = new SqliteCommand(sql, connection);
            await command.ExecuteNonQueryAsync();
        }

        public override async Task<(long Rows, long Ids)> CountAsync()
        {
            await using var connection = Open();
            await using var count = new SqliteCommand("SELECT count(*), count(DISTINCT id) FROM effects", connection);
            await using var reader = await count.ExecuteReaderAsync();
            await reader.ReadAsync();
            return (reader.GetInt64(0), reader.GetInt64(1));
        }

        public override async Task<IReadOnlyList<EffectRow>> ReadAsync()
        {
            await using var connection = Open();
            await using var read = new SqliteCommand("SELECT id, partition, record_offset, call FROM effects", connection);
            await using var reader = await read.ExecuteReaderAsync();
            var rows = new List<EffectRow>();
            while (await reader.ReadAsync())
            {
                rows.Add(new EffectRow(reader.GetInt32(0), reader.GetInt32(1), reader.GetInt64(2), reader.GetInt64(3)));
            }

            return rows;
        }

        public override async Task<IReadOnlyDictionary<int, long>> StoredOffsetsAsync(string group, string topic)
        {
            await using var connection = Open();
            await using var read = new SqliteCommand("SELECT partition, next_offset FROM kafka_reliable_idempotency_offsets WHERE group_id = $group AND topic = $topic", connection);
            read.Parameters.AddWithValue("$group", group);
            read.Parameters.AddWithValue("$topic", topic);
            await using var reader = await read.ExecuteReaderAsync();
            var offsets = new Dictionary<int, long>();
            while (await reader.ReadAsync())
            {
                offsets[reader.GetInt32(0)] = reader.GetInt64(1);
            }

            return offsets;
        }

        public override ValueTask DisposeAsync()
        {
            SqliteConnection.ClearAllPools();
            foreach (var file in new[] { path, path + "-wal", path + "-shm" })
            {
                File.Delete(file);
            }

            return ValueTask.CompletedTask;
        }

        // Not pooled, and reading only: the test's reads never hold the write lock the consumer's transactions need.
        private SqliteConnection Open()
        {
            var connection = new SqliteConnection($"Data Source={path};Pooling=false");
            connection.Open();
            return connection;
        }
    }
}

/// <summary>One call of a batch handler as a test saw it.</summary>
public sealed record BatchEffectCall(long Call, int Partition, IReadOnlyList<int> Ids, IReadOnlyList<long> Offsets, int Attempt, bool Isolating, string Outcome);

/// <summary>
/// A batch handler that writes one row per message with one multi-row INSERT through the batch's transaction, and records
/// each call; hooks run before the insert and after it (inside the transaction: a hook that throws or waits does so with
/// the rows written and not committed).
/// </summary>
public sealed class BatchEffectWriter(EffectsDatabase database) : IBatchMessageHandler<int>
{
    private static long s_calls;
    private readonly ConcurrentQueue<BatchEffectCall> _calls = new();

    /// <summary>Gets or sets what runs after the rows are inserted and before the handler returns (the transaction is still open).</summary>
    public Func<MessageBatch<int>, CancellationToken, ValueTask>? AfterInsert { get; set; }

    /// <summary>Gets every call, in the order they ended.</summary>
    public IReadOnlyCollection<BatchEffectCall> Calls => _calls;

    /// <summary>Gets the calls that returned normally, with no message reported failed: their rows commit with the batch.</summary>
    public IEnumerable<BatchEffectCall> Succeeded => _calls.Where(c => c.Outcome == "ok");

    public async ValueTask HandleAsync(MessageBatch<int> batch, CancellationToken cancellationToken)
    {
        var call = Interlocked.Increment(ref s_calls);
        var ids = batch.Select(item => item.Message).ToList();
        var offsets = batch.Select(item => item.Context.Offset).ToList();
        var partition = batch[0].Context.Partition;
        var outcome = "ok";
        try
        {
            await database.InsertAsync(batch, call, cancellationToken);
            if (AfterInsert is { } after)
            {
                await after(batch, cancellationToken);
            }

            if (Enumerable.Range(0, batch.Count).Any(i => batch.FailureOf(i) is not null))
            {
                outcome = "reported";
            }
        }
        catch (Exception ex)
        {
            outcome = ex.GetType().Name;
            throw;
        }
        finally
        {
            _calls.Enqueue(new BatchEffectCall(call, partition, ids, offsets, batch.Attempt, batch.IsIsolating, outcome));
        }
    }
}

/// <summary>Closes a batch handler's way until <see cref="Open"/>: the batches that reach it wait (cancellable), and are counted.</summary>
public sealed class BatchGate
{
    private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentQueue<BatchEffectCall> _held = new();
    private int _waiting;

    /// <summary>Gets the batches that reached the gate (partition, ids and offsets), whatever became of them.</summary>
    public IReadOnlyCollection<BatchEffectCall> Held => _held;

    /// <summary>Gets how many batches wait at the gate now.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    public bool IsOpen => _open.Task.IsCompleted;

    public void Open() => _open.TrySetResult();

    public async ValueTask WaitAsync(MessageBatch<int> batch, CancellationToken cancellationToken)
    {
        if (IsOpen)
        {
            return;
        }

        _held.Enqueue(new BatchEffectCall(0, batch[0].Context.Partition, batch.Select(i => i.Message).ToList(), batch.Select(i => i.Context.Offset).ToList(), batch.Attempt, batch.IsIsolating, "held"));
        Interlocked.Increment(ref _waiting);
        try
        {
            await _open.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }
}

/// <summary>A host running one reliable consumer of integer ids with a batch handler and a transactional store, and what it logged.</summary>
public sealed class BatchStoreConsumer : IAsyncDisposable
{
    private BatchStoreConsumer(IHost host, FakeLogCollector logs, BatchEffectWriter handler)
    {
        Host = host;
        Logs = logs;
        Handler = handler;
    }

    public IHost Host { get; }

    public FakeLogCollector Logs { get; }

    public BatchEffectWriter Handler { get; }

    public static async Task<BatchStoreConsumer> StartAsync(
        string bootstrapServers, string topic, string group, EffectsDatabase database, BatchEffectWriter? handler = null, Action<ReliableConsumerOptions>? configure = null,
        Action<IReliableConsumerBuilder<int>>? customize = null, LogLevel minimumLevel = LogLevel.Information)
    {
        handler ??= new BatchEffectWriter(database);
        var logs = new FakeLogCollector();
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders().AddProvider(new FakeLoggerProvider(logs)).SetMinimumLevel(minimumLevel);

        // Longer than a stop can take by design (a revoke drain and the shutdown drain, then the leave), as in StoreConsumer.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(150));
        builder.Services.AddSingleton(handler);
        var consumer = builder.Services.AddReliableConsumer<int>("batch-ids", o =>
            {
                o.BootstrapServers = bootstrapServers;
                o.GroupId = group;
                o.Topics.Add(topic);
                o.Commit.Interval = TimeSpan.FromMilliseconds(200);
                o.Retry.Delay = TimeSpan.FromMilliseconds(10);
                o.Retry.MaxDelay = TimeSpan.FromMilliseconds(100);
                o.KafkaSettings["session.timeout.ms"] = "3000";
                o.KafkaSettings["heartbeat.interval.ms"] = "300";
                o.KafkaSettings["topic.metadata.refresh.interval.ms"] = "1000";
                configure?.Invoke(o);
            })
            .WithDeserializer(new IdDeserializer());
        database.UseStore(consumer);
        customize?.Invoke(consumer);
        consumer.WithBatchHandler<BatchEffectWriter>(ServiceLifetime.Singleton);
        var host = builder.Build();
        await host.StartAsync(TestContext.Current.CancellationToken);
        return new BatchStoreConsumer(host, logs, handler);
    }

    /// <summary>Sums a numeric field of the records with an event id (for example the Count of the batch duplicates log, 233).</summary>
    public long SumOf(int eventId, string field) =>
        Logs.GetSnapshot().Where(r => r.Id.Id == eventId)
            .Sum(r => r.StructuredState!.Where(kv => kv.Key == field).Select(kv => long.Parse(kv.Value!, CultureInfo.InvariantCulture)).Single());

    public Task StopAsync() => Host.StopAsync(CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Host.StopAsync(CancellationToken.None);
        }
        catch (OperationCanceledException ex)
        {
            throw new TimeoutException($"the member did not stop within the host's shutdown timeout; its last logs:{Environment.NewLine}{Logs.Dump(80)}", ex);
        }

        Host.Dispose();
    }

    /// <summary>Reads every record of a topic's partitions from the beginning, until <paramref name="expected"/> are read or the timeout passes.</summary>
    public static List<ConsumeResult<byte[]?, byte[]?>> ReadAll(string bootstrapServers, string topic, int partitions, int expected, TimeSpan? timeout = null)
    {
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "reader-" + Guid.NewGuid().ToString("N"),
            EnableAutoCommit = false,
        }).Build();
        consumer.Assign(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        var records = new List<ConsumeResult<byte[]?, byte[]?>>();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (records.Count < expected && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is { } record)
            {
                records.Add(record);
            }
        }

        Assert.True(records.Count >= expected, $"expected {expected} records in {topic}, found {records.Count}");
        return records;
    }

    /// <summary>Produces one record per id, with the id as value (ASCII) and <paramref name="key"/>'s value as key (the id by default); returns where each id went.</summary>
    public static async Task<IReadOnlyDictionary<int, (int Partition, long Offset)>> ProduceIdsAsync(EmbeddedKafkaCluster cluster, string topic, IReadOnlyList<int> ids, Func<int, int>? key = null)
    {
        var written = await cluster.ProduceAllAsync(topic, ids.Select(id => new Message<byte[]?, byte[]?>
        {
            Key = Encoding.ASCII.GetBytes((key?.Invoke(id) ?? id).ToString(CultureInfo.InvariantCulture)),
            Value = Encoding.ASCII.GetBytes(id.ToString(CultureInfo.InvariantCulture)),
        }), TestContext.Current.CancellationToken);
        var positions = new Dictionary<int, (int, long)>();
        for (var i = 0; i < ids.Count; i++)
        {
            positions[ids[i]] = (written[i].Partition.Value, written[i].Offset.Value);
        }

        return positions;
    }

    private sealed class IdDeserializer : IMessageDeserializer<int>
    {
        public int Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) =>
            int.Parse(Encoding.ASCII.GetString(value), CultureInfo.InvariantCulture);
    }
}

/// <summary>What the <c>effects</c> table says about a set of ids, for assertions that say what was expected and what was seen.</summary>
public static class EffectChecks
{
    /// <summary>Asserts that each id has exactly one row, and no other id has any.</summary>
    public static void ExactlyOnce(IReadOnlyList<EffectRow> rows, IEnumerable<int> expectedIds)
    {
        var expected = expectedIds.ToHashSet();
        var perId = rows.GroupBy(r => r.Id).ToDictionary(g => g.Key, g => g.Count());
        var missing = expected.Where(id => !perId.ContainsKey(id)).Order().ToList();
        var repeated = perId.Where(p => p.Value > 1).Select(p => $"{p.Key}x{p.Value}").ToList();
        var unexpected = perId.Keys.Where(id => !expected.Contains(id)).Order().ToList();
        Assert.True(
            missing.Count == 0 && repeated.Count == 0 && unexpected.Count == 0,
            $"expected exactly one row for each of {expected.Count} ids; seen {rows.Count} rows: {missing.Count} ids without a row [{string.Join(", ", missing.Take(20))}], " +
            $"{repeated.Count} ids with more than one [{string.Join(", ", repeated.Take(20))}], {unexpected.Count} ids that should have none [{string.Join(", ", unexpected.Take(20))}]");
        var places = rows.GroupBy(r => (r.Partition, r.Offset)).Where(g => g.Count() > 1).Select(g => $"{g.Key.Partition}@{g.Key.Offset}").ToList();
        Assert.True(places.Count == 0, $"expected one row per record (partition, offset); {places.Count} records have more: {string.Join(", ", places.Take(20))}");
    }
}
