using Kafka.Reliable.Hosting;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Kafka.Reliable.Tests.Hosting;

public sealed class WatchdogTests(KafkaBrokerFixture broker)
{
    private const int Records = 20;
    private const int StuckId = 5;
    private const int RestartingEvent = 107;
    private const int RestartedEvent = 108;
    private const string RestartsMetric = "kafka.reliable.consumer.restarts";

    [Fact]
    public async Task StuckHandler_RestartWhenStuck_RestartsOnce_HandlesTheRecordAgain_AndCommitsToTheEnd()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(Records, 1));
        using var meters = new TestMeters();
        var restarts = meters.Collect<long>(RestartsMetric);
        var hooks = new HoldFirstRevoke();
        var stuckCalls = 0;
        var cancelled = 0;
        var handler = new RecordingHandler
        {
            // The first time only, the record hangs until its handler is cancelled (a handler that honours cancellation).
            Behavior = async (message, _, cancellationToken) =>
            {
                if (message.Id != StuckId || Interlocked.Increment(ref stuckCalls) != 1)
                {
                    return;
                }

                try
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    Interlocked.Increment(ref cancelled);
                    throw;
                }
            },
        };

        await using var consumer = await TestConsumer.StartAsync(
            broker, topic, group, handler,
            configure: o =>
            {
                o.Watchdog.RestartWhenStuck = true;
                // Long enough that a loaded machine never looks stuck by accident (each test counts its restarts exactly).
                o.Watchdog.StuckAfter = TimeSpan.FromSeconds(5);
                o.ShutdownTimeout = TimeSpan.FromSeconds(1);
            },
            customize: c => c.WithRebalanceHandler<HoldFirstRevoke>(),
            services: s => s.AddSingleton(hooks).AddHealthChecks().AddReliableConsumer("test", o => o.StallTimeout = TimeSpan.FromMilliseconds(500)),
            meters: meters);
        var health = consumer.Host.Services.GetRequiredService<HealthCheckService>();
        var registration = Registration(consumer);
        var firstRunner = registration.Runner!;

        // The stuck consumer is stopping: drained, its handler cancelled, what is done committed; the hook holds it there.
        await hooks.FirstRevoke.Task.WaitAsync(Eventually.DefaultTimeout, TestContext.Current.CancellationToken);
        var stuck = Report(health);
        Assert.True(stuck.Status == HealthStatus.Unhealthy, $"expected unhealthy while the record is stuck; was {stuck.Status}: {stuck.Description}");
        Assert.Contains("finished none", stuck.Description, StringComparison.Ordinal);
        Assert.Equal(1, consumer.Logs.CountOf(RestartingEvent));
        Assert.True(broker.GetCommittedOffsets(group, topic, 1)[0] <= StuckId, "nothing past the stuck record is committed");
        hooks.Release();

        await Eventually.TrueAsync(
            () => broker.GetCommittedOffsets(group, topic, 1)[0] == Records,
            $"the restarted consumer commits all {Records} records",
            state: () => consumer.Logs.Dump());
        await Eventually.TrueAsync(() => Report(health).Status == HealthStatus.Healthy, "healthy again after the restart", state: () => Report(health).Description ?? string.Empty);

        Assert.Equal(1, consumer.Logs.CountOf(RestartingEvent));
        Assert.Equal(1, consumer.Logs.CountOf(RestartedEvent));
        Assert.Equal(1, restarts.Sum());
        Assert.NotSame(firstRunner, registration.Runner);
        Assert.False(firstRunner.IsRunning, "the stuck runner is stopped");
        Assert.True(registration.Runner!.IsRunning, "the new runner runs");

        // At least once: every record handled; the stuck one cancelled once, then handled by the new consumer.
        Assert.Equal(Enumerable.Range(0, Records), handler.Handled.Select(h => h.Id).Distinct().Order());
        Assert.Equal(1, Volatile.Read(ref cancelled));
        Assert.Equal(2, handler.Attempts.Count(a => a.Id == StuckId));
        Assert.Single(handler.Handled, h => h.Id == StuckId);
    }

    [Fact]
    public async Task StuckHandler_RestartWhenStuckOff_ReportsUnhealthy_AndDoesNotRestart()
    {
        Assert.False(new ReliableConsumerOptions().Watchdog.RestartWhenStuck);
        Assert.Equal(TimeSpan.FromMinutes(10), new ReliableConsumerOptions().Watchdog.StuckAfter);

        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(Records, 1));
        using var meters = new TestMeters();
        var restarts = meters.Collect<long>(RestartsMetric);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelled = 0;
        var handler = new RecordingHandler
        {
            Behavior = async (message, _, cancellationToken) =>
            {
                if (message.Id != StuckId)
                {
                    return;
                }

                try
                {
                    await release.Task.WaitAsync(cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    Interlocked.Increment(ref cancelled);
                    throw;
                }
            },
        };

        // StuckAfter is short, but RestartWhenStuck stays off (its default); the health check waits three times as long.
        await using var consumer = await TestConsumer.StartAsync(
            broker, topic, group, handler,
            configure: o => o.Watchdog.StuckAfter = TimeSpan.FromSeconds(1),
            services: s => s.AddHealthChecks().AddReliableConsumer("test", o => o.StallTimeout = TimeSpan.FromSeconds(3)),
            meters: meters);
        var health = consumer.Host.Services.GetRequiredService<HealthCheckService>();
        var registration = Registration(consumer);
        var runner = registration.Runner!;

        await Eventually.TrueAsync(
            () => Report(health) is { Status: HealthStatus.Unhealthy } r && r.Description!.Contains("finished none", StringComparison.Ordinal),
            "the stuck partition is reported",
            state: () => Report(health).Description ?? string.Empty);

        Assert.Equal(0, consumer.Logs.CountOf(RestartingEvent));
        Assert.Equal(0, restarts.Sum());
        Assert.Same(runner, registration.Runner);
        Assert.True(runner.IsRunning, "the consumer keeps running");
        Assert.Equal(0, Volatile.Read(ref cancelled));

        release.SetResult();
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == Records, $"all {Records} records are committed once the record is released");
        await Eventually.TrueAsync(() => Report(health).Status == HealthStatus.Healthy, "healthy again once the record is done", state: () => Report(health).Description ?? string.Empty);
        Assert.Single(handler.Attempts, a => a.Id == StuckId);
        Assert.Equal(0, consumer.Logs.CountOf(RestartingEvent));
    }

    [Fact]
    public async Task HandlerIgnoringCancellation_WithIdempotency_IsNeverRunTwiceAtOnce()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(Records, 1));
        using var meters = new TestMeters();
        var restarts = meters.Collect<long>(RestartsMetric);
        var duplicates = meters.Collect<long>("kafka.reliable.records.duplicates");
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stuckCalls = 0;
        var running = 0;
        var mostAtOnce = 0;
        var handler = new RecordingHandler
        {
            // The first time only, the record hangs until the test releases it, whatever its cancellation token says.
            Behavior = async (message, _, _) =>
            {
                if (message.Id != StuckId)
                {
                    return;
                }

                var now = Interlocked.Increment(ref running);
                InterlockedMax(ref mostAtOnce, now);
                try
                {
                    if (Interlocked.Increment(ref stuckCalls) == 1)
                    {
                        await release.Task;
                    }
                }
                finally
                {
                    Interlocked.Decrement(ref running);
                }
            },
        };

        await using var consumer = await TestConsumer.StartAsync(
            broker, topic, group, handler,
            configure: o =>
            {
                o.Watchdog.RestartWhenStuck = true;
                // Long enough that a loaded machine never looks stuck by accident (each test counts its restarts exactly).
                o.Watchdog.StuckAfter = TimeSpan.FromSeconds(5);
                o.ShutdownTimeout = TimeSpan.FromSeconds(1);

                // Retry:MaxDelay stays the test default (50 ms), below the 100 ms the wait for a held key starts from:
                // that wait once threw (Math.Clamp with min > max) and killed the partition's worker.
            },
            customize: c => c.UseInMemoryIdempotency(),
            meters: meters);
        var registration = Registration(consumer);
        var firstRunner = registration.Runner!;

        // The restarted consumer reads the record again and finds its key held by the handler that is still running.
        await Eventually.TrueAsync(
            () => (registration.Runner is { } runner && runner != firstRunner && (runner.Partitions.Any(p => p.IsHolding) || consumer.Logs.CountOf(408) >= 1)) || Volatile.Read(ref stuckCalls) > 1,
            "the restarted consumer waits for the handler still running (for its assignment to end, or for the key it holds)",
            state: () => consumer.Logs.Dump());
        Assert.True(Volatile.Read(ref stuckCalls) == 1, "the record read again after the restart ran its handler while the first one was still running");

        release.SetResult();
        await Eventually.TrueAsync(
            () => broker.GetCommittedOffsets(group, topic, 1)[0] == Records,
            $"all {Records} records are committed once the first handler finishes",
            state: () => consumer.Logs.Dump());

        Assert.Equal(1, Volatile.Read(ref mostAtOnce));
        Assert.True(restarts.Sum() >= 1, "the consumer was restarted");

        // The first handler finished and completed the key: the record read again is skipped as a duplicate, not handled twice.
        Assert.Single(handler.Handled, h => h.Id == StuckId);
        Assert.Equal(1, duplicates.Sum());
    }

    /// <summary>Holds the first revocation (the stuck consumer leaving its group) until the test has looked at it.</summary>
    private sealed class HoldFirstRevoke : IRebalanceHandler
    {
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _revokes;

        public TaskCompletionSource FirstRevoke { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release() => _release.TrySetResult();

        public async ValueTask OnRevokedAsync(IReadOnlyList<Confluent.Kafka.TopicPartition> partitions, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _revokes) == 1)
            {
                FirstRevoke.TrySetResult();
                await _release.Task.WaitAsync(cancellationToken);
            }
        }
    }

    private static ConsumerState Registration(TestConsumer consumer)
    {
        var state = consumer.Host.Services.GetKeyedService<ConsumerState>("test");
        Assert.True(state is not null, "the consumer 'test' is registered");
        Assert.NotNull(state.Runner);
        return state;
    }

    private static HealthReportEntry Report(HealthCheckService health) =>
        health.CheckHealthAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult().Entries.Single().Value;

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
