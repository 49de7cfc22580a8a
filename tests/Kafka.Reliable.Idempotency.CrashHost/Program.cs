using System.Globalization;
using System.Text;
using Kafka.Reliable;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

// A consumer that writes one row per record to an effects table, in the idempotency store's transaction, until it is
// stopped or killed. The crash tests run it as a child process and kill it with SIGKILL at random points.
// Arguments: <bootstrap servers> <topic> <group> <pg|sqlite> <connection string or database path> [dispatch mode]
//            [--batch <max size>] [--hold-after <records>]
// --batch takes the records with a batch handler (one multi-row INSERT per batch, in the batch's transaction; the effects
// table then has a 'call' column, one number per handler call). --hold-after: once this process has handed that many records
// to the batch handler, each later batch waits after its INSERT, inside its transaction, until the process is killed,
// after printing "holding <partition> <first offset> <last offset> <count> <call>".
// --retry-tiers <delay ms>: retry tiers on (50 tiers of that delay), with --fail-key <key> and --fail-while <file>: records of
// that key fail (transiently) while the file exists. --kill-on-event <log event id> with --kill-count <n>: the process kills
// itself (SIGKILL) when the library logs that event for the n-th time, after printing "killing at event <id> #<n>".
// --group-protocol Consumer: the KIP-848 consumer protocol (the broker's session timeout applies).
const string Usage = "usage: <bootstrap servers> <topic> <group> <pg|sqlite> <connection string or database path> [Sequential|ByKey|Unordered] [--batch <max size>] [--hold-after <records>] [--retry-tiers <delay ms> --fail-key <key> --fail-while <file>] [--kill-on-event <id> --kill-count <n>] [--group-protocol Classic|Consumer]";
var positional = args.TakeWhile(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray();
var flags = args.Skip(positional.Length).ToArray();
if (positional.Length is not (5 or 6) || flags.Length % 2 != 0 || flags.Where((_, i) => i % 2 == 0).Any(f => f is not ("--batch" or "--hold-after" or "--retry-tiers" or "--fail-key" or "--fail-while" or "--kill-on-event" or "--kill-count" or "--group-protocol")))
{
    Console.Error.WriteLine(Usage);
    return 2;
}

var (bootstrapServers, topic, group, store, connection) = (args[0], args[1], args[2], args[3], args[4]);
var dispatch = positional.Length == 6 ? Enum.Parse<DispatchMode>(args[5]) : DispatchMode.Sequential;
string? Flag(string name) => flags.Select((f, i) => (f, i)).Where(p => p.f == name).Select(p => flags[p.i + 1]).LastOrDefault();
var batchMaxSize = Flag("--batch") is { } size ? int.Parse(size, CultureInfo.InvariantCulture) : 0;
var hold = new HoldSwitch(Flag("--hold-after") is { } after ? long.Parse(after, CultureInfo.InvariantCulture) : long.MaxValue);
var tierDelay = Flag("--retry-tiers") is { } delay ? int.Parse(delay, CultureInfo.InvariantCulture) : 0;
var failure = new FailSwitch(Flag("--fail-key"), Flag("--fail-while"));
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
if (Flag("--kill-on-event") is { } killEvent)
{
    builder.Logging.SetMinimumLevel(LogLevel.Debug).AddProvider(new KillSwitch(int.Parse(killEvent, CultureInfo.InvariantCulture), int.Parse(Flag("--kill-count") ?? "1", CultureInfo.InvariantCulture)));
    builder.Logging.AddFilter<Microsoft.Extensions.Logging.Console.ConsoleLoggerProvider>(level => level >= LogLevel.Warning);
}

builder.Services.AddSingleton(failure);
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
var consumer = builder.Services.AddReliableConsumer<int>("crash", o =>
    {
        o.BootstrapServers = bootstrapServers;
        o.GroupId = group;
        o.Topics.Add(topic);
        o.Dispatch = dispatch;
        if (batchMaxSize > 0)
        {
            o.Batch.MaxSize = batchMaxSize;
        }

        o.Commit.Interval = TimeSpan.FromMilliseconds(500);
        if (tierDelay > 0)
        {
            o.RetryTiers.Enabled = true;
            for (var i = 0; i < 50; i++)
            {
                o.RetryTiers.Delays.Add(TimeSpan.FromMilliseconds(tierDelay));
            }

            o.Retry.MaxAttempts = 2;
            o.Retry.Delay = TimeSpan.FromMilliseconds(10);
        }

        o.GroupProtocol = Flag("--group-protocol") is { } protocol ? Enum.Parse<GroupProtocol>(protocol) : GroupProtocol.Classic;
        if (o.GroupProtocol == GroupProtocol.Classic)
        {
            o.KafkaSettings["session.timeout.ms"] = "3000";
            o.KafkaSettings["heartbeat.interval.ms"] = "300";
        }
    })
    .WithDeserializer(new IdDeserializer())
    .WithIdempotencyKey(static (id, _) => id.ToString(CultureInfo.InvariantCulture));
builder.Services.AddSingleton(hold);
if (store == "pg")
{
    consumer.UsePostgreSqlIdempotency(connection, o => o.Transactional = true);
    _ = batchMaxSize > 0 ? consumer.WithBatchHandler<PostgreSqlBatchEffect>(ServiceLifetime.Singleton) : consumer.WithHandler<PostgreSqlEffect>(ServiceLifetime.Singleton);
}
else
{
    consumer.UseSqliteIdempotency(connection, o => o.Transactional = true);
    _ = batchMaxSize > 0 ? consumer.WithBatchHandler<SqliteBatchEffect>(ServiceLifetime.Singleton) : consumer.WithHandler<SqliteEffect>(ServiceLifetime.Singleton);
}

await builder.Build().RunAsync();
return 0;

internal sealed class IdDeserializer : IMessageDeserializer<int>
{
    public int Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) =>
        int.Parse(Encoding.ASCII.GetString(value), CultureInfo.InvariantCulture);
}

/// <summary>The effect: a row in <c>effects</c>, with no unique constraint, so that a duplicate would be counted, not refused.</summary>
internal sealed class PostgreSqlEffect(FailSwitch failure) : IMessageHandler<int>
{
    public async ValueTask HandleAsync(int message, MessageContext context, CancellationToken cancellationToken)
    {
        failure.ThrowIfFailing(context);
        var transaction = context.GetNpgsqlTransaction();
        await using var insert = new NpgsqlCommand("INSERT INTO effects (id, partition, record_offset) VALUES (@id, @partition, @offset)", transaction.Connection, transaction.Transaction);
        insert.Parameters.AddWithValue("id", message);
        insert.Parameters.AddWithValue("partition", context.Partition);
        insert.Parameters.AddWithValue("offset", context.Offset);
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }
}

internal sealed class SqliteEffect(FailSwitch failure) : IMessageHandler<int>
{
    public async ValueTask HandleAsync(int message, MessageContext context, CancellationToken cancellationToken)
    {
        failure.ThrowIfFailing(context);
        var transaction = context.GetSqliteTransaction();
        await using var insert = new SqliteCommand("INSERT INTO effects (id, partition, record_offset) VALUES ($id, $partition, $offset)", transaction.Connection, transaction.Transaction);
        insert.Parameters.AddWithValue("$id", message);
        insert.Parameters.AddWithValue("$partition", context.Partition);
        insert.Parameters.AddWithValue("$offset", context.Offset);
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }
}

/// <summary>Makes batches wait inside their transactions, after their INSERT, once enough records were handled: a kill then lands in an open batch transaction.</summary>
internal sealed class HoldSwitch(long holdAfter)
{
    private static long s_calls;
    private long _handed;

    /// <summary>Gets a number for a handler call, unique in the process (and, with the process id, across processes).</summary>
    public static long NextCall() => ((long)Environment.ProcessId << 32) | (uint)Interlocked.Increment(ref s_calls);

    public async ValueTask AfterInsertAsync(MessageBatch<int> batch, long call, CancellationToken cancellationToken)
    {
        if (Interlocked.Add(ref _handed, batch.Count) - batch.Count >= holdAfter)
        {
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"holding {batch[0].Context.Partition} {batch[0].Context.Offset} {batch[^1].Context.Offset} {batch.Count} {call}"));
            Console.Out.Flush();
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
    }
}

/// <summary>The effects of a batch: one row per record, with ONE multi-row INSERT through the batch's transaction.</summary>
internal sealed class PostgreSqlBatchEffect(HoldSwitch hold) : IBatchMessageHandler<int>
{
    public async ValueTask HandleAsync(MessageBatch<int> batch, CancellationToken cancellationToken)
    {
        var transaction = batch[0].Context.GetNpgsqlTransaction();
        await using var insert = new NpgsqlCommand(
            "INSERT INTO effects (id, partition, record_offset, call) SELECT u.id, u.partition, u.record_offset, @call FROM unnest(@ids, @partitions, @offsets) AS u(id, partition, record_offset)",
            transaction.Connection,
            transaction.Transaction);
        var call = HoldSwitch.NextCall();
        insert.Parameters.AddWithValue("call", call);
        insert.Parameters.AddWithValue("ids", batch.Select(item => item.Message).ToArray());
        insert.Parameters.AddWithValue("partitions", batch.Select(item => item.Context.Partition).ToArray());
        insert.Parameters.AddWithValue("offsets", batch.Select(item => item.Context.Offset).ToArray());
        await insert.ExecuteNonQueryAsync(cancellationToken);
        await hold.AfterInsertAsync(batch, call, cancellationToken);
    }
}

internal sealed class SqliteBatchEffect(HoldSwitch hold) : IBatchMessageHandler<int>
{
    public async ValueTask HandleAsync(MessageBatch<int> batch, CancellationToken cancellationToken)
    {
        var transaction = batch[0].Context.GetSqliteTransaction();
        await using var insert = new SqliteCommand { Connection = transaction.Connection, Transaction = transaction.Transaction };
        var sql = new StringBuilder("INSERT INTO effects (id, partition, record_offset, call) VALUES ");
        var call = HoldSwitch.NextCall();
        insert.Parameters.AddWithValue("$call", call);
        for (var i = 0; i < batch.Count; i++)
        {
            sql.Append(CultureInfo.InvariantCulture, $"{(i == 0 ? string.Empty : ", ")}($i{i}, $p{i}, $o{i}, $call)");
            insert.Parameters.AddWithValue($"$i{i}", batch[i].Message);
            insert.Parameters.AddWithValue($"$p{i}", batch[i].Context.Partition);
            insert.Parameters.AddWithValue($"$o{i}", batch[i].Context.Offset);
        }

        insert.CommandText = sql.ToString();
        await insert.ExecuteNonQueryAsync(cancellationToken);
        await hold.AfterInsertAsync(batch, call, cancellationToken);
    }
}

/// <summary>Fails the records of one key while a file exists (a dependency of that key that is down).</summary>
internal sealed class FailSwitch(string? key, string? whileFile)
{
    public void ThrowIfFailing(MessageContext context)
    {
        if (key is not null && whileFile is not null && context.HasKey && Encoding.UTF8.GetString(context.Key.Span) == key && File.Exists(whileFile))
        {
            throw new TimeoutException($"the dependency of key {key} is down");
        }
    }
}

/// <summary>Kills the process (SIGKILL) when the library logs an event for the n-th time: a crash at a chosen point.</summary>
internal sealed class KillSwitch(int eventId, int count) : ILoggerProvider, ILogger
{
    private int _seen;

    public ILogger CreateLogger(string categoryName) => this;

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId id, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (id.Id == eventId && Interlocked.Increment(ref _seen) == count)
        {
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"killing at event {eventId} #{count}: {formatter(state, exception)}"));
            Console.Out.Flush();
            System.Diagnostics.Process.GetCurrentProcess().Kill();
        }
    }

    public void Dispose()
    {
    }
}
