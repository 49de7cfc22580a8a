using System.Globalization;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Offsets;
using Microsoft.Extensions.Logging.Abstractions;

namespace Kafka.Reliable.Torture;

/// <summary>
/// The probe of every run's first phase: the library's own handshake between a worker that finishes a record
/// (<see cref="PartitionOffsetTracker.MarkDone"/>, then <see cref="ConsumerContext.NotifyProgress"/>) and the poll thread
/// (<see cref="ConsumerContext.TakeProgress"/>, then <see cref="PartitionOffsetTracker.Advance"/>), raced on two threads in
/// lock-step with the interleavings drawn from the run's seed.
/// </summary>
/// <remarks>
/// A completion that the poll thread neither sees nor gets flagged for is lost until the next one: a partition's last record
/// is never released and the partition stalls (defect 10.2, the 199,999-of-200,000 stall). Its window is the few nanoseconds
/// in which a processor serves a read before an earlier write is visible (store-load reordering), so the consuming runs
/// cannot reach it at CI scale: 25 runs of 200,000 records on the code before its fix stalled 0 times. Here each round is
/// one such race, and the seeded spins move the two threads across each other's window.
/// </remarks>
internal static class HandshakeProbe
{
    /// <summary>The rounds each run races (about a second on two cores).</summary>
    public const int Rounds = 2_000_000;

    /// <summary>Races the rounds; returns null when every completion was seen or flagged, else what was lost.</summary>
    public static string? Run(int seed, int rounds = Rounds)
    {
        var context = new ConsumerContext("torture-probe", new ReliableConsumerOptions(), NullLogger.Instance, TimeProvider.System);
        var tracker = new PartitionOffsetTracker(1);
        var lockStep = new LockStep();
        var lost = 0;
        var firstLost = -1;

        var worker = new Thread(() =>
        {
            var random = new Random(seed ^ 0x5BD1E995);
            for (var round = 1; round <= rounds; round++)
            {
                var spins = random.Next(16);
                var wait = new SpinWait();
                while (Volatile.Read(ref lockStep.Go) != round)
                {
                    wait.SpinOnce(sleep1Threshold: -1);
                }

                Thread.SpinWait(spins);
                tracker.MarkDone(round - 1);
                context.NotifyProgress();
                Volatile.Write(ref lockStep.WorkerDone, round);
            }
        }) { IsBackground = true, Name = "torture-probe-worker" };
        worker.Start();

        var random = new Random(seed);
        for (var round = 1; round <= rounds; round++)
        {
            if (!tracker.TryAdd(round, out var sequence) || sequence != round - 1)
            {
                throw new InvalidOperationException("The tracker's one slot must be free at the start of a round.");
            }

            // An earlier completion not yet taken: the worker's read of the flag finds it set and does not set it again.
            context.NotifyProgress();
            var spins = random.Next(16);
            Volatile.Write(ref lockStep.Go, round);
            Thread.SpinWait(spins);
            var released = context.TakeProgress() ? tracker.Advance() : 0;

            var wait = new SpinWait();
            while (Volatile.Read(ref lockStep.WorkerDone) != round)
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

            // The record is done whatever the round showed: release it for the next one.
            tracker.Advance();
        }

        worker.Join();
        return lost == 0
            ? null
            : string.Create(CultureInfo.InvariantCulture, $"{lost} of {rounds:N0} completions raced against the poll thread's take of the progress flag were neither seen by it nor flagged for it (first in round {firstLost}): the poll thread would never release that partition's record, and the partition stalls once no other record completes");
    }

    private sealed class LockStep
    {
        public int Go;
        public int WorkerDone;
    }
}
