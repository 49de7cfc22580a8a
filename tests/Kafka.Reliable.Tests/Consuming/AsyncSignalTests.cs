using Kafka.Reliable.Consuming;

namespace Kafka.Reliable.Tests.Consuming;

public sealed class AsyncSignalTests
{
    [Fact]
    public void WaitAsync_SetBefore_CompletesAtOnceAndConsumesTheSignal()
    {
        var signal = new AsyncSignal();
        signal.Set();
        signal.Set();

        Assert.True(signal.WaitAsync().AsTask().IsCompleted);
        Assert.False(signal.WaitAsync().AsTask().IsCompleted);
    }

    [Fact]
    public async Task WaitAsync_SetLater_WakesTheWaiter()
    {
        var signal = new AsyncSignal();
        var waiting = signal.WaitAsync().AsTask();
        Assert.False(waiting.IsCompleted);

        signal.Set();
        await waiting.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task SetAndWait_RacingOnTwoThreads_NoSignalIsLost()
    {
        const int Rounds = 100_000;
        var signal = new AsyncSignal();
        var produced = 0;
        var consumer = Task.Run(async () =>
        {
            var seen = 0;
            while (seen < Rounds)
            {
                if (Volatile.Read(ref produced) > seen)
                {
                    seen++;
                    continue;
                }

                await signal.WaitAsync();
            }
        });

        for (var i = 0; i < Rounds; i++)
        {
            Interlocked.Increment(ref produced);
            signal.Set();
        }

        await consumer.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
    }
}
