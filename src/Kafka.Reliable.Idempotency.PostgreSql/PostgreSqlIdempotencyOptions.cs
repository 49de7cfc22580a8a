namespace Kafka.Reliable.Idempotency.PostgreSql;

/// <summary>Settings of the PostgreSQL idempotency store: named options (the consumer's name), bindable from configuration and validated when the host starts.</summary>
public sealed class PostgreSqlIdempotencyOptions
{
    /// <summary>
    /// Gets or sets the Npgsql connection string; the store then builds its own data source, and disposes it when it is
    /// disposed. Leave it empty to use the application's <c>NpgsqlDataSource</c> (see <see cref="DataSourceKey"/>).
    /// </summary>
    /// <value>The default value is empty: the application's data source.</value>
    public string ConnectionString { get; set; } = string.Empty;

    /// <summary>
    /// Gets or sets the service key of the application's <c>NpgsqlDataSource</c>, registered for example with
    /// <c>AddNpgsqlDataSource(connectionString, serviceKey: "orders")</c>, used when <see cref="ConnectionString"/> is empty.
    /// The store uses that data source and never disposes it.
    /// </summary>
    /// <value>The default value is <see langword="null"/>: the data source registered without a key.</value>
    public string? DataSourceKey { get; set; }

    /// <summary>Gets or sets the schema of the store's tables.</summary>
    /// <value>The default value is <c>public</c>.</value>
    public string Schema { get; set; } = "public";

    /// <summary>Gets or sets the table that holds the keys; offsets go to <c>&lt;table&gt;_offsets</c>.</summary>
    /// <value>The default value is <c>kafka_reliable_idempotency</c>.</value>
    public string TableName { get; set; } = "kafka_reliable_idempotency";

    /// <summary>
    /// Gets or sets a value indicating whether the handler writes through the store's transaction
    /// (<see cref="PostgreSqlMessageContextExtensions.GetNpgsqlTransaction"/>): its writes, the idempotency record and
    /// (with <see cref="StoreOffsets"/>) the partition's next offset commit together or not at all (exactly-once effects).
    /// </summary>
    /// <value>The default value is <see langword="false"/>: keys are taken under a lease with <c>INSERT ... ON CONFLICT</c>.</value>
    public bool Transactional { get; set; }

    /// <summary>Gets or sets a value indicating whether, in transactional mode, partition offsets are stored with the effects and read on assignment.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool StoreOffsets { get; set; } = true;

    /// <summary>Gets or sets a value indicating whether the tables are created on first use (idempotent); turn it off to manage the schema yourself (<see cref="PostgreSqlIdempotencyStore.SchemaScript"/>).</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool CreateSchema { get; set; } = true;
}
