using System.Collections.Concurrent;
using System.Text.Json;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Consuming;

public sealed class DispatchTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task ByKey_20000RecordsOf50Keys_KeepPerKeyOrder_HandleEachOnce_AndCommitToTheEnd()
    {
        const int Records = 20_000;
        const int Keys = 50;
        var topic = await broker.CreateTopicAsync(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, Enumerable.Range(0, Records).Select(id =>
        {
            var key = $"key-{id % Keys}";
            return (id % 2, (string?)key, (string?)JsonSerializer.Serialize(new TestEvent(id, key)));
        }));
        var perKey = new ConcurrentDictionary<string, ConcurrentQueue<int>>();
        var concurrency = new ConcurrencyGauge();
        var handler = new RecordingHandler
        {
            Behavior = async (message, _, ct) =>
            {
                using (concurrency.Enter())
                {
                    perKey.GetOrAdd(message.Key, _ => new ConcurrentQueue<int>()).Enqueue(message.Id);
                    if (message.Id % 7 == 0)
                    {
                        await Task.Delay(1, ct);
                    }
                }
            },
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.Dispatch = DispatchMode.ByKey;
            o.MaxInFlight = 100;
        });
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2).Values.Sum() == Records, "every record is committed", state: () => consumer.Logs.Dump());

        Assert.Equal(Records, handler.Handled.Count);
        Assert.Equal(Enumerable.Range(0, Records), handler.Handled.Select(h => h.Id).Order());
        Assert.Equal(Keys, perKey.Count);
        foreach (var (key, ids) in perKey)
        {
            var handled = ids.ToList();
            Assert.True(handled.SequenceEqual(handled.Order()), $"the records of {key} were handled out of order");
        }

        Assert.True(concurrency.Max > 1, $"records of different keys ran in parallel (at most {concurrency.Max} at once)");
        Assert.InRange(concurrency.Max, 2, 100);
    }

    [Fact]
    public async Task ByKey_AFailingRecord_HoldsBackOnlyItsKey_AndTheCommitWaitsForIt()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, Enumerable.Range(0, 40).Select(id =>
        {
            var key = id % 2 == 0 ? "slow" : "fast";
            return (0, (string?)key, (string?)JsonSerializer.Serialize(new TestEvent(id, key)));
        }));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new RecordingHandler
        {
            // Record 0 (key "slow") fails until the test lets it through.
            Behavior = (message, _, _) => message.Id == 0 && !release.Task.IsCompleted ? throw new TimeoutException("not yet") : ValueTask.CompletedTask,
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.Dispatch = DispatchMode.ByKey;
            o.Retry.MaxAttempts = 1_000_000;
            o.Commit.Strategy = CommitStrategy.PerMessage;
        });
        await Eventually.TrueAsync(() => handler.Handled.Count(h => h.Id % 2 == 1) == 20, "every record of the other key is handled while record 0 fails");

        Assert.DoesNotContain(handler.Handled, h => h.Id % 2 == 0);
        Assert.True(broker.GetCommittedOffsets(group, topic, 1)[0] <= 0, "the commit does not pass the failing record");

        release.SetResult();
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 40, "every record is committed once record 0 succeeds");
        Assert.Equal(Enumerable.Range(0, 20).Select(i => i * 2), handler.Handled.Where(h => h.Id % 2 == 0).Select(h => h.Id));
    }

    [Fact]
    public async Task Unordered_HandlesEveryRecordOnce_InParallel_AndCommitsToTheEnd()
    {
        const int Records = 3000;
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(Records, 1));
        var concurrency = new ConcurrencyGauge();
        var handler = new RecordingHandler
        {
            Behavior = async (message, _, ct) =>
            {
                using (concurrency.Enter())
                {
                    await Task.Delay(message.Id % 3, ct);
                }
            },
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.Dispatch = DispatchMode.Unordered;
            o.MaxInFlight = 16;
        });
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == Records, "every record is committed");

        Assert.Equal(Enumerable.Range(0, Records), handler.Handled.Select(h => h.Id).Order());
        Assert.InRange(concurrency.Max, 2, 16);
    }

    /// <summary>Counts the handlers running at once and keeps the highest count seen.</summary>
    private sealed class ConcurrencyGauge
    {
        private int _current;
        private int _max;

        public int Max => Volatile.Read(ref _max);

        public IDisposable Enter()
        {
            var now = Interlocked.Increment(ref _current);
            int seen;
            while (now > (seen = Volatile.Read(ref _max)) && Interlocked.CompareExchange(ref _max, now, seen) != seen)
            {
            }

            return new Exit(this);
        }

        private sealed class Exit(ConcurrencyGauge gauge) : IDisposable
        {
            public void Dispose() => Interlocked.Decrement(ref gauge._current);
        }
    }
}
