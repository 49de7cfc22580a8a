using Kafka.Reliable.Consuming;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Idempotency;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable.Hosting;

/// <summary>
/// Runs one registered consumer for the lifetime of the host. What outlives a restart by the watchdog lives here and in the
/// <see cref="ConsumerContext"/> (options, resilience pipeline, circuit state, idempotency store); what a restart replaces
/// lives in the <see cref="ConsumerRunner"/> (the Kafka client, its group membership, the partition workers, the
/// dead-letter producer) and in the pipeline built for it.
/// </summary>
internal sealed class ReliableConsumerHostedService(string name, IConsumerPipeline pipeline, IServiceProvider services) : IHostedService, IAsyncDisposable
{
    // Resolved by name, so that the health check reads what this consumer publishes.
    private readonly ConsumerState _state = services.GetRequiredKeyedService<ConsumerState>(name);
    private readonly CancellationTokenSource _stopping = new();
    private ConsumerRunner? _runner;
    private Task _cleanup = Task.CompletedTask;
    private Task _watchdog = Task.CompletedTask;
    private Task _rejoin = Task.CompletedTask;
    private int _refusals;
    private ConsumerContext? _context;
    private Action? _onFatal;

    // The idempotency store (or the Kafka transaction store), shared by the runners one after the other and disposed once, here.
    private object? _store;
    private bool _storeTransactional;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var options = services.GetRequiredService<IOptionsMonitor<ReliableConsumerOptions>>().Get(name);
        pipeline.EnsureHandler(services);

        var consumerServices = services.GetRequiredService<IOptionsMonitor<ConsumerServicesOptions>>().Get(name);
        var classification = services.GetRequiredService<IOptionsMonitor<ExceptionClassification>>().Get(name);
        var idempotencyStore = services.GetRequiredService<IOptionsMonitor<IdempotencyStoreOptions>>().Get(name);
        var logger = services.GetService<ILoggerFactory>()?.CreateLogger("Kafka.Reliable.Consumer." + name) ?? NullLogger.Instance;
        var time = services.GetService<TimeProvider>() ?? TimeProvider.System;
        var lifetime = services.GetService<IHostApplicationLifetime>();
        var context = new ConsumerContext(name, options, logger, time) { Classification = classification, Metrics = services.GetRequiredService<ReliableMetrics>() };
        context.Resilience = consumerServices.ResiliencePipeline?.Invoke(services) ?? HandlerResilience.Build(context);
        context.RebalanceHandler = consumerServices.RebalanceHandler?.Invoke(services);
        context.FirstAttemptOutsidePipeline = consumerServices.ResiliencePipeline is null && !options.CircuitBreaker.Enabled;
        context.ClientInterceptor = services.GetService<IClientInterceptor>();
        _context = context;
        _onFatal = lifetime is null ? null : lifetime.StopApplication;

        if (idempotencyStore.HasStore)
        {
            _store = idempotencyStore.TransactionalStoreFactory is { } transactional ? transactional(services) : idempotencyStore.StoreFactory!(services);
            _storeTransactional = idempotencyStore.IsTransactional;
            var gate = NewGate();
            context.StoredOffsets = _storeTransactional ? gate.Store as IStoredOffsets : null;
            _cleanup = CleanupLoopAsync(gate, context, _stopping.Token);
        }

        if (options.Commit.Strategy == CommitStrategy.Transactional)
        {
            var transactions = new KafkaTransactionStore(context, OwnedProducers.Config(options), options.Commit.TransactionalIdPrefix ?? options.GroupId);
            context.PartitionsReleased = transactions.Release;
            _store = transactions;
            _storeTransactional = true;
        }

        _runner = StartRunner();
        if (options.Watchdog.RestartWhenStuck)
        {
            _watchdog = WatchdogLoopAsync(context, lifetime?.ApplicationStopping ?? CancellationToken.None);
        }

        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            // A restart under way finishes first (without starting a new runner once stopping), so that the runner stopped below is the last one.
            await _watchdog.WaitAsync(cancellationToken).ConfigureAwait(false);
            await _rejoin.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (_runner is not null)
            {
                await _runner.StopAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        await _cleanup.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _watchdog.ConfigureAwait(false);
            await _rejoin.ConfigureAwait(false);
        }
        finally
        {
            if (_runner is not null)
            {
                await _runner.DisposeAsync().ConfigureAwait(false);
                _runner = null;
            }

            if (_store is IAsyncDisposable store)
            {
                await store.DisposeAsync().ConfigureAwait(false);
            }

            _stopping.Dispose();
        }
    }

    /// <summary>Builds a runner with a pipeline of its own, starts it, and shows it to the health check.</summary>
    private ConsumerRunner StartRunner()
    {
        // A gate of its own per runner: its lease owner differs from the previous runner's, so that a record read again after
        // a restart waits for a handler of that runner that ignored its cancellation (it still holds the message's key)
        // instead of running beside it.
        var gate = _store is null ? null : NewGate();
        var processor = pipeline.Create(services, gate);
        ConsumerRunner? runner = null;
        runner = new ConsumerRunner(_context!, processor, () => OnFatal(runner!));
        runner.Start();
        _state.Publish(runner);
        return runner;
    }

    /// <summary>
    /// A runner stopped on a fatal error (on its poll thread). The host is asked to stop, except when a new client can join
    /// again: the consumer protocol refused the member's static id because another member holds it (a member killed without
    /// leaving holds its id until the broker expires its session, so the restarted member joins again after a backoff, log
    /// 110, instead of stopping the host and its orchestrator restarting it in a loop until then), or the group refused every
    /// commit as an unknown member's while the client still counted itself a member (log 111). Meanwhile the health check
    /// reports why.
    /// </summary>
    private void OnFatal(ConsumerRunner runner)
    {
        if (runner.JoinsAgain)
        {
            if (!_stopping.IsCancellationRequested)
            {
                // Refusals in a row back off further; a client that had joined starts the count again.
                _refusals = !runner.InstanceIdHeldByAnother ? 0 : runner.Joined ? 1 : _refusals + 1;
                _rejoin = RejoinAsync(runner, Math.Max(1, _refusals));
            }

            return;
        }

        _onFatal?.Invoke();
    }

    private async Task RejoinAsync(ConsumerRunner refused, int attempt)
    {
        var context = _context!;
        var delay = RetryBackoff.Delay(context.Options.Retry, attempt);
        if (refused.InstanceIdHeldByAnother)
        {
            Log.InstanceIdHeld(context.Logger, context.Name, context.Options.GroupId, context.Options.GroupInstanceId, delay, attempt);
        }

        if (await context.DelayAsync(delay, _stopping.Token).ConfigureAwait(false))
        {
            await RestartAsync(refused, _stopping.Token).ConfigureAwait(false);
        }
    }

    private IdempotencyGate NewGate()
    {
        var options = _context!.Options;
        return new IdempotencyGate(_store!, _storeTransactional, options.GroupId, options.Idempotency, _context.Logger, _context);
    }

    /// <summary>
    /// The stuck-consumer watchdog (<see cref="WatchdogOptions"/>), off the poll thread: a few times per
    /// <c>Watchdog:StuckAfter</c> it looks for an assigned partition that has had records pending and finished none for that
    /// long, and restarts the consumer when it finds one; at most once per <c>Watchdog:StuckAfter</c>, and never once the host stops.
    /// </summary>
    private async Task WatchdogLoopAsync(ConsumerContext context, CancellationToken applicationStopping)
    {
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, applicationStopping);
        var stuckAfter = context.Options.Watchdog.StuckAfter;
        var interval = TimeSpan.FromTicks(Math.Clamp(stuckAfter.Ticks / 4, TimeSpan.TicksPerMillisecond, ReliableConsumerConstants.MaxWatchdogInterval.Ticks));
        using var timer = new PeriodicTimer(interval, context.Time);
        long? lastRestart = null;
        try
        {
            while (await timer.WaitForNextTickAsync(stopping.Token).ConfigureAwait(false))
            {
                var now = context.Time.GetTimestamp();
                if (_runner is not { IsRunning: true } runner
                    || (lastRestart is { } restarted && context.Time.GetElapsedTime(restarted, now) < stuckAfter)

                    // Waiting for an open circuit or for the dead-letter topic is not stuck: a restart would not help.
                    || context.CircuitOpen
                    || context.DeadLetterFailing > 0
                    || FindStuck(runner, now, stuckAfter) is not ({ } stuck, var stalledFor))
                {
                    continue;
                }

                Log.ConsumerStuckRestarting(
                    context.Logger, context.Name, stuck.TopicPartition.Topic, stuck.TopicPartition.Partition.Value, stuck.OldestPendingOffset, stalledFor,
                    stuckAfter, context.Options.ShutdownTimeout);
                ReliableMetrics.Add(context.Metrics.Restarts, context, stuck.TopicPartition.Topic);
                if (await RestartAsync(runner, stopping.Token).ConfigureAwait(false))
                {
                    Log.ConsumerRestarted(context.Logger, context.Name);
                }

                lastRestart = context.Time.GetTimestamp();
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // The host stops.
        }
    }

    /// <summary>Finds the partition that has been stuck the longest, if one has been for more than <paramref name="stuckAfter"/>.</summary>
    private static (PartitionWorker? Partition, TimeSpan StalledFor) FindStuck(ConsumerRunner runner, long now, TimeSpan stuckAfter)
    {
        (PartitionWorker? Partition, TimeSpan StalledFor) stuck = (null, stuckAfter);
        foreach (var partition in runner.Partitions)
        {
            var stalledFor = partition.StalledFor(now);
            if (stalledFor > stuck.StalledFor)
            {
                stuck = (partition, stalledFor);
            }
        }

        return stuck;
    }

    /// <summary>
    /// Stops the runner the graceful way (stop fetching; drain for up to ShutdownTimeout, then cancel the handlers still
    /// running; commit what is done; leave the group), then starts a new one, which reads again from the committed offsets.
    /// </summary>
    /// <returns><see langword="true"/> when a new runner started.</returns>
    private async Task<bool> RestartAsync(ConsumerRunner stopped, CancellationToken stopping)
    {
        _runner = null;
        await stopped.DisposeAsync().ConfigureAwait(false);
        if (stopping.IsCancellationRequested)
        {
            // The host stops meanwhile: the consumer stays stopped.
            return false;
        }

        try
        {
            _runner = StartRunner();
            return true;
        }
        catch (Exception ex)
        {
            // The same client was built before with the same settings, so this is unexpected: a consumer that cannot run is a fatal error.
            Log.ConsumerRestartFailed(_context!.Logger, _context.Name, ex);
            _onFatal?.Invoke();
            return false;
        }
    }

    /// <summary>Removes expired keys from the store every <see cref="IdempotencyOptions.CleanupInterval"/>, off the consumer's threads.</summary>
    private static async Task CleanupLoopAsync(IdempotencyGate gate, ConsumerContext context, CancellationToken stopping)
    {
        var interval = context.Options.Idempotency.CleanupInterval;
        using var timer = new PeriodicTimer(interval, context.Time);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                try
                {
                    var removed = await gate.CleanupAsync(context.Time.GetUtcNow(), stopping).ConfigureAwait(false);
                    Log.IdempotencyCleanedUp(context.Logger, context.Name, removed);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.IdempotencyCleanupFailed(context.Logger, context.Name, ex.Message, interval);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }
}
