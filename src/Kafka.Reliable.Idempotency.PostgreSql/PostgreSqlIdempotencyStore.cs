using System.Text.RegularExpressions;
using Confluent.Kafka;
using Npgsql;
using NpgsqlTypes;

namespace Kafka.Reliable.Idempotency.PostgreSql;

/// <summary>
/// An idempotency store in PostgreSQL, shared by every instance of a consumer group. Keys are taken under a lease with
/// <c>INSERT ... ON CONFLICT</c> (no table locks), or, in transactional mode, recorded in the transaction the handler writes
/// through, together with the partition's next offset (G3: exactly-once effects): one message's transaction, or a whole
/// batch's (<see cref="ITransactionalBatchIdempotencyStore"/>).
/// </summary>
public sealed partial class PostgreSqlIdempotencyStore : IIdempotencyStore, ITransactionalBatchIdempotencyStore, IStoredOffsets, IAsyncDisposable
{
    private const short InProgress = 0;
    private const short Completed = 1;
    private readonly PostgreSqlIdempotencyOptions _options;
    private readonly TimeProvider _time;
    private readonly NpgsqlDataSource _dataSource;
    private readonly bool _ownsDataSource;
    private readonly string _table;
    private readonly string _offsetsTable;
    private readonly SemaphoreSlim _schemaLock = new(1, 1);
    private volatile bool _schemaReady;

    /// <summary>Initializes a new instance of the <see cref="PostgreSqlIdempotencyStore"/> class.</summary>
    /// <param name="options">The settings.</param>
    /// <param name="timeProvider">The clock; the system clock by default.</param>
    /// <param name="dataSource">
    /// The application's data source to use (it stays the application's: the store does not dispose it); by default the store
    /// builds its own from <see cref="PostgreSqlIdempotencyOptions.ConnectionString"/> and disposes it when it is disposed.
    /// </param>
    /// <exception cref="ArgumentException">No data source is given and the connection string is missing, or the schema or table name is not a plain identifier.</exception>
    public PostgreSqlIdempotencyStore(PostgreSqlIdempotencyOptions options, TimeProvider? timeProvider = null, NpgsqlDataSource? dataSource = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (dataSource is null && string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            throw new ArgumentException("ConnectionString is required, for example 'Host=db;Username=orders;Password=...;Database=orders', unless the store is given the application's NpgsqlDataSource.", nameof(options));
        }

        foreach (var (name, value) in new[] { ("Schema", options.Schema), ("TableName", options.TableName) })
        {
            if (!Identifier().IsMatch(value))
            {
                throw new ArgumentException($"{name} '{value}' is not a plain identifier: use lower-case letters, digits and '_', starting with a letter.", nameof(options));
            }
        }

        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _ownsDataSource = dataSource is null;
        _dataSource = dataSource ?? NpgsqlDataSource.Create(options.ConnectionString);
        _table = $"{options.Schema}.{options.TableName}";
        _offsetsTable = $"{options.Schema}.{options.TableName}_offsets";
        _schemaReady = !options.CreateSchema;
    }

    /// <summary>Gets the SQL that creates the store's tables, for those who manage the schema themselves.</summary>
    public string SchemaScript => $"""
        CREATE SCHEMA IF NOT EXISTS {_options.Schema};
        CREATE TABLE IF NOT EXISTS {_table} (
            key text PRIMARY KEY,
            owner text NOT NULL,
            status smallint NOT NULL,
            lease_until timestamptz NOT NULL,
            completed_at timestamptz
        );
        CREATE INDEX IF NOT EXISTS {_options.TableName}_expiry ON {_table} (status, completed_at);
        CREATE TABLE IF NOT EXISTS {_offsetsTable} (
            group_id text NOT NULL,
            topic text NOT NULL,
            partition integer NOT NULL,
            next_offset bigint NOT NULL,
            committed_offset bigint NOT NULL DEFAULT -1,
            PRIMARY KEY (group_id, topic, partition)
        );
        ALTER TABLE {_offsetsTable} ADD COLUMN IF NOT EXISTS committed_offset bigint NOT NULL DEFAULT -1;
        """;

    /// <inheritdoc />
    public async ValueTask<IdempotencyBeginResult> TryBeginAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            // Take the key if it is absent, if its holder's lease expired, or if we hold it already (a retry of the same record).
            await using var take = Command(connection, $"""
                INSERT INTO {_table} AS t (key, owner, status, lease_until) VALUES (@key, @owner, {InProgress}, @lease_until)
                ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
                WHERE t.status = {InProgress} AND (t.lease_until <= @now OR t.owner = EXCLUDED.owner)
                RETURNING status
                """, ("key", key), ("owner", owner), ("lease_until", now + lease), ("now", now));
            if (await take.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not null)
            {
                return IdempotencyBeginResult.Acquired;
            }

            await using var look = Command(connection, $"SELECT status, lease_until FROM {_table} WHERE key = @key", ("key", key));
            await using var reader = await look.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return IdempotencyBeginResult.HeldByAnother(TimeSpan.Zero);
            }

            if (reader.GetInt16(0) == Completed)
            {
                return IdempotencyBeginResult.AlreadyCompleted;
            }

            var leaseUntil = reader.GetFieldValue<DateTimeOffset>(1);
            return IdempotencyBeginResult.HeldByAnother(leaseUntil > now ? leaseUntil - now : TimeSpan.Zero);
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
            await using var complete = Command(connection, $"""
                UPDATE {_table} SET status = {Completed}, completed_at = COALESCE(completed_at, @now)
                WHERE key = @key AND owner = @owner
                """, ("key", key), ("owner", owner), ("now", _time.GetUtcNow()));
            return await complete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0 ? IdempotencyLeaseStatus.Lost : IdempotencyLeaseStatus.Held;
        }
    }

    /// <inheritdoc />
    public async ValueTask<IdempotencyLeaseStatus> RenewAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            await using var renew = Command(connection, $"UPDATE {_table} SET lease_until = @lease_until WHERE key = @key AND owner = @owner AND status = {InProgress}",
                ("key", key), ("owner", owner), ("lease_until", _time.GetUtcNow() + lease));
            return await renew.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0 ? IdempotencyLeaseStatus.Lost : IdempotencyLeaseStatus.Held;
        }
    }

    /// <inheritdoc />
    public async ValueTask ReleaseAsync(string key, string owner, CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            await using var release = Command(connection, $"DELETE FROM {_table} WHERE key = @key AND owner = @owner AND status = {InProgress}", ("key", key), ("owner", owner));
            await release.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask<long> CleanupAsync(DateTimeOffset completedBefore, CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            await using var cleanup = Command(connection, $"""
                DELETE FROM {_table}
                WHERE (status = {Completed} AND completed_at < @before) OR (status = {InProgress} AND lease_until < @before)
                """, ("before", completedBefore));
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
            var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.ReadCommitted, cancellationToken).ConfigureAwait(false);

            // A concurrent transaction inserting the same key waits for this one, then finds the key there: handled once.
            await using var record = Command(connection, $"""
                INSERT INTO {_table} (key, owner, status, lease_until, completed_at) VALUES (@key, '', {Completed}, @now, @now)
                ON CONFLICT (key) DO NOTHING
                """, ("key", key), ("now", _time.GetUtcNow()));
            record.Transaction = transaction;
            if (await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 0)
            {
                await transaction.DisposeAsync().ConfigureAwait(false);
                await connection.DisposeAsync().ConfigureAwait(false);
                return null;
            }

            return new PostgreSqlIdempotencyTransaction(this, connection, transaction);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    /// <value>Always <see langword="true"/>: a batch's transaction stores the next offset of each of its partitions.</value>
    public bool CommitsSeveralPartitions => true;

    /// <inheritdoc />
    /// <remarks>
    /// Only in transactional mode (<see cref="PostgreSqlIdempotencyOptions.Transactional"/>). The keys are recorded in one
    /// statement. A key that another open transaction recorded makes this call wait until that transaction ends: the key is
    /// then reported handled if it committed, and recorded here if it rolled back.
    /// </remarks>
    /// <exception cref="ArgumentException">The batch is empty, a key is null, or <paramref name="handled"/> is not as long as <paramref name="keys"/>.</exception>
    /// <exception cref="InvalidOperationException">The store is not in transactional mode.</exception>
    public async ValueTask<IdempotencyTransaction> BeginBatchTransactionAsync(IReadOnlyList<string> keys, IList<bool> handled, CancellationToken cancellationToken)
    {
        BatchKeys.Validate(keys, handled);
        if (!_options.Transactional)
        {
            throw BatchKeys.NotTransactional("UsePostgreSqlIdempotency(..., o => o.Transactional = true)");
        }

        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.ReadCommitted, cancellationToken).ConfigureAwait(false);

            // As for one message, a concurrent transaction inserting one of these keys waits for this one on the unique index,
            // then finds the key there: handled once. The keys go in sorted, so that two batches sharing keys wait for each
            // other in one order and never deadlock. RETURNING names the keys inserted; the others were recorded already.
            await using var record = Command(connection, $"""
                INSERT INTO {_table} (key, owner, status, lease_until, completed_at)
                SELECT key, '', {Completed}, @now, @now FROM (SELECT DISTINCT unnest(@keys::text[]) AS key) AS batch ORDER BY key
                ON CONFLICT (key) DO NOTHING
                RETURNING key
                """, ("keys", keys as string[] ?? [.. keys]), ("now", _time.GetUtcNow()));
            record.Transaction = transaction;
            var recorded = new HashSet<string>(keys.Count, StringComparer.Ordinal);
            await using (var reader = await record.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    recorded.Add(reader.GetString(0));
                }
            }

            // A key counts once: its first message takes it, and each later one with the same key finds it taken.
            for (var i = 0; i < keys.Count; i++)
            {
                handled[i] = !recorded.Remove(keys[i]);
            }

            return new PostgreSqlIdempotencyTransaction(this, connection, transaction);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
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

        // Called on the consumer's poll thread during assignment, which is synchronous by nature.
        using var connection = _dataSource.OpenConnection();
        EnsureSchema(connection);
        using var read = Command(connection, $"SELECT topic, partition, next_offset, committed_offset FROM {_offsetsTable} WHERE group_id = @group AND topic = ANY(@topics)",
            ("group", groupId), ("topics", partitions.Select(p => p.Topic).Distinct().ToArray()));
        using var reader = read.ExecuteReader();
        var offsets = new List<StoredOffset>();
        while (reader.Read())
        {
            var partition = new TopicPartition(reader.GetString(0), new Partition(reader.GetInt32(1)));
            if (partitions.Contains(partition))
            {
                offsets.Add(new StoredOffset(partition, reader.GetInt64(2), reader.GetInt64(3)));
            }
        }

        return offsets;
    }

    /// <inheritdoc />
    public async ValueTask RecordCommittedAsync(string groupId, IReadOnlyList<TopicPartitionOffset> committed, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(committed);
        if (!_options.Transactional || !_options.StoreOffsets || committed.Count == 0)
        {
            return;
        }

        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            foreach (var offset in committed)
            {
                // A partition with no effects stored yet gets a row too: the committed offset is a safe place to start from.
                await using var record = Command(connection, $"""
                    INSERT INTO {_offsetsTable} AS o (group_id, topic, partition, next_offset, committed_offset) VALUES (@group, @topic, @partition, @offset, @offset)
                    ON CONFLICT (group_id, topic, partition) DO UPDATE SET committed_offset = GREATEST(o.committed_offset, EXCLUDED.committed_offset)
                    """, ("group", groupId), ("topic", offset.Topic), ("partition", offset.Partition.Value), ("offset", offset.Offset.Value));
                await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask ForgetStoredOffsetsAsync(string groupId, IReadOnlyList<TopicPartition> partitions, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        if (!_options.Transactional || !_options.StoreOffsets || partitions.Count == 0)
        {
            return;
        }

        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            foreach (var partition in partitions)
            {
                await using var forget = Command(connection, $"DELETE FROM {_offsetsTable} WHERE group_id = @group AND topic = @topic AND partition = @partition",
                    ("group", groupId), ("topic", partition.Topic), ("partition", partition.Partition.Value));
                await forget.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Disposes the data source the store built from the connection string; a data source the application gave it stays open.</summary>
    /// <returns>A task that completes when the data source is disposed.</returns>
    public ValueTask DisposeAsync() => _ownsDataSource ? _dataSource.DisposeAsync() : ValueTask.CompletedTask;

    internal async ValueTask StoreOffsetAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, MessageContext context, CancellationToken cancellationToken)
    {
        if (!_options.StoreOffsets)
        {
            return;
        }

        await using var store = Command(connection, $"""
            INSERT INTO {_offsetsTable} AS o (group_id, topic, partition, next_offset) VALUES (@group, @topic, @partition, @next)
            ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = GREATEST(o.next_offset, EXCLUDED.next_offset)
            """, ("group", context.GroupId), ("topic", context.Topic), ("partition", context.Partition), ("next", context.SafeNextOffset));
        store.Transaction = transaction;
        await store.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_schemaReady)
            {
                await _schemaLock.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    await EnsureSchemaAsync(connection, cancellationToken).ConfigureAwait(false);
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

    private async ValueTask EnsureSchemaAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        if (_schemaReady)
        {
            return;
        }

        // Instances starting together would race on CREATE TABLE IF NOT EXISTS: an advisory lock makes them take turns.
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var create = Command(connection, $"SELECT pg_advisory_xact_lock(hashtext(@table)); {SchemaScript}", ("table", _table)))
        {
            create.Transaction = transaction;
            await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        _schemaReady = true;
    }

    private void EnsureSchema(NpgsqlConnection connection)
    {
        if (_schemaReady)
        {
            return;
        }

        using var transaction = connection.BeginTransaction();
        using (var create = Command(connection, $"SELECT pg_advisory_xact_lock(hashtext(@table)); {SchemaScript}", ("table", _table)))
        {
            create.Transaction = transaction;
            create.ExecuteNonQuery();
        }

        transaction.Commit();
        _schemaReady = true;
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, string sql, params (string Name, object Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.Add(value is DateTimeOffset at
                ? new NpgsqlParameter(name, NpgsqlDbType.TimestampTz) { Value = at.UtcDateTime }
                : new NpgsqlParameter(name, value));
        }

        return command;
    }

    [GeneratedRegex("^[a-z][a-z0-9_]{0,62}$")]
    internal static partial Regex Identifier();
}

/// <summary>The transaction a handler writes through with <see cref="PostgreSqlIdempotencyOptions.Transactional"/>.</summary>
public sealed class PostgreSqlIdempotencyTransaction : DbIdempotencyTransaction<NpgsqlConnection, NpgsqlTransaction>
{
    private readonly PostgreSqlIdempotencyStore _store;

    internal PostgreSqlIdempotencyTransaction(PostgreSqlIdempotencyStore store, NpgsqlConnection connection, NpgsqlTransaction transaction)
        : base(connection, transaction)
    {
        _store = store;
    }

    /// <inheritdoc />
    protected override ValueTask BeforeCommitAsync(MessageContext context, CancellationToken cancellationToken) =>
        _store.StoreOffsetAsync(Connection, Transaction, context, cancellationToken);
}
