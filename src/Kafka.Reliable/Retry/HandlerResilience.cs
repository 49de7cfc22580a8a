using Kafka.Reliable.Consuming;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;

namespace Kafka.Reliable;

/// <summary>Builds the Polly pipeline the handler stage runs through: retry (outer) over an optional circuit breaker (inner).</summary>
internal static class HandlerResilience
{
    /// <summary>
    /// Set on the context of an attempt that must not be retried: a part of a failed batch being isolated, which is bisected
    /// further if it fails (its records get their retries alone, before any is dead-lettered).
    /// </summary>
    public static readonly ResiliencePropertyKey<bool> OneAttempt = new("Kafka.Reliable.OneAttempt");

    public static ResiliencePipeline Build(ConsumerContext context)
    {
        var options = context.Options;
        var classification = context.Classification;
        var builder = new ResiliencePipelineBuilder { Name = "Kafka.Reliable." + context.Name, TimeProvider = context.Time };
        if (options.Retry.MaxAttempts > 1)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                Name = "retry",
                MaxRetryAttempts = options.Retry.MaxAttempts - 1,
                Delay = options.Retry.Delay,
                MaxDelay = options.Retry.MaxDelay,
                BackoffType = options.Retry.BackoffType,
                UseJitter = options.Retry.UseJitter,

                // An open circuit is not the record's failure: the worker waits for the circuit instead of spending attempts.
                ShouldHandle = args => new ValueTask<bool>(
                    IsTransient(args.Outcome.Exception, classification, args.Context.CancellationToken) && !args.Context.Properties.GetValue(OneAttempt, false)),
            });
        }

        var breaker = options.CircuitBreaker;
        if (breaker.Enabled)
        {
            builder.AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                Name = "circuit-breaker",
                FailureRatio = breaker.FailureRatio,
                MinimumThroughput = breaker.MinimumThroughput,
                SamplingDuration = breaker.SamplingDuration,
                BreakDuration = breaker.BreakDuration,
                ShouldHandle = args => new ValueTask<bool>(IsTransient(args.Outcome.Exception, classification, args.Context.CancellationToken)),
                OnOpened = args =>
                {
                    context.OnCircuitOpened(args.BreakDuration);
                    return default;
                },
                OnHalfOpened = _ =>
                {
                    context.OnCircuitHalfOpened();
                    return default;
                },
                OnClosed = _ =>
                {
                    context.OnCircuitClosed();
                    return default;
                },
            });
        }

        return builder.Build();
    }

    private static bool IsTransient(Exception? exception, ExceptionClassification classification, CancellationToken stopping) =>
        exception is not null
        && exception is not BrokenCircuitException
        && exception is not Idempotency.IdempotencyWaitException
        && !(exception is OperationCanceledException && stopping.IsCancellationRequested)
        && (exception is DependencyUnavailableException || classification.Classify(exception) == FailureKind.Transient);
}
