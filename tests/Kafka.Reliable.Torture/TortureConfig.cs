using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kafka.Reliable.Torture;

/// <summary>How a run commits: the library's strategies, with Manual split by how the handler acknowledges.</summary>
public enum CommitMode
{
    Periodic,
    PerMessage,
    ManualImmediate,
    ManualDeferred,
    Transactional,
}

/// <summary>The idempotency store of a run.</summary>
public enum StoreKind
{
    None,
    InMemory,
    SqliteLease,
    SqliteTransactional,
    PostgresLease,
    PostgresTransactional,
    Redis,
}

/// <summary>
/// Whether transient failures that outlive their in-place retries go to retry tiers (<see cref="RetryTierOptions"/>), and how
/// the later records of a parked key are treated: <see cref="Off"/> (dead-lettered after the in-place retries, as before),
/// <see cref="Ordered"/> (parked behind it), <see cref="Unordered"/> (handled meanwhile).
/// </summary>
public enum RetryTierMode
{
    Off,
    Ordered,
    Unordered,
}

/// <summary>The members' consumer group protocol (the library's <c>GroupProtocol</c>; its own type, so that the harness builds against the library before it).</summary>
public enum ProtocolKind
{
    Classic,
    Consumer,
}

/// <summary>How the jobs are written on the topic.</summary>
public enum PayloadFormat
{
    Json,
    Avro,
    JsonSchema,
    Protobuf,
}

/// <summary>A fault injected for a while, then undone.</summary>
public enum FaultKind
{
    /// <summary>A broker down (connections closed and refused).</summary>
    BrokerDown,

    /// <summary>A run of errors answering requests of one kind.</summary>
    RequestErrors,

    /// <summary>Every response of a broker delayed.</summary>
    RoundTripDelay,

    /// <summary>The group coordinator moved to another broker.</summary>
    CoordinatorMove,

    /// <summary>A partition's leader moved to another broker.</summary>
    LeaderMove,

    /// <summary>Produce requests refused: the dead-letter topic (and the transactional output) cannot be written.</summary>
    DeadLetterUnwritable,

    /// <summary>The idempotency store down: PostgreSQL stopped, Redis frozen, the SQLite file locked.</summary>
    StoreDown,

    /// <summary>
    /// The group's coordinator down for longer than the session timeout: the members lose their partitions (not revoked:
    /// no drain, no commit) and are assigned them again when it is back, often the same ones.
    /// </summary>
    SessionLost,

    /// <summary>
    /// The consumer's client refuses calls for a while (every <see cref="Fault.Count"/>-th Pause, Resume, Seek and Commit
    /// throws a non-fatal <c>KafkaException</c>), as librdkafka does for a partition in a passing state. Members in this
    /// process only: the refusals are injected through the library's internal client seam.
    /// </summary>
    ClientCalls,

    /// <summary>
    /// The schema registry an asynchronous deserializer depends on is down (<see cref="TortureConfig.AsyncDeserializer"/> only):
    /// every deserializing throws <see cref="DependencyUnavailableException"/> until it is back. Drawn from a stream of its own.
    /// </summary>
    RegistryDown,
}

/// <summary>A change of the group's membership.</summary>
public enum MemberAction
{
    /// <summary>A member starts (in this process, or as a child process).</summary>
    Join,

    /// <summary>A member stops gracefully: drain, commit, leave.</summary>
    Leave,

    /// <summary>A member's host is disposed without being stopped first.</summary>
    Dispose,

    /// <summary>A child-process member is killed with SIGKILL, and started again.</summary>
    Kill,

    /// <summary>
    /// An operator's offsets reset (for the whole group, <see cref="MembershipChange.Member"/> is -1): every member stops
    /// gracefully, each partition's committed offset is moved back to half of what it was, and the members start again.
    /// Every record from the reset offset on must be read again (handled, skipped as a duplicate, or dead-lettered again).
    /// </summary>
    Reset,
}

/// <summary>
/// One fault: when it starts (ms after the consumers start), how long it lasts, and its parameters. A fault
/// <see cref="BeforeStart"/> is in place before the first member starts (a store down at first use). A fault with
/// <see cref="WhileInFlight"/> waits, from <see cref="AtMs"/>, until a handler of a record of that kind runs (for at most
/// <see cref="TortureConfig.TriggerWaitMs"/>), so that it meets the handler it is meant for.
/// </summary>
public sealed record Fault(FaultKind Kind, int AtMs, int ForMs, int Broker = 0, string? Api = null, string? Error = null, int Count = 0, int Partition = 0, bool BeforeStart = false, RecordKind? WhileInFlight = null);

/// <summary>
/// One membership change: when (ms after the consumers start), which member, what happens. With
/// <see cref="WhileInFlight"/>, the change waits from <see cref="AtMs"/> until that member runs a handler of a record of that
/// kind (for at most <see cref="TortureConfig.TriggerWaitMs"/>): a member killed or stopped in the middle of a slow record,
/// with later records done around it.
/// </summary>
public sealed record MembershipChange(int AtMs, int Member, MemberAction Action, RecordKind? WhileInFlight = null);

/// <summary>
/// Everything a torture run varies, drawn from its seed. Printed as JSON with a failure, so the run can be replayed exactly
/// (<c>--seed</c>) and read.
/// </summary>
public sealed record TortureConfig
{
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = false,
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The kinds of request whose answers the faults replace with errors.</summary>
    public static IReadOnlyList<string> RequestErrorApis { get; } = ["Fetch", "OffsetCommit", "Produce", "JoinGroup", "Heartbeat", "SyncGroup"];

    /// <summary>The members' session timeout (ms); a <see cref="FaultKind.SessionLost"/> outage lasts longer.</summary>
    public const int SessionTimeoutMs = 6_000;

    /// <summary>How long a <see cref="RecordKind.Stubborn"/> handler runs, ignoring its cancellation: beyond a lost session and its rejoin.</summary>
    public const int StubbornMs = SessionTimeoutMs * 2 + 6_000;

    /// <summary>How long a triggered fault or membership change waits for its handler before it happens anyway.</summary>
    public const int TriggerWaitMs = 20_000;

    /// <summary>The circuit breaker's sampling window (ms): failures within it count towards opening the circuit.</summary>
    public const int BreakerSamplingMs = 2_000;

    /// <summary>The record count of a volume run.</summary>
    public const int VolumeRecords = 50_000;

    public int Seed { get; init; }

    public DispatchMode Dispatch { get; init; }

    public int MaxInFlight { get; init; }

    /// <summary>Gets the records a partition may buffer; <c>0</c> keeps the library's default (100,000).</summary>
    public int PartitionBufferSize { get; init; }

    /// <summary>Gets the consumer's byte budget for its buffers; <c>0</c> keeps the library's default (64 MiB).</summary>
    public long MaxBufferedBytes { get; init; }

    /// <summary>Gets the record bound the library applies (<see cref="PartitionBufferSize"/> or the library's default).</summary>
    [JsonIgnore]
    public int EffectivePartitionBufferSize => PartitionBufferSize > 0 ? PartitionBufferSize : LibraryDefaults.PartitionBufferSize;

    /// <summary>Gets the byte budget the library applies (<see cref="MaxBufferedBytes"/> or the library's default).</summary>
    [JsonIgnore]
#if TORTURE_OLD_LIBRARY
    public long EffectiveMaxBufferedBytes => long.MaxValue / 2;
#else
    public long EffectiveMaxBufferedBytes => MaxBufferedBytes > 0 ? MaxBufferedBytes : LibraryDefaults.MaxBufferedBytes;
#endif

    /// <summary>Gets the most one record of the workload counts against the byte budget: the largest payload, a key, headers, overhead.</summary>
    [JsonIgnore]
    public long LargestRecordBytes => (MaxPayloadBytes > 0 ? MaxPayloadBytes : LibraryDefaults.MaxPayloadBytes) + 100 + 4_096 + 128;

    /// <summary>The library's own defaults, for the options a configuration leaves to it.</summary>
    private static readonly ReliableConsumerOptions LibraryDefaults = new();

    public CommitMode Commit { get; init; }

    public StoreKind Store { get; init; }

    public bool CircuitBreaker { get; init; }

    public bool Watchdog { get; init; }

    public TombstonePolicy Tombstones { get; init; }

    public bool Translator { get; init; }

    /// <summary>
    /// Gets whether the PostgreSQL or Redis store uses a data source / multiplexer the application registered (instead of
    /// building its own from a connection string).
    /// </summary>
    public bool ApplicationConnection { get; init; }

    /// <summary>Gets whether the builder's calls come handler (and translator) first and store last, instead of store first.</summary>
    public bool HandlerFirst { get; init; }

    /// <summary>Gets the most records in a batch of a batch handler; <c>0</c> for a message handler.</summary>
    public int BatchSize { get; init; }

    /// <summary>Gets how long a batch smaller than <see cref="BatchSize"/> waits for more records, in milliseconds.</summary>
    public int BatchLingerMs { get; init; }

    /// <summary>Gets whether a batch may hold the records of several partitions (<see cref="BatchOptions.AcrossPartitions"/>).</summary>
    public bool BatchAcrossPartitions { get; init; }

    /// <summary>
    /// Gets whether the jobs are deserialized by an asynchronous deserializer that depends on a (simulated) schema registry,
    /// which a <see cref="FaultKind.RegistryDown"/> fault takes down.
    /// </summary>
    public bool AsyncDeserializer { get; init; }

    /// <summary>
    /// Gets how the jobs are written: JSON, or framed for a Schema Registry (an embedded one per run) as Avro or JSON Schema
    /// and read through <c>Kafka.Reliable.SchemaRegistry</c>'s deserializers (with an asynchronous deserializer only).
    /// </summary>
    public PayloadFormat Payload { get; init; }

    /// <summary>Gets whether the jobs are framed for the run's Schema Registry.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool RegistryPayload => Payload != PayloadFormat.Json;

    /// <summary>Gets the consumer's payload limit; <c>0</c> keeps the library's default (1 MiB).</summary>
    public int MaxPayloadBytes { get; init; }

    public int MaxAttempts { get; init; }

    /// <summary>
    /// Gets whether the run has retry tiers, and their ordering. A configuration saved before the axis has none (<see cref="RetryTierMode.Off"/>).
    /// </summary>
    public RetryTierMode RetryTiers { get; init; }

    /// <summary>Gets the tiers' delays in milliseconds (2-4 of 20-300 ms), with retry tiers; null without.</summary>
    public IReadOnlyList<int>? RetryTierDelaysMs { get; init; }

    /// <summary>
    /// Gets the members' group protocol: the classic one, or the consumer protocol of KIP-848 (the broker assigns, through
    /// the mock's ConsumerGroupHeartbeat). A configuration saved before the axis speaks the classic one.
    /// </summary>
    public ProtocolKind Protocol { get; init; }

    /// <summary>
    /// Gets a value indicating whether the members are static (<c>GroupInstanceId</c> "torture-member-N", kept by member N
    /// across its restarts): a killed member's restart finds its id still held until its session expires (the embedded
    /// broker's consumer-protocol coordinator refuses it meanwhile), and under the classic protocol a static member leaves
    /// without a LeaveGroup. A configuration saved before the axis has dynamic members.
    /// </summary>
    public bool StaticMembers { get; init; }

    /// <summary>
    /// The request a <see cref="FaultKind.RequestErrors"/> fault answers with errors, and the error, under this run's group
    /// protocol. Under the consumer protocol the members send no JoinGroup, SyncGroup or Heartbeat, so a fault drawn for one of
    /// them answers ConsumerGroupHeartbeat instead, with the errors that protocol's coordinator gives: it moved or is not
    /// available (the member looks for it again), the request timed out (retried), the member's epoch is stale
    /// (FENCED_MEMBER_EPOCH) or its session expired (UNKNOWN_MEMBER_ID): both lose the member its partitions and make it
    /// rejoin; a static member's refusal because another member holds its id (UNRELEASED_INSTANCE_ID) takes the place of the
    /// stale epoch. The draw itself does not depend on the protocol, so that adding the axis changed no earlier seed's faults.
    /// </summary>
    public (string Api, string Error) RequestErrorFor(Fault fault)
    {
        if (Protocol != ProtocolKind.Consumer || fault.Api is not ("JoinGroup" or "SyncGroup" or "Heartbeat"))
        {
            return (fault.Api!, fault.Error!);
        }

        return ("ConsumerGroupHeartbeat", fault.Error switch
        {
            // A static member is refused its id instead (as if another member held it; fatal in librdkafka): the library
            // joins again with a new client after a backoff.
            "NotLeaderForPartition" when StaticMembers => "UnreleasedInstanceId",
            "NotLeaderForPartition" => "FencedMemberEpoch",
            "NotEnoughReplicas" => "UnknownMemberId",
            _ => fault.Error!,
        });
    }

    /// <summary>Gets the number of retry tiers (0 without).</summary>
    [JsonIgnore]
    public int TierCount => RetryTiers == RetryTierMode.Off ? 0 : RetryTierDelaysMs?.Count ?? 0;

    public int RevokeTimeoutMs { get; init; }

    public int ShutdownTimeoutMs { get; init; }

    public int Partitions { get; init; }

    public int Keys { get; init; }

    public int Records { get; init; }

    /// <summary>Gets how many members the group has at most (1-3).</summary>
    public int Members { get; init; }

    /// <summary>Gets whether members run in child processes (and can be killed) rather than in this process.</summary>
    public bool ChildProcesses { get; init; }

    /// <summary>Gets the share (percent) of records that are poison of some kind.</summary>
    public int PoisonPercent { get; init; }

    /// <summary>Gets the share (percent) of records whose handler fails, is slow, blocks or ignores cancellation.</summary>
    public int TroublePercent { get; init; }

    /// <summary>
    /// Gets how many records, spread over the run, hold their handler beyond every timeout (<see cref="RecordKind.Slower"/>
    /// or <see cref="RecordKind.Stubborn"/>): what the triggered faults and membership changes wait for.
    /// </summary>
    public int Stalls { get; init; }

    /// <summary>Gets the SQLite store's command timeout in seconds (its busy timeout); <c>0</c> keeps Microsoft.Data.Sqlite's 30 s.</summary>
    public int SqliteTimeoutSeconds { get; init; }

    public IReadOnlyList<Fault> Faults { get; init; } = [];

    public IReadOnlyList<MembershipChange> Membership { get; init; } = [];

    /// <summary>Gets when the last fault ends (ms after the consumers start).</summary>
    [JsonIgnore]
    public int FaultsEndMs => Faults.Count == 0 ? 0 : Faults.Max(f => f.AtMs + f.ForMs);

    /// <summary>Gets whether the run is clean: no fault, no kill, no disposal without a stop, no handler that outlives a timeout.</summary>
    [JsonIgnore]
    public bool ChangesOnlyGracefully => Faults.Count == 0 && Membership.All(m => m.Action is MemberAction.Join or MemberAction.Leave);

    /// <summary>Gets whether the run has many records (a volume run): races that need volume to show.</summary>
    [JsonIgnore]
    public bool Volume => Records >= VolumeRecords;

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static TortureConfig FromJson(string json) => JsonSerializer.Deserialize<TortureConfig>(json, Json)
        ?? throw new ArgumentException("not a torture configuration", nameof(json));

    /// <summary>A one-line summary of the axes, for progress output and the CI test names.</summary>
    public string Describe() =>
        $"seed {Seed}: {Dispatch} x{MaxInFlight} buf {(PartitionBufferSize > 0 ? PartitionBufferSize : "default")}{(MaxBufferedBytes > 0 ? $"/{MaxBufferedBytes / 1024} KiB" : string.Empty)}, {Commit}, store {Store}{(ApplicationConnection ? " (application's connection)" : string.Empty)}, breaker {(CircuitBreaker ? "on" : "off")}, " +
        $"watchdog {(Watchdog ? "on" : "off")}, tombstones {Tombstones}, translator {(Translator ? "yes" : "no")}{(HandlerFirst ? " (handler registered first)" : string.Empty)}, " +
        $"{(AsyncDeserializer ? (RegistryPayload ? $"{Payload} through the Schema Registry, " : "async deserializer, ") : string.Empty)}{(Protocol != ProtocolKind.Classic ? $"{Protocol} protocol, " : string.Empty)}{(StaticMembers ? "static members, " : string.Empty)}{(RetryTiers != RetryTierMode.Off ? $"retry tiers {RetryTiers} ({string.Join("/", RetryTierDelaysMs ?? [])} ms), " : string.Empty)}{(BatchSize > 0 ? $"batches of {BatchSize}{(BatchAcrossPartitions ? " across partitions" : string.Empty)}{(BatchLingerMs > 0 ? $" (linger {BatchLingerMs} ms)" : string.Empty)}, " : string.Empty)}{Partitions} partitions, " +
        $"{Records} records of {Keys} keys{(Stalls > 0 ? $" ({Stalls} stalling)" : string.Empty)}, {Members} member(s){(ChildProcesses ? " in child processes" : string.Empty)}, " +
        $"{Faults.Count} fault(s): {string.Join(", ", Faults.Select(f => f.Kind + (f.BeforeStart ? " before start" : string.Empty) + (f.WhileInFlight is { } k ? $" during {k}" : string.Empty)).Distinct())}, " +
        $"membership: {string.Join(", ", Membership.Select(m => $"{m.Action} {m.Member}@{m.AtMs}ms{(m.WhileInFlight is { } k ? $" during {k}" : string.Empty)}"))}";

    /// <summary>Draws a configuration and its fault and membership schedules from a seed.</summary>
    public static TortureConfig Draw(int seed)
    {
        var random = new Random(seed);
        T Pick<T>(params T[] values) => values[random.Next(values.Length)];
        bool Chance(int percent) => random.Next(100) < percent;

        var dispatch = Pick(DispatchMode.Sequential, DispatchMode.ByKey, DispatchMode.Unordered);
        var store = Pick(Enum.GetValues<StoreKind>());
        var commit = Pick(Enum.GetValues<CommitMode>());
        var partitions = random.Next(1, 7);
        var members = random.Next(1, 4);
        var children = Chance(25) && store is not StoreKind.InMemory;

        // A volume run: many records, buffers that do not pause at every fetch, handlers that do not hold the partition.
        var volume = Chance(12);
        var config = new TortureConfig
        {
            Seed = seed,
            Dispatch = dispatch,
            MaxInFlight = Pick(1, 4, 16, 64, 256),
            PartitionBufferSize = volume ? Pick(256, 1000) : Pick(4, 16, 64, 256, 1000),
            Commit = commit,
            Store = store,
            CircuitBreaker = Chance(35),
            Watchdog = Chance(35),
            Tombstones = Pick(TombstonePolicy.DeadLetter, TombstonePolicy.Skip, TombstonePolicy.Handle),
            Translator = Chance(40),
            MaxPayloadBytes = Chance(30) ? 0 : Pick(4_096, 65_536),
            MaxAttempts = random.Next(2, 5),
            RevokeTimeoutMs = Pick(2_000, 4_000),
            ShutdownTimeoutMs = Pick(2_000, 4_000),
            Partitions = partitions,
            Keys = Pick(2, 3, 8, 50),
            Records = volume ? VolumeRecords : Pick(300, 800, 1_500),
            Members = members,
            ChildProcesses = children,
            PoisonPercent = volume ? Pick(0, 1) : Pick(0, 2, 5),
            TroublePercent = volume ? 0 : Pick(0, 3, 10),
            Stalls = Chance(45) ? random.Next(1, 4) : 0,
            SqliteTimeoutSeconds = store is StoreKind.SqliteLease or StoreKind.SqliteTransactional && Chance(50) ? 1 : 0,
        };

        var faults = DrawFaults(random, config);
        var membership = DrawMembership(random, config);

        // A rebalance while the store is down: a visiting member joins during the outage and leaves after it.
        var visitor = 3;
        foreach (var outage in faults.Where(f => f.Kind == FaultKind.StoreDown).ToList())
        {
            if (Chance(50))
            {
                membership.Add(new MembershipChange(outage.AtMs + Math.Min(300, outage.ForMs / 3), visitor, MemberAction.Join));
                membership.Add(new MembershipChange(outage.AtMs + outage.ForMs + random.Next(500, 2_500), visitor, MemberAction.Leave));
                visitor++;
            }
        }

        // The buffer bounds joined the matrix later: drawn from their own stream, so that every earlier seed keeps the rest of its
        // configuration (and a CI seed keeps what it found).
        var buffers = new Random(unchecked((seed * 397) ^ 0x2545F491));
        // The library's default record bound replaces a drawn 1,000 only (the default before the byte budget), so that a run
        // against the code before it behaves as it did.
        var defaultRecords = buffers.Next(100) < 50 && config.PartitionBufferSize == 1000;
        var smallBudget = buffers.Next(100) < 35;

        // The builder's call order and the application's store connection joined later still, from a stream of their own.
        var registration = new Random(unchecked((seed * 7919) ^ 0x6A09E667));
        var applicationConnection = registration.Next(100) < 50 && config.Store is StoreKind.PostgresLease or StoreKind.PostgresTransactional or StoreKind.Redis;
        var handlerFirst = registration.Next(100) < 50;

        // Batch handlers joined later still, from a stream of their own: half of the configurations a batch handler can serve
        // (Sequential dispatch, commits other than Manual and Kafka transactions) get one, never larger than the partition buffer.
        var batches = new Random(unchecked((seed * 104729) ^ 0x3C6EF372));
        var batchable = config.Dispatch == DispatchMode.Sequential && config.Commit is CommitMode.Periodic or CommitMode.PerMessage;
        var batchSize = batches.Next(100) < 50 && batchable ? new[] { 2, 16, 500 }[batches.Next(3)] : 0;
        var buffer = defaultRecords ? int.MaxValue : config.PartitionBufferSize;

        // Batches across partitions joined after them, from a stream of their own: half of the batch handlers get them.
        var across = new Random(unchecked((seed * 15485863) ^ 0x510E527F));

        // Asynchronous deserializers joined later still, from a stream of their own: half of the runs, and half of those have
        // their registry down for a while (during the run, or when the members start).
        var deserializers = new Random(unchecked((seed * 32452843) ^ 0x1F83D9AB));
        var asyncDeserializer = deserializers.Next(100) < 50;
        if (asyncDeserializer && deserializers.Next(100) < 50)
        {
            var beforeStart = deserializers.Next(100) < 25;
            faults.Add(new Fault(FaultKind.RegistryDown, beforeStart ? 0 : deserializers.Next(0, 8_000), deserializers.Next(1_000, 6_000), BeforeStart: beforeStart));
        }

        // Avro payloads joined after them, from a stream of their own: half of the runs with an asynchronous deserializer.
        var payloads = new Random(unchecked((seed * 49979687) ^ 0x5BE0CD19));
        var payload = asyncDeserializer && payloads.Next(100) < 50 ? (PayloadFormat)(1 + payloads.Next(3)) : PayloadFormat.Json;
#if TORTURE_OLD_LIBRARY
        // The library before issue 16 reads JSON only.
        payload = PayloadFormat.Json;
#endif

        // Retry tiers joined after them, from a stream of their own: half of the runs the validator lets have them (a message
        // handler, commits Periodic or PerMessage; dead-lettering is always on here) get them, Ordered or Unordered, with 2-4
        // short tiers. The delays are drawn whether or not the run gets tiers, so that the stream does not depend on the rest.
        var tierStream = new Random(unchecked((seed * 179424673) ^ 0x1B873593));
        var tierRoll = tierStream.Next(100);
        var tierDelays = Enumerable.Range(0, tierStream.Next(2, 5)).Select(_ => tierStream.Next(20, 301)).ToList();
        var tierable = batchSize == 0 && config.Commit is CommitMode.Periodic or CommitMode.PerMessage;
        var tiers = !tierable || tierRoll < 50 ? RetryTierMode.Off : tierRoll < 75 ? RetryTierMode.Ordered : RetryTierMode.Unordered;
#if TORTURE_OLD_LIBRARY
        // The library before retry tiers has none.
        tiers = RetryTierMode.Off;
#endif
        // The group protocol joined last, from a stream of its own: the consumer protocol in 40% of the runs.
        var protocol = new Random(unchecked((seed * 1000003) ^ 0x2545F491)).Next(100) < 40 ? ProtocolKind.Consumer : ProtocolKind.Classic;

        // Static membership after it, from a stream of its own: static members in 35% of the runs.
        var staticMembers = new Random(unchecked((seed * 40503) ^ 0x68E31DA4)).Next(100) < 35;
#if TORTURE_OLD_LIBRARY
        // The library before issue 18 speaks the classic protocol only.
        protocol = ProtocolKind.Classic;
        staticMembers = false;
#endif
        return config with
        {
            Protocol = protocol,
            StaticMembers = staticMembers,
            RetryTiers = tiers,
            RetryTierDelaysMs = tiers == RetryTierMode.Off ? null : tierDelays,
            Payload = payload,
            BatchSize = Math.Min(batchSize, buffer),
            BatchLingerMs = batchSize > 0 && batches.Next(100) < 30 ? 20 : 0,
            BatchAcrossPartitions = batchSize > 0 && across.Next(100) < 50,
            AsyncDeserializer = asyncDeserializer,
            ApplicationConnection = applicationConnection,
            HandlerFirst = handlerFirst,
            PartitionBufferSize = defaultRecords ? 0 : config.PartitionBufferSize,
            MaxBufferedBytes = smallBudget ? 1024 * 1024 : 0,
            Faults = faults,
            Membership = [.. membership.OrderBy(c => c.AtMs)],
        };
    }

    /// <summary>What a triggered change waits for: a record held beyond every timeout, respecting cancellation or not.</summary>
    private static RecordKind? Trigger(Random random, TortureConfig config) =>
        config.Stalls > 0 && random.Next(100) < 60 ? (random.Next(2) == 0 ? RecordKind.Slower : RecordKind.Stubborn) : null;

    private static List<Fault> DrawFaults(Random random, TortureConfig config)
    {
        var (partitions, store) = (config.Partitions, config.Store);
        var faults = new List<Fault>();
        var count = random.Next(100) < 25 ? 0 : random.Next(1, 5);
        var apis = RequestErrorApis;
        string[] errors = ["NotCoordinatorForGroup", "RequestTimedOut", "NotLeaderForPartition", "GroupCoordinatorNotAvailable", "NotEnoughReplicas"];
        for (var i = 0; i < count; i++)
        {
            var kinds = Enum.GetValues<FaultKind>()
                .Where(k => k != FaultKind.RegistryDown)
                .Where(k => k != FaultKind.StoreDown || store is not (StoreKind.None or StoreKind.InMemory))
                .Where(k => k != FaultKind.ClientCalls || !config.ChildProcesses)
                .ToArray();
            var kind = kinds[random.Next(kinds.Length)];
            var at = random.Next(0, 8_000);
            var duration = random.Next(500, 4_000);
            faults.Add(kind switch
            {
                FaultKind.BrokerDown => new Fault(kind, at, duration, Broker: random.Next(1, 4)),
                FaultKind.RequestErrors => new Fault(kind, at, duration, Api: apis[random.Next(apis.Count)], Error: errors[random.Next(errors.Length)], Count: random.Next(1, 8)),
                FaultKind.RoundTripDelay => new Fault(kind, at, duration, Broker: random.Next(1, 4), Count: random.Next(50, 500)),
                FaultKind.CoordinatorMove => new Fault(kind, at, 0, Broker: random.Next(1, 4)),
                FaultKind.LeaderMove => new Fault(kind, at, 0, Broker: random.Next(1, 4), Partition: random.Next(partitions)),
                FaultKind.DeadLetterUnwritable => new Fault(kind, at, duration, Count: random.Next(5, 40)),
                FaultKind.SessionLost => new Fault(kind, at, SessionTimeoutMs + random.Next(2_000, 4_000), Broker: random.Next(1, 4), WhileInFlight: Trigger(random, config)),
                FaultKind.ClientCalls => new Fault(kind, at, duration, Count: random.Next(1, 4)),
                _ => new Fault(kind, at, duration),
            });
        }

        // The store down when the members first use it (and assign their first partitions).
        if (store is not (StoreKind.None or StoreKind.InMemory) && random.Next(100) < 20)
        {
            // Longer than a client's connect timeout (StackExchange.Redis: 5 s), so that the first connection fails.
            faults.Add(new Fault(FaultKind.StoreDown, 0, random.Next(4_000, 10_000), BeforeStart: true));
        }

        return faults;
    }

    private static List<MembershipChange> DrawMembership(Random random, TortureConfig config)
    {
        var (members, children) = (config.Members, config.ChildProcesses);
        var changes = new List<MembershipChange> { new(0, 0, MemberAction.Join) };
        for (var member = 1; member < members; member++)
        {
            var joinAt = random.Next(200, 6_000);
            changes.Add(new MembershipChange(joinAt, member, MemberAction.Join));
            if (random.Next(100) < 50)
            {
                MemberAction[] endings = children ? [MemberAction.Leave, MemberAction.Kill] : [MemberAction.Leave, MemberAction.Dispose];
                changes.Add(new MembershipChange(joinAt + random.Next(1_000, 6_000), member, endings[random.Next(endings.Length)], Trigger(random, config)));
            }
        }

        // The first member stays to the end, or is killed and comes back (a kill is followed by a restart).
        if (children && random.Next(100) < 50)
        {
            changes.Add(new MembershipChange(random.Next(1_000, 8_000), 0, MemberAction.Kill, Trigger(random, config)));
        }

        // An offsets reset (not with Kafka transactions: the embedded broker does not keep their offsets to move back).
        if (config.Commit != CommitMode.Transactional && random.Next(100) < 15)
        {
            changes.Add(new MembershipChange(random.Next(3_000, 9_000), -1, MemberAction.Reset));
        }

        return changes;
    }
}
