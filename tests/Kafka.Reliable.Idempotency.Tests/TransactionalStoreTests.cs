using Confluent.Kafka;
using Kafka.Reliable.Idempotency.PostgreSql;
using Kafka.Reliable.Idempotency.Sqlite;
using Kafka.Reliable.Idempotency.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>
/// The transactional mode of the SQL stores: the handler's writes, the key and the offset commit together or not at all, for
/// one message or for a batch of messages of one partition.
/// </summary>
public abstract class TransactionalStoreTests : IAsyncLifetime
{
    protected ITransactionalIdempotencyStore Store { get; private set; } = null!;

    protected ITransactionalBatchIdempotencyStore BatchStore => Assert.IsAssignableFrom<ITransactionalBatchIdempotencyStore>(Store);

    protected static CancellationToken Token => TestContext.Current.CancellationToken;

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

    /// <summary>Creates a store on the same database in lease mode (Transactional = false).</summary>
    protected abstract ITransactionalBatchIdempotencyStore CreateLeaseModeStore();

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

    [Fact]
    public async Task BeginBatchTransactionAsync_NewKeysCommitted_NoneHandled_EveryKeyAndTheEffectRecorded_AndTheOffsetAfterTheLastStored()
    {
        string[] keys = ["g/batch-1", "g/batch-2", "g/batch-3"];
        var handled = new bool[keys.Length];
        var transaction = await BatchStore.BeginBatchTransactionAsync(keys, handled, Token);
        Assert.True(handled.All(h => !h), $"no key of a new batch is handled; handled: [{string.Join(", ", handled)}]");
        var last = Context(offset: 22);
        last.Transaction = transaction;
        await WriteEffectAsync(last, 1);
        await transaction.CommitAsync(last, Token);
        await transaction.DisposeAsync();

        Assert.Equal(1, await CountEffectsAsync());
        foreach (var key in keys)
        {
            Assert.True(await IsRecordedAsync(key), $"{key} was recorded by the committed batch, so a later message with it is a duplicate");
        }

        var offsets = ((IStoredOffsets)Store).GetStoredOffsets("g", [new TopicPartition("orders", 2)]);
        Assert.True(Assert.Single(offsets).NextOffset == 23, $"the stored offset is the last message's (22) + 1, not {offsets[0].NextOffset}");
    }

    [Fact]
    public async Task BeginBatchTransactionAsync_KeysRecordedBefore_ReportedHandled_TheOthersNot()
    {
        var single = await Store.BeginTransactionAsync("g/before-1", Context(offset: 1), Token);
        await single!.CommitAsync(Context(offset: 1), Token);
        await single.DisposeAsync();
        var earlier = await BatchStore.BeginBatchTransactionAsync(["g/before-3"], new bool[1], Token);
        await earlier.CommitAsync(Context(offset: 3), Token);
        await earlier.DisposeAsync();

        var handled = new bool[4];
        var transaction = await BatchStore.BeginBatchTransactionAsync(["g/before-0", "g/before-1", "g/before-2", "g/before-3"], handled, Token);
        await transaction.DisposeAsync();

        Assert.True(
            handled.SequenceEqual([false, true, false, true]),
            $"the keys recorded by a message's and a batch's transaction (indexes 1 and 3) are handled, the new ones not; handled: [{string.Join(", ", handled)}]");
    }

    [Fact]
    public async Task BeginBatchTransactionAsync_KeyRepeatedInTheBatch_HandledFromItsSecondOccurrence()
    {
        var handled = new bool[5];
        var transaction = await BatchStore.BeginBatchTransactionAsync(["g/twice", "g/other", "g/twice", "g/twice", "g/last"], handled, Token);
        await transaction.CommitAsync(Context(offset: 14), Token);
        await transaction.DisposeAsync();

        Assert.True(
            handled.SequenceEqual([false, false, true, true, false]),
            $"only the first message with g/twice takes it, the later two are handled; handled: [{string.Join(", ", handled)}]");
        Assert.True(await IsRecordedAsync("g/twice"), "g/twice is recorded once the batch committed");
    }

    [Fact]
    public async Task BeginBatchTransactionAsync_DisposedWithoutCommit_NeitherTheKeysNorTheEffectNorTheOffsetRemain()
    {
        string[] keys = ["g/undone-1", "g/undone-2"];
        var transaction = await BatchStore.BeginBatchTransactionAsync(keys, new bool[2], Token);
        var last = Context(offset: 8);
        last.Transaction = transaction;
        await WriteEffectAsync(last, 2);
        await transaction.DisposeAsync();

        Assert.True(await CountEffectsAsync() == 0, "the handler's write rolled back with the batch");
        Assert.Empty(((IStoredOffsets)Store).GetStoredOffsets("g", [new TopicPartition("orders", 2)]));
        var handled = new bool[2];
        var again = await BatchStore.BeginBatchTransactionAsync(keys, handled, Token);
        await again.DisposeAsync();
        Assert.True(handled.All(h => !h), $"the batch is handled again: none of its keys was recorded; handled: [{string.Join(", ", handled)}]");
    }

    [Fact]
    public async Task BeginBatchTransactionAsync_TwoBatchesSharingAKey_OnlyOneTakesIt_AndEachTakesItsOwnKey()
    {
        var results = await Task.WhenAll(Enumerable.Range(0, 2).Select(i => Task.Run(async () =>
        {
            var handled = new bool[2];
            var transaction = await BatchStore.BeginBatchTransactionAsync(["g/shared", $"g/own-{i}"], handled, Token);
            var last = Context(offset: 30 + i);
            last.Transaction = transaction;
            if (!handled[0])
            {
                await WriteEffectAsync(last, 3);
            }

            await transaction.CommitAsync(last, Token);
            await transaction.DisposeAsync();
            return handled;
        })));

        Assert.True(results.Count(handled => !handled[0]) == 1, $"exactly one batch takes the shared key; handled: {string.Join(" ", results.Select(h => $"[{string.Join(", ", h)}]"))}");
        Assert.True(results.All(handled => !handled[1]), "each batch takes its own key");
        Assert.True(await CountEffectsAsync() == 1, "the shared key's effect happens once");
    }

    [Fact]
    public async Task BeginBatchTransactionAsync_InvalidArguments_ThrowArgumentException()
    {
        await Assert.ThrowsAsync<ArgumentNullException>(() => BatchStore.BeginBatchTransactionAsync(null!, new bool[1], Token).AsTask());
        await Assert.ThrowsAsync<ArgumentNullException>(() => BatchStore.BeginBatchTransactionAsync(["g/a"], null!, Token).AsTask());
        var empty = await Assert.ThrowsAsync<ArgumentException>(() => BatchStore.BeginBatchTransactionAsync([], [], Token).AsTask());
        Assert.Contains("empty", empty.Message, StringComparison.Ordinal);
        var mismatch = await Assert.ThrowsAsync<ArgumentException>(() => BatchStore.BeginBatchTransactionAsync(["g/a", "g/b"], new bool[1], Token).AsTask());
        Assert.Contains("1 entries for 2 keys", mismatch.Message, StringComparison.Ordinal);
        var nullKey = await Assert.ThrowsAsync<ArgumentException>(() => BatchStore.BeginBatchTransactionAsync(["g/a", null!], new bool[2], Token).AsTask());
        Assert.Contains("keys[1] is null", nullKey.Message, StringComparison.Ordinal);

        // Nothing was recorded by the rejected calls.
        var handled = new bool[1];
        var transaction = await BatchStore.BeginBatchTransactionAsync(["g/a"], handled, Token);
        await transaction.DisposeAsync();
        Assert.False(handled[0], "g/a was not recorded by a call that was rejected");
    }

    [Fact]
    public async Task BeginBatchTransactionAsync_LeaseMode_ThrowsInvalidOperationException_SayingToConfigureTransactional()
    {
        var store = CreateLeaseModeStore();
        try
        {
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => store.BeginBatchTransactionAsync(["g/lease"], new bool[1], Token).AsTask());
            Assert.Contains("Transactional", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            if (store is IAsyncDisposable disposable)
            {
                await disposable.DisposeAsync();
            }
        }
    }

    /// <summary>Whether a key is recorded (a message with it is a duplicate), without leaving a transaction open.</summary>
    protected async Task<bool> IsRecordedAsync(string key)
    {
        var transaction = await Store.BeginTransactionAsync(key, Context(offset: 99), Token);
        if (transaction is null)
        {
            return true;
        }

        await transaction.DisposeAsync();
        return false;
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

    protected override ITransactionalBatchIdempotencyStore CreateLeaseModeStore() =>
        new SqliteIdempotencyStore(new SqliteIdempotencyOptions { ConnectionString = $"Data Source={_path}" });

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

    protected override ITransactionalBatchIdempotencyStore CreateLeaseModeStore() =>
        new PostgreSqlIdempotencyStore(new PostgreSqlIdempotencyOptions { ConnectionString = _connectionString });

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task BeginBatchTransactionAsync_AnotherBatchHoldsASharedKeyUncommitted_WaitsUntilItEnds_ThenFindsTheKeyHandledOnlyIfItCommitted(bool firstCommits)
    {
        var firstHandled = new bool[2];
        var first = await BatchStore.BeginBatchTransactionAsync(["g/first-only", "g/shared"], firstHandled, Token);
        Assert.True(firstHandled.All(h => !h), "the first batch takes both its keys");

        var secondHandled = new bool[2];
        var second = BatchStore.BeginBatchTransactionAsync(["g/shared", "g/second-only"], secondHandled, Token).AsTask();
        await Eventually.TrueAsync(
            () => second.IsCompleted || BackendsWaitingForALock() > 0,
            "the second batch waits on the shared key's lock (pg_stat_activity wait_event_type = 'Lock'), or completes (wrongly)",
            timeout: TimeSpan.FromSeconds(30));
        Assert.False(second.IsCompleted, "the second batch cannot record its keys while the first holds g/shared uncommitted");

        if (firstCommits)
        {
            await first.CommitAsync(Context(offset: 5), Token);
        }

        await first.DisposeAsync();
        var secondTransaction = await second.WaitAsync(TimeSpan.FromSeconds(30), Token);
        await secondTransaction.CommitAsync(Context(offset: 7), Token);
        await secondTransaction.DisposeAsync();

        Assert.True(
            secondHandled.SequenceEqual([firstCommits, false]),
            $"g/shared is handled for the second batch {(firstCommits ? "because the first committed it" : "not, because the first rolled back")}; handled: [{string.Join(", ", secondHandled)}]");
        Assert.True(await IsRecordedAsync("g/shared"), "g/shared is recorded once, by whichever batch committed it");
        Assert.True(
            await IsRecordedAsync("g/first-only") == firstCommits,
            $"g/first-only is recorded {(firstCommits ? "(the first batch committed)" : "not (the first batch rolled back)")}");
    }

    private long BackendsWaitingForALock()
    {
        using var connection = new NpgsqlConnection(_connectionString);
        connection.Open();
        using var command = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'", connection);
        return (long)command.ExecuteScalar()!;
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
