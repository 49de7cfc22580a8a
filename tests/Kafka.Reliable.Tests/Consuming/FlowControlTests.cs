using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Consuming;

/// <summary>Pause and resume decisions of the poll thread, against a scripted client (no librdkafka).</summary>
public sealed class FlowControlTests
{
    [Fact]
    public void OnBuffered_RecordBoundReached_PausesOnceAndResumesAtHalf()
    {
        var context = IdleWorkers.Context(o => o.PartitionBufferSize = 4);
        var (client, calls) = ScriptedClient.Create<IConsumer<byte[]?, byte[]?>>();
        var flow = new FlowControl(context);
        flow.Share(1);
        using var worker = IdleWorkers.Worker(context, 0);

        for (var offset = 0; offset < 6; offset++)
        {
            worker.Enqueue(IdleWorkers.Record(0, offset, valueBytes: 10));
            flow.OnBuffered(client, worker);
        }

        Assert.True(worker.Paused, "a partition with PartitionBufferSize records buffered should be paused");
        Assert.Single(calls, c => c.Method == nameof(IConsumer<byte[]?, byte[]?>.Pause));

        // Four of six done and released: two left, at most half the bound, so the partition resumes (and seeks to where it stopped).
        IdleWorkers.Complete(worker, 4);
        flow.Review(client, worker, circuitOpen: false);
        Assert.False(worker.Paused, "two records left of a bound of four should resume the partition");
        Assert.Contains(calls, c => c.Method == nameof(IConsumer<byte[]?, byte[]?>.Seek) && ((TopicPartitionOffset)c.Args[0]!).Offset.Value == 6);
    }

    [Fact]
    public void OnBuffered_ByteShareReached_PausesAtEachPartitionsEqualShare()
    {
        var context = IdleWorkers.Context(o => o.MaxBufferedBytes = 1024 * 1024);
        var (client, _) = ScriptedClient.Create<IConsumer<byte[]?, byte[]?>>();
        var flow = new FlowControl(context);
        flow.Share(4);
        using var worker = IdleWorkers.Worker(context, 0);

        // A quarter of 1 MiB is 256 KiB: 25 records of 10 KB stay under it, the 26th passes it.
        for (var offset = 0; offset < 25; offset++)
        {
            worker.Enqueue(IdleWorkers.Record(0, offset, valueBytes: 10_000));
            flow.OnBuffered(client, worker);
        }

        Assert.False(worker.Paused, $"{worker.BufferedBytes} bytes are under a quarter of 1 MiB; the partition should not be paused yet");
        worker.Enqueue(IdleWorkers.Record(0, 25, valueBytes: 10_000));
        flow.OnBuffered(client, worker);
        Assert.True(worker.Paused, $"{worker.BufferedBytes} bytes are over a quarter of 1 MiB; the partition should be paused");
    }

    [Fact]
    public void Review_ClientRefusesThePause_StaysUnpausedAndAsksForAnotherLook()
    {
        var context = IdleWorkers.Context(o => o.PartitionBufferSize = 2);
        var refuse = true;
        var (client, calls) = ScriptedClient.Create<IConsumer<byte[]?, byte[]?>>((method, _) =>
            method == nameof(IConsumer<byte[]?, byte[]?>.Pause) && refuse ? (true, new KafkaException(ErrorCode.Local_State)) : (false, null));
        var flow = new FlowControl(context);
        flow.Share(1);
        using var worker = IdleWorkers.Worker(context, 0);
        context.TakeProgress();

        worker.Enqueue(IdleWorkers.Record(0, 0, 10));
        worker.Enqueue(IdleWorkers.Record(0, 1, 10));
        flow.OnBuffered(client, worker);
        Assert.False(worker.Paused, "a pause the client refused must not be taken as done");
        Assert.True(context.TakeProgress(), "a refused pause should make the next poll look at the partitions again");

        refuse = false;
        flow.OnBuffered(client, worker);
        Assert.True(worker.Paused, "the pause should be retried and succeed once the client accepts it");
        Assert.Equal(2, calls.Count(c => c.Method == nameof(IConsumer<byte[]?, byte[]?>.Pause)));
    }

    [Fact]
    public void Review_CircuitOpen_PausesOnlyPartitionsWithRecordsWaiting()
    {
        var context = IdleWorkers.Context();
        var (client, _) = ScriptedClient.Create<IConsumer<byte[]?, byte[]?>>();
        var flow = new FlowControl(context);
        flow.Share(2);
        using var waiting = IdleWorkers.Worker(context, 0);
        using var empty = IdleWorkers.Worker(context, 1);
        waiting.Enqueue(IdleWorkers.Record(0, 0, 10));

        flow.Review(client, waiting, circuitOpen: true);
        flow.Review(client, empty, circuitOpen: true);

        Assert.True(waiting.Paused, "a partition with a record waiting for an open circuit should stop fetching");
        Assert.False(empty.Paused, "an empty partition keeps fetching: its next record can make the circuit's trial");
    }

    [Fact]
    public void ResumeAssigned_PartitionRevokedBeforeThePoll_ResumesOnlyThoseStillAssigned()
    {
        var context = IdleWorkers.Context();
        var resumed = new List<List<TopicPartition>>();
        var (client, _) = ScriptedClient.Create<IConsumer<byte[]?, byte[]?>>((method, args) =>
        {
            if (method == nameof(IConsumer<byte[]?, byte[]?>.Resume))
            {
                resumed.Add([.. (IEnumerable<TopicPartition>)args[0]!]);
            }

            return (false, null);
        });
        var flow = new FlowControl(context);
        var partitions = new AssignedPartitions();
        using var kept = IdleWorkers.Worker(context, 0);
        partitions.TryAdd(kept);
        flow.Assigned(new TopicPartition("t", 0));
        flow.Assigned(new TopicPartition("t", 1));

        flow.ResumeAssigned(client, partitions);
        flow.ResumeAssigned(client, partitions);

        Assert.Equal([new TopicPartition("t", 0)], Assert.Single(resumed));
    }
}
