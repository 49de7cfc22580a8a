using System.Text.RegularExpressions;
using Confluent.Kafka;
using Microsoft.Data.Sqlite;

namespace Kafka.Reliable;

/// <summary>
/// An idempotency store in a SQLite database file: embedded, durable, no server. The database runs in WAL mode, so readers
/// never block the writer. Keys are taken under a lease (<see cref="IIdempotencyStore"/>), or, in transactional mode, recorded
/// in the transaction the handler writes through (<see cref="ITransactionalIdempotencyStore"/>).
/// </summary>
/// <remarks>
/// SQLite allows one writer at a time: the store suits one consumer process (several partitions are fine), not a group of
/// instances on several machines; use the PostgreSQL or Redis store for those.
/// </remarks>
public sealed partial class SqliteIdempotencyStore : IIdempotencyStore, ITransactionalIdempotencyStore, IStoredOffsets
{
    private const int InProgress = 0;
    private const int Completed = 1;
    private readonly SqliteIdempotencyOptions _options;
    private readonly TimeProvider _time;
    private readonly string _table;
    private readonly string _offsetsTable;
    private readonly SemaphoreSlim _schemaLock = new(1, 1);
    private volatile bool _schemaReady;

    /// <summary>Initializes a new instance of the <see cref="SqliteIdempotencyStore"/> class.</summary>
    /// <param name="options">The settings.</param>
    /// <param name="timeProvider">The clock; the system clock by default.</param>
    /// <exception cref="ArgumentException">The connection string is missing or the table name is not a plain identifier.</exception>
    public SqliteIdempotencyStore(SqliteIdempotencyOptions options, TimeProvider? timeProvider = null)
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

        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _table = options.TableName;
        _offsetsTable = options.TableName + "_offsets";
        _schemaReady = !options.CreateSchema;
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
    public async ValueTask<IdempotencyTransaction?> BeginTransactionAsync(string key, MessageContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // BEGIN IMMEDIATE: take the write lock now, so that two transactions cannot both see the key absent. (SQLite has no
            // asynchronous I/O: Microsoft.Data.Sqlite's async methods run synchronously too.)
            var transaction = connection.BeginTransaction(deferred: false);
            using var record = Command(connection, $"""
                INSERT INTO {_table} (key, owner, status, lease_until, completed_at) VALUES ($key, '', {Completed}, 0, $now)
                ON CONFLICT (key) DO NOTHING
                """, ("$key", key), ("$now", _time.GetUtcNow().ToUnixTimeMilliseconds()));
            record.Transaction = transaction;
            if (await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            {
                await transaction.DisposeAsync().ConfigureAwait(false);
                await connection.DisposeAsync().ConfigureAwait(false);
                return null;
            }

            return new SqliteIdempotencyTransaction(this, connection, transaction);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<TopicPartitionOffset> GetStoredOffsets(string groupId, IReadOnlyList<TopicPartition> partitions)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        if (!_options.Transactional || !_options.StoreOffsets || partitions.Count == 0)
        {
            return [];
        }

        using var connection = new SqliteConnection(_options.ConnectionString);
        connection.Open();
        EnsureSchema(connection);
        var offsets = new List<TopicPartitionOffset>();
        foreach (var partition in partitions)
        {
            using var read = Command(connection, $"SELECT next_offset FROM {_offsetsTable} WHERE group_id = $group AND topic = $topic AND partition = $partition",
                ("$group", groupId), ("$topic", partition.Topic), ("$partition", partition.Partition.Value));
            if (read.ExecuteScalar() is long next)
            {
                offsets.Add(new TopicPartitionOffset(partition, new Offset(next)));
            }
        }

        return offsets;
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
            """, ("$group", context.GroupId), ("$topic", context.Topic), ("$partition", context.Partition), ("$next", context.Offset + 1));
        store.Transaction = transaction;
        await store.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
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
    private static partial Regex Identifier();
}

/// <summary>The transaction a handler writes through with <see cref="SqliteIdempotencyOptions.Transactional"/>.</summary>
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

/// <summary>Gives a handler the SQLite transaction of its message, with <see cref="SqliteIdempotencyOptions.Transactional"/>.</summary>
public static class SqliteMessageContextExtensions
{
    /// <summary>Gets the transaction the handler writes through, so that its writes commit with the idempotency record.</summary>
    /// <param name="context">The message's context.</param>
    /// <returns>The transaction (its <c>Connection</c> and <c>Transaction</c>).</returns>
    /// <exception cref="InvalidOperationException">The consumer does not use the SQLite store in transactional mode.</exception>
    public static SqliteIdempotencyTransaction GetSqliteTransaction(this MessageContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Transaction as SqliteIdempotencyTransaction
            ?? throw new InvalidOperationException("This message has no SQLite transaction: register the consumer with UseSqliteIdempotency(..., o => o.Transactional = true).");
    }
}
