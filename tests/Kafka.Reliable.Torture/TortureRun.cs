using Kafka.Reliable.DeadLetter;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;
using Kafka.Reliable.Idempotency.Tests.Infrastructure;
using Kafka.Reliable.Testing;
using Microsoft.Data.Sqlite;

namespace Kafka.Reliable.Torture;

/// <summary>The result of one run: its configuration, whether the validator refused it, what it did, what it violated.</summary>
public sealed record RunResult(TortureConfig Config, string? Refused, IReadOnlyList<Violation> Violations, RunStats Stats, string LogTail)
{
    public bool Passed => Violations.Count == 0;

    /// <summary>Everything needed to understand and replay a failed run.</summary>
    public string Report()
    {
        var text = new System.Text.StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{Config.Describe()}");
        text.AppendLine(CultureInfo.InvariantCulture, $"  replay: dotnet run --project tests/Kafka.Reliable.Torture -c Release -- --seed {Config.Seed}   (as seeds draw now; a regression case replays with --replay <name>)");
        text.AppendLine("  keep it: save {\"Found\": \"<what it found>\", \"Config\": <the configuration below>} as tests/Kafka.Reliable.Torture/Regressions/<name>.json (replayed by CI whatever Draw becomes)");
        text.AppendLine(CultureInfo.InvariantCulture, $"  configuration: {Config.ToJson()}");
        if (Refused is not null)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  refused by the validator: {Refused}");
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"  {Stats}");
        foreach (var violation in Violations)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  VIOLATION {violation.Invariant}: {violation.Detail}");
        }

        if (Violations.Count > 0)
        {
            text.AppendLine("  last log lines:");
            text.AppendLine(LogTail);
        }

        return text.ToString();
    }
}

/// <summary>A broken invariant, with the records that break it.</summary>
public sealed record Violation(string Invariant, string Detail);

public sealed record RunStats(int Records, int Executions, int DeadLetters, int FaultsInjected, int MembersStarted, int Kills, int CommitSamples, TimeSpan Duration)
{
    /// <summary>Gets what the library logged that the faults were meant to cause (lost partitions, drains that timed out, ...), as counts.</summary>
    public string Events { get; init; } = string.Empty;

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"records {Records}, handler executions {Executions}, dead letters {DeadLetters}, faults injected {FaultsInjected}, members started {MembersStarted}, kills {Kills}, commit samples {CommitSamples}, {Duration.TotalSeconds:0.0} s{(Events.Length > 0 ? ", events: " + Events : string.Empty)}");
}

/// <summary>
/// One torture run: a fresh embedded cluster of three brokers, the drawn records produced up front, then the members of
/// one group consume them while the fault and membership schedules play out; the run ends when every record is resolved
/// and committed (or the liveness bound passes), and the invariants are checked against everything observed.
/// </summary>
public sealed class TortureRun
{
    /// <summary>How long the group may make no progress at all once the last fault and membership change are past.</summary>
    public static readonly TimeSpan LivenessBound = TimeSpan.FromSeconds(45);

    /// <summary>The longest a run may take before it is failed as not done.</summary>
    public static readonly TimeSpan RunCap = TimeSpan.FromMinutes(8);

    private readonly TortureConfig _config;
    private readonly TortureEnvironment _environment;
    private readonly Journal _journal = new();
    private readonly RunLogs _logs = new();
    private readonly List<(long Ticks, int Partition, long Offset)> _commitSamples = [];
    private readonly Dictionary<(int, long), DeadLetterCopy> _deadLetters = [];
    private readonly Dictionary<(int, long), List<RetryCopy>> _retryCopies = [];
    private readonly Dictionary<int, long> _retryEnds = [];
    private readonly List<(long Ticks, int Partition, long Offset)> _retryCommitSamples = [];
    private readonly Lock _gate = new();
    private readonly List<MemberHandle> _running = [];
    private readonly List<string> _childJournals = [];
    private readonly Action<string>? _progress;
    private readonly ClientFaults _clientFaults = new();
    private readonly Dictionary<int, long> _mostBuffered = [];
    private readonly Dictionary<int, long> _mostBufferedBytes = [];
    private readonly Dictionary<(int, long), long> _lastDeadLetter = [];
    private readonly List<OffsetReset> _resets = [];
    private readonly List<Violation> _stopFailures = [];
    private readonly Dictionary<long, long> _ended = [];
    private int _storeOutages;
    private Func<Task>? _storeUndo;
    private int _lateRedisPort;
    private RedisServer? _lateRedis;
    private string _runDirectory = string.Empty;
    private long _incarnations;
    private int _faultsInjected;
    private int _kills;
    private int _started;

    public TortureRun(TortureConfig config, TortureEnvironment environment, Action<string>? progress = null)
    {
        _config = config;
        _environment = environment;
        _progress = progress;
    }

    public static Task<RunResult> RunAsync(int seed, TortureEnvironment environment, Action<string>? progress = null) =>
        new TortureRun(TortureConfig.Draw(seed), environment, progress).RunAsync();

    public async Task<RunResult> RunAsync()
    {
        var clock = Stopwatch.StartNew();
        var run = string.Create(CultureInfo.InvariantCulture, $"s{(uint)_config.Seed}_{Guid.NewGuid().ToString("N")[..6]}");
        var runDirectory = Path.Combine(_environment.Directory, run);
        _runDirectory = runDirectory;
        Directory.CreateDirectory(runDirectory);
        var violations = new List<Violation>();
        var records = Workload.Draw(_config);

        await using var cluster = EmbeddedKafkaCluster.Start(new EmbeddedKafkaClusterOptions { BrokerCount = 3 });
#if !TORTURE_OLD_LIBRARY
        // The consumer protocol's session settings are the broker's: the same as the classic members'.
        cluster.SetConsumerGroupSessionTimeout(TimeSpan.FromMilliseconds(TortureConfig.SessionTimeoutMs));
        cluster.SetConsumerGroupHeartbeatInterval(TimeSpan.FromMilliseconds(500));
#endif
        var topic = "torture-" + run;
        cluster.CreateTopic(topic, _config.Partitions, replicationFactor: 3);
        cluster.CreateTopic(topic + ".dlq", _config.Partitions, replicationFactor: 3);
        if (_config.TierCount > 0)
        {
            // Retry tiers park partition P's records in partition P of <topic>.retry.
            cluster.CreateTopic(topic + ".retry", _config.Partitions, replicationFactor: 3);
        }

        cluster.CreateTopic(topic + ".out", _config.Partitions, replicationFactor: 3);
        var store = await _environment.PrepareStoreAsync(_config.Store, run);
        if (_config.Store == StoreKind.Redis && _config.Faults.Any(f => f.Kind == FaultKind.StoreDown && f.BeforeStart))
        {
            // Redis down at first use: nothing listens on the members' port until the outage ends (connections refused, not
            // hanging); then a server of the run's own starts there.
            _lateRedisPort = FreePort.Next();
            store = store with { Redis = string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{_lateRedisPort}") };
        }

#if TORTURE_OLD_LIBRARY
        string? registryUrl = null;
#else
        // Jobs framed for a Schema Registry: a registry of the run's own, its schemas registered first (the drawn records name their ids).
        using var registry = _config.RegistryPayload ? EmbeddedSchemaRegistry.Start() : null;
        if (registry is not null)
        {
            RegistryJobs.Register(registry, _config.Payload);
        }

        _registry = registry;
        var registryUrl = registry?.Url;
#endif
        var environment = new MemberEnvironment(
            cluster.BootstrapServers, topic, "g-" + run, store.Postgres, store.Sqlite, store.Redis, run + ":", Path.Combine(runDirectory, "registry-down"), registryUrl);
        await File.WriteAllTextAsync(Path.Combine(runDirectory, "config.json"), _config.ToJson());
        await File.WriteAllTextAsync(Path.Combine(runDirectory, "environment.json"), JsonSerializer.Serialize(environment));

        if (Coverage.Refusal(_config, cluster.BootstrapServers) is { } refusal)
        {
            return new RunResult(_config, refusal, [], new RunStats(records.Count, 0, 0, 0, 0, 0, 0, clock.Elapsed), string.Empty);
        }

        // First the probe of the poll thread's handshake with the workers, whose race the consuming below cannot reach.
        if (await Task.Factory.StartNew(() => HandshakeProbe.Run(_config.Seed), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default) is { } lostWakeup)
        {
            violations.Add(new Violation("liveness (handshake probe)", lostWakeup));
        }

        // A first wave before the members start; the rest arrives in waves while the faults and membership changes play out,
        // so that they meet records in flight however fast the configuration consumes.
        var firstWave = records.Count * 2 / 5;
        await ProduceAsync(cluster.BootstrapServers, topic, records, 0, firstWave, null);

        // The cluster's own threads, all started by now (it has served the producer, which is disposed).
        var baselineThreads = LibrdkafkaThreads();
        var lastScheduled = TimeSpan.FromMilliseconds(Math.Max(_config.FaultsEndMs, _config.Membership.Max(m => m.AtMs)));
        var lastChange = lastScheduled;
        if (_config.Faults.Any(f => f.WhileInFlight is not null) || _config.Membership.Any(m => m.WhileInFlight is not null))
        {
            // A triggered change happens when its handler runs, at most this much after its scheduled time.
            lastChange += TimeSpan.FromMilliseconds(TortureConfig.TriggerWaitMs);
        }

        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(() => SampleCommits(environment, stop.Token));
        var deadLetterReader = Task.Run(() => ReadDeadLetters(environment, stop.Token));
        var retryReader = _config.TierCount > 0 ? Task.Run(() => ReadRetryTopic(environment, stop.Token)) : Task.CompletedTask;
        var bufferSampler = Task.Run(() => SampleBuffers(environment, stop.Token));

        // Faults in place before the first member starts (a store down at first use), undone on the schedule's clock.
        var early = new List<(Fault Fault, Func<Task> Undo)>();
        foreach (var fault in _config.Faults.Where(f => f.BeforeStart))
        {
            if (await ApplyAsync(cluster, environment, fault) is { } undo)
            {
                Interlocked.Increment(ref _faultsInjected);
                early.Add((fault, undo));
            }
        }

        if (_config.Commit == CommitMode.Transactional)
        {
            // With Kafka transactions only the transactions may commit offsets: the brokers' record of requests shows whether
            // any member also made a plain commit (the broker does not keep the transactions' offsets, so this is what it can see).
            cluster.StartRequestTracking();
        }

        var start = Stopwatch.StartNew();
        var faults = Task.Run(() => DriveFaultsAsync(cluster, environment, start, early, records, stop.Token));
        var waves = Task.Run(() => ProduceAsync(cluster.BootstrapServers, topic, records, firstWave, records.Count, (start, lastScheduled)));

        // The drawn records and, once they are resolved, the epilogue's.
        var all = records;
        string? livenessFailure = null;
        try
        {
            await DriveMembershipAsync(environment, runDirectory, start, records);
            await waves;
            var highWatermarks = records.GroupBy(r => r.Partition).ToDictionary(g => g.Key, g => g.Max(r => r.Offset) + 1);
            livenessFailure = await WaitUntilDoneAsync(records, highWatermarks, start, lastChange);
            if (livenessFailure is null)
            {
                // The epilogue is about the state the faults leave behind: it starts once the last one is undone.
                await faults;
            }

            foreach (var step in livenessFailure is null ? Workload.Epilogue(_config) : [])
            {
                // Nothing stays paused: an idle consumer meets a failing record, then one more record on every partition. Idle
                // for longer than the breaker's sampling window first, so that the failing record's attempts are all it counts.
                if (step[0].Kind == RecordKind.Exhaust && _config.CircuitBreaker)
                {
                    await Task.Delay(TortureConfig.BreakerSamplingMs + 500);
                }

                await ProduceAsync(cluster.BootstrapServers, topic, step, 0, step.Count, null);
                all = [.. all, .. step];
                foreach (var record in step)
                {
                    highWatermarks[record.Partition] = record.Offset + 1;
                }

                if (await WaitUntilDoneAsync(all, highWatermarks, start, start.Elapsed) is { } paused)
                {
                    livenessFailure = $"nothing stays paused: in the epilogue produced once every drawn record was resolved ({string.Join(", ", step.Select(r => $"{r.Kind} on p{r.Partition}"))}): {paused}";
                    break;
                }
            }
        }
        finally
        {
            await StopMembersAsync();
            await stop.CancelAsync();
            await Task.WhenAll(sampler, deadLetterReader, retryReader, faults, bufferSampler);
            RestoreCluster(cluster);
        }

        var commitRequests = _config.Commit == CommitMode.Transactional
            ? cluster.GetTrackedRequests().Where(r => r.ApiKey is KafkaApiKey.OffsetCommit or KafkaApiKey.TxnOffsetCommit).CountBy(r => r.ApiKey).ToDictionary()
            : null;
        if (DroppedByTheBroker(environment) is { } dropped)
        {
            violations.Add(new Violation("embedded broker limit", dropped));
        }

        foreach (var path in _childJournals)
        {
            _journal.Load(path);
        }

        if (_lateRedis is not null)
        {
            await _lateRedis.DisposeAsync();
        }

        var effects = await TortureEnvironment.ReadEffectsAsync(_config.Store, environment);
        if (livenessFailure is not null)
        {
            violations.Add(new Violation("liveness", livenessFailure));
        }

        violations.AddRange(_stopFailures);

        violations.AddRange(new Invariants(_config, all, _journal.Executions.ToList(), _deadLetters, effects, _commitSamples, _logs, _kills)
        {
            Resets = _resets,
            LastDeadLetter = _lastDeadLetter,
            Ended = _ended,
            CommitRequests = commitRequests,
            RetryCopies = _retryCopies.ToDictionary(c => c.Key, c => (IReadOnlyList<RetryCopy>)c.Value),
        }.Check());
        if (BufferFailure() is { } overflow)
        {
            violations.Add(new Violation("memory bounded by the buffers", overflow));
        }
        // A stop abandoned at its bound (log 112) leaves its client's threads to end on their own, maybe never: not a leak of the run's.
        if (!_logs.Entries.Any(e => e.EventId == 112) && HygieneFailure(baselineThreads) is { } leak)
        {
            violations.Add(new Violation("hygiene", leak));
        }

        var stats = new RunStats(all.Count, _journal.Executions.Count, _deadLetters.Count, _faultsInjected, _started, _kills, _commitSamples.Count, clock.Elapsed)
        {
            Events = string.Join(", ", new[] { _logs.Summary(), _resets.Count > 0 ? $"partitions reset {_resets.Count}" : string.Empty, RetryTierSummary() }.Where(e => e.Length > 0)),
        };
        var tail = _logs.Tail(60);
        if (violations.Count > 0)
        {
            // Every line the members logged, for the failures the last lines do not explain.
            var logFile = Path.Combine(Path.GetTempPath(), $"torture-{run}.log");
            await File.WriteAllTextAsync(logFile, _logs.Tail(int.MaxValue));
            tail += $"{Environment.NewLine}  (every log line of the run: {logFile})";
        }

        _progress?.Invoke($"{(violations.Count == 0 ? "ok  " : "FAIL")} {_config.Describe()} | {stats}");
        try
        {
            Directory.Delete(runDirectory, recursive: true);
        }
        catch (IOException)
        {
            // Left in the temp folder; the environment removes it.
        }

        return new RunResult(_config, null, violations, stats, tail);
    }

    /// <summary>With retry tiers, how much went through them: records parked (behind their key), copies written, successes from a tier.</summary>
    private string RetryTierSummary()
    {
        if (_config.TierCount == 0)
        {
            return string.Empty;
        }

        lock (_gate)
        {
            var behind = _retryCopies.Count(c => c.Value.Any(copy => copy.Tier == 0));
            var fromTiers = _journal.Executions.Count(e => e.Succeeded && e.Tier > 0);
            return string.Create(CultureInfo.InvariantCulture, $"records parked {_retryCopies.Count} ({behind} behind their key), retry copies {_retryCopies.Sum(c => c.Value.Count)}, handled from a tier {fromTiers}");
        }
    }

    /// <summary>Produces records [from, to): at once, or in five waves spread until a little after the last scheduled change; sets where each landed.</summary>
    private static async Task ProduceAsync(string bootstrapServers, string topic, List<RecordSpec> records, int from, int to, (Stopwatch Clock, TimeSpan LastChange)? spread)
    {
        using var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig
        {
            BootstrapServers = bootstrapServers,
            MessageMaxBytes = 4 * 1024 * 1024,
            LingerMs = 5,
            EnableIdempotence = true,
        }).SetLogHandler(static (_, _) => { }).Build();
        const int Waves = 5;
        var span = spread is { } s ? Max(s.LastChange, TimeSpan.FromSeconds(3)) + TimeSpan.FromSeconds(1) : TimeSpan.Zero;
        for (var wave = 0; wave < (spread is null ? 1 : Waves); wave++)
        {
            var (first, last) = spread is null ? (from, to) : (from + ((to - from) * wave / Waves), from + ((to - from) * (wave + 1) / Waves));
            if (spread is { } timing && span * (wave + 1) / Waves - timing.Clock.Elapsed is { } wait && wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }

            var pending = records.Skip(first).Take(last - first).Select(r =>
            {
                var message = new Message<byte[]?, byte[]?> { Key = System.Text.Encoding.UTF8.GetBytes(r.Key), Value = r.Value };

                // A record that names its partition (the epilogue's) goes there; the drawn ones go where their key hashes.
                return r.Partition >= 0 ? producer.ProduceAsync(new TopicPartition(topic, r.Partition), message) : producer.ProduceAsync(topic, message);
            }).ToList();
            var results = await Task.WhenAll(pending);
            for (var i = 0; i < results.Length; i++)
            {
                // Set before the record counts as produced (an offset of -1 means not yet).
                records[first + i].Partition = results[i].Partition.Value;
                records[first + i].Offset = results[i].Offset.Value;
            }
        }
    }

    private async Task DriveMembershipAsync(MemberEnvironment environment, string runDirectory, Stopwatch start, List<RecordSpec> records)
    {
        foreach (var change in _config.Membership)
        {
            var wait = TimeSpan.FromMilliseconds(change.AtMs) - start.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }

            if (change.WhileInFlight is { } kind)
            {
                await WaitForHandlerAsync(records, kind, change.Member, CancellationToken.None);
            }

            MemberHandle? current;
            lock (_gate)
            {
                current = _running.FirstOrDefault(m => m.Member == change.Member);
            }

            switch (change.Action)
            {
                case MemberAction.Join when current is null:
                    await StartMemberAsync(environment, runDirectory, change.Member);
                    break;
                case MemberAction.Leave when current is not null:
                    Forget(current);
                    await EndAsync(current, graceful: true);
                    break;
                case MemberAction.Reset:
                    await ResetOffsetsAsync(environment, runDirectory);
                    break;
                case MemberAction.Dispose or MemberAction.Kill when current is not null:
                    Forget(current);
                    await EndAsync(current, graceful: false);
                    if (change.Action == MemberAction.Kill)
                    {
                        _kills++;
                        await StartMemberAsync(environment, runDirectory, change.Member);
                    }

                    break;
                default:
                    break;
            }
        }
    }

    /// <summary>
    /// An operator's offsets reset: every member stops gracefully (the group is empty), each partition's committed offset is
    /// moved back to half of what it was, and the same members start again.
    /// </summary>
    private async Task ResetOffsetsAsync(MemberEnvironment environment, string runDirectory)
    {
        var running = await StopMembersAsync();

        // The embedded broker takes offsets only from a member of the group (as kafka-reliable offsets reset does there): join
        // it alone, with the members' session timeout and assignor, and commit once every partition is assigned. A killed
        // member's session may hold the group for a while: the join waits it out. Faults may refuse the calls for a while:
        // they are retried with the same targets; a reset that cannot be made is not recorded, and the members start again.
        try
        {
            var assigned = 0;
            var resetConfig = new ConsumerConfig
            {
                BootstrapServers = environment.BootstrapServers,
                GroupId = environment.Group,
                EnableAutoCommit = false,
            };
            if (_config.Protocol == ProtocolKind.Consumer)
            {
                // The members' protocol: the group is a consumer-protocol group.
                resetConfig.GroupProtocol = Confluent.Kafka.GroupProtocol.Consumer;
            }
            else
            {
                (resetConfig.SessionTimeoutMs, resetConfig.PartitionAssignmentStrategy) = (TortureConfig.SessionTimeoutMs, PartitionAssignmentStrategy.CooperativeSticky);
            }

            using var client = new ConsumerBuilder<Ignore, Ignore>(resetConfig).SetLogHandler(static (_, _) => { }).SetPartitionsAssignedHandler((_, partitions) => assigned += partitions.Count).Build();
            client.Subscribe(environment.Topic);
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (assigned < _config.Partitions && DateTime.UtcNow < deadline)
            {
                client.Consume(TimeSpan.FromMilliseconds(100));
            }

            var partitions = Enumerable.Range(0, _config.Partitions).Select(p => new TopicPartition(environment.Topic, p)).ToList();
            List<TopicPartitionOffset>? committed = null;
            while (assigned >= _config.Partitions && DateTime.UtcNow < deadline)
            {
                try
                {
                    committed ??= client.Committed(partitions, TimeSpan.FromSeconds(5)).Where(c => c.Offset.Value > 0).ToList();
                    var before = DateTime.UtcNow.Ticks;
                    if (committed.Count > 0)
                    {
                        client.Commit(committed.Select(c => new TopicPartitionOffset(c.TopicPartition, c.Offset.Value / 2)));
                    }

                    var after = DateTime.UtcNow.Ticks;
                    lock (_gate)
                    {
                        _resets.AddRange(committed.Select(c => new OffsetReset(before, after, c.Partition.Value, c.Offset.Value, c.Offset.Value / 2)));
                    }

                    break;
                }
                catch (KafkaException)
                {
                    await Task.Delay(500);
                }
            }

            client.Close();
        }
        finally
        {
            foreach (var member in running.Select(m => m.Member).Distinct())
            {
                await StartMemberAsync(environment, runDirectory, member);
            }
        }
    }

    private async Task StartMemberAsync(MemberEnvironment environment, string runDirectory, int member)
    {
        var incarnation = Interlocked.Increment(ref _incarnations);
        MemberHandle handle;
        if (_config.ChildProcesses)
        {
            _childJournals.Add(ChildMember.JournalPath(runDirectory, member, incarnation));
            handle = ChildMember.Start(_environment, runDirectory, member, incarnation, _logs);
        }
        else
        {
            handle = await InProcessMember.StartAsync(_config, environment, member, incarnation, _journal, _logs, _clientFaults);
        }

        _started++;
        lock (_gate)
        {
            _running.Add(handle);
        }
    }

    private void Forget(MemberHandle member)
    {
        lock (_gate)
        {
            _running.Remove(member);
        }
    }

    /// <summary>Stops every running member gracefully; returns them.</summary>
    private async Task<List<MemberHandle>> StopMembersAsync()
    {
        List<MemberHandle> running;
        lock (_gate)
        {
            running = [.. _running];
            _running.Clear();
        }

        foreach (var member in running)
        {
            await EndAsync(member, graceful: true);
        }

        return running;
    }

    /// <summary>Stops a member (gracefully, or by disposal or SIGKILL); a member that fails or hangs while stopping is a violation, not a harness failure.</summary>
    private async Task EndAsync(MemberHandle member, bool graceful)
    {
        try
        {
            if (graceful)
            {
                await member.StopAsync();
            }
            else
            {
                await member.AbandonAsync();
            }

            lock (_gate)
            {
                _ended[member.Incarnation] = DateTime.UtcNow.Ticks;
            }
        }
        catch (Exception ex)
        {
            lock (_gate)
            {
                _stopFailures.Add(new Violation(
                    "members stop cleanly",
                    $"member {member.Member}.{member.Incarnation} {(graceful ? "did not stop" : "could not be disposed")}: {ex.GetType().Name}: {ex.Message}; its last lines:{Environment.NewLine}{_logs.TailOf(member.Member, member.Incarnation, 12)}"));
            }
        }
    }

    /// <summary>
    /// Waits until every record is resolved and, where the broker keeps them, every offset is committed. Liveness is progress:
    /// once the last fault and membership change are past, the run fails if nothing is resolved and no offset moves for
    /// <see cref="LivenessBound"/> (a stall), or if it is not done within <see cref="RunCap"/> at all. A slow configuration
    /// (tiny buffers, slow handlers) is not a stall. Returns why not done, if not.
    /// </summary>
    private async Task<string?> WaitUntilDoneAsync(List<RecordSpec> records, Dictionary<int, long> highWatermarks, Stopwatch start, TimeSpan lastChange)
    {
        // The embedded broker does not keep offsets committed in Kafka transactions: there, completion is the records alone.
        var offsetsVisible = _config.Commit != CommitMode.Transactional;
        var progress = (-1, -1L, -1);
        var lastProgress = start.Elapsed;
        while (true)
        {
            var (unresolved, attempts) = Unresolved(records);
            var behind = offsetsVisible ? Behind(highWatermarks) : [];
            if (unresolved.Count == 0 && behind.Count == 0)
            {
                return null;
            }

            // Progress is a record resolved, an offset committed, or a handler attempt started: isolating a failing record
            // in a batch that also holds a Stubborn one (18 s an attempt) resolves nothing for a minute or more, but is not a
            // stall (seed 1629136909). Attempts that never end resolve nothing: RunCap bounds them.
            var now = (unresolved.Count, behind.Sum(b => b.Committed), attempts);
            if (now != progress)
            {
                progress = now;
                lastProgress = start.Elapsed;
            }

            var stalled = start.Elapsed > lastChange && start.Elapsed - Max(lastProgress, lastChange) > LivenessBound;
            if (stalled || start.Elapsed > RunCap)
            {
                return string.Create(CultureInfo.InvariantCulture,
                    $"{(stalled ? $"no progress for {LivenessBound.TotalSeconds:0} s after the last fault and membership change" : $"not done after {RunCap.TotalMinutes:0} min")}: " +
                    $"{unresolved.Count} record(s) unresolved (first: {string.Join(", ", unresolved.Take(8).Select(r => $"p{r.Partition}@{r.Offset} {r.Kind}"))}); " +
                    $"committed behind the end: {string.Join(", ", behind.Select(b => $"{b.Partition} {b.Committed}/{b.End}"))}");
            }

            await Task.Delay(200);
        }
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    /// <summary>The records not resolved yet, and how many handler executions the members have started (failed ones included).</summary>
    private (List<RecordSpec> Unresolved, int Attempts) Unresolved(List<RecordSpec> records)
    {
        var executions = _journal.Executions.ToList();
        var handled = new HashSet<(int, long)>(executions.Where(e => e.Succeeded).Select(e => (e.Partition, e.Offset)));
        var attempts = executions.Count;
        foreach (var path in _childJournals)
        {
            var child = new Journal();
            child.Load(path);
            handled.UnionWith(child.Executions.Where(e => e.Succeeded).Select(e => (e.Partition, e.Offset)));
            attempts += child.Executions.Count;
        }

        lock (_gate)
        {
            return (records.Where(r => r.Offset < 0 || (r.Expected != Outcome.Nothing && !handled.Contains((r.Partition, r.Offset)) && !_deadLetters.ContainsKey((r.Partition, r.Offset)))).ToList(), attempts);
        }
    }

    private List<(string Partition, long Committed, long End)> Behind(Dictionary<int, long> highWatermarks)
    {
        var latest = new Dictionary<int, long>();
        var latestRetry = new Dictionary<int, long>();
        Dictionary<int, long> retryEnds;
        lock (_gate)
        {
            foreach (var sample in _commitSamples)
            {
                latest[sample.Partition] = sample.Offset;
            }

            foreach (var sample in _retryCommitSamples)
            {
                latestRetry[sample.Partition] = sample.Offset;
            }

            retryEnds = new Dictionary<int, long>(_retryEnds);
        }

        // With retry tiers, nothing stays parked either: each retry partition is committed to the end read of it (its copies
        // and their done markers), as far as the run's reader of the retry topic has read it.
        return highWatermarks.Where(h => !latest.TryGetValue(h.Key, out var committed) || committed < h.Value)
            .Select(h => ($"p{h.Key}", latest.GetValueOrDefault(h.Key, -1), h.Value))
            .Concat(retryEnds.Where(h => h.Value > 0 && (!latestRetry.TryGetValue(h.Key, out var committed) || committed < h.Value))
                .Select(h => ($"retry p{h.Key}", latestRetry.GetValueOrDefault(h.Key, -1), h.Value)))
            .ToList();
    }

    private void SampleCommits(MemberEnvironment environment, CancellationToken stop)
    {
        var partitions = Enumerable.Range(0, _config.Partitions).Select(p => new TopicPartition(environment.Topic, p)).ToList();
        if (_config.TierCount > 0)
        {
            partitions.AddRange(Enumerable.Range(0, _config.Partitions).Select(p => new TopicPartition(environment.Topic + ".retry", p)));
        }

        while (!stop.IsCancellationRequested)
        {
            // A client that lost its coordinator in a fault can keep failing after the fault is over (seed 1037188125 sampled
            // nothing for 45 s after a coordinator outage while the member had committed): after 10 s of failures, a new one.
            using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
            {
                BootstrapServers = environment.BootstrapServers,
                GroupId = environment.Group,
                EnableAutoCommit = false,
            }).SetLogHandler(static (_, _) => { }).Build();
            var failingSince = DateTime.UtcNow;
            while (!stop.IsCancellationRequested && DateTime.UtcNow - failingSince < TimeSpan.FromSeconds(10))
            {
                try
                {
                    var committed = consumer.Committed(partitions, TimeSpan.FromSeconds(5));
                    var ticks = DateTime.UtcNow.Ticks;
                    lock (_gate)
                    {
                        foreach (var c in committed.Where(c => c.Offset.Value >= 0))
                        {
                            (c.Topic == environment.Topic ? _commitSamples : _retryCommitSamples).Add((ticks, c.Partition.Value, c.Offset.Value));
                        }
                    }

                    failingSince = DateTime.UtcNow;
                }
                catch (KafkaException)
                {
                    // A fault may make the coordinator unreachable for a while; the next sample tries again.
                }

                stop.WaitHandle.WaitOne(250);
            }
        }
    }

    /// <summary>
    /// Samples the library's <c>kafka.reliable.records.buffered</c> and <c>kafka.reliable.records.buffered.size</c> gauges of the
    /// members in this process every 50 ms, keeping the most any partition held: the records a member holds in memory are bounded
    /// by <c>PartitionBufferSize</c> per partition, and their bytes by the partition's share of <c>MaxBufferedBytes</c> plus the
    /// record that reached it.
    /// </summary>
    private void SampleBuffers(MemberEnvironment environment, CancellationToken stop)
    {
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == KafkaReliableDiagnostics.MeterName && instrument.Name is "kafka.reliable.records.buffered" or "kafka.reliable.records.buffered.size")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string? group = null;
            string? partition = null;
            foreach (var tag in tags)
            {
                if (tag.Key == KafkaReliableDiagnostics.ConsumerGroupTag)
                {
                    group = tag.Value as string;
                }
                else if (tag.Key == KafkaReliableDiagnostics.PartitionTag)
                {
                    partition = tag.Value as string;
                }
            }

            if (group == environment.Group && int.TryParse(partition, CultureInfo.InvariantCulture, out var p))
            {
                lock (_gate)
                {
                    var most = instrument.Name == "kafka.reliable.records.buffered" ? _mostBuffered : _mostBufferedBytes;
                    most[p] = Math.Max(most.GetValueOrDefault(p), value);
                }
            }
        });
        listener.Start();
        while (!stop.IsCancellationRequested)
        {
            listener.RecordObservableInstruments();
            stop.WaitHandle.WaitOne(50);
        }
    }

    /// <summary>A partition that held more records than its buffer allows, unless the client was refusing pauses.</summary>
    private string? BufferFailure()
    {
        if (_clientFaults.Refused > 0)
        {
            // A refused pause lets the buffer overflow until the pause is made: bounded by the fault, not by the option.
            return null;
        }

        lock (_gate)
        {
            var records = _config.EffectivePartitionBufferSize;
            var bytes = _config.EffectiveMaxBufferedBytes + _config.LargestRecordBytes;
            var over = _mostBuffered.Where(b => b.Value > records).Select(b => $"p{b.Key} held {b.Value} records (PartitionBufferSize {records})")
                .Concat(_mostBufferedBytes.Where(b => b.Value > bytes).Select(b => $"p{b.Key} held {b.Value} bytes (MaxBufferedBytes {_config.EffectiveMaxBufferedBytes} + one record of at most {_config.LargestRecordBytes})"))
                .ToList();
            return over.Count == 0 ? null : string.Join(", ", over);
        }
    }

    private void ReadDeadLetters(MemberEnvironment environment, CancellationToken stop) =>
        ReadTopic(environment, environment.Topic + ".dlq", "dlq-reader", result =>
        {
            if (result.Message.Headers.TryGetLastBytes(DeadLetterHeaders.OriginalPartition, out var partition)
                && result.Message.Headers.TryGetLastBytes(DeadLetterHeaders.OriginalOffset, out var offset))
            {
                var key = (int.Parse(System.Text.Encoding.ASCII.GetString(partition), CultureInfo.InvariantCulture), long.Parse(System.Text.Encoding.ASCII.GetString(offset), CultureInfo.InvariantCulture));
                var truncated = result.Message.Headers.TryGetLastBytes("dlq-value-truncated", out _);
                var history = result.Message.Headers.Count(h => h.Key == RetryHeaders.History);
                lock (_gate)
                {
                    _deadLetters.TryAdd(key, new DeadLetterCopy(result.Message.Value, result.Message.Timestamp.UtcDateTime.Ticks, truncated) { RetryHistory = history });
                    _lastDeadLetter[key] = result.Message.Timestamp.UtcDateTime.Ticks;
                }
            }
        }, stop);

    /// <summary>
    /// Reads the retry topic (with retry tiers): every copy of a parked record (not the done markers), by its original
    /// partition and offset, with when it was written and its tier; and how far each partition was read.
    /// </summary>
    private void ReadRetryTopic(MemberEnvironment environment, CancellationToken stop) =>
        ReadTopic(environment, environment.Topic + ".retry", "retry-reader", result =>
        {
            var headers = result.Message.Headers;
            lock (_gate)
            {
                _retryEnds[result.Partition.Value] = result.Offset.Value + 1;
            }

            if (RetryText(headers, RetryHeaders.Done) is not null
                || !int.TryParse(RetryText(headers, RetryHeaders.OriginalPartition), CultureInfo.InvariantCulture, out var partition)
                || !long.TryParse(RetryText(headers, RetryHeaders.OriginalOffset), CultureInfo.InvariantCulture, out var offset)
                || !int.TryParse(RetryText(headers, RetryHeaders.Tier), CultureInfo.InvariantCulture, out var tier))
            {
                return;
            }

            lock (_gate)
            {
                if (!_retryCopies.TryGetValue((partition, offset), out var copies))
                {
                    _retryCopies[(partition, offset)] = copies = [];
                }

                copies.Add(new RetryCopy(result.Message.Timestamp.UtcDateTime.Ticks, tier, result.Message.Value));
            }
        }, stop);

    /// <summary>The names of <c>RetryTierHeaders</c> the run reads (spelled out: a harness built against a library from before retry tiers has no such class).</summary>
    private static class RetryHeaders
    {
        public const string History = "retry-history";
        public const string Done = "retry-done";
        public const string OriginalPartition = "retry-original-partition";
        public const string OriginalOffset = "retry-original-offset";
        public const string Tier = "retry-tier";
    }

    private static string? RetryText(Headers? headers, string name) =>
        headers is not null && headers.TryGetLastBytes(name, out var bytes) && bytes is not null ? System.Text.Encoding.UTF8.GetString(bytes) : null;

    /// <summary>
    /// Reads a topic of the run from its beginning until the run stops, then to its end, passing each record on. A client whose
    /// partition leader was down in a fault can stop fetching for longer than the liveness bound after the broker is back
    /// (seed 1037188125: a dead letter written 45 s earlier never read): after 10 s without a record, a new client goes on from
    /// where this one was.
    /// </summary>
    private void ReadTopic(MemberEnvironment environment, string topic, string group, Action<ConsumeResult<byte[]?, byte[]?>> read, CancellationToken stop)
    {
        // Where the reading goes on in each partition, kept across clients.
        var next = Enumerable.Range(0, _config.Partitions).ToDictionary(p => p, _ => Offset.Beginning.Value);
        IConsumer<byte[]?, byte[]?> Connect()
        {
            var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig
            {
                BootstrapServers = environment.BootstrapServers,
                GroupId = group,
                EnableAutoCommit = false,
                IsolationLevel = IsolationLevel.ReadUncommitted,
            }).SetLogHandler(static (_, _) => { }).Build();
            consumer.Assign(next.Select(n => new TopicPartitionOffset(topic, n.Key, n.Value)));
            return consumer;
        }

        bool Drain(IConsumer<byte[]?, byte[]?> consumer, TimeSpan wait)
        {
            var any = false;
            while (consumer.Consume(wait) is { } result)
            {
                any = true;
                next[result.Partition.Value] = result.Offset.Value + 1;
                read(result);
                wait = TimeSpan.Zero;
            }

            return any;
        }

        while (!stop.IsCancellationRequested)
        {
            using var consumer = Connect();
            var idleSince = DateTime.UtcNow;
            while (!stop.IsCancellationRequested && DateTime.UtcNow - idleSince < TimeSpan.FromSeconds(10))
            {
                try
                {
                    if (Drain(consumer, TimeSpan.FromMilliseconds(200)))
                    {
                        idleSince = DateTime.UtcNow;
                    }
                }
                catch (ConsumeException)
                {
                    // Faults on the brokers; the next poll goes on.
                }
            }
        }

        // Everything written before the members stopped is in the topic: read to its end, with a fresh client.
        using var last = Connect();
        for (var i = 0; i < 10; i++)
        {
            try
            {
                Drain(last, TimeSpan.FromMilliseconds(300));
            }
            catch (ConsumeException)
            {
            }
        }
    }

    private async Task DriveFaultsAsync(
        EmbeddedKafkaCluster cluster, MemberEnvironment environment, Stopwatch start, List<(Fault Fault, Func<Task> Undo)> early, List<RecordSpec> records, CancellationToken stop)
    {
        var undos = early.ConvertAll(e => UndoLater(e.Undo, e.Fault.ForMs));
        foreach (var fault in _config.Faults.Where(f => !f.BeforeStart).OrderBy(f => f.AtMs))
        {
            var wait = TimeSpan.FromMilliseconds(fault.AtMs) - start.Elapsed;
            try
            {
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, stop);
                }

                if (fault.WhileInFlight is { } kind)
                {
                    await WaitForHandlerAsync(records, kind, null, stop);
                    stop.ThrowIfCancellationRequested();
                }
            }
            catch (OperationCanceledException)
            {
                break;
            }

            var undo = await ApplyAsync(cluster, environment, fault);
            if (undo is null)
            {
                continue;
            }

            Interlocked.Increment(ref _faultsInjected);
            undos.Add(UndoLater(undo, fault.ForMs));
        }

        await Task.WhenAll(undos);

        Task UndoLater(Func<Task> undo, int afterMs) => Task.Run(async () =>
        {
            try
            {
                await Task.Delay(afterMs, stop);
            }
            catch (OperationCanceledException)
            {
                // The run ends: undo now.
            }

            await undo();
        }, CancellationToken.None);
    }

    /// <summary>
    /// Waits until a handler of a record of <paramref name="kind"/> runs (in <paramref name="member"/>, or in any member), for at
    /// most <see cref="TortureConfig.TriggerWaitMs"/>: a triggered change then meets the handler it is meant for.
    /// </summary>
    private async Task WaitForHandlerAsync(List<RecordSpec> records, RecordKind kind, int? member, CancellationToken stop)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(TortureConfig.TriggerWaitMs);
        while (DateTime.UtcNow < deadline && !stop.IsCancellationRequested)
        {
            var wanted = records.Where(r => r.Kind == kind && r.Offset >= 0).Select(r => (r.Partition, r.Offset)).ToHashSet();
            if (wanted.Count > 0 && RunningExecutions(member).Any(e => wanted.Contains((e.Partition, e.Offset))))
            {
                return;
            }

            await Task.Delay(50, CancellationToken.None);
        }
    }

    /// <summary>The handler executions running now: in this process, or as the child processes' journals tell.</summary>
    private IEnumerable<Execution> RunningExecutions(int? member)
    {
        if (!_config.ChildProcesses)
        {
            return _journal.Executions.Where(e => e.EndTicks == 0 && (member is null || e.Member == member));
        }

        List<MemberHandle> running;
        lock (_gate)
        {
            running = [.. _running.Where(m => member is null || m.Member == member)];
        }

        var journal = new Journal();
        foreach (var handle in running)
        {
            journal.Load(ChildMember.JournalPath(_runDirectory, handle.Member, handle.Incarnation));
        }

        return journal.Executions.Where(e => e.EndTicks == 0);
    }

    /// <summary>Injects a fault; returns what undoes it, or null when it cannot be injected here (a store not run by this harness).</summary>
    private int _registryOutages;
#if !TORTURE_OLD_LIBRARY
    private EmbeddedSchemaRegistry? _registry;
#endif

    private async Task<Func<Task>?> ApplyAsync(EmbeddedKafkaCluster cluster, MemberEnvironment environment, Fault fault)
    {
        switch (fault.Kind)
        {
            case FaultKind.BrokerDown:
                cluster.SetBrokerDown(fault.Broker);
                return () => { cluster.SetBrokerUp(fault.Broker); return Task.CompletedTask; };
            case FaultKind.RequestErrors:
                {
                    var (apiName, error) = _config.RequestErrorFor(fault);
                    var api = Enum.Parse<KafkaApiKey>(apiName);
                    cluster.PushRequestErrors(api, Enumerable.Repeat(Enum.Parse<ErrorCode>(error), fault.Count).ToArray());
                    return () => { cluster.ClearRequestErrors(api); return Task.CompletedTask; };
                }

            case FaultKind.RoundTripDelay:
                cluster.SetBrokerRoundTripTime(fault.Broker, TimeSpan.FromMilliseconds(fault.Count));
                return () => { cluster.SetBrokerRoundTripTime(fault.Broker, TimeSpan.Zero); return Task.CompletedTask; };
            case FaultKind.CoordinatorMove:
                cluster.SetCoordinator(KafkaCoordinatorType.Group, environment.Group, fault.Broker);
                return () => Task.CompletedTask;
            case FaultKind.LeaderMove:
                cluster.SetPartitionLeader(environment.Topic, fault.Partition, fault.Broker);
                return () => Task.CompletedTask;
            case FaultKind.DeadLetterUnwritable:
                cluster.PushRequestErrors(KafkaApiKey.Produce, Enumerable.Repeat(ErrorCode.NotEnoughReplicas, fault.Count).ToArray());
                return () => { cluster.ClearRequestErrors(KafkaApiKey.Produce); return Task.CompletedTask; };
            case FaultKind.StoreDown:
                {
                    // Outages may overlap: the store goes down with the first and comes back with the last.
                    if (Interlocked.Increment(ref _storeOutages) == 1)
                    {
                        _storeUndo = await StoreDownAsync(environment, fault.BeforeStart);
                    }

                    return _storeUndo is null
                        ? null
                        : async () =>
                        {
                            if (Interlocked.Decrement(ref _storeOutages) == 0 && _storeUndo is { } undo)
                            {
                                await undo();
                            }
                        };
                }
            case FaultKind.SessionLost:
                // The coordinator goes down for longer than the session: the members lose their partitions, then rejoin.
                cluster.SetCoordinator(KafkaCoordinatorType.Group, environment.Group, fault.Broker);
                cluster.SetBrokerDown(fault.Broker);
                return () => { cluster.SetBrokerUp(fault.Broker); return Task.CompletedTask; };
            case FaultKind.RegistryDown when environment.RegistryDownFlag is { } flag:
                {
                    // Outages may overlap: the registry comes back with the last. The simulated one (a flag file the asynchronous
                    // deserializer reads) and, with Avro jobs, the run's embedded Schema Registry (503 to every request).
                    if (Interlocked.Increment(ref _registryOutages) == 1)
                    {
                        await File.WriteAllTextAsync(flag, "down");
#if !TORTURE_OLD_LIBRARY
                        _registry?.SetAvailable(false);
#endif
                    }

                    return () =>
                    {
                        if (Interlocked.Decrement(ref _registryOutages) == 0)
                        {
                            File.Delete(flag);
#if !TORTURE_OLD_LIBRARY
                            _registry?.SetAvailable(true);
#endif
                        }

                        return Task.CompletedTask;
                    };
                }
            case FaultKind.ClientCalls when !_config.ChildProcesses:
                _clientFaults.RefuseEvery(fault.Count);
                return () => { _clientFaults.RefuseEvery(0); return Task.CompletedTask; };
            default:
                return null;
        }
    }

    private async Task<Func<Task>?> StoreDownAsync(MemberEnvironment environment, bool beforeStart)
    {
        switch (_config.Store)
        {
            case StoreKind.PostgresLease or StoreKind.PostgresTransactional when _environment.Postgres is { IsLocal: true } postgres:
                await postgres.StopAsync();
                return async () =>
                {
                    await postgres.StartAsync();

                    // The pools hold connections to the stopped server; the next run must not inherit them.
                    Npgsql.NpgsqlConnection.ClearAllPools();
                };
            case StoreKind.Redis when _lateRedisPort != 0 && beforeStart:
                // Down at first use: the run's own server starts when the outage ends.
                return async () => _lateRedis = await RedisServer.StartAsync(_lateRedisPort);
            case StoreKind.Redis when _lateRedisPort != 0:
                if (_lateRedis is not { } late)
                {
                    return null; // not started yet: down already
                }

                late.Pause();
                return () => { late.Resume(); return Task.CompletedTask; };
            case StoreKind.Redis when _environment.Redis is { IsLocal: true } redis:
                redis.Pause();
                return () => { redis.Resume(); return Task.CompletedTask; };
            case StoreKind.SqliteLease or StoreKind.SqliteTransactional:
                {
                    // Another process's exclusive lock: every write of the store waits (or fails) until it is let go.
                    var connection = new SqliteConnection($"Data Source={environment.SqlitePath};Pooling=False");
                    await connection.OpenAsync();
                    await using (var begin = new SqliteCommand("BEGIN EXCLUSIVE", connection))
                    {
                        begin.CommandTimeout = 30;
                        await begin.ExecuteNonQueryAsync();
                    }

                    return async () =>
                    {
                        await using (var rollback = new SqliteCommand("ROLLBACK", connection))
                        {
                            await rollback.ExecuteNonQueryAsync();
                        }

                        await connection.DisposeAsync();
                    };
                }

            default:
                return null;
        }
    }

    private static void RestoreCluster(EmbeddedKafkaCluster cluster)
    {
        for (var broker = 1; broker <= cluster.BrokerCount; broker++)
        {
            cluster.SetBrokerUp(broker);
            cluster.SetBrokerRoundTripTime(broker, TimeSpan.Zero);
        }
    }

    /// <summary>
    /// The embedded broker keeps at most 5 MiB or 100,000 batches per partition and drops the oldest beyond that: records it
    /// dropped before they were read are lost to any consumer. Such a run proves nothing about the library, and says so
    /// (rather than blaming it for the loss and the gap that follow).
    /// </summary>
    private string? DroppedByTheBroker(MemberEnvironment environment)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = environment.BootstrapServers, GroupId = "watermarks" })
            .SetLogHandler(static (_, _) => { }).Build();
        var dropped = new List<string>();
        for (var partition = 0; partition < _config.Partitions; partition++)
        {
            try
            {
                var low = consumer.QueryWatermarkOffsets(new TopicPartition(environment.Topic, partition), TimeSpan.FromSeconds(10)).Low.Value;
                if (low > 0)
                {
                    dropped.Add(string.Create(CultureInfo.InvariantCulture, $"p{partition} from offset {low}"));
                }
            }
            catch (KafkaException)
            {
                // Not answered: nothing to say.
            }
        }

        return dropped.Count == 0
            ? null
            : $"the embedded broker dropped the oldest records of {string.Join(", ", dropped)} (it keeps 5 MiB or 100,000 batches per partition): the run is not valid, reduce the records per partition";
    }

    /// <summary>librdkafka's threads (named <c>rdk:*</c>) left in this process once every member is disposed.</summary>
    private static string? HygieneFailure(int baseline)
    {
        // The harness's own clients are disposed by now; librdkafka ends its threads as a client is destroyed.
        var deadline = DateTime.UtcNow.AddSeconds(15);
        int now;
        while ((now = LibrdkafkaThreads()) > baseline && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(100);
        }

        return now > baseline
            ? string.Create(CultureInfo.InvariantCulture, $"{now - baseline} librdkafka thread(s) still run after every member was disposed (baseline {baseline}, now {now}: {string.Join(", ", LibrdkafkaThreadNames())})")
            : null;
    }

    private static int LibrdkafkaThreads() => LibrdkafkaThreadNames().Count;

    private static List<string> LibrdkafkaThreadNames()
    {
        var names = new List<string>();
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                var name = File.ReadAllText(Path.Combine(task, "comm")).Trim();
                if (name.StartsWith("rdk:", StringComparison.Ordinal))
                {
                    names.Add(name);
                }
            }
            catch (IOException)
            {
                // The thread ended while we looked.
            }
        }

        return names;
    }
}
