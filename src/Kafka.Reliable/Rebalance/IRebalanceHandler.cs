using Confluent.Kafka;

namespace Kafka.Reliable;

/// <summary>
/// Your code at the moments a consumer's partitions change hands (register it with <c>WithRebalanceHandler&lt;T&gt;()</c>).
/// The hooks run on the consumer's poll thread, inside the rebalance, one at a time; the consumer waits for them (up to
/// <see cref="ReliableConsumerOptions.RevokeTimeout"/>), so keep them short. A hook that throws is logged and the rebalance
/// goes on. Every method has an empty default implementation.
/// </summary>
public interface IRebalanceHandler
{
    /// <summary>
    /// Called when partitions are assigned, before any of their records is fetched. Call
    /// <see cref="PartitionAssignment.Seek"/> to start a partition somewhere else than the group's committed offset (for
    /// example, from offsets kept in your database).
    /// </summary>
    /// <param name="assignment">The newly assigned partitions.</param>
    /// <param name="cancellationToken">Signalled when the hook runs out of time.</param>
    /// <returns>A task that completes when the hook is done.</returns>
    ValueTask OnAssignedAsync(PartitionAssignment assignment, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>
    /// Called when partitions are revoked, after their in-flight records were drained (or the drain timed out) and their
    /// watermarks committed, and before they are released to their next owner.
    /// </summary>
    /// <param name="partitions">The revoked partitions.</param>
    /// <param name="cancellationToken">Signalled when the hook runs out of time.</param>
    /// <returns>A task that completes when the hook is done.</returns>
    ValueTask OnRevokedAsync(IReadOnlyList<TopicPartition> partitions, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>
    /// Called when partitions were lost (the member was evicted, for example after a session timeout): their in-flight
    /// handlers were cancelled and nothing was committed, because another member may own them already.
    /// </summary>
    /// <param name="partitions">The lost partitions.</param>
    /// <param name="cancellationToken">Signalled when the hook runs out of time.</param>
    /// <returns>A task that completes when the hook is done.</returns>
    ValueTask OnLostAsync(IReadOnlyList<TopicPartition> partitions, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}

/// <summary>Partitions just assigned to a consumer, passed to <see cref="IRebalanceHandler.OnAssignedAsync"/>.</summary>
public sealed class PartitionAssignment
{
    private readonly Dictionary<TopicPartition, long> _seeks = [];

    internal PartitionAssignment(string consumerName, string groupId, IReadOnlyList<TopicPartition> partitions)
    {
        ConsumerName = consumerName;
        GroupId = groupId;
        Partitions = partitions;
    }

    /// <summary>Gets the consumer's name.</summary>
    public string ConsumerName { get; }

    /// <summary>Gets the consumer group.</summary>
    public string GroupId { get; }

    /// <summary>Gets the newly assigned partitions.</summary>
    public IReadOnlyList<TopicPartition> Partitions { get; }

    internal IReadOnlyDictionary<TopicPartition, long> Seeks => _seeks;

    /// <summary>Starts a partition at the given offset instead of the group's committed offset.</summary>
    /// <param name="partition">One of <see cref="Partitions"/>.</param>
    /// <param name="offset">The offset of the first record to fetch (0 or more).</param>
    /// <exception cref="ArgumentException">The partition is not part of this assignment, or the offset is negative.</exception>
    public void Seek(TopicPartition partition, long offset)
    {
        ArgumentNullException.ThrowIfNull(partition);
        if (!Partitions.Contains(partition))
        {
            throw new ArgumentException($"{partition} is not part of this assignment ({string.Join(", ", Partitions)}).", nameof(partition));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        _seeks[partition] = offset;
    }
}
