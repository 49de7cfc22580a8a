namespace Kafka.Reliable.Offsets;

/// <summary>
/// Decides when the poll thread commits. Works on <see cref="TimeProvider"/> timestamps so that tests can drive it with a fake clock.
/// </summary>
internal sealed class CommitScheduler
{
    private readonly TimeProvider _time;
    private readonly CommitStrategy _strategy;
    private readonly long _intervalTicks;
    private readonly long _retryTicks;
    private readonly int _count;
    private long _lastCommit;
    private long _notBefore;
    private int _pending;

    public CommitScheduler(CommitOptions options, TimeProvider time)
    {
        _time = time;
        _strategy = options.Strategy;
        _count = options.Count;
        _intervalTicks = ToTimestampTicks(options.Interval, time);
        _retryTicks = ToTimestampTicks(ReliableConsumerConstants.CommitRetryDelay, time);
        _lastCommit = time.GetTimestamp();
    }

    /// <summary>Gets the number of released records not yet covered by a successful commit.</summary>
    public int Pending => _pending;

    /// <summary>Records that <paramref name="released"/> more records are done and their watermark moved.</summary>
    public void OnReleased(int released) => _pending += released;

    /// <summary>Gets a value indicating whether a commit is due now.</summary>
    public bool IsDue(long now)
    {
        if (_pending == 0 || now < _notBefore)
        {
            return false;
        }

        return _strategy switch
        {
            CommitStrategy.PerMessage => true,
            _ => now - _lastCommit >= _intervalTicks || (_count > 0 && _pending >= _count),
        };
    }

    /// <summary>Records a successful commit.</summary>
    public void OnCommitted(long now)
    {
        _pending = 0;
        _lastCommit = now;
        _notBefore = 0;
    }

    /// <summary>Records a failed commit: the next try waits a little, the pending records stay pending.</summary>
    public void OnCommitFailed(long now) => _notBefore = now + _retryTicks;

    public long Now() => _time.GetTimestamp();

    private static long ToTimestampTicks(TimeSpan span, TimeProvider time) =>
        (long)(span.Ticks * (time.TimestampFrequency / (double)TimeSpan.TicksPerSecond));
}
