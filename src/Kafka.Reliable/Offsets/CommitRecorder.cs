using Confluent.Kafka;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Idempotency;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Offsets;

/// <summary>
/// Tells a store that keeps offsets with the handler's effects which offsets the consumer committed to the group, and
/// which stored offsets to forget after an offsets reset (see <see cref="IStoredOffsets"/>). Off the poll thread and best
/// effort: the poll thread only leaves the newest offset of each partition here; one background drain at a time writes
/// them, so a slow store never holds up polling or commits, and a failure costs only the detection of a later reset.
/// </summary>
internal sealed class CommitRecorder(IStoredOffsets store, string groupId, ILogger logger, string consumer)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<TopicPartition, long> _committed = [];
    private readonly List<TopicPartition> _forget = [];
    private bool _draining;
    private Task _drain = Task.CompletedTask;

    /// <summary>Records an offset committed to the group (poll thread).</summary>
    public void Record(TopicPartitionOffset committed)
    {
        lock (_lock)
        {
            _committed[committed.TopicPartition] = Math.Max(committed.Offset.Value, _committed.GetValueOrDefault(committed.TopicPartition, -1));
            StartIfIdle();
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
                }
            }
            catch (Exception ex)
            {
                Log.CommitRecordFailed(logger, consumer, ex.Message);
            }
        }
    }
}
