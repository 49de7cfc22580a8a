using BenchmarkDotNet.Attributes;
using Kafka.Reliable.Offsets;
using Microsoft.Extensions.Time.Testing;

namespace Kafka.Reliable.Benchmarks;

/// <summary>The offset tracker's cost per record, in order and out of order.</summary>
[MemoryDiagnoser]
public class OffsetTrackerBenchmarks
{
    private const int Records = 4096;
    private const int Batch = 64;
    private PartitionOffsetTracker _tracker = null!;
    private long _offset;

    [GlobalSetup]
    public void Setup() => _tracker = new PartitionOffsetTracker(1024);

    [Benchmark(Baseline = true, OperationsPerInvoke = Records, Description = "add + done + advance, in order")]
    public long InOrder()
    {
        for (var i = 0; i < Records; i++)
        {
            _tracker.TryAdd(_offset++, out var sequence);
            _tracker.MarkDone(sequence);
            _tracker.Advance();
        }

        return _tracker.Watermark;
    }

    [Benchmark(OperationsPerInvoke = Records, Description = "batches of 64 completed in reverse")]
    public long OutOfOrder()
    {
        Span<long> sequences = stackalloc long[Batch];
        for (var i = 0; i < Records; i += Batch)
        {
            for (var j = 0; j < Batch; j++)
            {
                _tracker.TryAdd(_offset++, out sequences[j]);
            }

            for (var j = Batch - 1; j >= 0; j--)
            {
                _tracker.MarkDone(sequences[j]);
                _tracker.Advance();
            }
        }

        return _tracker.Watermark;
    }
}

/// <summary>The commit decision the poll thread makes after each completion.</summary>
[MemoryDiagnoser]
public class CommitDecisionBenchmarks
{
    private const int Records = 4096;
    private CommitScheduler _periodic = null!;
    private CommitScheduler _perMessage = null!;
    private FakeTimeProvider _time = null!;

    [GlobalSetup]
    public void Setup()
    {
        _time = new FakeTimeProvider();
        _periodic = new CommitScheduler(new CommitOptions { Strategy = CommitStrategy.Periodic, Count = 1000 }, _time);
        _perMessage = new CommitScheduler(new CommitOptions { Strategy = CommitStrategy.PerMessage }, _time);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Records, Description = "Periodic (5 s or 1000 records)")]
    public int Periodic() => Decide(_periodic);

    [Benchmark(OperationsPerInvoke = Records, Description = "PerMessage")]
    public int PerMessage() => Decide(_perMessage);

    private static int Decide(CommitScheduler scheduler)
    {
        var commits = 0;
        for (var i = 0; i < Records; i++)
        {
            scheduler.OnReleased(1);
            var now = scheduler.Now();
            if (scheduler.IsDue(now))
            {
                scheduler.OnCommitted(now);
                commits++;
            }
        }

        return commits;
    }
}
