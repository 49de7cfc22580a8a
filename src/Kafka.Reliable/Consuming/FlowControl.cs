using Confluent.Kafka;
using Kafka.Reliable.Diagnostics;

namespace Kafka.Reliable.Consuming;

/// <summary>
/// Pauses and resumes partitions (poll thread): a partition is paused when its buffer is full (in records, or in bytes: its
/// equal share of <see cref="ReliableConsumerOptions.MaxBufferedBytes"/>), while its head record is failing, or while the
/// circuit is open with records waiting; it is resumed at half. A pause or resume the client refuses for now is retried at
/// the next poll.
/// </summary>
internal sealed class FlowControl
{
    private readonly ConsumerContext _context;
    private readonly List<TopicPartition> _assignedSinceLastPoll = [];
    private readonly int _partitionRecords;
    private readonly int _resumeRecords;
    private long _partitionBytes;

    public FlowControl(ConsumerContext context)
    {
        _context = context;
        _partitionRecords = context.Options.PartitionBufferSize;
        _resumeRecords = _partitionRecords / 2;
        _partitionBytes = context.Options.MaxBufferedBytes;
    }

    /// <summary>Gives every assigned partition an equal share of the consumer's byte budget (poll thread).</summary>
    public void Share(int assignedPartitions) => _partitionBytes = _context.Options.MaxBufferedBytes / Math.Max(1, assignedPartitions);

    /// <summary>Remembers a newly assigned partition, to resume at the next poll (poll thread).</summary>
    public void Assigned(TopicPartition partition) => _assignedSinceLastPoll.Add(partition);

    /// <summary>
    /// Resumes the partitions assigned since the last poll that are still assigned (poll thread): a partition paused under an
    /// earlier assignment must not stay paused under the new one, as its new worker starts empty. If the client refuses for
    /// now, the next poll tries again.
    /// </summary>
    public void ResumeAssigned(IConsumer<byte[]?, byte[]?> consumer, AssignedPartitions partitions)
    {
        if (_assignedSinceLastPoll.Count == 0)
        {
            return;
        }

        _assignedSinceLastPoll.RemoveAll(p => !partitions.Contains(p));
        consumer.Resume(_assignedSinceLastPoll);
        _assignedSinceLastPoll.Clear();
    }

    /// <summary>Pauses a partition whose buffer just became full, in records or in bytes (poll thread, after each record).</summary>
    public void OnBuffered(IConsumer<byte[]?, byte[]?> consumer, PartitionWorker worker)
    {
        if (!worker.Paused && (worker.Buffered >= _partitionRecords || worker.BufferedBytes >= _partitionBytes))
        {
            // Pausing throws away what librdkafka had prefetched for the partition, so the share is meant to be several fetches:
            // pauses then happen only when the handler is really behind, and resuming at half leaves a share's half of work to
            // cover the refetch.
            Pause(consumer, worker);
        }
    }

    /// <summary>Pauses or resumes a partition after its done records were released (poll thread).</summary>
    public void Review(IConsumer<byte[]?, byte[]?> consumer, PartitionWorker worker, bool circuitOpen)
    {
        if (worker.IsHolding || (circuitOpen && worker.Buffered > 0))
        {
            // A failing record holds its partition, and an open circuit every partition with records waiting for it: stop
            // fetching what cannot be handled yet. A partition with nothing buffered keeps fetching (at most a buffer's
            // worth): its next record is what makes the circuit's trial if no other record is waiting.
            Pause(consumer, worker);
        }
        else if (worker.Paused && worker.Buffered <= _resumeRecords && worker.BufferedBytes <= _partitionBytes / 2 && Resume(consumer, worker))
        {
            Log.PartitionResumed(_context.Logger, _context.Name, worker.TopicPartition.Topic, worker.TopicPartition.Partition.Value, worker.Buffered);
        }
    }

    /// <summary>Pauses the partitions a stopping consumer drains; a refusal the client may lift is logged and reported.</summary>
    public bool TryPause(IConsumer<byte[]?, byte[]?> consumer, List<TopicPartition> partitions, PartitionWorker first)
    {
        try
        {
            consumer.Pause(partitions);
            return true;
        }
        catch (KafkaException ex) when (!ex.Error.IsFatal)
        {
            OperationFailed("pause", first, ex);
            return false;
        }
    }

    private void Pause(IConsumer<byte[]?, byte[]?> consumer, PartitionWorker worker)
    {
        if (worker.Paused)
        {
            return;
        }

        try
        {
            consumer.Pause([worker.TopicPartition]);
        }
        catch (KafkaException ex) when (!ex.Error.IsFatal)
        {
            OperationFailed("pause", worker, ex);
            return;
        }

        worker.Paused = true;
        Log.PartitionPaused(_context.Logger, _context.Name, worker.TopicPartition.Topic, worker.TopicPartition.Partition.Value, worker.Buffered);
    }

    /// <summary>Resumes a paused partition; when the client refuses for now, the partition stays paused and is tried again at the next poll.</summary>
    private bool Resume(IConsumer<byte[]?, byte[]?> consumer, PartitionWorker worker)
    {
        try
        {
            consumer.Resume([worker.TopicPartition]);
            if (worker.NextFetchOffset >= 0)
            {
                // librdkafka can leave a resumed partition out of its broker's fetch list when the pause had already taken it out
                // (seen with 2.16: the partition never fetches again). Seeking to the position resume fetches from anyway
                // restarts the fetcher: nothing is skipped or repeated.
                consumer.Seek(new TopicPartitionOffset(worker.TopicPartition, new Offset(worker.NextFetchOffset)));
            }
        }
        catch (KafkaException ex) when (!ex.Error.IsFatal)
        {
            OperationFailed("resume", worker, ex);
            return false;
        }

        worker.Paused = false;
        return true;
    }

    /// <summary>Logs a refused pause or resume and makes the next poll look at the partitions again, so that it is retried.</summary>
    private void OperationFailed(string operation, PartitionWorker worker, KafkaException ex)
    {
        Log.PartitionOperationFailed(_context.Logger, _context.Name, operation, worker.TopicPartition.Topic, worker.TopicPartition.Partition.Value, ex.Error.Code, ex.Error.Reason);
        _context.NotifyProgress();
    }
}
