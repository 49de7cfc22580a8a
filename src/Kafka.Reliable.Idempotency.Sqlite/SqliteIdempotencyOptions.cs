namespace Kafka.Reliable.Idempotency.Sqlite;

/// <summary>Settings of the SQLite idempotency store.</summary>
public sealed class SqliteIdempotencyOptions
{
    /// <summary>Gets or sets the ADO.NET connection string, for example <c>Data Source=/var/lib/orders/idempotency.db</c>.</summary>
    public string ConnectionString { get; set; } = string.Empty;

    /// <summary>Gets or sets the table that holds the keys (and, in transactional mode with offsets, a second table named <c>&lt;table&gt;_offsets</c>).</summary>
    /// <value>The default value is <c>kafka_reliable_idempotency</c>.</value>
    public string TableName { get; set; } = "kafka_reliable_idempotency";

    /// <summary>
    /// Gets or sets a value indicating whether the handler writes through the store's transaction
    /// (<see cref="SqliteMessageContextExtensions.GetSqliteTransaction"/>), so that its writes and the idempotency record commit
    /// together: exactly-once effects in the same database file.
    /// </summary>
    /// <value>The default value is <see langword="false"/>: keys are taken under a lease, and the handler writes wherever it wants.</value>
    /// <remarks>
    /// A transaction holds SQLite's single write lock from its start to its commit, handler included: the store runs one
    /// transaction at a time per database file, and the others wait for it (without failing). Its throughput is
    /// 1 / (handler time + commit time), whatever the partitions and the concurrency mode.
    /// </remarks>
    public bool Transactional { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether, in transactional mode, each partition's next offset is stored in the same
    /// transaction, and read on assignment so that a crash between the database commit and the Kafka commit repeats nothing.
    /// </summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool StoreOffsets { get; set; } = true;

    /// <summary>
    /// Gets or sets how long a message waits for the database's write lock, in transactional mode, before the store says so
    /// (log 220, or 221 when another connection or process holds it), and again after each further interval. Waiting is not a
    /// failure: the message waits as long as its cancellation allows, and spends none of its retry attempts.
    /// </summary>
    /// <value>The default value is 10 seconds.</value>
    public TimeSpan LockWaitLogInterval { get; set; } = SqliteIdempotencyConstants.DefaultLockWaitLogInterval;

    /// <summary>Gets or sets a value indicating whether the tables are created on first use (idempotent); turn it off to manage the schema yourself (see <see cref="SqliteIdempotencyStore.SchemaScript"/>).</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool CreateSchema { get; set; } = true;
}
