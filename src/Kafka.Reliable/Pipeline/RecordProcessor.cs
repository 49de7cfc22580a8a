using System.Runtime.CompilerServices;
using Kafka.Reliable.Idempotency;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable.Pipeline;

/// <summary>
/// Runs the stages of the pipeline for one record: deserialize -> translate -> handle. A failure in a stage comes back as a
/// <see cref="ProcessingOutcome"/> naming the stage; nothing here decides about retries or commits.
/// </summary>
internal sealed class RecordProcessor<TMessage, TDomain> : IRecordProcessor
{
    private readonly IMessageDeserializer<TMessage>? _deserializer;
    private readonly IAsyncMessageDeserializer<TMessage>? _asyncDeserializer;
    private readonly IMessageTranslator<TMessage, TDomain> _translator;
    private readonly IMessageHandler<TDomain>? _singletonHandler;
    private readonly Func<IServiceProvider, IMessageHandler<TDomain>> _handlerFactory;
    private readonly IServiceScopeFactory _scopeFactory;
    private readonly IdempotencyGate? _idempotency;
    private readonly Func<TMessage, MessageContext, string?>? _keySelector;

    public RecordProcessor(
        IMessageDeserializer<TMessage>? deserializer,
        IMessageTranslator<TMessage, TDomain> translator,
        Func<IServiceProvider, IMessageHandler<TDomain>> handlerFactory,
        bool handlerIsSingleton,
        IServiceProvider services,
        IdempotencyGate? idempotency = null,
        Func<TMessage, MessageContext, string?>? keySelector = null,
        IAsyncMessageDeserializer<TMessage>? asyncDeserializer = null)
    {
        if (deserializer is null && asyncDeserializer is null)
        {
            throw new ArgumentNullException(nameof(deserializer), "A deserializer, synchronous or asynchronous, is required.");
        }

        _asyncDeserializer = asyncDeserializer;
        _idempotency = idempotency;
        _keySelector = keySelector;
        _deserializer = deserializer;
        _translator = translator;
        _handlerFactory = handlerFactory;
        _scopeFactory = services.GetRequiredService<IServiceScopeFactory>();
        _singletonHandler = handlerIsSingleton ? handlerFactory(services) : null;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<ProcessingOutcome> ProcessAsync(MessageContext context, CancellationToken cancellationToken)
    {
        TMessage message;
        if (_asyncDeserializer is { } deserializeAsync)
        {
            try
            {
                var value = context.Record!.Message.Value;
                message = await deserializeAsync.DeserializeAsync(value, value is null, context, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested)
            {
                return ProcessingOutcome.Cancel(ex);
            }
            catch (Exception ex)
            {
                return ProcessingOutcome.Failed(ProcessingStage.Deserialize, ex);
            }
        }
        else
        {
            try
            {
                var value = context.Record!.Message.Value;
                message = _deserializer!.Deserialize(value, value is null, context);
            }
            catch (Exception ex)
            {
                return ProcessingOutcome.Failed(ProcessingStage.Deserialize, ex);
            }
        }

        TDomain domain;
        try
        {
            domain = _translator.Translate(message, context);
        }
        catch (Exception ex)
        {
            return ProcessingOutcome.Failed(ProcessingStage.Translate, ex);
        }

        if (_idempotency is not null)
        {
            return await ProcessOnceAsync(_idempotency, message, domain, context, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            await HandleAsync(domain, context, cancellationToken).ConfigureAwait(false);
            return ProcessingOutcome.Success;
        }
        catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested)
        {
            return ProcessingOutcome.Cancel(ex);
        }
        catch (Exception ex)
        {
            return ProcessingOutcome.Failed(ProcessingStage.Handle, ex);
        }
    }

    /// <summary>
    /// The handle stage behind the idempotency gate: take the key, handle, complete it; or skip a message handled already.
    /// With <see cref="CommitStrategy.Manual"/> and a lease store, the record's acknowledgement completes the key, not the
    /// handler's return: effects deferred and never acknowledged must not make the redelivered record a duplicate.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ProcessingOutcome> ProcessOnceAsync(IdempotencyGate gate, TMessage message, TDomain domain, MessageContext context, CancellationToken cancellationToken)
    {
        string key;
        try
        {
            key = gate.KeyFor(_keySelector?.Invoke(message, context), context);
        }
        catch (Exception ex)
        {
            // The key selector failed or the key is unusable (too long): that is the record's fault.
            return ProcessingOutcome.Failed(ProcessingStage.Handle, ex);
        }

        GateDecision decision;
        TimeSpan retryAfter;
        HeldKey? held;
        try
        {
            (decision, retryAfter, held) = await gate.BeginAsync(key, context, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested)
        {
            return ProcessingOutcome.Cancel(ex);
        }
        catch (Exception ex)
        {
            // The store is unreachable. A healthy record must not spend its attempts (and end in the dead-letter topic) on an
            // outage of the store: it waits for the store, holding its partition.
            return ProcessingOutcome.Failed(ProcessingStage.Handle, new IdempotencyStoreUnavailableException(ex));
        }

        if (decision == GateDecision.Duplicate)
        {
            return ProcessingOutcome.SkippedDuplicate;
        }

        if (decision == GateDecision.Held)
        {
            return ProcessingOutcome.Failed(ProcessingStage.Handle, new IdempotencyKeyHeldException(retryAfter));
        }

        if (held is not null && context.PendingAcknowledgement is { } acknowledgement)
        {
            IdempotencyGate.CompleteOnAcknowledgement(held, acknowledgement);
        }

        try
        {
            await HandleAsync(domain, context, cancellationToken).ConfigureAwait(false);
            if (held is null)
            {
                // Transactional store: the handler's writes commit with the key, even if the record was cancelled meanwhile.
                await gate.CommitAsync(context, CancellationToken.None).ConfigureAwait(false);
                return ProcessingOutcome.Success;
            }
        }
        catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested)
        {
            await gate.ReleaseAsync(key, held, context).ConfigureAwait(false);
            return ProcessingOutcome.Cancel(ex);
        }
        catch (Exception ex)
        {
            await gate.ReleaseAsync(key, held, context).ConfigureAwait(false);
            return ProcessingOutcome.Failed(ProcessingStage.Handle, ex);
        }

        // The handler's effects are done once it returns: its key is completed even if the record was cancelled meanwhile
        // (a handler that finished despite a lost partition), and a failing store is tried again rather than the key released,
        // which would let the effects happen twice. Only an aborted worker gives up, leaving the record undone.
        return await gate.CompleteAfterHandlerAsync(held).ConfigureAwait(false)
            ? ProcessingOutcome.Success
            : ProcessingOutcome.Cancel(new OperationCanceledException("The partition was given up before the message's idempotency key could be completed.", cancellationToken));
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask HandleAsync(TDomain domain, MessageContext context, CancellationToken cancellationToken)
    {
        if (_singletonHandler is not null)
        {
            await _singletonHandler.HandleAsync(domain, context, cancellationToken).ConfigureAwait(false);
            return;
        }

        var scope = _scopeFactory.CreateAsyncScope();
        await using (scope.ConfigureAwait(false))
        {
            var handler = _handlerFactory(scope.ServiceProvider);
            await handler.HandleAsync(domain, context, cancellationToken).ConfigureAwait(false);
        }
    }
}

/// <summary>The translator used when none is configured: the handler receives the deserialized message.</summary>
internal sealed class IdentityTranslator<TMessage> : IMessageTranslator<TMessage, TMessage>
{
    public static readonly IdentityTranslator<TMessage> Instance = new();

    public TMessage Translate(TMessage message, MessageContext context) => message;
}
