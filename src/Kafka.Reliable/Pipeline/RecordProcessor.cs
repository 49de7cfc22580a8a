using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable.Pipeline;

/// <summary>
/// Runs the stages of the pipeline for one record: deserialize -> translate -> handle. A failure in a stage comes back as a
/// <see cref="ProcessingOutcome"/> naming the stage; nothing here decides about retries or commits.
/// </summary>
internal sealed class RecordProcessor<TMessage, TDomain> : IRecordProcessor
{
    private readonly IMessageDeserializer<TMessage> _deserializer;
    private readonly IMessageTranslator<TMessage, TDomain> _translator;
    private readonly IMessageHandler<TDomain>? _singletonHandler;
    private readonly Func<IServiceProvider, IMessageHandler<TDomain>> _handlerFactory;
    private readonly IServiceScopeFactory _scopeFactory;

    public RecordProcessor(
        IMessageDeserializer<TMessage> deserializer,
        IMessageTranslator<TMessage, TDomain> translator,
        Func<IServiceProvider, IMessageHandler<TDomain>> handlerFactory,
        bool handlerIsSingleton,
        IServiceProvider services)
    {
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
        try
        {
            var value = context.Record!.Message.Value;
            message = _deserializer.Deserialize(value, value is null, context);
        }
        catch (Exception ex)
        {
            return ProcessingOutcome.Failed(ProcessingStage.Deserialize, ex);
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

        try
        {
            if (_singletonHandler is not null)
            {
                await _singletonHandler.HandleAsync(domain, context, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                var scope = _scopeFactory.CreateAsyncScope();
                await using (scope.ConfigureAwait(false))
                {
                    var handler = _handlerFactory(scope.ServiceProvider);
                    await handler.HandleAsync(domain, context, cancellationToken).ConfigureAwait(false);
                }
            }

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
}

/// <summary>The translator used when none is configured: the handler receives the deserialized message.</summary>
internal sealed class IdentityTranslator<TMessage> : IMessageTranslator<TMessage, TMessage>
{
    public static readonly IdentityTranslator<TMessage> Instance = new();

    public TMessage Translate(TMessage message, MessageContext context) => message;
}
