using static Kafka.Reliable.Benchmarks.HarnessReport;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Confluent.Kafka;
using Kafka.Reliable.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace Kafka.Reliable.Benchmarks;

/// <summary>
/// The data-storage workload: orders from the embedded broker into PostgreSQL, one row per order, with the transactional
/// PostgreSQL idempotency store, per record against in batches, and both against the database's own bulk-insert limit.
/// Every round runs three variants on the same records, in rotating order, each into a fresh database with a fresh orders table:
/// <list type="bullet">
/// <item><c>per-record</c>: a message handler inserting one row per message through the store's transaction (one transaction per record);</item>
/// <item><c>batch</c>: a batch handler writing each batch with one binary COPY through the store's transaction (one transaction per batch);</item>
/// <item><c>copy-limit</c>: the same rows written with the same COPY code in chunks of the batch size, one transaction per chunk, one
/// connection, no Kafka and no idempotency records: what the database takes on this machine, on the same server (same fsync and
/// synchronous_commit).</item>
/// </list>
/// </summary>
internal static class BatchDatabaseHarness
{
    private const string PerRecord = "per-record";
    private const string Batch = "batch";
    private const string CopyLimit = "copy-limit";
    private static readonly string[] AllVariants = [PerRecord, Batch, CopyLimit];
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan CommitWait = TimeSpan.FromSeconds(30);

    public static async Task<int> RunAsync(string[] args)
    {
        var records = HarnessArguments.Option(args, "--records", 20_000);
        var partitions = HarnessArguments.Option(args, "--partitions", 6);
        var rounds = HarnessArguments.Option(args, "--rounds", 3);
        var batchSize = HarnessArguments.Option(args, "--batch-size", ReliableConsumerConstants.DefaultBatchMaxSize);
        var warmupRecords = HarnessArguments.Option(args, "--warmup-records", 2_000);
        var stall = TimeSpan.FromSeconds(HarnessArguments.Option(args, "--stall-seconds", 30));
        var postgresFsync = HarnessArguments.Text(args, "--postgres-fsync") ?? "on";
        if (records <= 0 || partitions <= 0 || rounds <= 0 || batchSize is <= 0 or > 100_000 || warmupRecords < 0 || postgresFsync is not ("on" or "off"))
        {
            Console.Error.WriteLine(
                "Usage: batch-db [--records N (20000)] [--partitions N (6)] [--rounds N (3)] [--batch-size N (500: Batch:MaxSize and the COPY chunk)] "
                + "[--warmup-records N (2000; 0: none)] [--stall-seconds N (30)] [--postgres-fsync on|off (on)]");
            return 2;
        }

        PrintCommand("Kafka.Reliable batch handlers: orders into PostgreSQL, per record vs in batches vs COPY", "batch-db", args, $", load average {LoadAverage()} at start");
        Console.WriteLine(
            $"  runtime:   {RuntimeInformation.FrameworkDescription}, Confluent.Kafka {VersionOf(typeof(ConsumerConfig))}, librdkafka {Library.VersionString}, "
            + $"Npgsql {VersionOf(typeof(NpgsqlConnection))}");
        Console.WriteLine("  broker:    Kafka.Reliable.Testing.EmbeddedKafkaCluster (librdkafka mock cluster), 3 brokers; every consumer run: fresh consumer group, host stopped after the run.");
        Console.WriteLine(
            $"  workload:  {records:N0} small JSON orders (the stores harness' records) over {partitions} partitions; every run writes them into a fresh database's "
            + "table orders (id bigint PRIMARY KEY, customer text, amount numeric(12,2), currency text, sku text).");
        Console.WriteLine(
            $"  {PerRecord}: WithHandler, UsePostgreSqlIdempotency(cs, o => o.Transactional = true); per record one transaction: BEGIN, key INSERT, "
            + "row INSERT through GetNpgsqlTransaction(), offset upsert, COMMIT.");
        Console.WriteLine(
            $"  {Batch}:      WithBatchHandler, the same store, Batch:MaxSize {batchSize:N0}, Linger 0; per batch one transaction: BEGIN, one INSERT of every key, "
            + "one binary COPY of the batch's rows through batch[0].Context.GetNpgsqlTransaction(), offset upsert, COMMIT.");
        Console.WriteLine(
            $"  {CopyLimit}: the same rows, the same COPY code, chunks of {batchSize:N0}, each chunk BEGIN, COPY, COMMIT, one after another on one open connection; "
            + "no Kafka, no idempotency keys, no offsets: the database's bulk-insert rate on this machine.");
        Console.WriteLine(
            "  clock:     consumers from the moment before the host starts (group join included) until every row is committed (the orders table counted "
            + "every 2 ms once the handlers have seen every id); 'first->last' from the moment the first handler call started. copy-limit from the first BEGIN to the last COMMIT.");
        Console.WriteLine("  each run:  a fresh database (CREATE DATABASE), its orders table, a CHECKPOINT, then the clock; dropped after the run.");
        Console.WriteLine("  check:     after each run the table holds every id once, and the store one completed key per record.");

        using var servers = new ThrowawayServers();
        try
        {
            var postgres = servers.Add(new PostgresServer { Fsync = postgresFsync == "on" });

            try
            {
                await postgres.InitializeAsync();
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"The PostgreSQL server did not start: {e.Message}");
                return 1;
            }

            Console.WriteLine($"  server:    {await DescribeServerAsync(postgres.ConnectionString)}");
            Console.WriteLine($"  temp:      {Path.GetTempPath()} (the PostgreSQL data directory lives there)");
            Console.WriteLine();

            await using var cluster = EmbeddedKafkaCluster.Start(3);
            const string Topic = "batch-db";
            var orders = await ProduceAsync(cluster, Topic, records, partitions);
            Console.WriteLine($"Produced {records:N0} records (JSON of about {OrderWorkload.Value(records - 1, 0).Length} bytes, ids 0..{records - 1}) to {partitions} partitions.");

            if (warmupRecords > 0)
            {
                const string WarmupTopic = "batch-db-warmup";
                var warmupOrders = await ProduceAsync(cluster, WarmupTopic, warmupRecords, partitions);
                Console.WriteLine($"Warm-up (not counted): each consumer once on {warmupRecords:N0} records of another topic, {CopyLimit} once on the {records:N0} rows.");
                foreach (var variant in AllVariants)
                {
                    // The limit needs no broker: it warms up on the full rows, so that its COPY loop is compiled as it runs in the rounds.
                    Print("warm-up", await MeasureAsync(variant, postgres, cluster.BootstrapServers, WarmupTopic, variant == CopyLimit ? orders : warmupOrders, batchSize, stall));
                }

                Console.WriteLine();
            }

            var results = new List<(int Round, RunResult Run)>();
            for (var round = 1; round <= rounds; round++)
            {
                var shift = (round - 1) % AllVariants.Length;
                var order = AllVariants.Skip(shift).Concat(AllVariants.Take(shift)).ToList();
                Console.WriteLine($"Round {round} of {rounds} (load average {LoadAverage()}): {string.Join(", ", order)}");
                foreach (var variant in order)
                {
                    var run = await MeasureAsync(variant, postgres, cluster.BootstrapServers, Topic, orders, batchSize, stall);
                    Print($"round {round}", run);
                    results.Add((round, run));
                }

                Console.WriteLine();
            }

            PrintSummary(results, rounds, records, partitions, batchSize);
            return results.All(r => r.Run.Error is null) ? 0 : 1;
        }
        finally
        {
            servers.Dispose();
        }
    }

    /// <summary>Produces the records and returns the orders they hold, decoded as the consumer decodes them (the limit writes these).</summary>
    private static async Task<Order[]> ProduceAsync(EmbeddedKafkaCluster cluster, string topic, int records, int partitions)
    {
        cluster.CreateTopic(topic, partitions);
        var messages = Enumerable.Range(0, records).Select(i => OrderWorkload.Message(i, 1_000, 0)).ToList();
        await cluster.ProduceAllAsync(topic, messages);
        var total = cluster.GetHighWatermarks(topic).Values.Sum();
        if (total != records)
        {
            throw new InvalidOperationException($"The topic {topic} holds {total:N0} records, not {records:N0}.");
        }

        return [.. messages.Select(m => JsonSerializer.Deserialize<Order>(m.Value)!)];
    }

    private static Task<RunResult> MeasureAsync(string variant, PostgresServer server, string bootstrapServers, string topic, Order[] orders, int batchSize, TimeSpan stall) =>
        variant == CopyLimit
            ? MeasureLimitAsync(server, orders, batchSize)
            : MeasureConsumerAsync(variant, server, bootstrapServers, topic, orders.Length, batchSize, stall);

    private static async Task<RunResult> MeasureConsumerAsync(string variant, PostgresServer server, string bootstrapServers, string topic, int records, int batchSize, TimeSpan stall)
    {
        CollectGarbage();
        var database = await server.CreateDatabaseAsync();
        try
        {
            await OrderRows.CreateTableAsync(database);
            var recorder = new ThroughputRecorder(records);
            var calls = new HandlerCalls();
            var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
            builder.Logging.ClearProviders();
            builder.Services.AddSingleton(recorder);
            builder.Services.AddSingleton(calls);
            var consumer = builder.Services.AddReliableConsumer<Order>("batch-db", o =>
                {
                    o.BootstrapServers = bootstrapServers;
                    o.GroupId = $"{variant}-{Guid.NewGuid():N}";
                    o.Topics.Add(topic);
                    o.Batch.MaxSize = batchSize;
                })
                .UsePostgreSqlIdempotency(database, o => o.Transactional = true);
            if (variant == PerRecord)
            {
                consumer.WithHandler<PerRecordRowHandler>();
            }
            else
            {
                consumer.WithBatchHandler<BatchCopyHandler>();
            }

            var host = builder.Build();
            await using var counter = new NpgsqlConnection(database);
            await counter.OpenAsync();

            var started = Stopwatch.GetTimestamp();
            var start = host.StartAsync();
            var error = await recorder.WaitAsync(start, stall, TimeSpan.FromMilliseconds(100));

            // The handlers have seen every id: the clock stops when the last transaction has committed every row.
            long committed = 0;
            if (error is null)
            {
                var waiting = Stopwatch.GetTimestamp();
                while ((committed = await OrderRows.CountAsync(counter)) < records && Stopwatch.GetElapsedTime(waiting) < CommitWait)
                {
                    await Task.Delay(2);
                }

                if (committed < records)
                {
                    error = $"only {committed:N0} rows committed {CommitWait.TotalSeconds:0} s after the last id was handled";
                }
            }

            var end = Stopwatch.GetTimestamp();
            var first = calls.FirstTimestamp;
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

            if (await CheckAsync(counter, records, keys: true) is { } wrong)
            {
                error = Join(error, wrong);
            }

            var done = committed == records && first != 0;
            return new RunResult(
                variant,
                records,
                recorder.Distinct,
                recorder.Handled,
                done ? Stopwatch.GetElapsedTime(started, end).TotalSeconds : null,
                done ? Stopwatch.GetElapsedTime(first, end).TotalSeconds : null,
                calls.Calls,
                error);
        }
        finally
        {
            await DropDatabaseAsync(server, database);
        }
    }

    private static async Task<RunResult> MeasureLimitAsync(PostgresServer server, Order[] orders, int batchSize)
    {
        CollectGarbage();
        var database = await server.CreateDatabaseAsync();
        try
        {
            await OrderRows.CreateTableAsync(database);
            await using var connection = new NpgsqlConnection(database);
            await connection.OpenAsync();
            var chunks = 0;
            var started = Stopwatch.GetTimestamp();
            for (var offset = 0; offset < orders.Length; offset += batchSize)
            {
                var count = Math.Min(batchSize, orders.Length - offset);
                await using var transaction = await connection.BeginTransactionAsync();
                await OrderRows.CopyAsync(connection, new ArraySegment<Order>(orders, offset, count), CancellationToken.None);
                await transaction.CommitAsync();
                chunks++;
            }

            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var error = await CheckAsync(connection, orders.Length, keys: false);
            return new RunResult(CopyLimit, orders.Length, orders.Length, orders.Length, seconds, seconds, chunks, error);
        }
        finally
        {
            await DropDatabaseAsync(server, database);
        }
    }

    /// <summary>Checks that the orders table holds every id once (and, for a consumer, that the store holds one completed key per record); null when it does.</summary>
    private static async Task<string?> CheckAsync(NpgsqlConnection connection, int records, bool keys)
    {
        try
        {
            await using var count = new NpgsqlCommand("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM orders", connection);
            await using (var reader = await count.ExecuteReaderAsync())
            {
                await reader.ReadAsync();
                var (rows, distinct) = (reader.GetInt64(0), reader.GetInt64(1));
                var (min, max) = rows == 0 ? (-1L, -1L) : (reader.GetInt64(2), reader.GetInt64(3));
                if (rows != records || distinct != records || min != 0 || max != records - 1)
                {
                    return $"the table holds {rows:N0} rows, {distinct:N0} distinct ids in {min}..{max}, not {records:N0} ids 0..{records - 1}";
                }
            }

            if (keys)
            {
                await using var completed = new NpgsqlCommand("SELECT count(*) FROM public.kafka_reliable_idempotency WHERE status = 1", connection);
                var completedKeys = (long)(await completed.ExecuteScalarAsync())!;
                if (completedKeys != records)
                {
                    return $"the store holds {completedKeys:N0} completed keys, not {records:N0}";
                }
            }

            return null;
        }
        catch (Exception e)
        {
            return $"check: {e.GetBaseException().Message}";
        }
    }

    private static async Task DropDatabaseAsync(PostgresServer server, string database)
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {new NpgsqlConnectionStringBuilder(database).Database} WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
    }

    private static async Task<string> DescribeServerAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var settings = new List<string>();
        foreach (var setting in new[] { "server_version", "fsync", "synchronous_commit", "wal_sync_method", "full_page_writes", "shared_buffers" })
        {
            await using var show = new NpgsqlCommand($"SHOW {setting}", connection);
            settings.Add($"{setting} = {await show.ExecuteScalarAsync()}");
        }

        return $"PostgreSQL, throwaway server on 127.0.0.1 (tests' PostgresServer), shared by all three variants: {string.Join(", ", settings)}";
    }

    private static void Print(string label, RunResult run)
    {
        var unit = run.Variant switch { PerRecord => "handler calls", Batch => "batches", _ => "COPY chunks" };
        var size = run.Calls > 0 ? $"{run.Calls,6:N0} {unit} ({(double)run.Records / run.Calls,5:N1} rec each)" : $"{0,6} {unit}";
        var timing = run.FromStartRate is { } rate
            ? run.Variant == CopyLimit
                ? $"{run.FromStartSeconds,7:0.000} s = {rate,8:N0} rec/s"
                : $"{run.FromStartSeconds,7:0.000} s = {rate,8:N0} rec/s from start   first->last {run.FirstToLastSeconds,7:0.000} s = {run.FirstToLastRate,8:N0} rec/s"
            : "did not finish";
        var note = run.Error is null ? "   check ok" : $"   [{run.Error}]";
        Console.WriteLine($"  {label,-8} {run.Variant,-10} {run.Distinct,6:N0} ids   {size}   {timing}{note}");
    }

    private static void PrintSummary(List<(int Round, RunResult Run)> results, int rounds, int records, int partitions, int batchSize)
    {
        Console.WriteLine($"Summary ({records:N0} records over {partitions} partitions, batches and COPY chunks of up to {batchSize:N0}; records/s, every round, then the median):");
        foreach (var variant in AllVariants)
        {
            var mine = results.Where(r => r.Run.Variant == variant).OrderBy(r => r.Round).ToList();
            string Rates(Func<RunResult, double?> rate) =>
                string.Join(", ", mine.Select(r => rate(r.Run) is { } v ? v.ToString("N0") : "-"));
            var fromStart = mine.Select(r => r.Run.FromStartRate).OfType<double>().ToList();
            var firstToLast = mine.Select(r => r.Run.FirstToLastRate).OfType<double>().ToList();
            Console.WriteLine(variant == CopyLimit
                ? $"  {variant,-10} {Rates(r => r.FromStartRate)}   median {Median(fromStart),8:N0}"
                : $"  {variant,-10} from start {Rates(r => r.FromStartRate)}   median {Median(fromStart),8:N0};   first->last {Rates(r => r.FirstToLastRate)}   median {Median(firstToLast),8:N0}");
        }

        Console.WriteLine("Ratios, within each round (every round, then the median):");
        string Ratios(string numerator, string denominator, Func<RunResult, double?> top, Func<RunResult, double?> bottom)
        {
            var ratios = new List<double?>();
            for (var round = 1; round <= rounds; round++)
            {
                var a = results.FirstOrDefault(r => r.Round == round && r.Run.Variant == numerator).Run;
                var b = results.FirstOrDefault(r => r.Round == round && r.Run.Variant == denominator).Run;
                ratios.Add(a is not null && b is not null && top(a) is { } x && bottom(b) is { } y && y > 0 ? x / y : null);
            }

            var values = ratios.OfType<double>().ToList();
            return $"{string.Join(", ", ratios.Select(r => r is { } v ? v.ToString("0.00") : "-"))}   median {(Median(values) is { } m ? m.ToString("0.00") : "-")}";
        }

        Console.WriteLine($"  batch / per-record, from start:        {Ratios(Batch, PerRecord, r => r.FromStartRate, r => r.FromStartRate)}");
        Console.WriteLine($"  batch / per-record, first->last:       {Ratios(Batch, PerRecord, r => r.FirstToLastRate, r => r.FirstToLastRate)}");
        Console.WriteLine($"  batch / copy-limit, from start:        {Ratios(Batch, CopyLimit, r => r.FromStartRate, r => r.FromStartRate)}");
        Console.WriteLine($"  batch / copy-limit, first->last:       {Ratios(Batch, CopyLimit, r => r.FirstToLastRate, r => r.FromStartRate)}");
        Console.WriteLine($"  per-record / copy-limit, from start:   {Ratios(PerRecord, CopyLimit, r => r.FromStartRate, r => r.FromStartRate)}");
        Console.WriteLine(
            "  The consumers run the partitions' transactions concurrently (up to one per partition) while copy-limit commits one chunk after another "
            + "on one connection, and the consumers also write an idempotency key per record and an offset per transaction; 'from start' includes the "
            + "consumer group's join.");
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

    private sealed record RunResult(string Variant, int Records, int Distinct, long Handled, double? FromStartSeconds, double? FirstToLastSeconds, long Calls, string? Error)
    {
        public double? FromStartRate => FromStartSeconds is > 0 ? Records / FromStartSeconds : null;

        public double? FirstToLastRate => FirstToLastSeconds is > 0 ? Records / FirstToLastSeconds : null;
    }
}

/// <summary>The orders table of the batch-db harness and the one COPY code that every bulk write of it uses.</summary>
internal static class OrderRows
{
    public const string Insert = "INSERT INTO orders (id, customer, amount, currency, sku) VALUES (@id, @customer, @amount, @currency, @sku)";

    private const string Copy = "COPY orders (id, customer, amount, currency, sku) FROM STDIN (FORMAT BINARY)";

    /// <summary>
    /// Creates the orders table, then runs a CHECKPOINT: every run starts with the previous runs' pages (and the fresh database's
    /// own) flushed, so that none pays for another's writes.
    /// </summary>
    public static async Task CreateTableAsync(string database)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var create = new NpgsqlCommand(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12, 2) NOT NULL, currency text NOT NULL, sku text NOT NULL)", connection);
        await create.ExecuteNonQueryAsync();
        await using var checkpoint = new NpgsqlCommand("CHECKPOINT", connection);
        await checkpoint.ExecuteNonQueryAsync();
    }

    /// <summary>Writes the rows with one binary COPY, in whatever transaction is open on the connection.</summary>
    public static async Task CopyAsync<TRows>(NpgsqlConnection connection, TRows orders, CancellationToken cancellationToken)
        where TRows : IReadOnlyList<Order>
    {
        await using var copy = await connection.BeginBinaryImportAsync(Copy, cancellationToken);
        for (var i = 0; i < orders.Count; i++)
        {
            var order = orders[i];
            await copy.StartRowAsync(cancellationToken);
            await copy.WriteAsync(order.Id, NpgsqlDbType.Bigint, cancellationToken);
            await copy.WriteAsync(order.Customer, NpgsqlDbType.Text, cancellationToken);
            await copy.WriteAsync(order.Amount, NpgsqlDbType.Numeric, cancellationToken);
            await copy.WriteAsync(order.Currency, NpgsqlDbType.Text, cancellationToken);
            await copy.WriteAsync(order.Sku, NpgsqlDbType.Text, cancellationToken);
        }

        await copy.CompleteAsync(cancellationToken);
    }

    public static async Task<long> CountAsync(NpgsqlConnection connection)
    {
        await using var count = new NpgsqlCommand("SELECT count(*) FROM orders", connection);
        return (long)(await count.ExecuteScalarAsync())!;
    }
}

/// <summary>
/// Counts the handler's calls (records for a message handler, batches for a batch handler) and notes when the first one
/// started, before its write (the recorder notes records after their write, which would leave a batch's write out). One per run.
/// </summary>
internal sealed class HandlerCalls
{
    private long _calls;
    private long _first;

    public long Calls => Interlocked.Read(ref _calls);

    /// <summary>Gets the <see cref="Stopwatch"/> timestamp at which the first call started, or 0.</summary>
    public long FirstTimestamp => Interlocked.Read(ref _first);

    public void Add()
    {
        Interlocked.CompareExchange(ref _first, Stopwatch.GetTimestamp(), 0);
        Interlocked.Increment(ref _calls);
    }
}

/// <summary>The per-record variant: one INSERT per message through the transactional store's transaction.</summary>
internal sealed class PerRecordRowHandler(ThroughputRecorder recorder, HandlerCalls calls) : IMessageHandler<Order>
{
    public async ValueTask HandleAsync(Order message, MessageContext context, CancellationToken cancellationToken)
    {
        calls.Add();
        var transaction = context.GetNpgsqlTransaction();
        await using (var insert = new NpgsqlCommand(OrderRows.Insert, transaction.Connection, transaction.Transaction))
        {
            insert.Parameters.Add(new NpgsqlParameter<long>("id", message.Id));
            insert.Parameters.Add(new NpgsqlParameter<string>("customer", message.Customer));
            insert.Parameters.Add(new NpgsqlParameter<decimal>("amount", message.Amount));
            insert.Parameters.Add(new NpgsqlParameter<string>("currency", message.Currency));
            insert.Parameters.Add(new NpgsqlParameter<string>("sku", message.Sku));
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        recorder.Record(message);
    }
}

/// <summary>The batch variant: one binary COPY per batch through the transactional store's transaction.</summary>
internal sealed class BatchCopyHandler(ThroughputRecorder recorder, HandlerCalls calls) : IBatchMessageHandler<Order>
{
    public async ValueTask HandleAsync(MessageBatch<Order> batch, CancellationToken cancellationToken)
    {
        calls.Add();
        var orders = new Order[batch.Count];
        for (var i = 0; i < orders.Length; i++)
        {
            orders[i] = batch[i].Message;
        }

        await OrderRows.CopyAsync(batch[0].Context.GetNpgsqlTransaction().Connection, orders, cancellationToken);
        foreach (var order in orders)
        {
            recorder.Record(order);
        }
    }
}
