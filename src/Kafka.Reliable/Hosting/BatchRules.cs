namespace Kafka.Reliable.Hosting;

/// <summary>
/// The settings a batch handler cannot be combined with, checked when the consumer starts (the options validator does not
/// know which kind of handler the consumer has). The configuration guide's batching section says why for each.
/// </summary>
internal static class BatchRules
{
    public static void Ensure(string name, ReliableConsumerOptions options)
    {
        var errors = new List<string>();
        if (options.Dispatch != DispatchMode.Sequential)
        {
            errors.Add(
                $"Dispatch is {options.Dispatch}: a batch handler takes the records of a partition in offset order, one batch at a time, so Dispatch must be " +
                "Sequential. For more concurrency, give the topic more partitions (each partition's batches run beside the others').");
        }

        if (options.Commit.Strategy == CommitStrategy.Manual)
        {
            errors.Add(
                "Commit:Strategy is Manual: a batch's messages are done when the batch handler returns (or are reported with MessageBatch.Fail); " +
                "use Periodic or PerMessage.");
        }

        if (options.Commit.Strategy == CommitStrategy.Transactional)
        {
            errors.Add(
                "Commit:Strategy is Transactional: Kafka transactions hold one record per partition at a time; for exactly-once batches into a " +
                "database use a transactional idempotency store (UseSqliteIdempotency / UsePostgreSqlIdempotency with Transactional = true).");
        }

        if (options.Batch.MaxSize > options.PartitionBufferSize && !options.Batch.AcrossPartitions)
        {
            errors.Add(
                $"Batch:MaxSize ({options.Batch.MaxSize}) is more than PartitionBufferSize ({options.PartitionBufferSize}): a batch is formed from the " +
                "records a partition buffers, so it could never fill. Lower Batch:MaxSize or raise PartitionBufferSize.");
        }

        if (options.RetryTiers.Enabled)
        {
            errors.Add(
                "RetryTiers:Enabled is true: retry tiers park single records, and a batch's failures are isolated by bisection and dead-lettered; " +
                "turn RetryTiers off for a batch handler, or use a message handler (IMessageHandler) for a topic whose failures should wait in retry tiers.");
        }

        if (errors.Count > 0)
        {
            throw new InvalidOperationException(
                $"Reliable consumer '{name}' has a batch handler (WithBatchHandler) and settings it cannot work with: {string.Join(" ", errors)}");
        }
    }
}
