namespace Kafka.Reliable;

/// <summary>Settings of the PostgreSQL idempotency store.</summary>
public sealed class PostgreSqlIdempotencyOptions
{
    /// <summary>Gets or sets the Npgsql connection string.</summary>
    public string ConnectionString { get; set; } = string.Empty;

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
