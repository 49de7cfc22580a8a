namespace Kafka.Reliable;

/// <summary>
/// How a consumer with a batch handler (<c>WithBatchHandler&lt;THandler&gt;()</c>) forms its batches: from the records of
/// one partition buffered and in offset order (or of several partitions, with <see cref="AcrossPartitions"/>), up to a count
/// and a size, waiting at most <see cref="Linger"/> for more.
/// </summary>
public sealed class BatchOptions
{
    /// <summary>Gets or sets the most messages in one batch.</summary>
    /// <value>
    /// The default value is 500. Allowed: 1 to 100,000, and at most <see cref="ReliableConsumerOptions.PartitionBufferSize"/>
    /// unless <see cref="AcrossPartitions"/> is set.
    /// </value>
    public int MaxSize { get; set; } = ReliableConsumerConstants.DefaultBatchMaxSize;

    /// <summary>
    /// Gets or sets the most bytes (keys, values and headers) in one batch; a batch always takes at least one record, however
    /// large.
    /// </summary>
    /// <value>The default value is 4 MiB. Allowed: 1 KiB to 1 GiB.</value>
    public int MaxBytes { get; set; } = ReliableConsumerConstants.DefaultBatchMaxBytes;

    /// <summary>
    /// Gets or sets how long a batch smaller than <see cref="MaxSize"/> waits for more records before it is handled. Zero
    /// handles what is buffered at once: under load batches fill by themselves while the previous one is handled, and a
    /// trickle of records is handled without delay.
    /// </summary>
    /// <value>The default value is zero. Allowed: 0 to 1 minute.</value>
    public TimeSpan Linger { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether a batch may hold records of several partitions (and topics). Each partition
    /// still has its records in one batch at a time, together and in offset order, and its watermark commits are unchanged;
    /// the consumer runs one such batch at a time. Use it when many partitions each carry a trickle of records, so that
    /// batches of one partition would stay small; with busy partitions, batches per partition fill by themselves and run
    /// side by side.
    /// </summary>
    /// <value>The default value is <see langword="false"/>: a batch holds the records of one partition, and the partitions' batches run concurrently.</value>
    public bool AcrossPartitions { get; set; }
}
