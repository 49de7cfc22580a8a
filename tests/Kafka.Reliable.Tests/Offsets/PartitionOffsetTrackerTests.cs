using Kafka.Reliable.Offsets;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Offsets;

[Collection(Kafka.Reliable.Tests.Infrastructure.CpuHeavy.Collection)]
public sealed class PartitionOffsetTrackerTests
{
    [Fact]
    public void Watermark_NothingReleased_IsMinusOne()
    {
        var tracker = new PartitionOffsetTracker(4);
        Assert.Equal(-1, tracker.Watermark);
        tracker.TryAdd(10, out _);
        Assert.Equal(-1, tracker.Watermark);
    }

    [Fact]
    public void Advance_InOrderCompletions_WatermarkIsOnePastLastDone()
    {
        var tracker = new PartitionOffsetTracker(8);
        for (var offset = 100; offset < 105; offset++)
        {
            tracker.TryAdd(offset, out var sequence);
            tracker.MarkDone(sequence);
        }

        Assert.Equal(5, tracker.Advance());
        Assert.Equal(105, tracker.Watermark);
        Assert.Equal(0, tracker.Count);
    }

    [Fact]
    public void Advance_GapBeforeDoneRecords_WatermarkStaysAtTheGap()
    {
        var tracker = new PartitionOffsetTracker(8);
        var sequences = Enumerable.Range(0, 6).Select(i =>
        {
            tracker.TryAdd(i, out var s);
            return s;
        }).ToArray();

        tracker.MarkDone(sequences[0]);
        tracker.MarkDone(sequences[2]);
        tracker.MarkDone(sequences[3]);
        Assert.Equal(1, tracker.Advance());
        Assert.Equal(1, tracker.Watermark);

        tracker.MarkDone(sequences[1]);
        Assert.Equal(3, tracker.Advance());
        Assert.Equal(4, tracker.Watermark);
    }

    [Fact]
    public void Watermark_OffsetsWithGapsFromCompaction_IsTheNextTrackedOffset()
    {
        var tracker = new PartitionOffsetTracker(4);
        tracker.TryAdd(10, out var a);
        tracker.TryAdd(15, out _);
        tracker.MarkDone(a);
        tracker.Advance();

        Assert.Equal(15, tracker.Watermark);
    }

    [Fact]
    public void TryAdd_Full_ReturnsFalseUntilTheHeadIsReleased()
    {
        var tracker = new PartitionOffsetTracker(3);
        Assert.Equal(4, tracker.Capacity);
        for (var i = 0; i < 4; i++)
        {
            Assert.True(tracker.TryAdd(i, out _));
        }

        Assert.True(tracker.IsFull);
        Assert.False(tracker.TryAdd(4, out var rejected));
        Assert.Equal(-1, rejected);

        tracker.MarkDone(0);
        tracker.Advance();
        Assert.True(tracker.TryAdd(4, out var reused));
        Assert.Equal(4, reused);
        Assert.Equal(0, tracker.SlotOf(reused));
    }

    [Fact]
    public void StartAt_EmptyTracker_WatermarkIsTheStartUntilRecordsArrive()
    {
        var tracker = new PartitionOffsetTracker(4);
        tracker.StartAt(42);
        Assert.Equal(42, tracker.Watermark);

        tracker.TryAdd(42, out var sequence);
        Assert.Equal(42, tracker.Watermark);
        tracker.MarkDone(sequence);
        tracker.Advance();
        Assert.Equal(43, tracker.Watermark);

        tracker.StartAt(7);
        Assert.Equal(43, tracker.Watermark);
    }

    /// <summary>
    /// Property: whatever the order in which records complete, and whichever records never complete, the watermark equals the
    /// lowest offset not done (or one past the last offset when all are done) and never moves backwards.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(42)]
    [InlineData(2024)]
    public void Watermark_RandomCompletionOrders_IsAlwaysTheLowestOffsetNotDone(int seed)
    {
        var random = new Random(seed);
        for (var round = 0; round < 200; round++)
        {
            var capacity = random.Next(1, 64);
            var tracker = new PartitionOffsetTracker(capacity);
            var offset = (long)random.Next(0, 1000);
            var outstanding = new List<(long Sequence, long Offset)>();
            var done = new SortedSet<long>();
            var tracked = new SortedSet<long>();
            long lastReleased = -1;
            long previousWatermark = -1;

            for (var step = 0; step < 500; step++)
            {
                if (random.Next(3) > 0 && tracker.TryAdd(offset, out var sequence))
                {
                    outstanding.Add((sequence, offset));
                    tracked.Add(offset);
                    offset += 1 + (random.Next(10) == 0 ? random.Next(1, 5) : 0); // occasional gaps, as compaction leaves
                }
                else if (outstanding.Count > 0 && random.Next(10) > 0)
                {
                    // Complete a random outstanding record; some (the 10% skipped) stay in flight for a while.
                    var index = random.Next(outstanding.Count);
                    var (s, o) = outstanding[index];
                    outstanding.RemoveAt(index);
                    tracker.MarkDone(s);
                    done.Add(o);
                }

                tracker.Advance();
                while (tracked.Count > 0 && done.Contains(tracked.Min))
                {
                    lastReleased = tracked.Min;
                    done.Remove(tracked.Min);
                    tracked.Remove(tracked.Min);
                }

                var expected = lastReleased < 0 ? -1 : tracked.Count > 0 ? tracked.Min : lastReleased + 1;
                Assert.Equal(expected, tracker.Watermark);
                Assert.True(tracker.Watermark >= previousWatermark, "the watermark moved backwards");
                Assert.Equal(tracked.Count, tracker.Count);
                previousWatermark = tracker.Watermark;
            }
        }
    }

    /// <summary>
    /// Property, with failures: records complete out of order as concurrent dispatch makes them; a failed record stays
    /// undone while it is retried (some for long) and completes later, some completions are reported twice (an
    /// acknowledgement after a completion). The watermark never passes a record that is not done.
    /// </summary>
    [Theory]
    [InlineData(7)]
    [InlineData(99)]
    [InlineData(31337)]
    public void Watermark_OutOfOrderCompletionsWithFailuresAndRetries_NeverPassesAnUndoneRecord(int seed)
    {
        var random = new Random(seed);
        var tracker = new PartitionOffsetTracker(256);
        var inFlight = new List<(long Sequence, long Offset)>();
        var retrying = new List<(long Sequence, long Offset, int Until)>();
        var undone = new SortedSet<long>();
        var completedSequences = new List<long>();
        long nextOffset = 0;
        long previous = -1;
        for (var step = 0; step < 50_000; step++)
        {
            while (inFlight.Count < 100 && tracker.TryAdd(nextOffset, out var sequence))
            {
                inFlight.Add((sequence, nextOffset));
                undone.Add(nextOffset++);
            }

            if (inFlight.Count > 0)
            {
                var index = random.Next(inFlight.Count);
                var (sequence, offset) = inFlight[index];
                inFlight.RemoveAt(index);
                if (random.Next(10) == 0)
                {
                    retrying.Add((sequence, offset, step + random.Next(1, 2_000)));
                }
                else
                {
                    tracker.MarkDone(sequence);
                    undone.Remove(offset);
                    completedSequences.Add(sequence);
                }
            }

            foreach (var retried in retrying.Where(r => r.Until <= step).ToList())
            {
                retrying.Remove(retried);
                tracker.MarkDone(retried.Sequence);
                undone.Remove(retried.Offset);
            }

            tracker.Advance();
            var watermark = tracker.Watermark;
            if (undone.Count > 0 && watermark >= 0)
            {
                Assert.True(watermark <= undone.Min, $"step {step}: the watermark {watermark} passed the undone offset {undone.Min}");
            }

            Assert.True(watermark >= previous, "the watermark moved backwards");
            previous = watermark;
        }

        foreach (var (sequence, offset, _) in retrying)
        {
            tracker.MarkDone(sequence);
            undone.Remove(offset);
        }

        foreach (var (sequence, offset) in inFlight)
        {
            tracker.MarkDone(sequence);
            undone.Remove(offset);
        }

        tracker.Advance();
        Assert.Equal(nextOffset, tracker.Watermark);
    }

    [Fact]
    public void SafeNextOffset_IsTheLowestOffsetNotDone_CountingTheRecordAsDone_WhateverHasBeenReleased()
    {
        var tracker = new PartitionOffsetTracker(8);
        var sequences = new[] { 10L, 11, 13, 14, 20 }.Select(offset =>
        {
            tracker.TryAdd(offset, out var sequence);
            return sequence;
        }).ToArray();

        // Nothing done: the oldest record's next is its own offset + 1; a later one must not pass the oldest.
        Assert.Equal(11, tracker.SafeNextOffset(sequences[0], 10));
        Assert.Equal(10, tracker.SafeNextOffset(sequences[3], 14));

        // 10 and 11 done but not released yet: for 14, the lowest not done is 13.
        tracker.MarkDone(sequences[0]);
        tracker.MarkDone(sequences[1]);
        Assert.Equal(13, tracker.SafeNextOffset(sequences[3], 14));

        // 13 done too (still not released): everything before 14 is done, so 14 + 1.
        tracker.MarkDone(sequences[2]);
        Assert.Equal(15, tracker.SafeNextOffset(sequences[3], 14));

        // Released by the poll thread: the same answers.
        Assert.Equal(3, tracker.Advance());
        Assert.Equal(15, tracker.SafeNextOffset(sequences[3], 14));
        Assert.Equal(14, tracker.SafeNextOffset(sequences[4], 20));
    }

    [Fact]
    public async Task SafeNextOffset_WhileThePollThreadReleasesAndReusesSlots_NeverPassesARecordNotDone()
    {
        // A small ring reused many times over while a reader asks for the safe offset of the record it holds.
        const int Records = 200_000;
        var tracker = new PartitionOffsetTracker(8);
        var held = -1L;
        var violations = 0;
        var reader = Task.Run(() =>
        {
            while (Volatile.Read(ref held) < Records)
            {
                var sequence = Volatile.Read(ref held);
                if (sequence < 0)
                {
                    continue;
                }

                // Offsets are sequence * 2; the held record is not done, so the answer is at most its offset.
                if (tracker.SafeNextOffset(sequence, sequence * 2) > sequence * 2 + 1)
                {
                    Interlocked.Increment(ref violations);
                }
            }
        }, TestContext.Current.CancellationToken);

        long added = 0;
        for (long next = 0; next < Records; next++)
        {
            while (added < Records && tracker.TryAdd(added * 2, out _))
            {
                added++;
            }

            // Hold one record (not done) while the ones after it complete and earlier ones are released.
            Volatile.Write(ref held, next);
            for (var s = next + 1; s < added; s++)
            {
                tracker.MarkDone(s);
            }

            tracker.MarkDone(next);
            tracker.Advance();
        }

        Volatile.Write(ref held, Records);
        await reader;
        Assert.Equal(0, violations);
    }

    [Fact]
    public async Task MarkDone_FromManyThreads_PollThreadSeesEveryCompletion()
    {
        const int Records = 200_000;
        var tracker = new PartitionOffsetTracker(1024);
        long added = 0;
        long released = 0;
        var completions = new System.Collections.Concurrent.BlockingCollection<long>();
        var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            foreach (var sequence in completions.GetConsumingEnumerable())
            {
                tracker.MarkDone(sequence);
            }
        })).ToArray();

        while (released < Records)
        {
            while (added < Records && tracker.TryAdd(added, out var sequence))
            {
                completions.Add(sequence);
                added++;
            }

            released += tracker.Advance();
        }

        completions.CompleteAdding();
        await Task.WhenAll(workers);
        Assert.Equal(Records, tracker.Watermark);
    }
}
