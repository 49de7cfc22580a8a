using System.Collections.Concurrent;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Pipeline;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kafka.Reliable.Tests.Consuming;

/// <summary>
/// A partition worker driven at volume without a broker: the test thread plays the poll thread (buffers records while
/// there is room, releases the done ones when told of progress) while the worker dispatches them. Fixed seeds and record
/// counts; the only clock is the timeout that turns a stall into a failure that says where it stalled.
/// </summary>
[Collection(CpuHeavy.Collection)]
public sealed class PartitionWorkerStressTests
{
    private static readonly TimeSpan StallTimeout = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(DispatchMode.ByKey, 2, 1, 4)]
    [InlineData(DispatchMode.ByKey, 3, 2, 4)]
    [InlineData(DispatchMode.ByKey, 8, 3, 4)]
    [InlineData(DispatchMode.Unordered, 8, 4, 4)]
    [InlineData(DispatchMode.Sequential, 1, 5, 4)]
    // Lanes that take the next free record of another key instead of ending: one slot, and more slots than keys.
    [InlineData(DispatchMode.ByKey, 10, 6, 1)]
    [InlineData(DispatchMode.ByKey, 10, 7, 64)]
    [InlineData(DispatchMode.Unordered, 10, 8, 1)]
    public async Task FewKeysUnderVolume_EveryRecordIsHandledOnce_InKeyOrder_OneHandlerPerKeyAtATime(DispatchMode mode, int keys, int seed, int maxInFlight)
    {
        const int Records = 50_000;
        var options = new ReliableConsumerOptions { Dispatch = mode, MaxInFlight = maxInFlight, PartitionBufferSize = 64 };
        var context = new ConsumerContext("stress", options, NullLogger.Instance, TimeProvider.System);
        var processor = new KeyOrderRecorder(keys, oneAtATimePerKey: mode == DispatchMode.ByKey);
        using var worker = new PartitionWorker(new TopicPartition("t", 0), context, processor);
        worker.Start(Task.CompletedTask);

        var random = new Random(seed);
        var keyBytes = Enumerable.Range(0, keys).Select(k => Encoding.UTF8.GetBytes("k" + k)).ToArray();
        var keyOf = new int[Records];
        long next = 0;
        var lastProgress = DateTime.UtcNow;
        await Task.Run(() =>
        {
            while (worker.Tracker.Watermark < Records)
            {
                while (next < Records && !worker.Tracker.IsFull)
                {
                    var key = random.Next(keys);
                    keyOf[next] = key;
                    worker.Enqueue(new ConsumeResult<byte[]?, byte[]?>
                    {
                        TopicPartitionOffset = new TopicPartitionOffset("t", 0, next++),
                        Message = new Message<byte[]?, byte[]?> { Key = keyBytes[key], Value = [] },
                    });
                }

                // As the poll thread does once a burst is buffered.
                worker.SignalBuffered();
                if (context.TakeProgress() && worker.Release() > 0)
                {
                    lastProgress = DateTime.UtcNow;
                }
                else if (DateTime.UtcNow - lastProgress > StallTimeout)
                {
                    Assert.Fail($"The partition stalled at watermark {worker.Tracker.Watermark} with {worker.Tracker.Count} records buffered, " +
                        $"{worker.InFlight} in flight and {processor.Handled.Count} handled (mode {mode}, {keys} keys, seed {seed}).");
                }
                else
                {
                    Thread.Yield();
                }
            }
        }, TestContext.Current.CancellationToken);

        worker.StopDispatch();
        await worker.Completion.WaitAsync(StallTimeout, TestContext.Current.CancellationToken);

        Assert.Empty(processor.Overlaps);
        var handled = processor.Handled.ToArray();
        Assert.Equal(Records, handled.Length);
        Assert.Equal(Enumerable.Range(0, Records).Select(i => (long)i), handled.Select(h => h.Offset).Order());
        if (mode != DispatchMode.Unordered)
        {
            // Per key (Sequential: per partition, one key here), the order of handling is the order of offsets.
            foreach (var group in handled.GroupBy(h => h.Key))
            {
                var offsets = group.Select(h => h.Offset).ToArray();
                Assert.True(offsets.SequenceEqual(offsets.Order()), $"key {group.Key} was handled out of offset order");
                Assert.All(offsets, o => Assert.Equal(group.Key, keyOf[o]));
            }
        }
    }

    /// <summary>Records what it handles and catches two handlers of one key at once; yields on some records so that lanes interleave.</summary>
    private sealed class KeyOrderRecorder(int keys, bool oneAtATimePerKey) : IRecordProcessor
    {
        private readonly int[] _running = new int[keys];

        public ConcurrentQueue<(int Key, long Offset)> Handled { get; } = new();

        public ConcurrentQueue<string> Overlaps { get; } = new();

        public async ValueTask<ProcessingOutcome> ProcessAsync(MessageContext context, CancellationToken cancellationToken)
        {
            var key = context.Key.Span[1] - (byte)'0';
            var concurrent = oneAtATimePerKey;
            if (concurrent && Interlocked.Increment(ref _running[key]) != 1)
            {
                Overlaps.Enqueue($"two handlers of key {key} at once at offset {context.Offset}");
            }

            // Deterministic per offset: about a third of the records finish on another thread, later.
            if ((context.Offset * 2654435761L & 0xFF) < 85)
            {
                await Task.Yield();
            }

            Handled.Enqueue((key, context.Offset));
            if (concurrent)
            {
                Interlocked.Decrement(ref _running[key]);
            }

            return ProcessingOutcome.Success;
        }
    }
}
