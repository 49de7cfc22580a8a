namespace Kafka.Reliable;

/// <summary>
/// An idempotency store in the process's memory: for tests and for single-instance consumers whose duplicates after a
/// restart do not matter. It holds at most <c>maxEntries</c> keys (the oldest completed ones go first) for at most the
/// retention; nothing survives a restart.
/// </summary>
public sealed class InMemoryIdempotencyStore : IIdempotencyStore
{
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Queue<(string Key, long Version)> _completionOrder = new();
    private readonly Lock _sync = new();
    private readonly int _maxEntries;
    private readonly TimeProvider _time;
    private long _version;

    /// <summary>Initializes a new instance of the <see cref="InMemoryIdempotencyStore"/> class.</summary>
    /// <param name="maxEntries">The most completed keys kept; beyond it, the oldest are forgotten.</param>
    /// <param name="timeProvider">The clock; the system clock by default.</param>
    public InMemoryIdempotencyStore(int maxEntries = 100_000, TimeProvider? timeProvider = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEntries, 1);
        _maxEntries = maxEntries;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Gets the number of keys held or completed.</summary>
    public int Count
    {
        get
        {
            lock (_sync)
            {
                return _entries.Count;
            }
        }
    }

    /// <inheritdoc />
    public ValueTask<IdempotencyBeginResult> TryBeginAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        lock (_sync)
        {
            if (_entries.TryGetValue(key, out var entry))
            {
                if (entry.Completed)
                {
                    return ValueTask.FromResult(IdempotencyBeginResult.AlreadyCompleted);
                }

                if (entry.Owner != owner && entry.LeaseUntil > now)
                {
                    return ValueTask.FromResult(IdempotencyBeginResult.HeldByAnother(entry.LeaseUntil - now));
                }
            }

            _entries[key] = new Entry(owner, now + lease, Completed: false, default, 0);
            return ValueTask.FromResult(IdempotencyBeginResult.Acquired);
        }
    }

    /// <inheritdoc />
    public ValueTask<IdempotencyLeaseStatus> CompleteAsync(string key, string owner, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        lock (_sync)
        {
            if (!_entries.TryGetValue(key, out var entry) || entry.Owner != owner)
            {
                return ValueTask.FromResult(IdempotencyLeaseStatus.Lost);
            }

            if (!entry.Completed)
            {
                var version = ++_version;
                _entries[key] = entry with { Completed = true, CompletedAt = now, Version = version };
                _completionOrder.Enqueue((key, version));
                while (_completionOrder.Count > _maxEntries && _completionOrder.TryDequeue(out var oldest))
                {
                    if (_entries.TryGetValue(oldest.Key, out var old) && old.Version == oldest.Version)
                    {
                        _entries.Remove(oldest.Key);
                    }
                }
            }
        }

        return ValueTask.FromResult(IdempotencyLeaseStatus.Held);
    }

    /// <inheritdoc />
    public ValueTask<IdempotencyLeaseStatus> RenewAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        lock (_sync)
        {
            if (!_entries.TryGetValue(key, out var entry) || entry.Owner != owner || entry.Completed)
            {
                return ValueTask.FromResult(IdempotencyLeaseStatus.Lost);
            }

            _entries[key] = entry with { LeaseUntil = now + lease };
            return ValueTask.FromResult(IdempotencyLeaseStatus.Held);
        }
    }

    /// <inheritdoc />
    public ValueTask ReleaseAsync(string key, string owner, CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            if (_entries.TryGetValue(key, out var entry) && entry.Owner == owner && !entry.Completed)
            {
                _entries.Remove(key);
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<long> CleanupAsync(DateTimeOffset completedBefore, CancellationToken cancellationToken)
    {
        long removed = 0;
        lock (_sync)
        {
            foreach (var (key, entry) in _entries.ToList())
            {
                if (entry.Completed ? entry.CompletedAt < completedBefore : entry.LeaseUntil < completedBefore)
                {
                    _entries.Remove(key);
                    removed++;
                }
            }
        }

        return ValueTask.FromResult(removed);
    }

    private readonly record struct Entry(string Owner, DateTimeOffset LeaseUntil, bool Completed, DateTimeOffset CompletedAt, long Version);
}
