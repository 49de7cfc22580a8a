using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OrdersToDatabase;

// The orders topic into a database, in batches: deserialize -> translate (validate) -> one bulk write per batch, in one
// transaction with the batch's idempotency records and the partition's offset (the transactional idempotency store).
// With no --bootstrap-servers it runs a self-contained demo on an embedded broker and proves from the database that every
// order is stored exactly once; with --bootstrap-servers host:port it consumes a real cluster until stopped (Ctrl+C).
if (SampleOptions.Parse(args) is not { } options)
{
    Console.Error.WriteLine(SampleOptions.Help);
    return 2;
}

if (options.ShowHelp)
{
    Console.WriteLine(SampleOptions.Help);
    return 0;
}

var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], ContentRootPath = AppContext.BaseDirectory });
var kafka = builder.Configuration.GetSection("Kafka:Orders");
if (options.BootstrapServers is not null)
{
    kafka["BootstrapServers"] = options.BootstrapServers;
}

if (options.Group is not null)
{
    kafka["GroupId"] = options.Group;
}

var demo = string.IsNullOrWhiteSpace(kafka["BootstrapServers"]);
var topic = kafka["Topics:0"] ?? "orders";
var groupId = kafka["GroupId"];

// A demo run uses a database of its own (a temp SQLite file, or PostgreSQL tables named after the run), removed at the end;
// against a real cluster the orders stay, and the idempotency records with them, across restarts.
var run = Guid.NewGuid().ToString("N")[..8];
OrdersDatabase database = options.Postgres is { } connectionString
    ? new PostgresOrdersDatabase(connectionString, new OrdersTable(demo ? $"orders_demo_{run}" : "orders"), demo ? $"orders_demo_{run}_keys" : null)
    : new SqliteOrdersDatabase(demo ? Path.Combine(Path.GetTempPath(), $"orders-to-database-{run}.db") : "orders-to-database.db", new OrdersTable("orders"));

using var cluster = demo ? EmbeddedKafkaCluster.Start() : null;
var produced = 0;
if (cluster is not null)
{
    cluster.CreateTopic(topic, partitions: 6);
    cluster.CreateTopic(topic + ".dlq", partitions: 1);
    kafka["BootstrapServers"] = cluster.BootstrapServers;
    var stream = DemoStream.Create().ToList();
    await cluster.ProduceAllAsync(topic, stream);
    produced = stream.Count;
    Console.WriteLine(
        $"Embedded broker at {cluster.BootstrapServers}: published {produced:N0} order events to '{topic}' over 6 partitions: {DemoStream.Orders:N0} orders "
        + $"({DemoStream.Resent} of them sent twice, {DemoStream.Rejected} with a negative total) and {DemoStream.Malformed.Count} malformed records.");
}

try
{
    await database.CreateTableAsync();
    Console.WriteLine($"Consuming '{topic}' in batches into {database.Description} (transactional idempotency store: one transaction per batch).");

    builder.Services.AddSingleton(database.Table);
    builder.Services.AddSingleton<BatchStats>();
    var consumer = builder.Services.AddReliableConsumer<OrderEventMessage>(kafka)
        .WithJsonDeserializer(OrdersJsonContext.Default.OrderEventMessage)
        // The idempotency key: an order sent twice is stored once, whichever batch (or run) its copies arrive in.
        .WithIdempotencyKey(static (order, _) => order.OrderId);
    database.Configure(consumer);

    using var host = builder.Build();
    var stats = host.Services.GetRequiredService<BatchStats>();
    if (cluster is null)
    {
        await host.RunAsync();
        var (storedRows, storedDistinct) = await database.CountAsync();
        Console.WriteLine($"{database.Description}: {storedRows:N0} rows, {storedDistinct:N0} distinct order ids, {storedRows - storedDistinct:N0} duplicates; "
            + $"{stats.Calls:N0} batches handled in this run ({stats.Messages:N0} messages).");
        return storedRows == storedDistinct ? 0 : 1;
    }

    using var progress = new Progress();
    var clock = Stopwatch.StartNew();
    await host.StartAsync();
    var timeout = TimeSpan.FromSeconds(60);
    // Done: every record stored or dead-lettered, except the second copies of the resent orders, which are skipped.
    var target = produced - DemoStream.Resent;
    while (progress.Processed + progress.DeadLettered < target && clock.Elapsed < timeout)
    {
        await Task.Delay(20);
    }

    var elapsed = clock.Elapsed;
    var finished = progress.Processed + progress.DeadLettered >= target;
    await host.StopAsync();

    // The proof comes from the database and the dead-letter topic, not from the consumer's own counts.
    var (rows, distinct) = await database.CountAsync();
    var stored = await database.ReadOrderIdsAsync();
    var expected = DemoStream.GoodOrderIds().ToHashSet(StringComparer.Ordinal);
    var missing = expected.Count(id => !stored.Contains(id));
    var unexpected = stored.Count(id => !expected.Contains(id));
    var deadLettered = cluster.GetHighWatermarks(topic + ".dlq").Values.Sum();
    var deadLetters = ReadDeadLetters(cluster.BootstrapServers, topic + ".dlq", (int)deadLettered);
    var ends = cluster.GetHighWatermarks(topic);
    var committed = cluster.GetCommittedOffsets(groupId!, topic);
    var committedToEnd = ends.Count(end => committed.TryGetValue(end.Key, out var offset) && offset == end.Value);

    Console.WriteLine();
    Console.WriteLine($"Summary ({database.Description})");
    Console.WriteLine($"  rows              {rows,7:N0}   in the table");
    Console.WriteLine($"  distinct ids      {distinct,7:N0}   order ids in the table");
    Console.WriteLine($"  duplicates        {rows - distinct,7:N0}   rows - distinct ids");
    Console.WriteLine($"  expected          {DemoStream.GoodOrders,7:N0}   good orders ({DemoStream.Orders:N0} published minus {DemoStream.Rejected} rejected); missing {missing}, unexpected {unexpected}");
    Console.WriteLine($"  resends skipped   {produced - progress.Processed - progress.DeadLettered,7:N0}   records neither stored nor dead-lettered: the second copies of the {DemoStream.Resent} orders sent twice, left out by the idempotency store");
    Console.WriteLine($"  dead-lettered     {deadLettered,7:N0}   read from '{topic}.dlq' (expected {DemoStream.DeadLetters}: {DemoStream.Malformed.Count} malformed + {DemoStream.Rejected} rejected by the handler):");
    foreach (var dead in deadLetters)
    {
        Console.WriteLine($"      {dead}");
    }

    var average = stats.Calls == 0 ? 0 : (double)stats.Messages / stats.Calls;
    Console.WriteLine($"  batches           {stats.Calls,7:N0}   handler calls with {stats.Messages:N0} messages: {average:N1} per batch on average, {stats.Largest} at most");
    Console.WriteLine($"                              ({stats.CallsWithRejections} of them reported a rejected order: the batch was rolled back and handed again without it, then the order ran alone and was dead-lettered)");
    Console.WriteLine($"  committed         {committedToEnd,7}   of {ends.Count} partitions have their consumer group offset at the end of the partition");
    Console.WriteLine($"  elapsed           {elapsed.TotalSeconds,7:N2} s from host start until every record was stored, skipped or dead-lettered");

    var differences = new List<string>();
    if (!finished)
    {
        differences.Add($"only {progress.Processed + progress.DeadLettered:N0} of {target:N0} records were stored or dead-lettered after {timeout.TotalSeconds:N0} s");
    }

    if (rows != DemoStream.GoodOrders || distinct != DemoStream.GoodOrders)
    {
        differences.Add($"rows {rows:N0} and distinct order ids {distinct:N0} must both be {DemoStream.GoodOrders:N0}");
    }

    if (missing > 0 || unexpected > 0)
    {
        differences.Add($"{missing} expected order ids are missing and {unexpected} stored ones were not expected");
    }

    if (deadLettered != DemoStream.DeadLetters)
    {
        differences.Add($"dead-lettered {deadLettered} records, expected {DemoStream.DeadLetters}");
    }

    if (committedToEnd != ends.Count)
    {
        differences.Add($"only {committedToEnd} of {ends.Count} partitions are committed to their end");
    }

    Console.WriteLine(differences.Count == 0
        ? "OK: every good order is stored exactly once, and every bad record is on the dead-letter topic."
        : "DIFFERS: " + string.Join("; ", differences) + ".");
    return differences.Count == 0 ? 0 : 1;
}
finally
{
    if (demo)
    {
        await database.CleanUpAsync();
    }
}

// Reads the dead-letter topic back and describes each record from its provenance headers.
static List<string> ReadDeadLetters(string bootstrapServers, string topic, int expected)
{
    using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
    {
        BootstrapServers = bootstrapServers,
        GroupId = "orders-dlq-reader",
        EnableAutoCommit = false,
        AutoOffsetReset = AutoOffsetReset.Earliest,
    }).Build();
    consumer.Assign(new TopicPartitionOffset(topic, 0, Offset.Beginning));
    var lines = new List<string>();
    var deadline = DateTime.UtcNow.AddSeconds(10);
    while (lines.Count < expected && DateTime.UtcNow < deadline)
    {
        if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is not { } record)
        {
            continue;
        }

        string Header(string name) => record.Message.Headers.TryGetLastBytes(name, out var value) ? Encoding.UTF8.GetString(value) : "?";
        var reason = Header(DeadLetterHeaders.ExceptionMessage);
        reason = reason.Length > 80 ? reason[..80] + "..." : reason;
        lines.Add($"{Header(DeadLetterHeaders.OriginalTopic)}[{Header(DeadLetterHeaders.OriginalPartition)}]@{Header(DeadLetterHeaders.OriginalOffset),-5} {Header(DeadLetterHeaders.FailureStage),-11}  {reason}");
    }

    return lines;
}

/// <summary>The command line: a few options, documented in <see cref="Help"/>.</summary>
internal sealed record SampleOptions(string? BootstrapServers, string? Postgres, string? Group, bool ShowHelp)
{
    public const string Help = """
        Usage: dotnet run --project samples/OrdersToDatabase [-- options]

        Consumes the 'orders' topic in batches into a database with Kafka.Reliable's batch handler and transactional
        idempotency store: each batch is written with one bulk write (SQLite: one multi-row INSERT; PostgreSQL: one binary
        COPY) in the same transaction as the batch's idempotency records and the partition's offset.

        Without --bootstrap-servers it runs a self-contained demo: an embedded Kafka broker, 10,000 orders (83 sent twice,
        4 with a negative total, which the handler rejects) and 6 malformed records, consumed into a fresh database; then a
        summary counted from the database and the dead-letter topic. Exit code 0 when every good order is stored exactly
        once and every bad record is dead-lettered, 1 otherwise (with a line saying what differs), 2 for a bad command line.

        Options:
          --postgres "<connection string>"  write to PostgreSQL instead of SQLite; the table is created if missing (a demo
                                            run uses tables of its own, dropped at the end)
          --bootstrap-servers host:port     consume the 'orders' topic of a real cluster until stopped (Ctrl+C), then print
                                            the table's counts; SQLite goes to orders-to-database.db in the current folder
          --group <id>                      the consumer group (default: orders-to-database)
          --help                            this text

        Examples:
          dotnet run --project samples/OrdersToDatabase
          dotnet run --project samples/OrdersToDatabase -- --postgres "Host=localhost;Username=postgres;Database=orders"
          dotnet run --project samples/OrdersToDatabase -- --bootstrap-servers localhost:9092
        """;

    /// <summary>Reads the command line; null (after saying why) when it has an unknown option or one without its value.</summary>
    public static SampleOptions? Parse(string[] args)
    {
        string? bootstrapServers = null, postgres = null, group = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--help" or "-h" or "-?":
                    return new SampleOptions(null, null, null, ShowHelp: true);
                case "--bootstrap-servers" or "--postgres" or "--group" when i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal):
                    var value = args[++i];
                    _ = args[i - 1] switch
                    {
                        "--bootstrap-servers" => bootstrapServers = value,
                        "--postgres" => postgres = value,
                        _ => group = value,
                    };
                    break;
                case "--bootstrap-servers" or "--postgres" or "--group":
                    Console.Error.WriteLine($"{args[i]} needs a value.");
                    return null;
                default:
                    Console.Error.WriteLine($"Unknown option: {args[i]}");
                    return null;
            }
        }

        return new SampleOptions(bootstrapServers, postgres, group, ShowHelp: false);
    }
}

/// <summary>
/// Counts the records the consumer stored and dead-lettered, from the library's metrics, to know when the demo is done.
/// (Not the duplicates metric: in this version it counts the skipped duplicates of a batch rolled back by <c>Fail</c> once
/// more when the batch is handed again.)
/// </summary>
internal sealed class Progress : IDisposable
{
    private const string ProcessedName = "kafka.reliable.records.processed";
    private const string DeadLetteredName = "kafka.reliable.records.dead_lettered";
    private readonly MeterListener _listener = new();
    private long _processed;
    private long _deadLettered;

    public Progress()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == KafkaReliableDiagnostics.MeterName && instrument.Name is ProcessedName or DeadLetteredName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
            Interlocked.Add(ref instrument.Name == ProcessedName ? ref _processed : ref _deadLettered, value));
        _listener.Start();
    }

    public long Processed => Interlocked.Read(ref _processed);

    public long DeadLettered => Interlocked.Read(ref _deadLettered);

    public void Dispose() => _listener.Dispose();
}
