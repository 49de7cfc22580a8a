using System.Collections.Concurrent;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kafka.Reliable.Idempotency;

/// <summary>
/// An idempotency store in the process's memory: for tests and for single-instance consumers whose duplicates after a
/// restart do not matter. It holds at most <c>maxEntries</c> keys (the oldest completed ones go first) for at most the
/// retention; nothing survives a restart.
/// </summary>
/// <remarks>
/// Keys are spread over shards, each with its own lock, so that partitions working on different keys do not wait for each
/// other; completions are remembered in order in a lock-free queue, which forgets the oldest completed key beyond
/// <c>maxEntries</c>. While completions run concurrently, the store may hold a few more completed keys than
/// <c>maxEntries</c> for the time of the calls. An operation on a key touches only its shard: none is proportional to the
/// number of keys but <see cref="CleanupAsync"/>, which visits each shard in turn.
/// </remarks>
public sealed class InMemoryIdempotencyStore : IIdempotencyStore
{
    private readonly Shard[] _shards;
    private readonly int _shardMask;
    private readonly ConcurrentQueue<(string Key, long Version)> _completionOrder = new();
    private readonly int _maxEntries;
    private readonly TimeProvider _time;
    private long _version;
    private int _remembered;

    /// <summary>Initializes a new instance of the <see cref="InMemoryIdempotencyStore"/> class.</summary>
    /// <param name="maxEntries">The most completed keys kept; beyond it, the oldest are forgotten.</param>
    /// <param name="timeProvider">The clock; the system clock by default.</param>
    public InMemoryIdempotencyStore(int maxEntries = 100_000, TimeProvider? timeProvider = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEntries, 1);
        _maxEntries = maxEntries;
        _time = timeProvider ?? TimeProvider.System;

        // A few shards per processor make two partitions that wait for the same shard rare.
        var shards = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Clamp(Environment.ProcessorCount * 4, 8, 256));
        _shards = new Shard[shards];
        for (var i = 0; i < shards; i++)
        {
            _shards[i] = new Shard();
        }

        _shardMask = shards - 1;
    }

    /// <summary>Gets the number of keys held or completed.</summary>
    /// <remarks>Counted one shard at a time: while other calls run, a count of a moment, not of one instant.</remarks>
    public int Count
    {
        get
        {
            var count = 0;
            foreach (var shard in _shards)
            {
                lock (shard.Sync)
                {
                    count += shard.Entries.Count;
                }
            }

            return count;
        }
    }

    /// <inheritdoc />
    public ValueTask<IdempotencyBeginResult> TryBeginAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow().UtcTicks;
        var shard = ShardOf(key);
        lock (shard.Sync)
        {
            ref var entry = ref CollectionsMarshal.GetValueRefOrAddDefault(shard.Entries, key, out var exists);
            if (exists)
            {
                if (entry.Completed)
                {
                    return ValueTask.FromResult(IdempotencyBeginResult.AlreadyCompleted);
                }

                if (entry.Owner != owner && entry.LeaseUntil > now)
                {
                    return ValueTask.FromResult(IdempotencyBeginResult.HeldByAnother(TimeSpan.FromTicks(entry.LeaseUntil - now)));
                }
            }

            if (!TryEnd(now, lease, out var leaseUntil))
            {
                if (!exists)
                {
                    shard.Entries.Remove(key);
                }

                throw LeaseOutOfRange(lease);
            }

            entry = new Entry(owner, leaseUntil, CompletedAt: 0, Version: 0);
            return ValueTask.FromResult(IdempotencyBeginResult.Acquired);
        }
    }

    /// <inheritdoc />
    public ValueTask<IdempotencyLeaseStatus> CompleteAsync(string key, string owner, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow().UtcTicks;
        var shard = ShardOf(key);
        long version;
        lock (shard.Sync)
        {
            ref var entry = ref CollectionsMarshal.GetValueRefOrNullRef(shard.Entries, key);
            if (Unsafe.IsNullRef(ref entry) || entry.Owner != owner)
            {
                return ValueTask.FromResult(IdempotencyLeaseStatus.Lost);
            }

            if (entry.Completed)
            {
                return ValueTask.FromResult(IdempotencyLeaseStatus.Held);
            }

            version = Interlocked.Increment(ref _version);
            entry = entry with { CompletedAt = now, Version = version };
        }

        Remember(key, version);
        return ValueTask.FromResult(IdempotencyLeaseStatus.Held);
    }

    /// <inheritdoc />
    public ValueTask<IdempotencyLeaseStatus> RenewAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow().UtcTicks;
        var shard = ShardOf(key);
        lock (shard.Sync)
        {
            ref var entry = ref CollectionsMarshal.GetValueRefOrNullRef(shard.Entries, key);
            if (Unsafe.IsNullRef(ref entry) || entry.Owner != owner || entry.Completed)
            {
                return ValueTask.FromResult(IdempotencyLeaseStatus.Lost);
            }

            if (!TryEnd(now, lease, out var leaseUntil))
            {
                throw LeaseOutOfRange(lease);
            }

            entry = entry with { LeaseUntil = leaseUntil };
            return ValueTask.FromResult(IdempotencyLeaseStatus.Held);
        }
    }

    /// <inheritdoc />
    public ValueTask ReleaseAsync(string key, string owner, CancellationToken cancellationToken)
    {
        var shard = ShardOf(key);
        lock (shard.Sync)
        {
            if (shard.Entries.TryGetValue(key, out var entry) && entry.Owner == owner && !entry.Completed)
            {
                shard.Entries.Remove(key);
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<long> CleanupAsync(DateTimeOffset completedBefore, CancellationToken cancellationToken)
    {
        long removed = 0;
        var before = completedBefore.UtcTicks;
        foreach (var shard in _shards)
        {
            lock (shard.Sync)
            {
                // Removing the entry enumerated does not disturb the enumeration.
                foreach (var (key, entry) in shard.Entries)
                {
                    if (entry.Completed ? entry.CompletedAt < before : entry.LeaseUntil < before)
                    {
                        shard.Entries.Remove(key);
                        removed++;
                    }
                }
            }
        }

        return ValueTask.FromResult(removed);
    }

    /// <summary>When a lease taken at <paramref name="now"/> ends, in UTC ticks; false beyond the calendar (as <see cref="DateTimeOffset"/> arithmetic).</summary>
    private static bool TryEnd(long now, TimeSpan lease, out long leaseUntil)
    {
        leaseUntil = now + lease.Ticks;
        return lease.Ticks <= DateTime.MaxValue.Ticks - now && lease.Ticks >= -now;
    }

    private static ArgumentOutOfRangeException LeaseOutOfRange(TimeSpan lease) =>
        new(nameof(lease), lease, "The lease would end outside the range of DateTimeOffset.");

    /// <summary>
    /// Picks a key's shard from its length and last eight characters (where offsets and ids differ), mixed: cheaper than a
    /// hash of the whole key, which the shard's dictionary computes anyway. Keys made to fall in one shard only share its lock.
    /// </summary>
    private Shard ShardOf(string key)
    {
        var chars = key.AsSpan();
        var hash = (ulong)chars.Length;
        if (chars.Length >= 8)
        {
            var tail = MemoryMarshal.AsBytes(chars[^8..]);
            hash ^= MemoryMarshal.Read<ulong>(tail) ^ BitOperations.RotateLeft(MemoryMarshal.Read<ulong>(tail[8..]), 29);
        }
        else
        {
            foreach (var c in chars)
            {
                hash = (hash * 31) + c;
            }
        }

        return _shards[(int)((hash * 0x9E3779B97F4A7C15UL) >> 32) & _shardMask];
    }

    /// <summary>Queues a completion; beyond the most kept, forgets the oldest completions, unless their keys were taken again since.</summary>
    private void Remember(string key, long version)
    {
        _completionOrder.Enqueue((key, version));
        Interlocked.Increment(ref _remembered);
        while (true)
        {
            // Claims one completion to forget before taking it off the queue: the queue always holds at least the completions
            // counted plus those claimed, so a claimed one is there to take, and no more are forgotten than are beyond the most.
            var remembered = Volatile.Read(ref _remembered);
            if (remembered <= _maxEntries)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref _remembered, remembered - 1, remembered) != remembered)
            {
                continue;
            }

            if (!_completionOrder.TryDequeue(out var oldest))
            {
                Interlocked.Increment(ref _remembered);
                return;
            }

            var shard = ShardOf(oldest.Key);
            lock (shard.Sync)
            {
                if (shard.Entries.TryGetValue(oldest.Key, out var old) && old.Version == oldest.Version)
                {
                    shard.Entries.Remove(oldest.Key);
                }
            }
        }
    }

    /// <summary>A key: its holder and lease (UTC ticks); once completed, when, and the completion's number.</summary>
    private readonly record struct Entry(string Owner, long LeaseUntil, long CompletedAt, long Version)
    {
        public bool Completed => Version != 0;
    }

    private sealed class Shard
    {
        public readonly Lock Sync = new();
        public readonly Dictionary<string, Entry> Entries = new(StringComparer.Ordinal);
    }
}
