using Kafka.Reliable.Consuming;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable.Hosting;

/// <summary>Runs one registered consumer for the lifetime of the host.</summary>
internal sealed class ReliableConsumerHostedService(ConsumerRegistration registration, IServiceProvider services) : IHostedService, IAsyncDisposable
{
    private ConsumerRunner? _runner;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var options = services.GetRequiredService<IOptionsMonitor<ReliableConsumerOptions>>().Get(registration.Name);
        if (registration.ProcessorFactory is null)
        {
            throw new InvalidOperationException(
                $"Reliable consumer '{registration.Name}' has no handler: call WithHandler<THandler>() on the builder that AddReliableConsumer returned.");
        }

        var processor = registration.ProcessorFactory(services);
        var logger = services.GetService<ILoggerFactory>()?.CreateLogger("Kafka.Reliable.Consumer." + registration.Name) ?? NullLogger.Instance;
        var time = services.GetService<TimeProvider>() ?? TimeProvider.System;
        var lifetime = services.GetService<IHostApplicationLifetime>();
        var context = new ConsumerContext(registration.Name, options, logger, time) { Classification = registration.Classification };
        context.Resilience = registration.ResiliencePipelineFactory?.Invoke(services) ?? HandlerResilience.Build(context);
        context.FirstAttemptOutsidePipeline = registration.ResiliencePipelineFactory is null && !options.CircuitBreaker.Enabled;
        _runner = new ConsumerRunner(context, processor, lifetime is null ? null : lifetime.StopApplication);
        _runner.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) =>
        _runner is null ? Task.CompletedTask : _runner.StopAsync(cancellationToken);

    public ValueTask DisposeAsync() => _runner?.DisposeAsync() ?? ValueTask.CompletedTask;
}
