using Kafka.Reliable;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace OrdersToDatabase;

/// <summary>The table the handler writes orders to.</summary>
/// <param name="Name">Its name: <c>orders</c>, or a table of its own per demo run in PostgreSQL.</param>
public sealed record OrdersTable(string Name)
{
    public const string Columns = "order_id, customer, created_at, total, lines, kafka_partition, kafka_offset";
}

/// <summary>
/// The database the orders go to: it creates the table, registers the consumer's transactional idempotency store and batch
/// handler, and counts what was stored. The orders table deliberately has no unique constraint on <c>order_id</c>: an order
/// written twice would show as a duplicate row in the summary instead of being hidden by a constraint violation.
/// </summary>
internal abstract class OrdersDatabase(OrdersTable table)
{
    public OrdersTable Table { get; } = table;

    /// <summary>Gets where the orders go, for the summary.</summary>
    public abstract string Description { get; }

    public abstract Task CreateTableAsync();

    /// <summary>Registers the transactional store and the batch handler that writes through its transaction.</summary>
    public abstract void Configure(IReliableConsumerBuilder<OrderEventMessage> consumer);

    /// <summary>Counts the rows and the distinct order ids of the table.</summary>
    public abstract Task<(long Rows, long Distinct)> CountAsync();

    /// <summary>Reads the distinct order ids of the table.</summary>
    public abstract Task<HashSet<string>> ReadOrderIdsAsync();

    /// <summary>Removes what a demo run created.</summary>
    public abstract Task CleanUpAsync();
}

/// <summary>
/// SQLite: the orders table lives in the idempotency store's database file, because a SQLite transaction covers one file.
/// </summary>
internal sealed class SqliteOrdersDatabase(string path, OrdersTable table) : OrdersDatabase(table)
{
    private readonly string _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate }.ToString();

    public override string Description => $"SQLite {path}, table {Table.Name}";

    public override async Task CreateTableAsync()
    {
        await using var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync();
        await using var create = connection.CreateCommand();
        create.CommandText = $"""
            CREATE TABLE IF NOT EXISTS {Table.Name} (
                id INTEGER PRIMARY KEY,
                order_id TEXT NOT NULL,
                customer TEXT NOT NULL,
                created_at TEXT NOT NULL,
                total NUMERIC NOT NULL,
                lines INTEGER NOT NULL,
                kafka_partition INTEGER NOT NULL,
                kafka_offset INTEGER NOT NULL)
            """;
        await create.ExecuteNonQueryAsync();
    }

    public override void Configure(IReliableConsumerBuilder<OrderEventMessage> consumer) =>
        consumer.UseSqliteIdempotency(path, o => o.Transactional = true)
            .WithTranslator<OrderEventTranslator, Order>()
            .WithBatchHandler<SqliteOrdersHandler>();

    public override async Task<(long Rows, long Distinct)> CountAsync()
    {
        await using var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync();
        await using var count = connection.CreateCommand();
        count.CommandText = $"SELECT count(*), count(DISTINCT order_id) FROM {Table.Name}";
        await using var reader = await count.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    public override async Task<HashSet<string>> ReadOrderIdsAsync()
    {
        await using var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync();
        await using var select = connection.CreateCommand();
        select.CommandText = $"SELECT DISTINCT order_id FROM {Table.Name}";
        await using var reader = await select.ExecuteReaderAsync();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }

    public override Task CleanUpAsync()
    {
        SqliteConnection.ClearAllPools();
        foreach (var file in new[] { path, path + "-wal", path + "-shm" })
        {
            File.Delete(file);
        }

        return Task.CompletedTask;
    }
}

/// <summary>
/// PostgreSQL: the orders table and the store's tables in the same database. A demo run uses tables of its own (its orders
/// table and the store's key and offset tables), dropped at the end, so that runs never see each other's orders or offsets.
/// </summary>
internal sealed class PostgresOrdersDatabase(string connectionString, OrdersTable table, string? storeTable) : OrdersDatabase(table)
{
    private readonly NpgsqlConnectionStringBuilder _server = new(connectionString);

    public override string Description => $"PostgreSQL {_server.Host}:{_server.Port}/{_server.Database}, table {Table.Name}";

    public override async Task CreateTableAsync()
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var create = new NpgsqlCommand($"""
            CREATE TABLE IF NOT EXISTS {Table.Name} (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                order_id text NOT NULL,
                customer text NOT NULL,
                created_at timestamptz NOT NULL,
                total numeric(12, 2) NOT NULL,
                lines integer NOT NULL,
                kafka_partition integer NOT NULL,
                kafka_offset bigint NOT NULL)
            """, connection);
        await create.ExecuteNonQueryAsync();
    }

    public override void Configure(IReliableConsumerBuilder<OrderEventMessage> consumer) =>
        consumer.UsePostgreSqlIdempotency(connectionString, o =>
            {
                o.Transactional = true;
                if (storeTable is not null)
                {
                    o.TableName = storeTable;
                }
            })
            .WithTranslator<OrderEventTranslator, Order>()
            .WithBatchHandler<PostgresOrdersHandler>();

    public override async Task<(long Rows, long Distinct)> CountAsync()
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var count = new NpgsqlCommand($"SELECT count(*), count(DISTINCT order_id) FROM {Table.Name}", connection);
        await using var reader = await count.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    public override async Task<HashSet<string>> ReadOrderIdsAsync()
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var select = new NpgsqlCommand($"SELECT DISTINCT order_id FROM {Table.Name}", connection);
        await using var reader = await select.ExecuteReaderAsync();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetString(0));
        }

        return ids;
    }

    public override async Task CleanUpAsync()
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var tables = storeTable is null ? Table.Name : $"{Table.Name}, {storeTable}, {storeTable}_offsets";
        await using var drop = new NpgsqlCommand($"DROP TABLE IF EXISTS {tables}", connection);
        await drop.ExecuteNonQueryAsync();
    }
}
