using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Pipeline;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Kafka.Reliable.Tests.Consuming;

public sealed class PartitionWorkerTests
{
    [Fact]
    public void StalledFor_IdleLongerThanAnyLimitThenARecordArrives_CountsFromTheRecordsArrival()
    {
        var time = new FakeTimeProvider();
        var context = new ConsumerContext("test", new ReliableConsumerOptions(), NullLogger.Instance, time);
        using var worker = new PartitionWorker(new TopicPartition("t", 0), context, new NeverCalled());

        // Assigned, then idle for an hour: nothing is pending, so nothing is stalled.
        time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(TimeSpan.Zero, worker.StalledFor(time.GetTimestamp()));

        // A record arrives: the partition is not stuck for the idle hour, only for as long as the record waits.
        worker.Enqueue(new ConsumeResult<byte[]?, byte[]?> { TopicPartitionOffset = new TopicPartitionOffset("t", 0, 7), Message = new Message<byte[]?, byte[]?>() });
        Assert.Equal(TimeSpan.Zero, worker.StalledFor(time.GetTimestamp()));
        Assert.Equal(7, worker.OldestPendingOffset);

        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(TimeSpan.FromSeconds(2), worker.StalledFor(time.GetTimestamp()));
    }

    /// <summary>The worker is never started here, so no record reaches the pipeline.</summary>
    private sealed class NeverCalled : IRecordProcessor
    {
        public ValueTask<ProcessingOutcome> ProcessAsync(MessageContext context, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("The worker was not started; no record should be processed.");
    }
}
