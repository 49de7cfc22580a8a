using System.Collections.Concurrent;
using System.Data;
using System.Text.RegularExpressions;
using Confluent.Kafka;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kafka.Reliable.Idempotency.Sqlite;

/// <summary>
/// An idempotency store in a SQLite database file: embedded, durable, no server. The database runs in WAL mode, so readers
/// never block the writer. Keys are taken under a lease (<see cref="IIdempotencyStore"/>), or, in transactional mode, recorded
/// in the transaction the handler writes through (<see cref="ITransactionalIdempotencyStore"/>), one message's or a whole
/// batch's (<see cref="ITransactionalBatchIdempotencyStore"/>).
/// </summary>
/// <remarks>
/// SQLite allows one writer at a time: the store suits one consumer process (several partitions are fine), not a group of
/// instances on several machines; use the PostgreSQL or Redis store for those. In transactional mode a message's
/// transaction holds the write lock while its handler runs, so the store runs one transaction at a time per database file:
/// the others wait for the lock in turn (in this process, in order of arrival, without a busy timeout; behind another
/// process, trying again), and waiting is never a failure of their message. A batch's transaction holds it the same way,
/// for the whole batch.
/// </remarks>
public sealed partial class SqliteIdempotencyStore : IIdempotencyStore, ITransactionalBatchIdempotencyStore, IStoredOffsets
{
    private const int InProgress = 0;
    private const int Completed = 1;
    private readonly SqliteIdempotencyOptions _options;
    private readonly TimeProvider _time;
    private readonly string _table;
    private readonly string _offsetsTable;
    private readonly SemaphoreSlim _schemaLock = new(1, 1);
    private volatile bool _schemaReady;

    // One per database file in this process, shared by the stores that use it: SQLite has one write lock per file, and a
    // transaction that waits here waits asynchronously, in order, and for as long as it takes, instead of failing with
    // "database is locked" after a busy timeout.
    private static readonly ConcurrentDictionary<string, SemaphoreSlim> WriteLocks = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _writeLock;
    private readonly string _database;
    private readonly ILogger _logger;

    /// <summary>Initializes a new instance of the <see cref="SqliteIdempotencyStore"/> class.</summary>
    /// <param name="options">The settings.</param>
    /// <param name="timeProvider">The clock; the system clock by default.</param>
    /// <param name="logger">Where the store says that a message waits for the database's write lock; none by default.</param>
    /// <exception cref="ArgumentException">The connection string is missing or the table name is not a plain identifier.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="SqliteIdempotencyOptions.LockWaitLogInterval"/> is not positive.</exception>
    public SqliteIdempotencyStore(SqliteIdempotencyOptions options, TimeProvider? timeProvider = null, ILogger<SqliteIdempotencyStore>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            throw new ArgumentException("ConnectionString is required, for example 'Data Source=idempotency.db'.", nameof(options));
        }

        if (!Identifier().IsMatch(options.TableName))
        {
            throw new ArgumentException($"TableName '{options.TableName}' is not a plain identifier: use letters, digits and '_', starting with a letter.", nameof(options));
        }

        if (options.LockWaitLogInterval <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.LockWaitLogInterval, "LockWaitLogInterval must be positive.");
        }

        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _table = options.TableName;
        _offsetsTable = options.TableName + "_offsets";
        _schemaReady = !options.CreateSchema;
        _database = DatabaseOf(options.ConnectionString);
        _writeLock = WriteLocks.GetOrAdd(_database, static _ => new SemaphoreSlim(1, 1));
    }

    /// <summary>Gets the SQL that creates the store's tables, for those who manage the schema themselves.</summary>
    public string SchemaScript => $"""
        CREATE TABLE IF NOT EXISTS {_table} (
            key TEXT NOT NULL PRIMARY KEY,
            owner TEXT NOT NULL,
            status INTEGER NOT NULL,
            lease_until INTEGER NOT NULL,
            completed_at INTEGER
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS {_table}_expiry ON {_table} (status, completed_at);
        CREATE TABLE IF NOT EXISTS {_offsetsTable} (
            group_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            partition INTEGER NOT NULL,
            next_offset INTEGER NOT NULL,
            committed_offset INTEGER NOT NULL DEFAULT -1,
            PRIMARY KEY (group_id, topic, partition)
        ) WITHOUT ROWID;
        """;

    /// <inheritdoc />
    public async ValueTask<IdempotencyBeginResult> TryBeginAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            // Take the key if it is absent, if its holder's lease expired, or if we hold it already (a retry of the same record).
            using var take = Command(connection, $"""
                INSERT INTO {_table} (key, owner, status, lease_until) VALUES ($key, $owner, {InProgress}, $lease_until)
                ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
                WHERE {_table}.status = {InProgress} AND ({_table}.lease_until <= $now OR {_table}.owner = excluded.owner)
                RETURNING status
                """, ("$key", key), ("$owner", owner), ("$lease_until", now + (long)lease.TotalMilliseconds), ("$now", now));
            if (await take.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not null)
            {
                return IdempotencyBeginResult.Acquired;
            }

            using var look = Command(connection, $"SELECT status, lease_until FROM {_table} WHERE key = $key", ("$key", key));
            using var reader = await look.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                // Released between the two statements: take it on the next attempt.
                return IdempotencyBeginResult.HeldByAnother(TimeSpan.Zero);
            }

            return reader.GetInt32(0) == Completed
                ? IdempotencyBeginResult.AlreadyCompleted
                : IdempotencyBeginResult.HeldByAnother(TimeSpan.FromMilliseconds(Math.Max(0, reader.GetInt64(1) - now)));
        }
    }

    /// <inheritdoc />
    public async ValueTask<IdempotencyLeaseStatus> CompleteAsync(string key, string owner, CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            // Also matches a key this owner completed already, so that a completion retried after a lost reply is not taken
            // for a lost lease. Transactional rows have no owner ('') and never match.
            using var complete = Command(connection, $"""
                UPDATE {_table} SET status = {Completed}, completed_at = coalesce(completed_at, $now)
                WHERE key = $key AND owner = $owner
                """, ("$key", key), ("$owner", owner), ("$now", _time.GetUtcNow().ToUnixTimeMilliseconds()));
            return await complete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0 ? IdempotencyLeaseStatus.Lost : IdempotencyLeaseStatus.Held;
        }
    }

    /// <inheritdoc />
    public async ValueTask<IdempotencyLeaseStatus> RenewAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var renew = Command(connection, $"UPDATE {_table} SET lease_until = $lease_until WHERE key = $key AND owner = $owner AND status = {InProgress}",
                ("$key", key), ("$owner", owner), ("$lease_until", _time.GetUtcNow().ToUnixTimeMilliseconds() + (long)lease.TotalMilliseconds));
            return await renew.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0 ? IdempotencyLeaseStatus.Lost : IdempotencyLeaseStatus.Held;
        }
    }

    /// <inheritdoc />
    public async ValueTask ReleaseAsync(string key, string owner, CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var release = Command(connection, $"DELETE FROM {_table} WHERE key = $key AND owner = $owner AND status = {InProgress}", ("$key", key), ("$owner", owner));
            await release.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask<long> CleanupAsync(DateTimeOffset completedBefore, CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var cleanup = Command(connection, $"""
                DELETE FROM {_table}
                WHERE (status = {Completed} AND completed_at < $before) OR (status = {InProgress} AND lease_until < $before)
                """, ("$before", completedBefore.ToUnixTimeMilliseconds()));
            return await cleanup.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// The transaction holds the database's write lock until it is disposed: dispose it promptly. Waiting for the lock (behind
    /// another message's transaction in this process, or another connection or process) lasts as long as
    /// <paramref name="cancellationToken"/> allows and is logged every <see cref="SqliteIdempotencyOptions.LockWaitLogInterval"/>.
    /// </remarks>
    public async ValueTask<IdempotencyTransaction?> BeginTransactionAsync(string key, MessageContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var handled = new bool[1];
        var transaction = await BeginRecordingAsync(new LockWaiter(_logger, context, null), [key], handled, cancellationToken).ConfigureAwait(false);
        if (handled[0])
        {
            await transaction.DisposeAsync().ConfigureAwait(false);
            return null;
        }

        return transaction;
    }

    /// <inheritdoc />
    /// <value>Always <see langword="true"/>: a batch's transaction stores the next offset of each of its partitions.</value>
    public bool CommitsSeveralPartitions => true;

    /// <inheritdoc />
    /// <remarks>
    /// Only in transactional mode (<see cref="SqliteIdempotencyOptions.Transactional"/>). The batch's transaction holds the
    /// database's write lock until it is disposed, and waits for it, as a message's transaction does
    /// (<see cref="BeginTransactionAsync"/>).
    /// </remarks>
    /// <exception cref="ArgumentException">The batch is empty, a key is null, or <paramref name="handled"/> is not as long as <paramref name="keys"/>.</exception>
    /// <exception cref="InvalidOperationException">The store is not in transactional mode.</exception>
    public async ValueTask<IdempotencyTransaction> BeginBatchTransactionAsync(IReadOnlyList<string> keys, IList<bool> handled, CancellationToken cancellationToken)
    {
        BatchKeys.Validate(keys, handled);
        if (!_options.Transactional)
        {
            throw BatchKeys.NotTransactional("UseSqliteIdempotency(..., o => o.Transactional = true)");
        }

        return await BeginRecordingAsync(new LockWaiter(_logger, null, keys), keys, handled, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Takes the write lock (in this process, then SQLite's with <c>BEGIN IMMEDIATE</c>) and records the keys in the new
    /// transaction, in order; a key recorded already (before, or earlier in <paramref name="keys"/>) is reported handled.
    /// </summary>
    private async ValueTask<IdempotencyTransaction> BeginRecordingAsync(LockWaiter waiter, IReadOnlyList<string> keys, IList<bool> handled, CancellationToken cancellationToken)
    {
        var waitStarted = _time.GetTimestamp();
        var writeLock = await TakeWriteLockAsync(waiter, waitStarted, cancellationToken).ConfigureAwait(false);
        SqliteConnection? connection = null;
        try
        {
            connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
            var transaction = await BeginImmediateAsync(connection, waiter, waitStarted, writeLock.Waited, cancellationToken).ConfigureAwait(false);

            // One statement per key, in offset order, all in this process under the write lock: no round trips to save. A key
            // repeated in a batch changes nothing the second time, so it is reported handled from its second message on.
            using var record = Command(connection, $"""
                INSERT INTO {_table} (key, owner, status, lease_until, completed_at) VALUES ($key, '', {Completed}, 0, $now)
                ON CONFLICT (key) DO NOTHING
                """, ("$key", string.Empty), ("$now", _time.GetUtcNow().ToUnixTimeMilliseconds()));
            record.Transaction = transaction;
            var key = record.Parameters["$key"];
            for (var i = 0; i < keys.Count; i++)
            {
                key.Value = keys[i];
                handled[i] = await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0;
            }

            // From here the transaction owns the lock: closing its connection (disposing it, committed or not) ends SQLite's
            // write lock, and releases ours with it.
            writeLock.ReleaseWhenClosed(connection);
            writeLock = null;
            var result = new SqliteIdempotencyTransaction(this, connection, transaction);
            connection = null;
            return result;
        }
        finally
        {
            if (connection is not null)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }

            writeLock?.Release();
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<StoredOffset> GetStoredOffsets(string groupId, IReadOnlyList<TopicPartition> partitions)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        if (!_options.Transactional || !_options.StoreOffsets || partitions.Count == 0)
        {
            return [];
        }

        using var connection = new SqliteConnection(_options.ConnectionString);
        connection.Open();
        EnsureSchema(connection);
        var offsets = new List<StoredOffset>();
        foreach (var partition in partitions)
        {
            using var read = Command(connection, $"SELECT next_offset, committed_offset FROM {_offsetsTable} WHERE group_id = $group AND topic = $topic AND partition = $partition",
                ("$group", groupId), ("$topic", partition.Topic), ("$partition", partition.Partition.Value));
            using var reader = read.ExecuteReader();
            if (reader.Read())
            {
                offsets.Add(new StoredOffset(partition, reader.GetInt64(0), reader.GetInt64(1)));
            }
        }

        return offsets;
    }

    /// <inheritdoc />
    public ValueTask RecordCommittedAsync(string groupId, IReadOnlyList<TopicPartitionOffset> committed, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(committed);
        return WriteOffsetsAsync(committed, offset => ($"""
            INSERT INTO {_offsetsTable} (group_id, topic, partition, next_offset, committed_offset) VALUES ($group, $topic, $partition, $offset, $offset)
            ON CONFLICT (group_id, topic, partition) DO UPDATE SET committed_offset = max(committed_offset, excluded.committed_offset)
            """, [("$group", groupId), ("$topic", offset.Topic), ("$partition", offset.Partition.Value), ("$offset", offset.Offset.Value)]), cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask ForgetStoredOffsetsAsync(string groupId, IReadOnlyList<TopicPartition> partitions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        return WriteOffsetsAsync(partitions, partition => (
            $"DELETE FROM {_offsetsTable} WHERE group_id = $group AND topic = $topic AND partition = $partition",
            [("$group", groupId), ("$topic", partition.Topic), ("$partition", partition.Partition.Value)]), cancellationToken);
    }

    /// <summary>One statement per item, in one short transaction (the database's write lock is taken briefly, outside the consumer's own transactions' turns).</summary>
    private async ValueTask WriteOffsetsAsync<T>(IReadOnlyList<T> items, Func<T, (string Sql, (string Name, object Value)[] Parameters)> statement, CancellationToken cancellationToken)
    {
        if (!_options.Transactional || !_options.StoreOffsets || items.Count == 0)
        {
            return;
        }

        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            foreach (var item in items)
            {
                var (sql, parameters) = statement(item);
                using var command = Command(connection, sql, parameters);
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    internal async ValueTask StoreOffsetAsync(SqliteConnection connection, SqliteTransaction transaction, MessageContext context, CancellationToken cancellationToken)
    {
        if (!_options.StoreOffsets)
        {
            return;
        }

        using var store = Command(connection, $"""
            INSERT INTO {_offsetsTable} (group_id, topic, partition, next_offset) VALUES ($group, $topic, $partition, $next)
            ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)
            """, ("$group", context.GroupId), ("$topic", context.Topic), ("$partition", context.Partition), ("$next", context.SafeNextOffset));
        store.Transaction = transaction;
        await store.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Waits for this process's turn at the database's write lock: asynchronously, in order of arrival, for as long as the
    /// message's cancellation allows. Not an attempt and not a failure: a record waiting here fails nothing and spends nothing.
    /// </summary>
    private async ValueTask<WriteLockTurn> TakeWriteLockAsync(LockWaiter waiter, long waitStarted, CancellationToken cancellationToken)
    {
        var wait = _writeLock.WaitAsync(cancellationToken);
        var waited = !wait.IsCompleted;
        if (waited)
        {
            while (true)
            {
                try
                {
                    await wait.WaitAsync(_options.LockWaitLogInterval, _time, CancellationToken.None).ConfigureAwait(false);
                    break;
                }
                catch (TimeoutException)
                {
                    // Still waiting: say so, so that a partition waiting behind a slow handler does not look stuck without a word.
                    waiter.WaitingForWriteLock(_time.GetElapsedTime(waitStarted), _database);
                }
            }
        }

        await wait.ConfigureAwait(false);
        return new WriteLockTurn(_writeLock, waited);
    }

    /// <summary>
    /// Begins the transaction with the write lock (<c>BEGIN IMMEDIATE</c>): a transaction that took a read lock first and
    /// upgraded later could fail with SQLITE_BUSY in the middle of its handler, where waiting cannot help; at BEGIN it can.
    /// When another connection or process holds the lock, BEGIN waits at most briefly in Microsoft.Data.Sqlite's busy loop
    /// (which blocks its thread), then the store waits asynchronously with backoff and tries again, for as long as the
    /// message's cancellation allows.
    /// </summary>
    private async ValueTask<SqliteTransaction> BeginImmediateAsync(SqliteConnection connection, LockWaiter waiter, long waitStarted, bool waited, CancellationToken cancellationToken)
    {
        var busyTimeout = connection.DefaultTimeout;
        connection.DefaultTimeout = SqliteIdempotencyConstants.BeginBusyTimeoutSeconds;
        try
        {
            var delay = SqliteIdempotencyConstants.MinBusyDelay;
            var busySince = 0L;
            var nextLog = TimeSpan.Zero;
            while (true)
            {
                try
                {
                    var transaction = connection.BeginTransaction(deferred: false);
                    if (waited || busySince != 0)
                    {
                        waiter.WriteLockTaken(_time.GetElapsedTime(waitStarted));
                    }

                    return transaction;
                }
                catch (SqliteException ex) when (ex.SqliteErrorCode is SqliteIdempotencyConstants.SqliteBusy or SqliteIdempotencyConstants.SqliteLocked)
                {
                    if (busySince == 0)
                    {
                        busySince = _time.GetTimestamp();
                        nextLog = _options.LockWaitLogInterval;
                    }
                    else if (_time.GetElapsedTime(busySince) >= nextLog)
                    {
                        waiter.WaitingForDatabase(_time.GetElapsedTime(waitStarted), _database);
                        nextLog += _options.LockWaitLogInterval;
                    }
                }

                await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, SqliteIdempotencyConstants.MaxBusyDelay.Ticks));
            }
        }
        finally
        {
            // The handler's own commands hold the lock already; they keep the connection string's timeout.
            connection.DefaultTimeout = busyTimeout;
        }
    }

    /// <summary>Names the database file a connection string opens, so that the stores of one file share one write lock.</summary>
    private static string DatabaseOf(string connectionString)
    {
        var source = new SqliteConnectionStringBuilder(connectionString).DataSource;
        return source.Length == 0 || source == ":memory:" || source.StartsWith("file:", StringComparison.OrdinalIgnoreCase)
            ? connectionString
            : Path.GetFullPath(source);
    }

    private async ValueTask<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_options.ConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);

            // In WAL mode, NORMAL syncs at checkpoints rather than at every commit: a commit survives the process being killed,
            // and only a power loss can take the last ones back (with their effects, in transactional mode). Per connection.
            using (var synchronous = Command(connection, "PRAGMA synchronous = NORMAL"))
            {
                await synchronous.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            if (!_schemaReady)
            {
                await _schemaLock.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    EnsureSchema(connection);
                }
                finally
                {
                    _schemaLock.Release();
                }
            }

            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private void EnsureSchema(SqliteConnection connection)
    {
        if (_schemaReady)
        {
            return;
        }

        // WAL: readers do not block the writer, and a commit survives the process being killed.
        using (var wal = Command(connection, "PRAGMA journal_mode = WAL"))
        {
            wal.ExecuteNonQuery();
        }

        using (var create = Command(connection, SchemaScript))
        {
            create.ExecuteNonQuery();
        }

        // Tables made by an earlier version have no committed_offset column (SQLite cannot add a column "if not exists").
        using (var columns = Command(connection, $"SELECT count(*) FROM pragma_table_info('{_offsetsTable}') WHERE name = 'committed_offset'"))
        {
            if (columns.ExecuteScalar() is 0L)
            {
                using var add = Command(connection, $"ALTER TABLE {_offsetsTable} ADD COLUMN committed_offset INTEGER NOT NULL DEFAULT -1");
                add.ExecuteNonQuery();
            }
        }

        _schemaReady = true;
    }

    private static SqliteCommand Command(SqliteConnection connection, string sql, params (string Name, object Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        return command;
    }

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9_]{0,62}$")]
    internal static partial Regex Identifier();
}

/// <summary>Who waits for a database's write lock, for the log: one message (its context), or a batch (its keys).</summary>
internal readonly struct LockWaiter(ILogger logger, MessageContext? context, IReadOnlyList<string>? batch)
{
    public void WaitingForWriteLock(TimeSpan waited, string database)
    {
        if (context is not null)
        {
            Log.WaitingForWriteLock(logger, context.ConsumerName, context.Topic, context.Partition, context.Offset, waited, database);
        }
        else
        {
            Log.BatchWaitingForWriteLock(logger, batch!.Count, batch[0], waited, database);
        }
    }

    public void WaitingForDatabase(TimeSpan waited, string database)
    {
        if (context is not null)
        {
            Log.WaitingForDatabase(logger, context.ConsumerName, context.Topic, context.Partition, context.Offset, waited, database);
        }
        else
        {
            Log.BatchWaitingForDatabase(logger, batch!.Count, batch[0], waited, database);
        }
    }

    public void WriteLockTaken(TimeSpan waited)
    {
        if (context is not null)
        {
            Log.WriteLockTaken(logger, context.ConsumerName, context.Topic, context.Partition, context.Offset, waited);
        }
        else
        {
            Log.BatchWriteLockTaken(logger, batch!.Count, batch[0], waited);
        }
    }
}

/// <summary>This process's turn at a database's write lock; released once, by whoever holds it last.</summary>
internal sealed class WriteLockTurn(SemaphoreSlim writeLock, bool waited)
{
    private int _released;

    /// <summary>Gets a value indicating whether the turn had to wait for another transaction of this process.</summary>
    public bool Waited { get; } = waited;

    public void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            writeLock.Release();
        }
    }

    /// <summary>Hands the turn to the connection: it ends when the connection closes, which ends SQLite's lock too.</summary>
    public void ReleaseWhenClosed(SqliteConnection connection) =>
        connection.StateChange += (_, change) =>
        {
            if (change.CurrentState == ConnectionState.Closed)
            {
                Release();
            }
        };
}

/// <summary>
/// The transaction a handler writes through with <see cref="SqliteIdempotencyOptions.Transactional"/>. It holds the
/// database's write lock until it is disposed.
/// </summary>
public sealed class SqliteIdempotencyTransaction : DbIdempotencyTransaction<SqliteConnection, SqliteTransaction>
{
    private readonly SqliteIdempotencyStore _store;

    internal SqliteIdempotencyTransaction(SqliteIdempotencyStore store, SqliteConnection connection, SqliteTransaction transaction)
        : base(connection, transaction)
    {
        _store = store;
    }

    /// <inheritdoc />
    protected override ValueTask BeforeCommitAsync(MessageContext context, CancellationToken cancellationToken) =>
        _store.StoreOffsetAsync(Connection, Transaction, context, cancellationToken);
}
