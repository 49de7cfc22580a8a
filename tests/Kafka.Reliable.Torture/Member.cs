using System.Collections.Concurrent;
using System.Data.Common;
using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Torture;

/// <summary>Where a member finds the broker and its store. Passed to child processes as JSON.</summary>
public sealed record MemberEnvironment(string BootstrapServers, string Topic, string Group, string? Postgres, string? SqlitePath, string? Redis, string RedisPrefix, string? RegistryDownFlag = null, string? RegistryUrl = null)
{
    public string OutputTopic => Topic + ".out";
}

/// <summary>
/// Refuses the consumer client's Pause, Resume, Seek and Commit calls while a <see cref="FaultKind.ClientCalls"/> fault is on
/// (every <c>n</c>-th call throws a non-fatal <see cref="KafkaException"/>, as librdkafka does for a partition in a passing
/// state). One per run, shared by the members in this process.
/// </summary>
public sealed class ClientFaults
{
    private static readonly HashSet<string> Refusable = ["Pause", "Resume", "Seek", "Commit"];
    private int _every;
    private long _calls;
    private long _refused;

    /// <summary>Gets how many calls were refused in the run.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Refuses every <paramref name="every"/>-th call from now on; 0 lets every call through.</summary>
    public void RefuseEvery(int every) => Volatile.Write(ref _every, every);

    internal Exception? Before(string operation)
    {
        var every = Volatile.Read(ref _every);
        if (every <= 0 || !Refusable.Contains(operation) || Interlocked.Increment(ref _calls) % every != 0)
        {
            return null;
        }

        Interlocked.Increment(ref _refused);
        return new KafkaException(new Error(ErrorCode.Local_State, $"torture: {operation} refused for now"));
    }
}

#if !TORTURE_OLD_LIBRARY
/// <summary>The library's client seam, wrapping the consumer's client so that <see cref="ClientFaults"/> can refuse its calls.</summary>
internal sealed class ClientFaultInterceptor(ClientFaults faults) : Kafka.Reliable.Consuming.IClientInterceptor
{
    public IConsumer<byte[]?, byte[]?> Wrap(IConsumer<byte[]?, byte[]?> client) => CallInterceptor.Wrap(client, (method, _) => faults.Before(method.Name));
}
#endif

/// <summary>A transient failure the handler throws on purpose.</summary>
public sealed class TortureTransientException(string message) : Exception(message);

/// <summary>
/// Numbers each assignment of a partition to a member (an epoch), so that order is checked within one assignment: a
/// partition that moves, or comes back, starts again from its committed offset, which is not an order violation.
/// </summary>
public sealed class EpochTracker(long incarnation) : IRebalanceHandler
{
    private readonly ConcurrentDictionary<int, long> _epochs = new();
    private long _next;

    public long EpochOf(int partition) => _epochs.TryGetValue(partition, out var epoch) ? epoch : -1;

    public ValueTask OnAssignedAsync(PartitionAssignment assignment, CancellationToken cancellationToken)
    {
        foreach (var partition in assignment.Partitions)
        {
            _epochs[partition.Partition.Value] = incarnation * 1_000_000 + Interlocked.Increment(ref _next);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask OnRevokedAsync(IReadOnlyList<TopicPartition> partitions, CancellationToken cancellationToken) => Forget(partitions);

    public ValueTask OnLostAsync(IReadOnlyList<TopicPartition> partitions, CancellationToken cancellationToken) => Forget(partitions);

    private ValueTask Forget(IReadOnlyList<TopicPartition> partitions)
    {
        foreach (var partition in partitions)
        {
            _epochs.TryRemove(partition.Partition.Value, out _);
        }

        return ValueTask.CompletedTask;
    }
}

/// <summary>
/// A batching handler's second half: the effects of records whose acknowledgement was deferred happen when the batch is
/// written (every 200 ms), then the records are acknowledged. A member that goes away first never writes its last batch:
/// those effects never happened, and their records must be delivered and handled again (never skipped as duplicates).
/// </summary>
public sealed class DeferredAcker : IDisposable
{
    private readonly ConcurrentQueue<(MessageAcknowledgement Acknowledgement, Execution Execution, Journal Journal, long ReturnedTicks)> _pending = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private int _disposed;

    public DeferredAcker() => _loop = Task.Run(LoopAsync);

    public void Add(MessageAcknowledgement acknowledgement, Execution execution, Journal journal) =>
        _pending.Enqueue((acknowledgement, execution, journal, DateTime.UtcNow.Ticks));

    public void Dispose()
    {
        // The host's container disposes it; a second call does nothing.
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _stop.Cancel();
        _loop.Wait();
        _stop.Dispose();
        while (_pending.TryDequeue(out var pending))
        {
            // Its handler returned long ago: the execution is over, without its effect.
            pending.Journal.End(pending.Execution, succeeded: false, pending.ReturnedTicks);
        }
    }

    private async Task LoopAsync()
    {
        try
        {
            while (true)
            {
                await Task.Delay(200, _stop.Token);
                while (_pending.TryDequeue(out var pending))
                {
                    pending.Journal.End(pending.Execution, succeeded: true);
                    pending.Acknowledgement.Acknowledge();
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping: the batch not written yet is lost with the member.
        }
    }
}

/// <summary>Runs a job the way its kind says, records the execution in the journal, and applies the effect.</summary>
public sealed class JobRunner(TortureConfig config, int member, Journal journal, EpochTracker epochs, DeferredAcker acker)
{
    public async ValueTask RunAsync(Job? job, MessageContext context, CancellationToken cancellationToken)
    {
        var key = context.HasKey ? Encoding.UTF8.GetString(context.Key.Span) : string.Empty;
#if TORTURE_OLD_LIBRARY
        var tier = 0;
#else
        var tier = context.RetryTier;
#endif
        var execution = journal.Start(member, epochs.EpochOf(context.Partition), context.Partition, context.Offset, key, context.Attempt, tier);
        var succeeded = false;
        var deferred = false;
        try
        {
            await DoAsync(job, context, cancellationToken);
            if (config.Commit == CommitMode.ManualDeferred)
            {
                // The effect happens with the batch, later; the acker ends the execution then.
                acker.Add(context.DeferAcknowledgement(), execution, journal);
                deferred = true;
                return;
            }

            if (config.Commit == CommitMode.ManualImmediate)
            {
                context.Acknowledge();
            }

            succeeded = true;
        }
        finally
        {
            if (!deferred)
            {
                journal.End(execution, succeeded);
            }
        }
    }

    /// <summary>
    /// A batch handler's batch: each record's job in offset order, each an execution of its own; they all end with the batch,
    /// failed if any job failed (the batch's effects are then rolled back with a transactional store, and the records run again).
    /// </summary>
    public async ValueTask RunBatchAsync(IReadOnlyList<(Job? Job, MessageContext Context)> items, CancellationToken cancellationToken)
    {
        var executions = new List<Execution>(items.Count);
        var succeeded = false;
        try
        {
            foreach (var (job, context) in items)
            {
                var key = context.HasKey ? Encoding.UTF8.GetString(context.Key.Span) : string.Empty;
                executions.Add(journal.Start(member, epochs.EpochOf(context.Partition), context.Partition, context.Offset, key, context.Attempt));
                await DoAsync(job, context, cancellationToken);
            }

            succeeded = true;
        }
        finally
        {
            foreach (var execution in executions)
            {
                journal.End(execution, succeeded);
            }
        }
    }

    /// <summary>What a job does: its behaviour, then its effect.</summary>
    private async ValueTask DoAsync(Job? job, MessageContext context, CancellationToken cancellationToken)
    {
        switch (job?.Do)
        {
            case RecordKind.Slow or RecordKind.Slower:
                await Task.Delay(job.Ms, cancellationToken);
                break;
            case RecordKind.IgnoreCancel or RecordKind.Stubborn:
                await Task.Delay(job.Ms, CancellationToken.None);
                break;
            case RecordKind.Block:
                Thread.Sleep(job.Ms);
                break;
            case RecordKind.Transient when context.Attempt <= job.N:
                throw new TortureTransientException($"transient failure {context.Attempt} of {job.N}");
            case RecordKind.Exhaust:
                throw new TortureTransientException("fails on every attempt");
            case RecordKind.Fatal:
                throw new NonRetryableException("fatal by design");
#if !TORTURE_OLD_LIBRARY
            case RecordKind.Outlast when context.RetryTier < job.N:
                throw new TortureTransientException($"fails until retry tier {job.N} (now {context.RetryTier})");
#endif
            default:
                break;
        }

        await ApplyEffectAsync(context, cancellationToken);
    }

    private async ValueTask ApplyEffectAsync(MessageContext context, CancellationToken cancellationToken)
    {
        (DbConnection? connection, DbTransaction? transaction) = config.Store switch
        {
            StoreKind.PostgresTransactional => ((DbConnection?)context.GetNpgsqlTransaction().Connection, (DbTransaction?)context.GetNpgsqlTransaction().Transaction),
            StoreKind.SqliteTransactional => (context.GetSqliteTransaction().Connection, context.GetSqliteTransaction().Transaction),
            _ => (null, null),
        };
        if (connection is not null)
        {
            // The effect, in the store's transaction: one row per record handled, with no unique constraint, so that a second
            // effect would be counted rather than refused.
            await using var insert = connection.CreateCommand();
            insert.Transaction = transaction;
            insert.CommandText = "INSERT INTO effects (partition, record_offset) VALUES (@p, @o)";
            AddParameter(insert, "@p", context.Partition);
            AddParameter(insert, "@o", context.Offset);
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        if (config.Commit == CommitMode.Transactional)
        {
            context.GetKafkaTransaction().Produce(context.Topic + ".out", new Message<byte[]?, byte[]?>
            {
                Key = context.HasKey ? context.Key.ToArray() : null,
                Value = Encoding.ASCII.GetBytes($"{context.Partition}:{context.Offset}"),
            });
        }
    }

    private static void AddParameter(DbCommand command, string name, object value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value;
        command.Parameters.Add(parameter);
    }
}

#if !TORTURE_OLD_LIBRARY
/// <summary>A batch handler running each record's job in offset order; any job's failure fails the whole batch, which the library then isolates.</summary>
public sealed class JobBatchHandler(JobRunner runner) : IBatchMessageHandler<Job>
{
    public ValueTask HandleAsync(MessageBatch<Job> batch, CancellationToken cancellationToken) =>
        runner.RunBatchAsync(batch.Select(item => ((Job?)item.Message, item.Context)).ToList(), cancellationToken);
}

public sealed class TranslatedJobBatchHandler(JobRunner runner) : IBatchMessageHandler<TranslatedJob>
{
    public ValueTask HandleAsync(MessageBatch<TranslatedJob> batch, CancellationToken cancellationToken) =>
        runner.RunBatchAsync(batch.Select(item => (item.Message?.Job, item.Context)).ToList(), cancellationToken);
}
#endif

public sealed class JobHandler(JobRunner runner) : IMessageHandler<Job>
{
    public ValueTask HandleAsync(Job message, MessageContext context, CancellationToken cancellationToken) => runner.RunAsync(message, context, cancellationToken);
}

public sealed class TranslatedJobHandler(JobRunner runner) : IMessageHandler<TranslatedJob>
{
    public ValueTask HandleAsync(TranslatedJob message, MessageContext context, CancellationToken cancellationToken) => runner.RunAsync(message?.Job, context, cancellationToken);
}

/// <summary>JSON, except that a tombstone (under <c>Tombstones: Handle</c>) is a job of its own: a deletion, as on a compacted topic.</summary>
public sealed class JobDeserializer : IMessageDeserializer<Job>
{
    private readonly JsonMessageDeserializer<Job> _json = new(TortureJson.Default.Job);

    public Job Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) =>
        isNull ? new Job(-1, string.Empty, RecordKind.Tombstone, 0, 0) : _json.Deserialize(value, isNull, context);
}

public sealed class JobTranslator : IMessageTranslator<Job, TranslatedJob>
{
    public TranslatedJob Translate(Job message, MessageContext context) =>
        message?.Do == RecordKind.Untranslatable ? throw new FormatException($"job {message.Id} cannot be translated") : new TranslatedJob(message!);
}

#if !TORTURE_OLD_LIBRARY
/// <summary>
/// The jobs' deserializer as a schema registry's would be: asynchronous, and depending on a (simulated) registry that a
/// <see cref="FaultKind.RegistryDown"/> fault takes down, by creating a file every member process sees. While it exists,
/// deserializing throws <see cref="DependencyUnavailableException"/>: the records must wait, never be dead-lettered.
/// </summary>
public sealed class AsyncJobDeserializer(string? downFlag) : IAsyncMessageDeserializer<Job>
{
    private static readonly long CheckEvery = Stopwatch.Frequency / 50;
    private readonly JobDeserializer _inner = new();
    private long _checkedAt;
    private volatile bool _down;

    public async ValueTask<Job> DeserializeAsync(ReadOnlyMemory<byte> value, bool isNull, MessageContext context, CancellationToken cancellationToken)
    {
        if (IsDown())
        {
            // As a client whose request failed: asynchronously.
            await Task.Yield();
            throw new DependencyUnavailableException("torture: the schema registry is down");
        }

        return _inner.Deserialize(value.Span, isNull, context);
    }

    /// <summary>Looks at the flag at most every 20 ms (a file system call per record would dominate the run).</summary>
    private bool IsDown()
    {
        if (downFlag is null)
        {
            return false;
        }

        var now = Stopwatch.GetTimestamp();
        var last = Volatile.Read(ref _checkedAt);
        if (now - last >= CheckEvery && Interlocked.CompareExchange(ref _checkedAt, now, last) == last)
        {
            _down = File.Exists(downFlag);
        }

        return _down;
    }
}
#endif

/// <summary>Builds the host of one member from a run's configuration.</summary>
public static class MemberHost
{
    public static IHost Build(TortureConfig config, MemberEnvironment environment, int member, long incarnation, Journal journal, ILoggerProvider? logs, ClientFaults? clientFaults = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders().SetMinimumLevel(RunLogs.MinimumLevel);
        if (logs is not null)
        {
            builder.Logging.AddProvider(logs);
        }

        // Longer than the library's own bounds (drain, commit, leave): the library must stop by itself.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromMilliseconds(config.ShutdownTimeoutMs + config.RevokeTimeoutMs + 60_000));
        var epochs = new EpochTracker(incarnation);
        builder.Services.AddSingleton(epochs);
        builder.Services.AddSingleton<DeferredAcker>();
#if !TORTURE_OLD_LIBRARY
        if (clientFaults is not null)
        {
            builder.Services.AddSingleton<Kafka.Reliable.Consuming.IClientInterceptor>(new ClientFaultInterceptor(clientFaults));
        }
#endif
        builder.Services.AddSingleton(sp => new JobRunner(config, member, journal, epochs, sp.GetRequiredService<DeferredAcker>()));
        var consumer = builder.Services.AddReliableConsumer<Job>("torture", o => Configure(o, config, environment, member));
#if !TORTURE_OLD_LIBRARY
        // The library before issue 14 took the store before the translator only, and no connection of the application's.
        if (config.ApplicationConnection)
        {
            RegisterApplicationConnection(builder.Services, config, environment);
        }

        if (config.HandlerFirst)
        {
            // The builder takes its calls in any order: the handler (and translator) first, the store and the rest after it.
            if (config.Translator)
            {
                var translated = WithHandler(consumer.WithTranslator<JobTranslator, TranslatedJob>(), config);
                UseStore(translated, config, environment);
                WithJobDeserializer(translated.WithRebalanceHandler<EpochTracker>(), config, environment);
            }
            else
            {
                UseStore(WithHandler(consumer, config), config, environment);
                WithJobDeserializer(consumer.WithRebalanceHandler<EpochTracker>(), config, environment);
            }

            return builder.Build();
        }
#endif

        WithJobDeserializer(consumer, config, environment).WithRebalanceHandler<EpochTracker>();
        UseStore(consumer, config, environment);
        if (config.Translator)
        {
#if TORTURE_OLD_LIBRARY
            consumer.WithTranslator<JobTranslator, TranslatedJob>().WithHandler<TranslatedJobHandler>(ServiceLifetime.Singleton);
#else
            WithHandler(consumer.WithTranslator<JobTranslator, TranslatedJob>(), config);
#endif
        }
        else
        {
#if TORTURE_OLD_LIBRARY
            consumer.WithHandler<JobHandler>(ServiceLifetime.Singleton);
#else
            WithHandler(consumer, config);
#endif
        }

        return builder.Build();
    }

    /// <summary>The run's deserializer of the jobs: synchronous, or asynchronous with a (simulated) schema registry.</summary>
    private static TBuilder WithJobDeserializer<TBuilder>(TBuilder builder, TortureConfig config, MemberEnvironment environment)
        where TBuilder : IReliableConsumerBuilder<Job>
    {
#if !TORTURE_OLD_LIBRARY
        if (config.RegistryPayload && environment.RegistryUrl is { } registry)
        {
            return builder.WithDeserializer<TBuilder, Job>(new RegistryJobDeserializer(registry, config.Payload));
        }

        if (config.AsyncDeserializer)
        {
            return builder.WithDeserializer<TBuilder, Job>(new AsyncJobDeserializer(environment.RegistryDownFlag));
        }
#endif
        return builder.WithDeserializer<TBuilder, Job>(new JobDeserializer());
    }

#if !TORTURE_OLD_LIBRARY
    /// <summary>The run's handler of the deserialized jobs: a message handler, or a batch handler.</summary>
    private static IReliableConsumerBuilder<Job> WithHandler(IReliableConsumerBuilder<Job> consumer, TortureConfig config) =>
        config.BatchSize > 0 ? consumer.WithBatchHandler<JobBatchHandler>(ServiceLifetime.Singleton) : consumer.WithHandler<JobHandler>(ServiceLifetime.Singleton);

    /// <summary>The run's handler of the translated jobs: a message handler, or a batch handler.</summary>
    private static IReliableConsumerBuilder<Job, TranslatedJob> WithHandler(IReliableConsumerBuilder<Job, TranslatedJob> consumer, TortureConfig config) =>
        config.BatchSize > 0 ? consumer.WithBatchHandler<TranslatedJobBatchHandler>(ServiceLifetime.Singleton) : consumer.WithHandler<TranslatedJobHandler>(ServiceLifetime.Singleton);
#endif

    /// <summary>Chooses the run's idempotency store on the builder (any builder: before or after the translator).</summary>
    private static void UseStore<TBuilder>(TBuilder consumer, TortureConfig config, MemberEnvironment environment)
        where TBuilder : IReliableConsumerBuilder<Job>
    {
#if !TORTURE_OLD_LIBRARY
        var applicationConnection = config.ApplicationConnection;
#endif
        switch (config.Store)
        {
            case StoreKind.InMemory:
                consumer.UseInMemoryIdempotency();
                break;
            case StoreKind.SqliteLease or StoreKind.SqliteTransactional:
                consumer.UseSqliteIdempotency(environment.SqlitePath!, o =>
                {
                    o.Transactional = config.Store == StoreKind.SqliteTransactional;
                    if (config.SqliteTimeoutSeconds > 0)
                    {
                        // A user's connection string with a short command (busy) timeout: waiting for the write lock must not fail records.
                        o.ConnectionString = new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(o.ConnectionString) { DefaultTimeout = config.SqliteTimeoutSeconds }.ToString();
                    }
                });
                break;
#if !TORTURE_OLD_LIBRARY
            case StoreKind.PostgresLease or StoreKind.PostgresTransactional when applicationConnection:
                consumer.UsePostgreSqlIdempotency(o => o.Transactional = config.Store == StoreKind.PostgresTransactional);
                break;
            case StoreKind.Redis when applicationConnection:
                consumer.UseRedisIdempotency(o => o.KeyPrefix = environment.RedisPrefix);
                break;
#endif
            case StoreKind.PostgresLease or StoreKind.PostgresTransactional:
                consumer.UsePostgreSqlIdempotency(environment.Postgres!, o => o.Transactional = config.Store == StoreKind.PostgresTransactional);
                break;
            case StoreKind.Redis:
                consumer.UseRedisIdempotency(environment.Redis!, o => o.KeyPrefix = environment.RedisPrefix);
                break;
            default:
                break;
        }
    }

#if !TORTURE_OLD_LIBRARY
    /// <summary>
    /// Registers the connection the application shares with the store, as an application with its own use of the database
    /// would: a data source, or a multiplexer that comes up even while Redis is down (the store's outages are a fault here).
    /// </summary>
    private static void RegisterApplicationConnection(IServiceCollection services, TortureConfig config, MemberEnvironment environment)
    {
        if (config.Store is StoreKind.PostgresLease or StoreKind.PostgresTransactional)
        {
            services.AddSingleton(_ => Npgsql.NpgsqlDataSource.Create(environment.Postgres!));
        }
        else if (config.Store == StoreKind.Redis)
        {
            services.AddSingleton<StackExchange.Redis.IConnectionMultiplexer>(_ =>
            {
                var options = StackExchange.Redis.ConfigurationOptions.Parse(environment.Redis!);
                options.AbortOnConnectFail = false;
                return StackExchange.Redis.ConnectionMultiplexer.Connect(options);
            });
        }
    }
#endif

    private static void Configure(ReliableConsumerOptions o, TortureConfig config, MemberEnvironment environment, int member)
    {
        o.BootstrapServers = environment.BootstrapServers;
        o.GroupId = environment.Group;
        o.Topics.Add(environment.Topic);
        o.Dispatch = config.Dispatch;
        o.MaxInFlight = config.MaxInFlight;
        if (config.PartitionBufferSize > 0)
        {
            o.PartitionBufferSize = config.PartitionBufferSize;
        }

#if !TORTURE_OLD_LIBRARY
        if (config.MaxBufferedBytes > 0)
        {
            o.MaxBufferedBytes = config.MaxBufferedBytes;
        }

        if (config.BatchSize > 0)
        {
            o.Batch.MaxSize = config.BatchSize;
            o.Batch.Linger = TimeSpan.FromMilliseconds(config.BatchLingerMs);
            o.Batch.AcrossPartitions = config.BatchAcrossPartitions;
        }
#endif
        o.Commit.Strategy = config.Commit switch
        {
            CommitMode.PerMessage => CommitStrategy.PerMessage,
            CommitMode.ManualImmediate or CommitMode.ManualDeferred => CommitStrategy.Manual,
            CommitMode.Transactional => CommitStrategy.Transactional,
            _ => CommitStrategy.Periodic,
        };
        o.Commit.Interval = TimeSpan.FromMilliseconds(200);
        o.Retry.MaxAttempts = config.MaxAttempts;
        o.Retry.Delay = TimeSpan.FromMilliseconds(5);
        o.Retry.MaxDelay = TimeSpan.FromMilliseconds(50);
#if !TORTURE_OLD_LIBRARY
        if (config.TierCount > 0)
        {
            // The retry topic is <topic>.retry, created by the run with the topic's partitions.
            o.RetryTiers.Enabled = true;
            o.RetryTiers.Ordering = config.RetryTiers == RetryTierMode.Unordered ? RetryTierOrdering.Unordered : RetryTierOrdering.Ordered;
            foreach (var delay in config.RetryTierDelaysMs!)
            {
                o.RetryTiers.Delays.Add(TimeSpan.FromMilliseconds(delay));
            }
        }
#endif
        o.CircuitBreaker.Enabled = config.CircuitBreaker;
        o.CircuitBreaker.MinimumThroughput = 2;
        o.CircuitBreaker.SamplingDuration = TimeSpan.FromMilliseconds(TortureConfig.BreakerSamplingMs);
        o.CircuitBreaker.BreakDuration = TimeSpan.FromMilliseconds(700);
        o.Watchdog.RestartWhenStuck = config.Watchdog;
        // Longer than the slowest handler the records ask for (a Slower record takes the longest timeout + 1.5 s, a Stubborn one
        // StubbornMs): the watchdog is for consumers that are stuck, and one that restarts a healthy slow handler every time
        // would never finish it (seed 2872 did that with a Stubborn record slower than StuckAfter: a restart every 18 s, for ever).
        // (A triggered change implies stalling records: Draw gives triggers only to runs with Stalls > 0.)
        var slowest = config.Stalls > 0
            ? TortureConfig.StubbornMs
            : Math.Max(config.RevokeTimeoutMs, config.ShutdownTimeoutMs) + 1_500;
        o.Watchdog.StuckAfter = TimeSpan.FromMilliseconds(slowest + 4_000);
        o.Tombstones = config.Tombstones;
        if (config.MaxPayloadBytes > 0)
        {
            o.MaxPayloadBytes = config.MaxPayloadBytes;
        }

        o.RevokeTimeout = TimeSpan.FromMilliseconds(config.RevokeTimeoutMs);
        o.ShutdownTimeout = TimeSpan.FromMilliseconds(config.ShutdownTimeoutMs);
        o.Idempotency.LeaseDuration = TimeSpan.FromSeconds(3);
#if !TORTURE_OLD_LIBRARY
        o.GroupProtocol = config.Protocol == ProtocolKind.Consumer ? GroupProtocol.Consumer : GroupProtocol.Classic;
        if (config.StaticMembers)
        {
            o.GroupInstanceId = $"torture-member-{member}";
        }

        if (config.Protocol == ProtocolKind.Classic)
#endif
        {
            // Under the consumer protocol the broker's (the run sets the same on the embedded cluster).
            o.KafkaSettings["session.timeout.ms"] = "6000";
            o.KafkaSettings["heartbeat.interval.ms"] = "500";
        }

        o.KafkaSettings["topic.metadata.refresh.interval.ms"] = "1000";
        if (RunLogs.ClientDebug is { } debug)
        {
            o.KafkaSettings["debug"] = debug;
        }
    }
}
