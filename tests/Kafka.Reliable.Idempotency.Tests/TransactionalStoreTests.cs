using Confluent.Kafka;
using Kafka.Reliable.Idempotency.PostgreSql;
using Kafka.Reliable.Idempotency.Sqlite;
using Kafka.Reliable.Idempotency.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>The transactional mode of the SQL stores: the handler's writes, the key and the offset commit together or not at all.</summary>
public abstract class TransactionalStoreTests : IAsyncLifetime
{
    protected ITransactionalIdempotencyStore Store { get; private set; } = null!;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        Store = await CreateStoreAsync();
        await ExecuteAsync("CREATE TABLE effects (id integer NOT NULL)");
    }

    public virtual async ValueTask DisposeAsync()
    {
        if (Store is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync();
        }
    }

    protected abstract Task<ITransactionalIdempotencyStore> CreateStoreAsync();

    protected abstract Task ExecuteAsync(string sql);

    protected abstract Task<long> CountEffectsAsync();

    /// <summary>Writes an effect through the message's transaction, as a handler does.</summary>
    protected abstract Task WriteEffectAsync(MessageContext context, int id);

    [Fact]
    public async Task Committed_TheEffectAndTheKeyAreThere_AndTheMessageIsADuplicateAfterwards()
    {
        var context = Context(offset: 41);
        var transaction = await Store.BeginTransactionAsync("g/order-1", context, Token);
        Assert.NotNull(transaction);
        context.Transaction = transaction;
        await WriteEffectAsync(context, 1);
        await transaction.CommitAsync(context, Token);
        await transaction.DisposeAsync();

        Assert.Equal(1, await CountEffectsAsync());
        Assert.Null(await Store.BeginTransactionAsync("g/order-1", Context(offset: 99), Token));
        var offsets = ((IStoredOffsets)Store).GetStoredOffsets("g", [new TopicPartition("orders", 2)]);
        Assert.Equal(42, Assert.Single(offsets).NextOffset);
    }

    [Fact]
    public async Task NotCommitted_NeitherTheEffectNorTheKeyRemain_SoTheMessageIsHandledAgain()
    {
        var context = Context(offset: 7);
        var transaction = await Store.BeginTransactionAsync("g/order-2", context, Token);
        context.Transaction = transaction;
        await WriteEffectAsync(context, 2);
        await transaction!.DisposeAsync();

        Assert.Equal(0, await CountEffectsAsync());
        Assert.Empty(((IStoredOffsets)Store).GetStoredOffsets("g", [new TopicPartition("orders", 2)]));
        var again = await Store.BeginTransactionAsync("g/order-2", context, Token);
        Assert.NotNull(again);
        await again.DisposeAsync();
    }

    [Fact]
    public async Task TwoTransactionsOnTheSameKey_OnlyOneCommitsAnEffect()
    {
        var results = await Task.WhenAll(Enumerable.Range(0, 2).Select(i => Task.Run(async () =>
        {
            var context = Context(offset: 10 + i);
            var transaction = await Store.BeginTransactionAsync("g/order-3", context, Token);
            if (transaction is null)
            {
                return false;
            }

            context.Transaction = transaction;
            await WriteEffectAsync(context, 3);
            await transaction.CommitAsync(context, Token);
            await transaction.DisposeAsync();
            return true;
        })));

        Assert.Equal(1, results.Count(handled => handled));
        Assert.Equal(1, await CountEffectsAsync());
    }

    [Fact]
    public async Task StoredOffsets_OnlyMoveForward()
    {
        foreach (var offset in new long[] { 5, 9, 3 })
        {
            var context = Context(offset);
            var transaction = await Store.BeginTransactionAsync($"g/o-{offset}", context, Token);
            await transaction!.CommitAsync(context, Token);
            await transaction.DisposeAsync();
        }

        Assert.Equal(10, Assert.Single(((IStoredOffsets)Store).GetStoredOffsets("g", [new TopicPartition("orders", 2)])).NextOffset);
        Assert.Empty(((IStoredOffsets)Store).GetStoredOffsets("other-group", [new TopicPartition("orders", 2)]));
    }

    protected static MessageContext Context(long offset)
    {
        var context = new MessageContext("test", "g");
        context.Initialize(new ConsumeResult<byte[]?, byte[]?>
        {
            Topic = "orders",
            Partition = new Partition(2),
            Offset = new Offset(offset),
            Message = new Message<byte[]?, byte[]?> { Key = null, Value = [], Timestamp = Timestamp.Default },
        });
        return context;
    }
}

public sealed class SqliteTransactionalStoreTests : TransactionalStoreTests
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"kafka-reliable-{Guid.NewGuid():N}.db");

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        SqliteConnection.ClearAllPools();
        foreach (var file in new[] { _path, _path + "-wal", _path + "-shm" })
        {
            File.Delete(file);
        }
    }

    protected override Task<ITransactionalIdempotencyStore> CreateStoreAsync() =>
        Task.FromResult<ITransactionalIdempotencyStore>(new SqliteIdempotencyStore(new SqliteIdempotencyOptions { ConnectionString = $"Data Source={_path}", Transactional = true }));

    protected override async Task ExecuteAsync(string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={_path}");
        await connection.OpenAsync();
        await using var command = new SqliteCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    protected override async Task<long> CountEffectsAsync()
    {
        await using var connection = new SqliteConnection($"Data Source={_path}");
        await connection.OpenAsync();
        await using var command = new SqliteCommand("SELECT count(*) FROM effects", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    protected override async Task WriteEffectAsync(MessageContext context, int id)
    {
        var transaction = context.GetSqliteTransaction();
        await using var insert = new SqliteCommand("INSERT INTO effects (id) VALUES ($id)", transaction.Connection, transaction.Transaction);
        insert.Parameters.AddWithValue("$id", id);
        await insert.ExecuteNonQueryAsync();
    }
}

public sealed class PostgreSqlTransactionalStoreTests(PostgresServer postgres) : TransactionalStoreTests
{
    private string _connectionString = string.Empty;

    protected override async Task<ITransactionalIdempotencyStore> CreateStoreAsync()
    {
        _connectionString = await postgres.CreateDatabaseAsync();
        return new PostgreSqlIdempotencyStore(new PostgreSqlIdempotencyOptions { ConnectionString = _connectionString, Transactional = true });
    }

    protected override async Task ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    protected override async Task<long> CountEffectsAsync()
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM effects", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    protected override async Task WriteEffectAsync(MessageContext context, int id)
    {
        var transaction = context.GetNpgsqlTransaction();
        await using var insert = new NpgsqlCommand("INSERT INTO effects (id) VALUES (@id)", transaction.Connection, transaction.Transaction);
        insert.Parameters.AddWithValue("id", id);
        await insert.ExecuteNonQueryAsync();
    }
}
