using Kafka.Reliable.Consuming;
using Kafka.Reliable.Offsets;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kafka.Reliable.Tests.Consuming;

/// <summary>
/// The handshake between a worker that finishes a record (<see cref="PartitionOffsetTracker.MarkDone"/>, then
/// <see cref="ConsumerContext.NotifyProgress"/>) and the poll thread (<see cref="ConsumerContext.TakeProgress"/>, then
/// <see cref="PartitionOffsetTracker.Advance"/>). The poll thread looks at the partitions only when it takes the flag, so a
/// completion that it neither sees nor gets flagged for is lost until the next one; a partition's last record would then
/// never be committed and the partition would stall (the 199,999-of-200,000 stall).
/// </summary>
[Collection(CpuHeavy.Collection)]
public sealed class ProgressSignalStressTests
{
    /// <summary>
    /// A store-buffering litmus test run on two threads in lock-step: in each round the flag is already set (an earlier
    /// completion not yet taken), the worker finishes a record while the poll thread takes the flag, each after a seeded
    /// random number of spins so that every interleaving of the two is tried. After the round, the poll thread must either
    /// have released the record or find the flag set again.
    /// </summary>
    [Fact]
    public void CompletionRacingTheTakeOfTheFlag_IsAlwaysSeenOrFlagged()
    {
        const int Rounds = 2_000_000;
        const int Seed = 20261126;
        var context = new ConsumerContext("stress", new ReliableConsumerOptions(), NullLogger.Instance, TimeProvider.System);
        var tracker = new PartitionOffsetTracker(1);
        var shared = new Handshake();
        var lost = 0;
        var firstLost = -1;

        var worker = new Thread(() =>
        {
            var random = new Random(Seed + 1);
            for (var round = 1; round <= Rounds; round++)
            {
                var spins = random.Next(16);
                var wait = new SpinWait();
                while (Volatile.Read(ref shared.Go) != round)
                {
                    wait.SpinOnce(sleep1Threshold: -1);
                }

                Thread.SpinWait(spins);
                tracker.MarkDone(round - 1);
                context.NotifyProgress();
                Volatile.Write(ref shared.WorkerDone, round);
            }
        }) { IsBackground = true, Name = "stress-worker" };
        worker.Start();

        var pollRandom = new Random(Seed);
        for (var round = 1; round <= Rounds; round++)
        {
            Assert.True(tracker.TryAdd(round, out var sequence) && sequence == round - 1, "the tracker has its one slot free");
            context.NotifyProgress();
            var spins = pollRandom.Next(16);
            Volatile.Write(ref shared.Go, round);
            Thread.SpinWait(spins);
            var released = context.TakeProgress() ? tracker.Advance() : 0;

            var wait = new SpinWait();
            while (Volatile.Read(ref shared.WorkerDone) != round)
            {
                wait.SpinOnce(sleep1Threshold: -1);
            }

            if (released == 0 && !context.TakeProgress())
            {
                lost++;
                if (firstLost < 0)
                {
                    firstLost = round;
                }
            }

            // Whatever happened, the record is done now: release it for the next round.
            tracker.Advance();
        }

        worker.Join();
        Assert.True(lost == 0, $"{lost} of {Rounds:N0} completions were neither seen by the poll thread nor flagged for it (first in round {firstLost}, seed {Seed})");
    }

    private sealed class Handshake
    {
        public int Go;
        public int WorkerDone;
    }
}
