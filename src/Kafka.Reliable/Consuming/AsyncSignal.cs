using System.Threading.Tasks.Sources;

namespace Kafka.Reliable.Consuming;

/// <summary>
/// An allocation-free auto-reset signal with a single waiter: the poll thread sets it when it buffers a record, the
/// partition's worker awaits it when it has nothing to do. A set with nobody waiting is remembered once.
/// </summary>
internal sealed class AsyncSignal : IValueTaskSource
{
    private const int Idle = 0;
    private const int Signaled = 1;
    private const int Waiting = 2;

    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private int _state;

    /// <summary>Waits for the next <see cref="Set"/>, or returns at once if one happened since the last wait. One waiter at a time.</summary>
    public ValueTask WaitAsync()
    {
        if (Interlocked.CompareExchange(ref _state, Idle, Signaled) == Signaled)
        {
            return default;
        }

        _core.Reset();
        if (Interlocked.CompareExchange(ref _state, Waiting, Idle) == Signaled)
        {
            Volatile.Write(ref _state, Idle);
            return default;
        }

        return new ValueTask(this, _core.Version);
    }

    /// <summary>
    /// Waits for the next <see cref="Set"/> or until <paramref name="timeout"/> has passed, whichever comes first. A timer that
    /// fires late may wake the next wait early: waiters check their condition again after every wake-up anyway.
    /// </summary>
    public async ValueTask WaitAsync(TimeSpan timeout, TimeProvider time)
    {
        var wait = WaitAsync();
        if (wait.IsCompleted)
        {
            return;
        }

        using var timer = time.CreateTimer(static signal => ((AsyncSignal)signal!).Expire(), this, timeout, Timeout.InfiniteTimeSpan);
        await wait.ConfigureAwait(false);
    }

    private void Expire()
    {
        if (Interlocked.CompareExchange(ref _state, Idle, Waiting) == Waiting)
        {
            _core.SetResult(false);
        }
    }

    /// <summary>Wakes the waiter, or remembers the signal for the next wait.</summary>
    public void Set()
    {
        while (true)
        {
            switch (Volatile.Read(ref _state))
            {
                case Signaled:
                    return;
                case Idle when Interlocked.CompareExchange(ref _state, Signaled, Idle) == Idle:
                    return;
                case Waiting when Interlocked.CompareExchange(ref _state, Idle, Waiting) == Waiting:
                    _core.SetResult(true);
                    return;
            }
        }
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
