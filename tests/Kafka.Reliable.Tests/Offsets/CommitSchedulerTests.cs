using Kafka.Reliable.Offsets;
using Microsoft.Extensions.Time.Testing;

namespace Kafka.Reliable.Tests.Offsets;

public sealed class CommitSchedulerTests
{
    [Fact]
    public void IsDue_NothingReleased_NeverDue()
    {
        var time = new FakeTimeProvider();
        var scheduler = new CommitScheduler(new CommitOptions { Strategy = CommitStrategy.PerMessage }, time);
        time.Advance(TimeSpan.FromHours(1));
        Assert.False(scheduler.IsDue(scheduler.Now()));
    }

    [Fact]
    public void IsDue_PerMessage_DueAsSoonAsARecordIsReleased()
    {
        var time = new FakeTimeProvider();
        var scheduler = new CommitScheduler(new CommitOptions { Strategy = CommitStrategy.PerMessage }, time);
        scheduler.OnReleased(1);
        Assert.True(scheduler.IsDue(scheduler.Now()));
    }

    [Fact]
    public void IsDue_Periodic_DueWhenTheIntervalHasPassed()
    {
        var time = new FakeTimeProvider();
        var scheduler = new CommitScheduler(new CommitOptions { Interval = TimeSpan.FromSeconds(5) }, time);
        scheduler.OnReleased(10);
        time.Advance(TimeSpan.FromSeconds(4.9));
        Assert.False(scheduler.IsDue(scheduler.Now()));
        time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.True(scheduler.IsDue(scheduler.Now()));

        scheduler.OnCommitted(scheduler.Now());
        Assert.Equal(0, scheduler.Pending);
        scheduler.OnReleased(1);
        Assert.False(scheduler.IsDue(scheduler.Now()));
    }

    [Fact]
    public void IsDue_PeriodicWithCount_DueWhenTheCountIsReachedBeforeTheInterval()
    {
        var time = new FakeTimeProvider();
        var scheduler = new CommitScheduler(new CommitOptions { Interval = TimeSpan.FromMinutes(1), Count = 100 }, time);
        scheduler.OnReleased(99);
        Assert.False(scheduler.IsDue(scheduler.Now()));
        scheduler.OnReleased(1);
        Assert.True(scheduler.IsDue(scheduler.Now()));
    }

    [Fact]
    public void OnCommitFailed_WaitsBeforeTheNextTry_AndKeepsThePendingRecords()
    {
        var time = new FakeTimeProvider();
        var scheduler = new CommitScheduler(new CommitOptions { Strategy = CommitStrategy.PerMessage }, time);
        scheduler.OnReleased(3);
        scheduler.OnCommitFailed(scheduler.Now());

        Assert.False(scheduler.IsDue(scheduler.Now()));
        Assert.Equal(3, scheduler.Pending);
        time.Advance(TimeSpan.FromMilliseconds(200));
        Assert.True(scheduler.IsDue(scheduler.Now()));
    }
}
