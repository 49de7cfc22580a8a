namespace Kafka.Reliable.Pipeline;

/// <summary>One attempt at one record: deserialize, translate, handle. Thread-safe; shared by a consumer's partition workers.</summary>
internal interface IRecordProcessor
{
    ValueTask<ProcessingOutcome> ProcessAsync(MessageContext context, CancellationToken cancellationToken);
}
