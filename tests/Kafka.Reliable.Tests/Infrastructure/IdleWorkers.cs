using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Pipeline;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kafka.Reliable.Tests.Infrastructure;

/// <summary>Partition workers that are never started, with records handed to them as the poll thread does: for the poll thread's decisions.</summary>
internal static class IdleWorkers
{
    public static ConsumerContext Context(Action<ReliableConsumerOptions>? configure = null, TimeProvider? time = null)
    {
        var options = new ReliableConsumerOptions { GroupId = "g", BootstrapServers = "localhost:9092" };
        configure?.Invoke(options);
        return new ConsumerContext("test", options, NullLogger.Instance, time ?? TimeProvider.System);
    }

    public static PartitionWorker Worker(ConsumerContext context, int partition) => new(new TopicPartition("t", partition), context, new NotStarted());

    public static ConsumeResult<byte[]?, byte[]?> Record(int partition, long offset, int valueBytes) => new()
    {
        TopicPartitionOffset = new TopicPartitionOffset("t", partition, offset),
        Message = new Message<byte[]?, byte[]?> { Value = new byte[valueBytes] },
    };

    /// <summary>Marks the first <paramref name="count"/> pending records done as a worker would, then releases them as the poll thread does.</summary>
    public static void Complete(PartitionWorker worker, int count)
    {
        for (var i = 0; i < count; i++)
        {
            worker.Tracker.MarkDone(worker.Tracker.HeadSequence + i);
        }

        worker.Release();
    }

    /// <summary>The workers here are never started, so no record reaches the pipeline.</summary>
    private sealed class NotStarted : IRecordProcessor
    {
        public ValueTask<ProcessingOutcome> ProcessAsync(MessageContext context, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("The worker was not started; no record should be processed.");
    }
}
