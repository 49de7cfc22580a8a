using Kafka.Reliable.Consuming;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Idempotency;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable.Hosting;

/// <summary>Runs one registered consumer for the lifetime of the host.</summary>
internal sealed class ReliableConsumerHostedService(ConsumerRegistration registration, IServiceProvider services) : IHostedService, IAsyncDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private ConsumerRunner? _runner;
    private Task _cleanup = Task.CompletedTask;
    private IdempotencyGate? _gate;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var options = services.GetRequiredService<IOptionsMonitor<ReliableConsumerOptions>>().Get(registration.Name);
        if (registration.ProcessorFactory is null)
        {
            throw new InvalidOperationException(
                $"Reliable consumer '{registration.Name}' has no handler: call WithHandler<THandler>() on the builder that AddReliableConsumer returned.");
        }

        var logger = services.GetService<ILoggerFactory>()?.CreateLogger("Kafka.Reliable.Consumer." + registration.Name) ?? NullLogger.Instance;
        var time = services.GetService<TimeProvider>() ?? TimeProvider.System;
        var lifetime = services.GetService<IHostApplicationLifetime>();
        var context = new ConsumerContext(registration.Name, options, logger, time) { Classification = registration.Classification };
        context.Resilience = registration.ResiliencePipelineFactory?.Invoke(services) ?? HandlerResilience.Build(context);
        context.RebalanceHandler = registration.RebalanceHandlerFactory?.Invoke(services);
        context.FirstAttemptOutsidePipeline = registration.ResiliencePipelineFactory is null && !options.CircuitBreaker.Enabled;

        IdempotencyGate? gate = null;
        if (registration.IdempotencyStoreFactory is { } storeFactory)
        {
            gate = new IdempotencyGate(storeFactory(services), registration.IdempotencyTransactional, options.GroupId, options.Idempotency, logger);
            _gate = gate;
            context.StoredOffsets = registration.IdempotencyTransactional ? gate.Store as IStoredOffsets : null;
            _cleanup = CleanupLoopAsync(gate, context, _stopping.Token);
        }

        if (options.Commit.Strategy == CommitStrategy.Transactional)
        {
            var store = new KafkaTransactionStore(context, OwnedProducers.Config(options), options.Commit.TransactionalIdPrefix ?? options.GroupId);
            gate = new IdempotencyGate(store, transactional: true, options.GroupId, options.Idempotency, logger);
            _gate = gate;
        }

        var processor = registration.ProcessorFactory(services, gate);
        _runner = new ConsumerRunner(context, processor, lifetime is null ? null : lifetime.StopApplication);
        _runner.Start();
        registration.Runner = _runner;
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_runner is not null)
        {
            await _runner.StopAsync(cancellationToken).ConfigureAwait(false);
        }

        await _cleanup.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_runner is not null)
        {
            await _runner.DisposeAsync().ConfigureAwait(false);
        }

        if (_gate?.Store is IAsyncDisposable store)
        {
            await store.DisposeAsync().ConfigureAwait(false);
        }

        _stopping.Dispose();
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
