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
if (args.Length is not (5 or 6))
{
    Console.Error.WriteLine("usage: <bootstrap servers> <topic> <group> <pg|sqlite> <connection string or database path> [Sequential|ByKey|Unordered]");
    return 2;
}

var (bootstrapServers, topic, group, store, connection) = (args[0], args[1], args[2], args[3], args[4]);
var dispatch = args.Length == 6 ? Enum.Parse<DispatchMode>(args[5]) : DispatchMode.Sequential;
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
var consumer = builder.Services.AddReliableConsumer<int>("crash", o =>
    {
        o.BootstrapServers = bootstrapServers;
        o.GroupId = group;
        o.Topics.Add(topic);
        o.Dispatch = dispatch;
        o.Commit.Interval = TimeSpan.FromMilliseconds(500);
        o.KafkaSettings["session.timeout.ms"] = "3000";
        o.KafkaSettings["heartbeat.interval.ms"] = "300";
    })
    .WithDeserializer(new IdDeserializer())
    .WithIdempotencyKey(static (id, _) => id.ToString(CultureInfo.InvariantCulture));
if (store == "pg")
{
    consumer.UsePostgreSqlIdempotency(connection, o => o.Transactional = true).WithHandler<PostgreSqlEffect>(ServiceLifetime.Singleton);
}
else
{
    consumer.UseSqliteIdempotency(connection, o => o.Transactional = true).WithHandler<SqliteEffect>(ServiceLifetime.Singleton);
}

await builder.Build().RunAsync();
return 0;

internal sealed class IdDeserializer : IMessageDeserializer<int>
{
    public int Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) =>
        int.Parse(Encoding.ASCII.GetString(value), CultureInfo.InvariantCulture);
}

/// <summary>The effect: a row in <c>effects</c>, with no unique constraint, so that a duplicate would be counted, not refused.</summary>
internal sealed class PostgreSqlEffect : IMessageHandler<int>
{
    public async ValueTask HandleAsync(int message, MessageContext context, CancellationToken cancellationToken)
    {
        var transaction = context.GetNpgsqlTransaction();
        await using var insert = new NpgsqlCommand("INSERT INTO effects (id, partition, record_offset) VALUES (@id, @partition, @offset)", transaction.Connection, transaction.Transaction);
        insert.Parameters.AddWithValue("id", message);
        insert.Parameters.AddWithValue("partition", context.Partition);
        insert.Parameters.AddWithValue("offset", context.Offset);
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }
}

internal sealed class SqliteEffect : IMessageHandler<int>
{
    public async ValueTask HandleAsync(int message, MessageContext context, CancellationToken cancellationToken)
    {
        var transaction = context.GetSqliteTransaction();
        await using var insert = new SqliteCommand("INSERT INTO effects (id, partition, record_offset) VALUES ($id, $partition, $offset)", transaction.Connection, transaction.Transaction);
        insert.Parameters.AddWithValue("$id", message);
        insert.Parameters.AddWithValue("$partition", context.Partition);
        insert.Parameters.AddWithValue("$offset", context.Offset);
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }
}
