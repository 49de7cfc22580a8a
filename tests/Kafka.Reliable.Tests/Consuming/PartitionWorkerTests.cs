using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace Kafka.Reliable.Tests.Consuming;

public sealed class PartitionWorkerTests
{
    [Fact]
    public void StalledFor_IdleLongerThanAnyLimitThenARecordArrives_CountsFromTheRecordsArrival()
    {
        var time = new FakeTimeProvider();
        using var worker = IdleWorkers.Worker(IdleWorkers.Context(time: time), 0);

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
}
