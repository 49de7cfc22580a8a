using Kafka.Reliable.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Idempotency;

/// <summary>
/// Renews the leases of the keys a consumer holds, so that a handler slower than the lease (or a record waiting for its
/// deferred acknowledgement) keeps its key. One timer per gate, ticking every sixth of the lease while keys are held, renews
/// each key held for a third of the lease since it was taken or last renewed: a handler that finishes sooner (nearly all of
/// them) costs a link into a list, and no timer or store call of its own.
/// </summary>
internal sealed class LeaseRenewer
{
    private readonly IdempotencyGate _gate;
    private readonly IIdempotencyStore _store;
    private readonly TimeSpan _lease;
    private readonly TimeSpan _renewAfter;
    private readonly TimeSpan _period;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _sync = new();
    private HeldKey? _head;
    private ITimer? _timer;
    private bool _ticking;

    public LeaseRenewer(IdempotencyGate gate, IIdempotencyStore store, TimeSpan lease, TimeProvider time, ILogger logger)
    {
        _gate = gate;
        _store = store;
        _lease = lease;
        _renewAfter = lease / 3;
        _period = TimeSpan.FromTicks(Math.Max(lease.Ticks / 6, TimeSpan.TicksPerMillisecond * 10));
        _time = time;
        _logger = logger;
    }

    /// <summary>Gets the number of keys whose leases are renewed now (tests).</summary>
    public int Count
    {
        get
        {
            lock (_sync)
            {
                var count = 0;
                for (var held = _head; held is not null; held = held.Next)
                {
                    count++;
                }

                return count;
            }
        }
    }

    public void Add(HeldKey held)
    {
        lock (_sync)
        {
            held.Listed = true;
            held.Next = _head;
            if (_head is not null)
            {
                _head.Previous = held;
            }

            _head = held;
            if (!_ticking)
            {
                _ticking = true;
                if (_timer is null)
                {
                    // The timer must not carry the execution context (the record's activity) of the record that created it.
                    var restore = !ExecutionContext.IsFlowSuppressed();
                    var flow = restore ? ExecutionContext.SuppressFlow() : default;
                    try
                    {
                        _timer = _time.CreateTimer(static state => ((LeaseRenewer)state!).Tick(), this, _period, _period);
                    }
                    finally
                    {
                        if (restore)
                        {
                            flow.Undo();
                        }
                    }
                }
                else
                {
                    _timer.Change(_period, _period);
                }
            }
        }
    }

    public void Remove(HeldKey held)
    {
        lock (_sync)
        {
            Unlink(held);
        }
    }

    private void Unlink(HeldKey held)
    {
        if (!held.Listed)
        {
            return;
        }

        held.Listed = false;
        if (held.Previous is not null)
        {
            held.Previous.Next = held.Next;
        }
        else
        {
            _head = held.Next;
        }

        if (held.Next is not null)
        {
            held.Next.Previous = held.Previous;
        }

        held.Previous = held.Next = null;
    }

    private void Tick()
    {
        List<HeldKey>? due = null;
        var now = _time.GetTimestamp();
        lock (_sync)
        {
            HeldKey? next;
            for (var held = _head; held is not null; held = next)
            {
                next = held.Next;
                if (held.Abort.IsCancellationRequested && !held.HandlerRunning)
                {
                    // The worker stopped and no handler runs: the record is left undone, and its lease runs out by itself.
                    Unlink(held);
                    continue;
                }

                if (!held.Renewing && _time.GetElapsedTime(held.RenewedAt, now) >= _renewAfter)
                {
                    held.Renewing = true;
                    (due ??= []).Add(held);
                }
            }

            if (_head is null && _ticking)
            {
                _ticking = false;
                _timer!.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            }
        }

        if (due is not null)
        {
            foreach (var held in due)
            {
                _ = RenewAsync(held, now);
            }
        }
    }

    private async Task RenewAsync(HeldKey held, long startedAt)
    {
        try
        {
            var status = await _store.RenewAsync(held.Key, held.Owner, _lease, CancellationToken.None).ConfigureAwait(false);
            if (status == IdempotencyLeaseStatus.Held)
            {
                lock (_sync)
                {
                    held.RenewedAt = startedAt;
                }
            }
            else if (Volatile.Read(ref held.State) == HeldKey.Holding)
            {
                // Not lost if the key was completed or released meanwhile: the renewal just came after.
                Remove(held);
                _gate.ReportLost(held);
                Log.IdempotencyLeaseLost(_logger, held.Consumer, held.Topic, held.Partition, held.Offset, held.Key);
            }
        }
        catch (Exception ex)
        {
            // The next tick tries again; the lease has two thirds of its duration left when the first renewal is due.
            Log.IdempotencyRenewFailed(_logger, held.Consumer, held.Topic, held.Partition, held.Offset, ex.Message, _period);
        }
        finally
        {
            lock (_sync)
            {
                held.Renewing = false;
            }
        }
    }
}
