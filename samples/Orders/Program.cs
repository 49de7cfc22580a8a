using Kafka.Reliable.DeadLetter;
using System.Diagnostics.Metrics;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable;
using Kafka.Reliable.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Orders;

// The orders loader of seeds/004, done right: deserialize -> translate (validate) -> store -> commit, with no gaps.
// With no bootstrap servers it runs a self-contained demo on the embedded broker, prints a summary and exits.
// With --bootstrap-servers host:port it consumes a real cluster until stopped (Ctrl+C).
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Configuration.AddCommandLine(args, new Dictionary<string, string>
{
    ["--bootstrap-servers"] = "Kafka:Orders:BootstrapServers",
    ["--group"] = "Kafka:Orders:GroupId",
    ["--telemetry"] = "Telemetry",
    ["--format"] = "Format",
});

// One switch exports the library's traces and metrics to the console: --telemetry console.
if (string.Equals(builder.Configuration["Telemetry"], "console", StringComparison.OrdinalIgnoreCase))
{
    builder.Services.AddOpenTelemetry()
        .WithTracing(tracing => tracing.AddKafkaReliableInstrumentation().AddConsoleExporter())
        .WithMetrics(metrics => metrics.AddKafkaReliableInstrumentation()
            .AddConsoleExporter((_, reader) => reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = 5_000));
}

var orders = builder.Configuration.GetSection("Kafka:Orders");
var demo = string.IsNullOrWhiteSpace(orders["BootstrapServers"]);

// --format avro: the order events are Avro records framed for a Schema Registry (the embedded one in the demo), read
// through Kafka.Reliable.SchemaRegistry; one of them is written with an incompatible schema and is dead-lettered.
var avro = string.Equals(builder.Configuration["Format"], "avro", StringComparison.OrdinalIgnoreCase);
using var cluster = demo ? EmbeddedKafkaCluster.Start() : null;
using var registry = demo && avro ? EmbeddedSchemaRegistry.Start() : null;
const string Topic = "orders";
var produced = 0;
if (cluster is not null)
{
    cluster.CreateTopic(Topic, partitions: 6);
    cluster.CreateTopic(Topic + ".dlq", partitions: 1);
    orders["BootstrapServers"] = cluster.BootstrapServers;
    var stream = registry is null ? DemoStream.Create().ToList() : await AvroDemo.CreateAsync(registry, Topic);
    await cluster.ProduceAllAsync(Topic, stream);
    produced = stream.Count;
    Console.WriteLine(registry is null
        ? $"Embedded broker at {cluster.BootstrapServers}: published {produced} order events ({DemoStream.ValidOrders} valid, {DemoStream.Resent} of them sent twice, {DemoStream.Malformed.Count} malformed) to '{Topic}' over 6 partitions."
        : $"Embedded broker at {cluster.BootstrapServers}, Schema Registry at {registry.Url}: published {produced} Avro order events ({DemoStream.ValidOrders} valid, {DemoStream.Resent} of them sent twice, {DemoStream.Malformed.Count} not Avro, {AvroDemo.IncompatibleRecords} with an incompatible schema) to '{Topic}' over 6 partitions.");
    if (registry is not null)
    {
        orders["SchemaRegistry:Url"] = registry.Url;
    }
}

// Orders already stored are recognized by their order id, across restarts: the SQLite file keeps the ids of handled orders.
// The demo uses a fresh file per run; against a real cluster, keep it where the consumer runs.
var idempotencyDatabase = demo
    ? Path.Combine(Path.GetTempPath(), $"orders-idempotency-{Guid.NewGuid():N}.db")
    : builder.Configuration["Orders:IdempotencyDatabase"] ?? "orders-idempotency.db";

builder.Services.AddSingleton<OrderStore>();
if (avro)
{
    builder.Services.AddReliableConsumer<OrderEventAvro>(orders)
        .UseSchemaRegistry(orders.GetSection("SchemaRegistry"))
        .WithAvroDeserializer()
        .UseSqliteIdempotency(idempotencyDatabase)
        .WithIdempotencyKey(static (order, _) => order.OrderId)
        .WithTranslator<OrderEventAvroTranslator, Order>()
        .WithHandler<LoadOrderHandler>();
}
else
{
    builder.Services.AddReliableConsumer<OrderEventMessage>(orders)
        .WithJsonDeserializer(OrdersJsonContext.Default.OrderEventMessage)
        .UseSqliteIdempotency(idempotencyDatabase)
        .WithIdempotencyKey(static (order, _) => order.OrderId)
        .WithTranslator<OrderEventTranslator, Order>()
        .WithHandler<LoadOrderHandler>();
}

using var host = builder.Build();
if (cluster is null)
{
    await host.RunAsync();
    return 0;
}

var store = host.Services.GetRequiredService<OrderStore>();
using var duplicates = new DuplicateCounter();
await host.StartAsync();
var deadline = DateTime.UtcNow.AddSeconds(120);
long DeadLettered() => cluster.GetHighWatermarks(Topic + ".dlq").Values.Sum();
while (store.Writes + DeadLettered() + duplicates.Count < produced && DateTime.UtcNow < deadline)
{
    await Task.Delay(100);
}

await host.StopAsync();
var stored = store.Count;
var deadLettered = DeadLettered();
var committed = cluster.GetCommittedOffsets("orders-loader", Topic);
var high = cluster.GetHighWatermarks(Topic);

Console.WriteLine();
Console.WriteLine("Summary");
Console.WriteLine($"  consumed       {store.Writes + deadLettered + duplicates.Count,6}");
Console.WriteLine($"  stored         {stored,6}");
Console.WriteLine($"  duplicates     {duplicates.Count,6}   orders sent twice, skipped the second time by their order id (SQLite idempotency store)");
Console.WriteLine($"  retried        {store.Timeouts,6}   transient database timeouts, each handled on a later attempt");
Console.WriteLine($"  failed (DLQ)   {deadLettered,6}   -> topic '{Topic}.dlq', each with the stage and reason in its headers:");
foreach (var dead in ReadDeadLetters(cluster.BootstrapServers, Topic + ".dlq", (int)deadLettered))
{
    Console.WriteLine($"    {dead}");
}

Console.WriteLine("  committed offsets per partition (committed / end of partition):");
foreach (var (partition, offset) in committed.OrderBy(p => p.Key))
{
    Console.WriteLine($"    {Topic}[{partition}]  {offset,5} / {high[partition],5}");
}

var complete = stored == DemoStream.ValidOrders && store.Writes == DemoStream.ValidOrders && duplicates.Count == DemoStream.Resent
    && deadLettered == DemoStream.Malformed.Count + (avro ? AvroDemo.IncompatibleRecords : 0) && committed.All(c => c.Value == high[c.Key]);
Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
foreach (var file in new[] { idempotencyDatabase, idempotencyDatabase + "-wal", idempotencyDatabase + "-shm" })
{
    File.Delete(file);
}

Console.WriteLine(complete ? "Every order is accounted for: nothing lost, nothing skipped, nothing stored twice." : "INCOMPLETE: not every order was accounted for before the deadline.");
return complete ? 0 : 1;

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
        reason = reason.Length > 90 ? reason[..90] + "..." : reason;
        var schema = record.Message.Headers.TryGetLastBytes(DeadLetterHeaders.SchemaId, out var id) ? $" (schema id {Encoding.UTF8.GetString(id)})" : string.Empty;
        lines.Add($"{Header(DeadLetterHeaders.OriginalTopic)}[{Header(DeadLetterHeaders.OriginalPartition)}]@{Header(DeadLetterHeaders.OriginalOffset),-4}  {Header(DeadLetterHeaders.FailureStage),-11}  {reason}{schema}");
    }

    return lines;
}

/// <summary>Counts the records the consumer skipped as duplicates, from the library's metrics.</summary>
internal sealed class DuplicateCounter : IDisposable
{
    private readonly MeterListener _listener = new();
    private long _count;

    public DuplicateCounter()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == KafkaReliableDiagnostics.MeterName && instrument.Name == "kafka.reliable.records.duplicates")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref _count, value));
        _listener.Start();
    }

    public long Count => Interlocked.Read(ref _count);

    public void Dispose() => _listener.Dispose();
}
