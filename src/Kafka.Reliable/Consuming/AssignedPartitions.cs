using Confluent.Kafka;

namespace Kafka.Reliable.Consuming;

/// <summary>
/// The partitions a consumer owns now, each with its <see cref="PartitionWorker"/>. The poll thread alone changes the table
/// and looks records' workers up in it; other threads (metrics, health, the watchdog) read <see cref="Snapshot"/>, an
/// immutable copy published after every change.
/// </summary>
internal sealed class AssignedPartitions
{
    private readonly Dictionary<PartitionKey, PartitionWorker> _workers = [];
    private PartitionWorker? _last;
    private volatile PartitionWorker[] _snapshot = [];

    /// <summary>Gets the number of assigned partitions (poll thread).</summary>
    public int Count => _workers.Count;

    /// <summary>Gets the workers of the assigned partitions (poll thread).</summary>
    public IReadOnlyCollection<PartitionWorker> Workers => _workers.Values;

    /// <summary>Gets the workers as of the last <see cref="Publish"/> (any thread).</summary>
    public IReadOnlyList<PartitionWorker> Snapshot => _snapshot;

    /// <summary>Gets a value indicating whether the partition is assigned (poll thread).</summary>
    public bool Contains(TopicPartition partition) => _workers.ContainsKey(new PartitionKey(partition.Topic, partition.Partition.Value));

    /// <summary>Finds the worker of an assigned partition (poll thread).</summary>
    public bool TryGet(string topic, int partition, out PartitionWorker worker) =>
        _workers.TryGetValue(new PartitionKey(topic, partition), out worker!);

    /// <summary>
    /// Finds the worker a record goes to (poll thread): records come in runs of one partition, so the last worker found is
    /// tried first, without hashing the topic name.
    /// </summary>
    public PartitionWorker? Find(ConsumeResult<byte[]?, byte[]?> record)
    {
        var worker = _last;
        if (worker is not null && worker.TopicPartition.Partition.Value == record.Partition.Value && string.Equals(worker.TopicPartition.Topic, record.Topic, StringComparison.Ordinal))
        {
            return worker;
        }

        if (!TryGet(record.Topic, record.Partition.Value, out worker))
        {
            return null;
        }

        _last = worker;
        return worker;
    }

    /// <summary>Adds a newly assigned partition's worker; <see langword="false"/> when the partition is assigned already (poll thread).</summary>
    public bool TryAdd(PartitionWorker worker) =>
        _workers.TryAdd(new PartitionKey(worker.TopicPartition.Topic, worker.TopicPartition.Partition.Value), worker);

    /// <summary>Removes the given partitions and returns the workers of those that were assigned (poll thread).</summary>
    public List<PartitionWorker> Take(List<TopicPartitionOffset> partitions)
    {
        var taken = new List<PartitionWorker>(partitions.Count);
        foreach (var partition in partitions)
        {
            if (_workers.Remove(new PartitionKey(partition.Topic, partition.Partition.Value), out var worker))
            {
                taken.Add(worker);
            }
        }

        _last = null;
        return taken;
    }

    /// <summary>Removes every partition (poll thread).</summary>
    public void Clear()
    {
        _workers.Clear();
        _last = null;
    }

    /// <summary>Publishes the current workers to <see cref="Snapshot"/> (poll thread).</summary>
    public void Publish() => _snapshot = [.. _workers.Values];

    /// <summary>Empties <see cref="Snapshot"/> once the consumer has stopped.</summary>
    public void Unpublish() => _snapshot = [];

    private readonly record struct PartitionKey(string Topic, int Partition);
}
