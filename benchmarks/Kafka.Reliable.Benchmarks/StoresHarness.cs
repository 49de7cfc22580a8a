using static Kafka.Reliable.Benchmarks.HarnessReport;
using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using Confluent.Kafka;
using Kafka.Reliable.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Benchmarks;

/// <summary>
/// The durable stores end to end: for each store, its physical limit on this machine (the single-row commit rate, or for
/// Redis the single-command round-trip rate, measured in this process with the client library the store uses, one
/// operation after another) and a Kafka.Reliable consumer with default options plus that store reading small JSON records
/// from the embedded broker. Each round measures the limit and then runs the consumer, store after store; every run uses a
/// fresh store (file, database or key prefix) and a fresh consumer group on the same records.
/// </summary>
internal static class StoresHarness
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(60);

    private static readonly string[] AllStores = ["sqlite-lease", "sqlite-transactional", "postgresql-lease", "postgresql-transactional", "redis"];

    public static async Task<int> RunAsync(string[] args)
    {
        var records = HarnessArguments.Option(args, "--records", 2_000);
        var partitions = HarnessArguments.Option(args, "--partitions", 6);
        var rounds = HarnessArguments.Option(args, "--rounds", 3);
        var limitOperations = HarnessArguments.Option(args, "--limit-ops", 2_000);
        var warmupRecords = HarnessArguments.Option(args, "--warmup-records", 200);
        var stall = TimeSpan.FromSeconds(HarnessArguments.Option(args, "--stall-seconds", 30));
        var postgresFsync = HarnessArguments.Text(args, "--postgres-fsync") ?? "on";
        var names = (HarnessArguments.Text(args, "--stores") ?? string.Join(',', AllStores))
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToList();
        var unknown = names.Where(n => !AllStores.Contains(n)).ToList();
        if (unknown.Count > 0 || names.Count == 0 || records <= 0 || partitions <= 0 || rounds <= 0 || limitOperations <= 0 || warmupRecords < 0
            || postgresFsync is not ("on" or "off"))
        {
            if (unknown.Count > 0)
            {
                Console.Error.WriteLine($"Unknown store(s): {string.Join(", ", unknown)}.");
            }

            Console.Error.WriteLine(
                $"Usage: stores [--stores {string.Join(',', AllStores)}] [--records N (2000)] [--partitions N (6)] [--rounds N (3)] "
                + "[--limit-ops N (2000)] [--warmup-records N (200; 0: none)] [--stall-seconds N (30)] [--postgres-fsync on|off (on)]");
            return 2;
        }

        PrintHeader(args, records, partitions, limitOperations);

        var folder = Path.Combine(Path.GetTempPath(), "kafka-reliable-bench-sqlite-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        using var servers = new ThrowawayServers();
        try
        {
            var benches = await StartStoresAsync(names, folder, servers, postgresFsync == "on");
            if (benches.Count == 0)
            {
                Console.Error.WriteLine("No store could run.");
                return 1;
            }

            Console.WriteLine("  stores:");
            foreach (var bench in benches)
            {
                Console.WriteLine($"    {bench.Name,-26} {bench.Description}");
                Console.WriteLine($"    {string.Empty,-26} per record: {bench.PerRecord}");
                Console.WriteLine($"    {string.Empty,-26} limit: {bench.LimitDescription}");
                Console.WriteLine($"    {string.Empty,-26} server: {await bench.DescribeServerAsync()}");
            }

            Console.WriteLine();

            await using var cluster = EmbeddedKafkaCluster.Start(3);
            const string Topic = "stores";
            await ProduceAsync(cluster, Topic, records, partitions);
            Console.WriteLine($"Produced {records:N0} records (JSON of about {OrderWorkload.Value(records - 1, 0).Length} bytes, ids 0..{records - 1}) to {partitions} partitions.");

            if (warmupRecords > 0)
            {
                const string WarmupTopic = "stores-warmup";
                await ProduceAsync(cluster, WarmupTopic, warmupRecords, partitions);
                Console.WriteLine($"Warm-up (not counted): each store's limit with 100 operations and a consumer on {warmupRecords:N0} records of another topic.");
                foreach (var bench in benches)
                {
                    var limit = await bench.MeasureLimitAsync(0, 100);
                    var warm = await MeasureAsync(bench, cluster.BootstrapServers, WarmupTopic, warmupRecords, stall);
                    Print("warm-up", bench, 100 / limit.TotalSeconds, warm);
                }

                Console.WriteLine();
            }

            var results = new List<(StoreBench Bench, double Limit, RunResult Run)>();
            for (var round = 1; round <= rounds; round++)
            {
                var shift = (round - 1) % benches.Count;
                var order = benches.Skip(shift).Concat(benches.Take(shift)).ToList();
                Console.WriteLine($"Round {round} of {rounds} (load average {LoadAverage()}): {string.Join(", ", order.Select(b => b.Name))}");
                foreach (var bench in order)
                {
                    var limit = limitOperations / (await bench.MeasureLimitAsync(50, limitOperations)).TotalSeconds;
                    var run = await MeasureAsync(bench, cluster.BootstrapServers, Topic, records, stall);
                    Print($"round {round}", bench, limit, run);
                    results.Add((bench, limit, run));
                }

                Console.WriteLine();
            }

            PrintSummary(benches, results, records, partitions);
            return results.All(r => r.Run.Error is null) ? 0 : 1;
        }
        finally
        {
            servers.Dispose();
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (IOException e)
            {
                Console.Error.WriteLine($"Could not delete {folder}: {e.Message}");
            }
        }
    }

    private static async Task<List<StoreBench>> StartStoresAsync(List<string> names, string folder, ThrowawayServers servers, bool postgresFsync)
    {
        var benches = new List<StoreBench>();
        PostgresServer? postgres = null;
        string? postgresSkipped = null;
        if (names.Any(n => n.StartsWith("postgresql", StringComparison.Ordinal)))
        {
            var server = new PostgresServer { Fsync = postgresFsync };
            postgresSkipped = await StartAsync(server, server.InitializeAsync, servers, "PostgreSQL");
            postgres = postgresSkipped is null ? server : null;
        }

        RedisServer? redis = null;
        string? redisSkipped = null;
        if (names.Contains("redis"))
        {
            var server = new RedisServer();
            redisSkipped = await StartAsync(server, server.InitializeAsync, servers, "Redis");
            redis = redisSkipped is null ? server : null;
        }

        foreach (var name in names)
        {
            StoreBench? bench = name switch
            {
                "sqlite-lease" => new SqliteBench(folder, transactional: false),
                "sqlite-transactional" => new SqliteBench(folder, transactional: true),
                "postgresql-lease" => postgres is null ? null : new PostgresBench(postgres, transactional: false),
                "postgresql-transactional" => postgres is null ? null : new PostgresBench(postgres, transactional: true),
                _ => redis is null ? null : new RedisBench(redis.Configuration),
            };
            if (bench is null)
            {
                Console.WriteLine($"  SKIPPED {name}: {(name == "redis" ? redisSkipped : postgresSkipped)}");
            }
            else
            {
                benches.Add(bench);
            }
        }

        return benches;
    }

    /// <summary>
    /// Starts a throwaway server of the idempotency tests' fixtures (listed first, so that an interrupted run stops it too);
    /// returns why it could not start (a missing binary, a failed start), or null.
    /// </summary>
    private static async Task<string?> StartAsync(IAsyncDisposable server, Func<ValueTask> start, ThrowawayServers servers, string name)
    {
        servers.Add(server);

        try
        {
            await start();
            return null;
        }
        catch (Exception e)
        {
            return $"the {name} server did not start: {e.Message}";
        }
    }

    private static async Task ProduceAsync(EmbeddedKafkaCluster cluster, string topic, int records, int partitions)
    {
        cluster.CreateTopic(topic, partitions);
        await cluster.ProduceAllAsync(topic, Enumerable.Range(0, records).Select(i => OrderWorkload.Message(i, 1_000, 0)));
        var total = cluster.GetHighWatermarks(topic).Values.Sum();
        if (total != records)
        {
            throw new InvalidOperationException($"The topic {topic} holds {total:N0} records, not {records:N0}.");
        }
    }

    private static async Task<RunResult> MeasureAsync(StoreBench bench, string bootstrapServers, string topic, int records, TimeSpan stall)
    {
        HarnessReport.CollectGarbage();

        var recorder = new ThroughputRecorder(records);
        await using var store = await bench.PrepareRunAsync();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(recorder);
        var consumer = builder.Services.AddReliableConsumer<Order>("stores", o =>
        {
            o.BootstrapServers = bootstrapServers;
            o.GroupId = $"{bench.Name}-{Guid.NewGuid():N}";
            o.Topics.Add(topic);
        });
        store.Configure(consumer);
        var host = builder.Build();

        var started = Stopwatch.GetTimestamp();
        var start = host.StartAsync();
        var error = await recorder.WaitAsync(start, stall, TimeSpan.FromMilliseconds(250));

        var first = recorder.FirstTimestamp;
        var last = recorder.LastTimestamp;
        try
        {
            using var stopping = new CancellationTokenSource(StopTimeout);
            await host.StopAsync(stopping.Token);
        }
        catch (Exception e)
        {
            error = Join(error, $"stop: {e.GetBaseException().Message}");
        }
        finally
        {
            if (host is IAsyncDisposable disposable)
            {
                await disposable.DisposeAsync();
            }
            else
            {
                host.Dispose();
            }
        }

        // After the stop, every handled record's key (and effect) is committed: the store must hold each record exactly once.
        (long Completed, long? Effects) stored = (-1, null);
        try
        {
            stored = await store.CountAsync();
            if (stored.Completed != records || stored.Effects is { } effects && effects != records)
            {
                error = Join(error, $"the store holds {stored.Completed:N0} completed keys{(stored.Effects is { } e ? $" and {e:N0} effect rows" : string.Empty)}, not {records:N0}");
            }
        }
        catch (Exception e)
        {
            error = Join(error, $"count: {e.GetBaseException().Message}");
        }

        if (recorder.OutOfRange > 0)
        {
            error = Join(error, $"{recorder.OutOfRange:N0} records with an id outside 0..{records - 1}");
        }

        var completed = recorder.Distinct == records && last != 0;
        return new RunResult(
            records,
            recorder.Distinct,
            recorder.Handled,
            stored.Completed,
            stored.Effects,
            completed ? Stopwatch.GetElapsedTime(started, last).TotalSeconds : null,
            completed ? Stopwatch.GetElapsedTime(first, last).TotalSeconds : null,
            error);
    }

    private static void Print(string label, StoreBench bench, double limit, RunResult run)
    {
        var limitText = $"limit {limit,8:N0} op/s ({limit / bench.CommitsPerRecord,7:N0} rec/s at {bench.CommitsPerRecord}/rec)";
        var counts = $"{run.Distinct,6:N0} distinct / {run.Handled,6:N0} handled, store {run.Completed,6:N0} keys{(run.Effects is { } e ? $" {e,6:N0} effects" : string.Empty)}";
        var timing = run.FromStartRate is { } rate
            ? $"from start {run.FromStartSeconds,6:0.000} s = {rate,7:N0} rec/s (x{rate / limit:0.00} of limit, x{rate / (limit / bench.CommitsPerRecord):0.00} per-record limit)   first->last {run.FirstToLastRate,7:N0} rec/s"
            : "did not finish";
        var note = run.Error is null ? string.Empty : $"   [{run.Error}]";
        Console.WriteLine($"  {label,-8} {bench.Name,-25} {limitText}   {counts}   {timing}{note}");
    }

    private static void PrintSummary(List<StoreBench> benches, List<(StoreBench Bench, double Limit, RunResult Run)> results, int records, int partitions)
    {
        Console.WriteLine($"Summary ({records:N0} records over {partitions} partitions; medians over the rounds; rec/s from host start to the last record handled):");
        Console.WriteLine(
            $"  {"store",-25} {"runs",4} {"limit op/s",10} {"op/rec",6} {"rec/s",8} {"min",8} {"max",8} {"x limit",8} {"x per-rec",9} {"first->last",11} {"failed",6}");
        foreach (var bench in benches)
        {
            var mine = results.Where(r => r.Bench == bench).ToList();
            var good = mine.Where(r => r.Run.Error is null && r.Run.FromStartRate is not null).ToList();
            var failed = mine.Count - good.Count;
            var limit = Median(mine.Select(r => r.Limit));
            if (good.Count == 0)
            {
                Console.WriteLine($"  {bench.Name,-25} {0,4} {limit,10:N0} {bench.CommitsPerRecord,6} {"-",8} {"-",8} {"-",8} {"-",8} {"-",9} {"-",11} {failed,6}");
                continue;
            }

            var rates = good.Select(r => r.Run.FromStartRate!.Value).ToList();
            var ratios = good.Select(r => r.Run.FromStartRate!.Value / r.Limit).ToList();
            Console.WriteLine(
                $"  {bench.Name,-25} {good.Count,4} {limit,10:N0} {bench.CommitsPerRecord,6} {Median(rates),8:N0} {rates.Min(),8:N0} {rates.Max(),8:N0} "
                + $"{Median(ratios),8:0.00} {Median(ratios) * bench.CommitsPerRecord,9:0.00} {Median(good.Select(r => r.Run.FirstToLastRate ?? 0)),11:N0} {failed,6}");
        }

        Console.WriteLine(
            "  x limit: the consumer's records/s over the store's single-operation rate measured in the same round; x per-rec: over that rate divided by "
            + "the operations the store spends per record (op/rec).");
        Console.WriteLine(
            $"  Sequential dispatch (the default) runs one record at a time per partition, so up to {partitions} at once here: where the store takes "
            + "concurrent writers (PostgreSQL's group commit, Redis's pipelined multiplexer) the ratios can exceed 1.0 without anything being wrong; "
            + "SQLite takes one writer at a time per file, and its transactional store one transaction at a time, handler included.");
        Console.WriteLine(
            "  The clock stops when the last record's handler returns; its own completion (lease) or commit (transactional) follows and is outside it "
            + "(one operation of the last record, not of the others).");
    }

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "?";
        }
    }

    private static void PrintHeader(string[] args, int records, int partitions, int limitOperations)
    {
        PrintCommand("Kafka.Reliable durable stores harness", "stores", args, $", load average {LoadAverage()} at start");
        Console.WriteLine($"  temp:      {Path.GetTempPath()} on {FileSystemOf(Path.GetTempPath())} (SQLite files and the PostgreSQL data directory live there)");
        Console.WriteLine(
            $"  runtime:   {RuntimeInformation.FrameworkDescription}, Confluent.Kafka {VersionOf(typeof(ConsumerConfig))}, librdkafka {Library.VersionString}, "
            + $"Npgsql {VersionOf(typeof(Npgsql.NpgsqlConnection))}, StackExchange.Redis {VersionOf(typeof(StackExchange.Redis.ConnectionMultiplexer))}, "
            + $"Microsoft.Data.Sqlite {VersionOf(typeof(Microsoft.Data.Sqlite.SqliteConnection))}");
        Console.WriteLine("  broker:    Kafka.Reliable.Testing.EmbeddedKafkaCluster (librdkafka mock cluster), 3 brokers; every run: fresh consumer group, fresh store, host stopped after the run.");
        Console.WriteLine(
            $"  workload:  {records:N0} small JSON records (Order, no padding) over {partitions} partitions; Kafka.Reliable with default options "
            + "(Sequential dispatch, default JSON deserializer, scoped handler) plus the store; idempotency key: the default (topic-partition-offset).");
        Console.WriteLine(
            $"  limit:     per store and per round, {limitOperations:N0} operations one after another in this process with the store's client library "
            + "(after 50 untimed): the rate one partition's Sequential consumer could reach if the store did one such operation per record and nothing else.");
        Console.WriteLine("  clock:     from the moment before the host starts (group join included) to the last record handled; 'first->last' from the first record handled.");
        Console.WriteLine("  check:     every id handled, and after the stop the store holds one completed key (and, transactional, one effect row) per record.");
    }

    private static string FileSystemOf(string path)
    {
        try
        {
            var full = Path.GetFullPath(path);
            var mount = File.ReadAllLines("/proc/mounts").Select(l => l.Split(' ')).Where(f => f.Length > 2 && full.StartsWith(f[1], StringComparison.Ordinal))
                .OrderByDescending(f => f[1].Length).FirstOrDefault();
            return mount is null ? "?" : $"{mount[2]} ({mount[0]} at {mount[1]})";
        }
        catch (IOException)
        {
            return "?";
        }
    }

    private sealed record RunResult(
        int Expected, int Distinct, long Handled, long Completed, long? Effects, double? FromStartSeconds, double? FirstToLastSeconds, string? Error)
    {
        public double? FromStartRate => FromStartSeconds is > 0 ? Expected / FromStartSeconds : null;

        public double? FirstToLastRate => FirstToLastSeconds is > 0 ? Expected / FirstToLastSeconds : null;
    }
}
