using Kafka.Reliable.Idempotency.Sqlite;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Idempotency.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>
/// The SQLite transactional store runs one transaction at a time per database file (SQLite's single write lock): a message
/// whose transaction cannot begin yet waits for the lock, however long, and waiting is not a failure (issue 11: one slow
/// handler dead-lettered healthy records of other partitions with "database is locked").
/// </summary>
public sealed class SqliteWriteLockTests(BrokerFixture broker) : IAsyncLifetime
{
    // The busy timeout Microsoft.Data.Sqlite would have waited before "database is locked" (Default Timeout, in seconds).
    private const int BusyTimeoutSeconds = 1;

    // Held longer than every attempt the old store would have made together (MaxAttempts x the busy timeout), twice over:
    // a lower bound for the hold, never a race (holding longer only makes the test stricter).
    private const int MaxAttempts = 2;
    private static readonly TimeSpan Hold = TimeSpan.FromSeconds(2 * MaxAttempts * BusyTimeoutSeconds);
    private static readonly TimeSpan LogInterval = TimeSpan.FromMilliseconds(200);

    private readonly string _path = Path.Combine(Path.GetTempPath(), $"kafka-reliable-{Guid.NewGuid():N}.db");
    private readonly FakeLogCollector _logs = new();
    private ILoggerFactory _loggerFactory = null!;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private string ConnectionString => $"Data Source={_path};Default Timeout={BusyTimeoutSeconds}";

    public ValueTask InitializeAsync()
    {
        _loggerFactory = LoggerFactory.Create(b => b.AddProvider(new FakeLoggerProvider(_logs)).SetMinimumLevel(LogLevel.Debug));
        return default;
    }

    public ValueTask DisposeAsync()
    {
        _loggerFactory.Dispose();
        SqliteConnection.ClearAllPools();
        foreach (var file in new[] { _path, _path + "-wal", _path + "-shm" })
        {
            File.Delete(file);
        }

        return default;
    }

    [Fact]
    public async Task SqliteTransactional_SlowHandlerOnOnePartition_OtherPartitionsWaitForTheLock_NoneFailsOrIsDeadLettered()
    {
        var topic = broker.CreateTopic(3);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await ExecuteAsync("CREATE TABLE effects (id INTEGER NOT NULL)");
        var slowStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var attempts = new ConcurrentBag<(int Id, int Partition, int Attempt)>();
        var ranBeforeTheSlowOneFinished = new ConcurrentBag<int>();
        var handler = new EffectCounter
        {
            Behavior = async (id, context, cancellationToken) =>
            {
                attempts.Add((id, context.Partition, context.Attempt));
                await WriteEffectAsync(context, id, cancellationToken);
                if (id == 0)
                {
                    slowStarted.TrySetResult();
                    await release.Task.WaitAsync(cancellationToken);
                }
                else if (!release.Task.IsCompleted)
                {
                    ranBeforeTheSlowOneFinished.Add(id);
                }
            },
        };

        await using var consumer = await StoreConsumer.StartAsync(
            broker.Cluster.BootstrapServers,
            topic,
            group,
            handler,
            b => b.UseTransactionalIdempotencyStore(sp => new SqliteIdempotencyStore(
                new SqliteIdempotencyOptions { ConnectionString = ConnectionString, Transactional = true, LockWaitLogInterval = LogInterval },
                logger: sp.GetRequiredService<ILogger<SqliteIdempotencyStore>>())),
            o => o.Retry.MaxAttempts = MaxAttempts);

        // Partition 0's handler takes the write lock and keeps it; then partitions 1 and 2 receive records.
        await ProduceAsync(topic, partition: 0, [0]);
        await slowStarted.Task.WaitAsync(Eventually.DefaultTimeout, Token);
        await ProduceAsync(topic, partition: 1, [1, 2, 3]);
        await ProduceAsync(topic, partition: 2, [4, 5, 6]);
        await Eventually.TrueAsync(
            () => NoAttemptFailed(consumer.Logs)
                && WaitLogs(consumer.Logs).Select(e => e.Message).Any(m => m.Contains($"{topic} [1]", StringComparison.Ordinal))
                && WaitLogs(consumer.Logs).Select(e => e.Message).Any(m => m.Contains($"{topic} [2]", StringComparison.Ordinal)),
            "the records of partitions 1 and 2 say that they wait for the SQLite write lock (log 220)",
            state: () => consumer.Logs.Dump());
        await Task.Delay(Hold, Token);

        Assert.True(handler.Total == 0, $"no record got past the lock while partition 0's handler held it; handled: {string.Join(", ", handler.Effects.Keys)}");
        Assert.Equal(0, consumer.Logs.CountOf(200));
        release.SetResult();

        await Eventually.TrueAsync(() => handler.Total == 7, "every record is handled once partition 0's handler finished", state: () => consumer.Logs.Dump());
        await Eventually.TrueAsync(
            () => broker.Cluster.GetCommittedOffsets(group, topic) is var committed
                && committed.GetValueOrDefault(0) == 1 && committed.GetValueOrDefault(1) == 3 && committed.GetValueOrDefault(2) == 3,
            "every record is committed",
            state: () => consumer.Logs.Dump());

        Assert.Empty(ranBeforeTheSlowOneFinished);
        Assert.Equal(0, consumer.Logs.CountOf(200));   // no attempt failed
        Assert.Equal(0, consumer.Logs.CountOf(205));   // nothing dead-lettered
        Assert.All(attempts, a => Assert.True(a.Attempt == 1, $"message {a.Id} of partition {a.Partition} ran as attempt {a.Attempt}"));
        Assert.All(handler.Effects, e => Assert.True(e.Value == 1, $"message {e.Key} had {e.Value} effects"));
        Assert.Equal(7, await CountEffectsAsync());
    }

    [Fact]
    public async Task BeginTransactionAsync_AnotherTransactionOpenLongerThanTheBusyTimeout_WaitsThenBegins()
    {
        var store = CreateStore();
        var first = await store.BeginTransactionAsync("g/first", Context(offset: 1), Token);
        Assert.NotNull(first);

        var second = store.BeginTransactionAsync("g/second", Context(offset: 2), Token).AsTask();
        await Eventually.TrueAsync(() => _logs.CountOf(220) > 0, "the second transaction says that it waits for the write lock (log 220)", state: () => _logs.Dump());
        await Task.Delay(Hold, Token);
        Assert.False(second.IsCompleted, $"the second transaction waits while the first is open (it ended as {second.Status}: {second.Exception?.InnerException?.Message})");

        await first.DisposeAsync();
        var begun = await second.WaitAsync(Eventually.DefaultTimeout, Token);
        Assert.NotNull(begun);
        await begun.CommitAsync(Context(offset: 2), Token);
        await begun.DisposeAsync();
        Assert.Equal(1, _logs.CountOf(222));
    }

    [Fact]
    public async Task BeginTransactionAsync_AnotherConnectionHoldsTheWriteLockLongerThanTheBusyTimeout_WaitsThenBegins()
    {
        var store = CreateStore();
        var schema = await store.BeginTransactionAsync("g/schema", Context(offset: 0), Token);
        await schema!.DisposeAsync();

        // Another process would hold the lock the same way: a connection of its own, in BEGIN IMMEDIATE.
        await using var other = new SqliteConnection($"Data Source={_path}");
        await other.OpenAsync(Token);
        var held = other.BeginTransaction(deferred: false);

        var waiting = store.BeginTransactionAsync("g/behind-another-process", Context(offset: 3), Token).AsTask();
        await Eventually.TrueAsync(() => _logs.CountOf(221) > 0, "the transaction says that another connection holds the write lock (log 221)", state: () => _logs.Dump());
        await Task.Delay(Hold, Token);
        Assert.False(waiting.IsCompleted, $"the transaction waits while another connection holds the lock (it ended as {waiting.Status}: {waiting.Exception?.InnerException?.Message})");

        held.Commit();
        var begun = await waiting.WaitAsync(Eventually.DefaultTimeout, Token);
        Assert.NotNull(begun);
        await begun.CommitAsync(Context(offset: 3), Token);
        await begun.DisposeAsync();
    }

    [Fact]
    public async Task BeginTransactionAsync_CancelledWhileWaiting_Throws_AndLeavesTheLockToTheNext()
    {
        var store = CreateStore();
        var first = await store.BeginTransactionAsync("g/a", Context(offset: 1), Token);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Token);
        var cancelled = store.BeginTransactionAsync("g/b", Context(offset: 2), cancel.Token).AsTask();
        var next = store.BeginTransactionAsync("g/c", Context(offset: 3), Token).AsTask();
        await Eventually.TrueAsync(() => _logs.CountOf(220) >= 2, "both transactions wait for the write lock (log 220)", state: () => _logs.Dump());

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(Eventually.DefaultTimeout, Token));
        Assert.False(next.IsCompleted, "the next transaction still waits for the first");

        await first!.DisposeAsync();
        var begun = await next.WaitAsync(Eventually.DefaultTimeout, Token);
        Assert.NotNull(begun);
        await begun.DisposeAsync();
    }

    [Fact]
    public async Task BeginTransactionAsync_ADuplicate_ReleasesTheLock()
    {
        var store = CreateStore();
        var first = await store.BeginTransactionAsync("g/once", Context(offset: 1), Token);
        await first!.CommitAsync(Context(offset: 1), Token);
        await first.DisposeAsync();

        Assert.Null(await store.BeginTransactionAsync("g/once", Context(offset: 2), Token));
        var after = await store.BeginTransactionAsync("g/after", Context(offset: 3), Token).AsTask().WaitAsync(Eventually.DefaultTimeout, Token);
        Assert.NotNull(after);
        await after.DisposeAsync();
    }

    [Fact]
    public async Task BeginBatchTransactionAsync_AMessagesTransactionOpen_TheBatchWaitsForTheLock_ThenFindsTheCommittedKeyHandled()
    {
        var store = CreateStore();
        var first = await store.BeginTransactionAsync("g/single", Context(offset: 1), Token);
        Assert.NotNull(first);

        var handled = new bool[2];
        var batch = store.BeginBatchTransactionAsync(["g/single", "g/batch"], handled, Token).AsTask();
        await Eventually.TrueAsync(() => _logs.CountOf(225) > 0, "the batch says that it waits for the write lock (log 225)", state: () => _logs.Dump());
        Assert.False(batch.IsCompleted, $"the batch waits while the message's transaction is open (it ended as {batch.Status}: {batch.Exception?.InnerException?.Message})");

        await first.CommitAsync(Context(offset: 1), Token);
        await first.DisposeAsync();
        var begun = await batch.WaitAsync(Eventually.DefaultTimeout, Token);
        await begun.CommitAsync(Context(offset: 3), Token);
        await begun.DisposeAsync();

        Assert.True(handled.SequenceEqual([true, false]), $"g/single was committed by the message's transaction before the batch began; handled: [{string.Join(", ", handled)}]");
        Assert.Equal(1, _logs.CountOf(227));
        Assert.Contains(_logs.GetSnapshot(), e => e.Id.Id == 225 && e.Message.Contains("first key g/single", StringComparison.Ordinal));
    }

    /// <summary>Fails at once, rather than at the timeout, when a record fails an attempt (log 200) or is dead-lettered (205).</summary>
    private static bool NoAttemptFailed(FakeLogCollector logs)
    {
        if (logs.CountOf(200) + logs.CountOf(205) > 0)
        {
            Assert.Fail($"A record failed while waiting for the write lock: {logs.Dump()}");
        }

        return true;
    }

    private static IEnumerable<FakeLogRecord> WaitLogs(FakeLogCollector logs) => logs.GetSnapshot().Where(e => e.Id.Id == 220);

    private static MessageContext Context(long offset)
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

    private static async Task WriteEffectAsync(MessageContext context, int id, CancellationToken cancellationToken)
    {
        var transaction = context.GetSqliteTransaction();
        await using var insert = new SqliteCommand("INSERT INTO effects (id) VALUES ($id)", transaction.Connection, transaction.Transaction);
        insert.Parameters.AddWithValue("$id", id);
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }

    private SqliteIdempotencyStore CreateStore() => new(
        new SqliteIdempotencyOptions { ConnectionString = ConnectionString, Transactional = true, LockWaitLogInterval = LogInterval },
        logger: _loggerFactory.CreateLogger<SqliteIdempotencyStore>());

    private async Task ProduceAsync(string topic, int partition, IEnumerable<int> ids)
    {
        using var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = broker.Cluster.BootstrapServers }).Build();
        foreach (var id in ids)
        {
            var bytes = Encoding.ASCII.GetBytes(id.ToString(CultureInfo.InvariantCulture));
            await producer.ProduceAsync(new TopicPartition(topic, partition), new Message<byte[]?, byte[]?> { Key = bytes, Value = bytes }, Token);
        }
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var connection = new SqliteConnection(ConnectionString);
        await connection.OpenAsync(Token);
        await using var command = new SqliteCommand(sql, connection);
        await command.ExecuteNonQueryAsync(Token);
    }

    private async Task<long> CountEffectsAsync()
    {
        await using var connection = new SqliteConnection(ConnectionString);
        await connection.OpenAsync(Token);
        await using var command = new SqliteCommand("SELECT count(*) FROM effects", connection);
        return (long)(await command.ExecuteScalarAsync(Token))!;
    }
}
