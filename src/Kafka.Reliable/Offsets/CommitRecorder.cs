using Confluent.Kafka;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Idempotency;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Offsets;

/// <summary>
/// Tells a store that keeps offsets with the handler's effects which offsets the consumer is about to commit to the group,
/// and which stored offsets to forget after an offsets reset (see <see cref="IStoredOffsets"/>). An offset is committed to
/// the group only once the store has it (<see cref="Durable"/>): the store's last committed offset is then never behind
/// the group's, so an operator's reset (the group's offset moved back) is always recognized on assignment, even after a
/// store outage. Off the poll thread: the poll thread leaves the newest offset of each partition here, one background
/// drain at a time writes them, and a failed write is tried again at the next commit; a slow store never holds up polling,
/// it only delays commits (at revoke and shutdown the poll thread waits for it, boundedly).
/// </summary>
internal sealed class CommitRecorder(IStoredOffsets store, string groupId, ILogger logger, string consumer)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<TopicPartition, long> _committed = [];
    private readonly List<TopicPartition> _forget = [];
    private readonly Dictionary<TopicPartition, long> _durable = [];
    private bool _draining;
    private Task _drain = Task.CompletedTask;

    /// <summary>Hands over an offset the consumer is about to commit to the group, to be written to the store (poll thread).</summary>
    public void Record(TopicPartition partition, long offset)
    {
        lock (_lock)
        {
            if (offset <= _durable.GetValueOrDefault(partition, -1) || offset <= _committed.GetValueOrDefault(partition, -1))
            {
                return;
            }

            _committed[partition] = offset;
            StartIfIdle();
        }
    }

    /// <summary>Gets the highest offset of the partition the store is known to have recorded; -1 when none (any thread).</summary>
    public long Durable(TopicPartition partition)
    {
        lock (_lock)
        {
            return _durable.GetValueOrDefault(partition, -1);
        }
    }

    /// <summary>Sets what the store holds for a newly assigned partition, as read from it on assignment (-1: nothing) (poll thread).</summary>
    public void Assigned(TopicPartition partition, long lastCommitted)
    {
        lock (_lock)
        {
            _durable[partition] = lastCommitted;
        }
    }

    /// <summary>Forgets the stored offsets of partitions whose group offset was moved back (poll thread).</summary>
    public void Forget(List<TopicPartition> partitions)
    {
        lock (_lock)
        {
            foreach (var partition in partitions)
            {
                _committed.Remove(partition);
                _durable[partition] = -1;
            }

            _forget.AddRange(partitions);
            StartIfIdle();
        }
    }

    /// <summary>Waits (blocking, at shutdown on the poll thread) until what was handed over is written, at most <paramref name="timeout"/>.</summary>
    public void WaitIdle(TimeSpan timeout)
    {
        Task drain;
        lock (_lock)
        {
            drain = _drain;
        }

        drain.Wait(timeout);
    }

    private void StartIfIdle()
    {
        if (!_draining)
        {
            _draining = true;
            _drain = Task.Run(DrainAsync);
        }
    }

    private async Task DrainAsync()
    {
        while (true)
        {
            TopicPartition[] forget;
            TopicPartitionOffset[] committed;
            lock (_lock)
            {
                if (_forget.Count == 0 && _committed.Count == 0)
                {
                    _draining = false;
                    return;
                }

                forget = [.. _forget];
                committed = [.. _committed.Select(c => new TopicPartitionOffset(c.Key, new Offset(c.Value)))];
                _forget.Clear();
                _committed.Clear();
            }

            try
            {
                if (forget.Length > 0)
                {
                    await store.ForgetStoredOffsetsAsync(groupId, forget, CancellationToken.None).ConfigureAwait(false);
                }

                if (committed.Length > 0)
                {
                    await store.RecordCommittedAsync(groupId, committed, CancellationToken.None).ConfigureAwait(false);
                    lock (_lock)
                    {
                        foreach (var offset in committed)
                        {
                            // A partition forgotten meanwhile (an offsets reset) starts over from what is recorded after it.
                            if (!_forget.Contains(offset.TopicPartition))
                            {
                                _durable[offset.TopicPartition] = Math.Max(offset.Offset.Value, _durable.GetValueOrDefault(offset.TopicPartition, -1));
                            }
                        }
                    }
                }
            }
            catch (Exception ex)
            {
                // Not written: those offsets are not committed to the group either, and the next commit hands them over again.
                Log.CommitRecordFailed(logger, consumer, ex.Message);
            }
        }
    }
}
