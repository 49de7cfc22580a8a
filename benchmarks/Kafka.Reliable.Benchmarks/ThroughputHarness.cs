using static Kafka.Reliable.Benchmarks.HarnessReport;
using System.Diagnostics;
using System.Reflection;
using System.Runtime;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Confluent.Kafka;
using Kafka.Reliable.Testing;

namespace Kafka.Reliable.Benchmarks;

/// <summary>
/// End to end on the embedded broker (librdkafka's mock cluster, 3 brokers), in one process: the same JSON records, decoded
/// into the same <see cref="Order"/>, the same check, read by a hand-written Confluent.Kafka loop (the reference), by
/// Kafka.Reliable in several configurations and by WolverineFx.Kafka. Every run uses a fresh consumer group reading from the
/// earliest offset and stops its clients before the next one starts. Rounds run every selected variant once, the order
/// rotated from round to round. Each run is timed from the moment before the client starts (consumer built and subscribed,
/// or host started) to the last record handled, which is the headline, and from the first record handled to the last.
/// </summary>
internal static class ThroughputHarness
{
    /// <summary>librdkafka's mock broker keeps at most 5 MiB per partition (rdkafka_mock.c, max_size) and deletes older records beyond it.</summary>
    private const double MaxBytesPerPartition = 4.5 * 1024 * 1024;

    private const double BimodalSpread = 1.5;

    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(60);

    private static readonly JsonSerializerOptions JsonOutput = new() { WriteIndented = true, Converters = { new JsonStringEnumConverter() } };

    public static async Task<int> RunAsync(string[] args)
    {
        var runsUntilStall = HarnessArguments.Option(args, "--runs-until-stall", 0);
        var records = HarnessArguments.Option(args, "--records", runsUntilStall > 0 ? 20_000 : 200_000);
        var partitions = HarnessArguments.Option(args, "--partitions", 6);
        var keys = HarnessArguments.Option(args, "--keys", 1_000);
        var valueBytes = HarnessArguments.Option(args, "--value-bytes", 100);
        var rounds = HarnessArguments.Option(args, "--rounds", 5);
        var stall = TimeSpan.FromSeconds(HarnessArguments.Option(args, "--stall-seconds", 30));
        // Enough for the JIT's tiered compilation to finish before round 1 (with 2,000, round 1 burned 2-3x the CPU of the
        // later rounds in every variant), and never more than a round reads (the embedded broker's 5 MiB per partition).
        var warmupRecords = HarnessArguments.Option(args, "--warmup-records", Math.Min(50_000, records));
        var jsonPath = HarnessArguments.Text(args, "--json");
        ThroughputVariants.MaxBufferedBytes = HarnessArguments.Option(args, "--max-buffered-mib", 0) * 1024L * 1024;
        var variantNames = HarnessArguments.Text(args, "--variants");

        var variants = Select(variantNames);
        if (variants is null || records <= 0 || partitions <= 0 || keys <= 0 || rounds <= 0)
        {
            Console.Error.WriteLine(
                $"Usage: throughput [--variants {string.Join(',', ThroughputVariants.All.Select(v => v.Name))}] [--records N] [--partitions N] [--keys N] "
                + "[--value-bytes 100|1000|10000] [--rounds N] [--stall-seconds N] [--warmup-records N (0: none)] [--max-buffered-mib N (Kafka.Reliable's MaxBufferedBytes; default 64)] [--json path] [--runs-until-stall N]");
            return 2;
        }

        PrintHeader(args, variants);
        var sample = OrderWorkload.Value(records - 1, valueBytes).Length;
        var recordBytes = sample + OrderWorkload.Key(keys - 1, keys).Length;
        if (!FitsTheMockBroker(records, recordBytes, partitions))
        {
            return 2;
        }

        await using var cluster = EmbeddedKafkaCluster.Start(3);
        const string Topic = "throughput";
        if (!await ProduceAsync(cluster, Topic, records, partitions, keys, valueBytes, recordBytes))
        {
            return 2;
        }

        Console.WriteLine(
            $"Produced {records:N0} records (JSON values of about {sample:N0} bytes, keys order-0 .. order-{keys - 1}) to {partitions} partitions.");

        if (warmupRecords > 0)
        {
            const string WarmupTopic = "throughput-warmup";
            await ProduceAsync(cluster, WarmupTopic, warmupRecords, partitions, keys, valueBytes, recordBytes);
            Console.WriteLine($"Warm-up (not counted): every variant once on {warmupRecords:N0} records of another topic (JIT, connections, code generation).");
            foreach (var variant in variants)
            {
                var warm = await MeasureAsync(variant, cluster.BootstrapServers, WarmupTopic, warmupRecords, stall, round: 0, position: 0);
                Print(warm);
            }

            Console.WriteLine();
        }

        var results = runsUntilStall > 0
            ? await RunUntilStallAsync(variants, cluster.BootstrapServers, Topic, records, stall, runsUntilStall)
            : await RunRoundsAsync(variants, cluster.BootstrapServers, Topic, records, stall, rounds);

        if (jsonPath is not null)
        {
            await WriteJsonAsync(jsonPath, args, records, partitions, keys, valueBytes, sample, results);
            Console.WriteLine($"Wrote every run to {jsonPath}.");
        }

        return results.All(r => r.Outcome == Outcome.Completed) ? 0 : 1;
    }

    private static async Task<List<RunResult>> RunRoundsAsync(
        List<ThroughputVariant> variants, string bootstrapServers, string topic, int records, TimeSpan stall, int rounds)
    {
        var results = new List<RunResult>();
        for (var round = 1; round <= rounds; round++)
        {
            // Rotate the order so that no variant always runs first (or right after the same neighbour's garbage).
            var shift = (round - 1) % variants.Count;
            var order = variants.Skip(shift).Concat(variants.Take(shift)).ToList();
            Console.WriteLine($"Round {round} of {rounds}: {string.Join(", ", order.Select(v => v.Name))}");
            for (var position = 0; position < order.Count; position++)
            {
                var result = await MeasureAsync(order[position], bootstrapServers, topic, records, stall, round, position + 1);
                Print(result);
                results.Add(result);
            }

            Console.WriteLine();
        }

        PrintSummary(variants, results, records);
        return results;
    }

    private static async Task<List<RunResult>> RunUntilStallAsync(
        List<ThroughputVariant> variants, string bootstrapServers, string topic, int records, TimeSpan stall, int runs)
    {
        Console.WriteLine($"Runs until stall: {runs} consecutive end-to-end runs of {records:N0} records per variant, each with a fresh group.");
        var results = new List<RunResult>();
        for (var run = 1; run <= runs; run++)
        {
            for (var position = 0; position < variants.Count; position++)
            {
                var result = await MeasureAsync(variants[position], bootstrapServers, topic, records, stall, run, position + 1);
                Print(result, "run");
                results.Add(result);
            }
        }

        Console.WriteLine();
        foreach (var variant in variants)
        {
            var mine = results.Where(r => r.Variant == variant.Name).ToList();
            var bad = mine.Where(r => r.Outcome != Outcome.Completed).ToList();
            Console.WriteLine(
                $"{variant.Name,-20} finished {mine.Count - bad.Count} of {mine.Count}, stalled {bad.Count(r => r.Outcome == Outcome.Stalled)}, "
                + $"failed {bad.Count(r => r.Outcome == Outcome.Failed)}"
                + (bad.Count == 0 ? string.Empty : $" (runs {string.Join(", ", bad.Select(r => $"#{r.Round}: {r.Outcome} at {r.Distinct:N0}"))})"));
        }

        return results;
    }

    private static async Task<RunResult> MeasureAsync(
        ThroughputVariant variant, string bootstrapServers, string topic, int records, TimeSpan stall, int round, int position)
    {
        // The variants share this process: collect the previous run's garbage before this one starts, not during it.
        HarnessReport.CollectGarbage();

        var recorder = new ThroughputRecorder(records);
        var setup = new RunSetup(bootstrapServers, topic, $"{variant.Name}-{Guid.NewGuid():N}", recorder);
        IVariantRun run;
        try
        {
            run = variant.Prepare(setup);
        }
        catch (Exception e)
        {
            return new RunResult(round, position, variant.Name, Outcome.Failed, 0, 0, records, null, null, null, $"setup: {e.GetBaseException().Message}", null);
        }

        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var gcBefore = GcCounts.Now();
        var subscribed = Stopwatch.GetTimestamp();
        Task start;
        try
        {
            start = run.StartAsync();
        }
        catch (Exception e)
        {
            start = Task.FromException(e);
        }

        var outcome = Outcome.Completed;
        string? error = null;
        var lastDistinct = 0;
        var lastProgress = Stopwatch.GetTimestamp();
        while (true)
        {
            await Task.WhenAny(recorder.Done, Task.Delay(TimeSpan.FromMilliseconds(250)));
            if (recorder.Done.IsCompleted)
            {
                break;
            }

            var failure = start.IsFaulted ? start.Exception : run.Loop is { IsFaulted: true } loop ? loop.Exception : null;
            if (failure is not null)
            {
                outcome = Outcome.Failed;
                error = failure.GetBaseException().Message;
                break;
            }

            var distinct = recorder.Distinct;
            if (distinct != lastDistinct)
            {
                lastDistinct = distinct;
                lastProgress = Stopwatch.GetTimestamp();
            }
            else if (Stopwatch.GetElapsedTime(lastProgress) > stall)
            {
                outcome = Outcome.Stalled;
                error = $"no new record handled for {stall.TotalSeconds:0} s";
                break;
            }
        }

        // CPU of the whole process while the run consumed (librdkafka's threads included): a run far below the cores' capacity
        // is waiting, not computing.
        var cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalSeconds;
        var gc = GcCounts.Now() - gcBefore;
        double? stopSeconds = null;
        try
        {
            await Task.WhenAny(start, Task.Delay(StopTimeout));
            var (stopped, elapsed) = await ThroughputVariants.StopWithin(run, StopTimeout);
            stopSeconds = elapsed.TotalSeconds;
            if (!stopped)
            {
                error = Join(error, $"stop did not finish within {StopTimeout.TotalSeconds:0} s (left behind)");
            }
        }
        catch (Exception e)
        {
            error = Join(error, $"stop: {e.GetBaseException().Message}");
        }

        var first = recorder.FirstTimestamp;
        var last = recorder.LastTimestamp;
        double? fromSubscribe = outcome == Outcome.Completed ? Stopwatch.GetElapsedTime(subscribed, last).TotalSeconds : null;
        double? firstToLast = outcome == Outcome.Completed ? Stopwatch.GetElapsedTime(first, last).TotalSeconds : null;
        double? toFirst = first != 0 ? Stopwatch.GetElapsedTime(subscribed, first).TotalSeconds : null;
        if (recorder.OutOfRange > 0)
        {
            error = Join(error, $"{recorder.OutOfRange:N0} records with an id outside 0..{records - 1}");
        }

        return new RunResult(round, position, variant.Name, outcome, recorder.Distinct, recorder.Handled, records, fromSubscribe, firstToLast, toFirst, error, stopSeconds)
        {
            CpuSeconds = cpuSeconds,
            Gc = gc,
        };
    }

    private static void Print(RunResult r, string unit = "round")
    {
        var label = r.Round == 0 ? "warm-up" : $"{unit} {r.Round} #{r.Position}";
        var counts = $"{r.Distinct,9:N0} distinct / {r.Handled,9:N0} handled";
        var timing = r.Outcome == Outcome.Completed
            ? $"from subscribe {r.FromSubscribeSeconds,7:0.000} s = {r.FromSubscribeRate,9:N0} rec/s   first->last {r.FirstToLastSeconds,7:0.000} s = {r.FirstToLastRate,9:N0} rec/s   first record after {r.ToFirstSeconds:0.000} s"
            : $"{r.Outcome.ToString().ToUpperInvariant()} after {r.Distinct:N0} of {r.Expected:N0} records";
        var stop = r.StopSeconds is { } s ? $"   stop {s:0.00} s" : string.Empty;
        var cpu = r.CpuSeconds is { } c && r.FromSubscribeSeconds is > 0 ? $"   cpu {c:0.00} s ({c / r.FromSubscribeSeconds.Value / Environment.ProcessorCount:P0} of {Environment.ProcessorCount} cores)" : string.Empty;
        var note = r.Error is null ? string.Empty : $"   [{r.Error}]";
        var gc = r.Gc is { } g ? $"   gc {g}" : string.Empty;
        Console.WriteLine($"  {label,-12} {r.Variant,-20} {counts}   {timing}{cpu}{gc}{stop}{note}");
    }

    private static void PrintSummary(List<ThroughputVariant> variants, List<RunResult> results, int records)
    {
        Console.WriteLine($"Summary ({records:N0} records; throughput = records / seconds; headline: from subscribe; medians over completed rounds):");
        Console.WriteLine(
            $"  {"variant",-20} {"runs",4} {"median",10} {"min",10} {"max",10} {"spread",7} {"vs raw",7} {"vs tuned",8} {"stalls",6} {"failed",6}   {"first->last median",18}");
        var rawMedian = Median(RatesOf(results, "raw", r => r.FromSubscribeRate));
        var tunedMedian = Median(RatesOf(results, "raw-tuned", r => r.FromSubscribeRate));
        foreach (var variant in variants)
        {
            var rates = RatesOf(results, variant.Name, r => r.FromSubscribeRate);
            var firstToLast = RatesOf(results, variant.Name, r => r.FirstToLastRate);
            var mine = results.Where(r => r.Variant == variant.Name).ToList();
            var stalls = mine.Count(r => r.Outcome == Outcome.Stalled);
            var failed = mine.Count(r => r.Outcome == Outcome.Failed);
            if (rates.Count == 0)
            {
                Console.WriteLine($"  {variant.Name,-20} {0,4} {"-",10} {"-",10} {"-",10} {"-",7} {"-",7} {"-",8} {stalls,6} {failed,6}");
                continue;
            }

            var median = Median(rates)!.Value;
            var spread = rates.Max() / rates.Min();
            var ratio = rawMedian is { } raw ? (median / raw).ToString("0.00") : "-";
            var tunedRatio = tunedMedian is { } tuned ? (median / tuned).ToString("0.00") : "-";
            var flag = spread > BimodalSpread ? $"   BIMODAL (max/min {spread:0.00} > {BimodalSpread}: a finding to explain, not a result)" : string.Empty;
            Console.WriteLine(
                $"  {variant.Name,-20} {rates.Count,4} {median,10:N0} {rates.Min(),10:N0} {rates.Max(),10:N0} {spread,7:0.00} {ratio,7} {tunedRatio,8} {stalls,6} {failed,6}   {Median(firstToLast),18:N0}{flag}");
        }

        Console.WriteLine(
            "  (first->last leaves out group join and librdkafka's prefetch before the first handler call, so it overstates; "
            + "Wolverine compiles its handler with Roslyn when its first message arrives in every new host, which is in from-subscribe only.)");
    }

    private static List<double> RatesOf(List<RunResult> results, string variant, Func<RunResult, double?> rate) =>
        results.Where(r => r.Variant == variant && r.Outcome == Outcome.Completed).Select(rate).OfType<double>().ToList();

    private static List<ThroughputVariant>? Select(string? names)
    {
        if (string.IsNullOrWhiteSpace(names))
        {
            return [.. ThroughputVariants.All];
        }

        var selected = new List<ThroughputVariant>();
        foreach (var name in names.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var variant = ThroughputVariants.All.FirstOrDefault(v => v.Name == name);
            if (variant is null)
            {
                Console.Error.WriteLine($"Unknown variant '{name}'.");
                return null;
            }

            if (!selected.Contains(variant))
            {
                selected.Add(variant);
            }
        }

        return selected;
    }

    private static bool FitsTheMockBroker(long records, int recordBytes, int partitions)
    {
        var perPartition = records * (double)recordBytes / partitions;
        if (perPartition <= MaxBytesPerPartition)
        {
            return true;
        }

        Console.Error.WriteLine(
            $"Refused: {records:N0} records of about {recordBytes:N0} bytes (value and key) over {partitions} partitions is about {perPartition / 1024 / 1024:0.0} MiB per partition. "
            + "The embedded (mock) broker keeps at most 5 MiB per partition and deletes older records beyond it, so some records would never be read. "
            + $"Lower --records or raise --partitions (at most {MaxBytesPerPartition / 1024 / 1024:0.0} MiB per partition).");
        return false;
    }

    private static async Task<bool> ProduceAsync(EmbeddedKafkaCluster cluster, string topic, int records, int partitions, int keys, int valueBytes, int recordBytes)
    {
        cluster.CreateTopic(topic, partitions);
        await cluster.ProduceAllAsync(topic, Enumerable.Range(0, records).Select(i => OrderWorkload.Message(i, keys, valueBytes)));
        var highWatermarks = cluster.GetHighWatermarks(topic);
        var total = highWatermarks.Values.Sum();
        var busiest = highWatermarks.Values.Max();
        if (total != records)
        {
            Console.Error.WriteLine($"Refused: the topic {topic} holds {total:N0} records, not {records:N0}.");
            return false;
        }

        // The keys decide the partitions, so one partition can hold more than the average: check the fullest one too.
        return FitsTheMockBroker(busiest * (long)partitions, recordBytes, partitions);
    }

    private static void PrintHeader(string[] args, List<ThroughputVariant> variants)
    {
        PrintCommand("Kafka.Reliable throughput harness", "throughput", args);
        Console.WriteLine($"  runtime:   {RuntimeInformation.FrameworkDescription}, Confluent.Kafka {VersionOf(typeof(ConsumerConfig))}, librdkafka {Library.VersionString}, WolverineFx.Kafka as pinned in Directory.Packages.props (its assembly says {VersionOf(typeof(Wolverine.Kafka.CommitMode))})");
        Console.WriteLine(
            $"  GC:        {(GCSettings.IsServerGC ? "server" : "workstation")}, latency mode {GCSettings.LatencyMode} - the runtime's default, not changed here; "
            + "all variants share this process and so these settings; a full collection runs before every run.");
        Console.WriteLine("  broker:    Kafka.Reliable.Testing.EmbeddedKafkaCluster (librdkafka mock cluster), 3 brokers; every run: fresh consumer group, auto.offset.reset=earliest, clients stopped after the run.");
        Console.WriteLine("  clock:     from the moment before the consumer is built and subscribed (raw) or the host is started, and from the first record handled, to the last record handled.");
        Console.WriteLine(
            "  note:      Wolverine also starts a Kafka producer for each topic it listens to (its sending agent); some outlive their host, "
            + "and librdkafka logs their disconnection on stderr when the embedded cluster stops at the end.");
        if (ThroughputVariants.MaxBufferedBytes > 0)
        {
            Console.WriteLine($"  NOT DEFAULT: Kafka.Reliable variants run with MaxBufferedBytes = {ThroughputVariants.MaxBufferedBytes / (1024 * 1024)} MiB.");
        }

        Console.WriteLine("  variants:");
        foreach (var variant in variants)
        {
            Console.WriteLine($"    {variant.Name,-20} {variant.Description}");
        }

        Console.WriteLine();
    }

    private static async Task WriteJsonAsync(
        string path, string[] args, int records, int partitions, int keys, int valueBytes, int sampleBytes, List<RunResult> results)
    {
        var document = new
        {
            Arguments = args,
            Environment.ProcessorCount,
            Os = RuntimeInformation.OSDescription,
            Runtime = RuntimeInformation.FrameworkDescription,
            ServerGc = GCSettings.IsServerGC,
            Records = records,
            Partitions = partitions,
            Keys = keys,
            ValueBytes = valueBytes,
            SampleValueBytes = sampleBytes,
            Runs = results,
        };
        await using var file = File.Create(path);
        await JsonSerializer.SerializeAsync(file, document, JsonOutput);
    }

    internal enum Outcome
    {
        Completed,
        Stalled,
        Failed,
    }

    internal sealed record RunResult(
        int Round,
        int Position,
        string Variant,
        Outcome Outcome,
        int Distinct,
        long Handled,
        int Expected,
        double? FromSubscribeSeconds,
        double? FirstToLastSeconds,
        double? ToFirstSeconds,
        string? Error,
        double? StopSeconds)
    {
        /// <summary>Gets the CPU time of the whole process from subscribe until the last record was handled (or the run ended).</summary>
        public double? CpuSeconds { get; init; }

        /// <summary>Gets the collections of each generation and the bytes allocated by the whole process over the same span.</summary>
        public GcCounts? Gc { get; init; }

        public double? FromSubscribeRate => Expected / FromSubscribeSeconds;

        public double? FirstToLastRate => FirstToLastSeconds is > 0 ? Expected / FirstToLastSeconds : null;
    }
}

/// <summary>Garbage collections per generation and bytes allocated: retained records promoted out of gen0 cost copies.</summary>
internal readonly record struct GcCounts(int Gen0, int Gen1, int Gen2, long AllocatedBytes)
{
    public static GcCounts Now() => new(GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalAllocatedBytes());

    public static GcCounts operator -(GcCounts a, GcCounts b) => new(a.Gen0 - b.Gen0, a.Gen1 - b.Gen1, a.Gen2 - b.Gen2, a.AllocatedBytes - b.AllocatedBytes);

    public override string ToString() => FormattableString.Invariant($"{Gen0}/{Gen1}/{Gen2} ({AllocatedBytes / (1024.0 * 1024):0} MiB)");
}
