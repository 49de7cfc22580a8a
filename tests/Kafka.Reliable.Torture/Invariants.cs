using System.Globalization;
using Kafka.Reliable.Testing;

namespace Kafka.Reliable.Torture;

/// <summary>
/// The guarantees as invariants over what a run observed: every handler execution, every dead letter, the effects a
/// transactional store committed, and the group's committed offsets sampled during the run.
/// </summary>
public sealed partial class Invariants
{
    private const int Shown = 8;
    private static readonly long SampleReadBound = TimeSpan.FromSeconds(6).Ticks;
    private readonly TortureConfig _config;
    private readonly List<RecordSpec> _records;
    private readonly List<Execution> _executions;
    private readonly IReadOnlyDictionary<(int, long), DeadLetterCopy> _deadLetters;
    private readonly IReadOnlyDictionary<(int Partition, long Offset), int> _storeEffects;
    private readonly List<(long Ticks, int Partition, long Offset)> _commits;
    private readonly RunLogs _logs;
    private readonly int _kills;

    public Invariants(
        TortureConfig config, List<RecordSpec> records, List<Execution> executions, IReadOnlyDictionary<(int, long), DeadLetterCopy> deadLetters,
        IReadOnlyDictionary<(int Partition, long Offset), int> storeEffects, List<(long Ticks, int Partition, long Offset)> commits, RunLogs logs, int kills)
    {
        _config = config;
        _records = records;
        _executions = executions;
        _deadLetters = deadLetters;
        _storeEffects = storeEffects;
        _commits = commits;
        _logs = logs;
        _kills = kills;
    }

    /// <summary>Gets the offsets resets of the run (an operator moving committed offsets back).</summary>
    public IReadOnlyList<OffsetReset> Resets { get; init; } = [];

    /// <summary>Gets when each member incarnation (a host, or a child process) had stopped or was disposed or killed, in UTC ticks.</summary>
    public IReadOnlyDictionary<long, long> Ended { get; init; } = new Dictionary<long, long>();

    /// <summary>Gets when each record was last dead-lettered (a record read again after a reset is dead-lettered again).</summary>
    public IReadOnlyDictionary<(int, long), long> LastDeadLetter { get; init; } = new Dictionary<(int, long), long>();

    /// <summary>
    /// Gets, in a run with Kafka transactions, how many plain (<see cref="KafkaApiKey.OffsetCommit"/>) and transactional
    /// (<see cref="KafkaApiKey.TxnOffsetCommit"/>) offset commits the brokers received while the members ran.
    /// </summary>
    public IReadOnlyDictionary<KafkaApiKey, int>? CommitRequests { get; init; }

    /// <summary>
    /// Gets, with retry tiers, the copies of parked records in the retry topic (not the done markers), by original partition and
    /// offset, in the order written.
    /// </summary>
    public IReadOnlyDictionary<(int Partition, long Offset), IReadOnlyList<RetryCopy>> RetryCopies { get; init; } = new Dictionary<(int, long), IReadOnlyList<RetryCopy>>();

    private bool ExactlyOnceStore => _config.Store is StoreKind.PostgresTransactional or StoreKind.SqliteTransactional;

    private bool LeaseStore => _config.Store is StoreKind.SqliteLease or StoreKind.PostgresLease or StoreKind.Redis;

    /// <summary>
    /// Gets whether nothing in the run allows a record to be handled twice without an exactly-once store: no fault, no kill,
    /// no disposal without a stop, no rebalance while acknowledgements are deferred (one that arrives after its partition was
    /// revoked is ignored and the new owner handles the record again, as the commit-strategies guide says; seed 1599228748
    /// showed 98 such records when a member joined), and none of the events after
    /// which the library redelivers by design (drain timeout, watchdog restart, lost partition, lost lease, ...).
    /// </summary>
    public bool CleanRun =>
        _config.ChangesOnlyGracefully
        && _kills == 0
        && !(_config.Commit == CommitMode.ManualDeferred && _config.Membership.Count > 1)
        && !_logs.Entries.Any(e => RunLogs.RedeliveryEvents.Contains(e.EventId));

    public IEnumerable<Violation> Check()
    {
        var violations = new List<Violation>();
        violations.AddRange(Outcomes());
        violations.AddRange(RetryTiersRunOut());
        violations.AddRange(Duplicates());
        violations.AddRange(Concurrency());
        violations.AddRange(Order());
        violations.AddRange(Gaps());
        violations.AddRange(ResetsHonoured());
        violations.AddRange(MembersStoppedThemselves());
        violations.AddRange(StopsAbandonedInThePollLoop());
        violations.AddRange(TransactionsAloneCommit());
        return violations;
    }

    /// <summary>No loss, and every record where its kind says: handled, dead-lettered with its original bytes, or skipped.</summary>
    private IEnumerable<Violation> Outcomes()
    {
        var effects = EffectCounts();
        var lost = new List<string>();
        var wrong = new List<string>();
        var bytes = new List<string>();
        foreach (var record in _records)
        {
            var handled = effects.GetValueOrDefault((record.Partition, record.Offset)) > 0;
            var deadLettered = _deadLetters.TryGetValue((record.Partition, record.Offset), out var copy);
            var where = $"p{record.Partition}@{record.Offset} ({record.Kind})";
            switch (record.Expected)
            {
                case Outcome.Effect when !handled && !deadLettered:
                case Outcome.DeadLetter when !handled && !deadLettered:
                    lost.Add(where);
                    break;
                case Outcome.Effect when deadLettered:
                    wrong.Add($"{where} dead-lettered, expected handled{(handled ? " (and handled)" : string.Empty)}");
                    break;
                case Outcome.DeadLetter when handled:
                    wrong.Add($"{where} handled, expected dead-lettered");
                    break;
                case Outcome.Nothing when handled || deadLettered:
                    wrong.Add($"{where} {(handled ? "handled" : "dead-lettered")}, expected skipped ({_config.Tombstones})");
                    break;
                default:
                    break;
            }

            if (deadLettered && !copy!.Truncated && !(copy.Value ?? []).AsSpan().SequenceEqual(record.Value ?? []))
            {
                bytes.Add($"{where}: {copy.Value?.Length ?? 0} bytes dead-lettered, {record.Value?.Length ?? 0} produced");
            }
        }

        if (lost.Count > 0)
        {
            yield return new Violation("no loss", $"{lost.Count} record(s) neither handled nor dead-lettered: {Some(lost)}");
        }

        if (wrong.Count > 0)
        {
            yield return new Violation("outcome", $"{wrong.Count} record(s) ended where their kind says they must not: {Some(wrong)}");
        }

        if (bytes.Count > 0)
        {
            yield return new Violation("dead-letter bytes", $"{bytes.Count} dead letter(s) without the original value: {Some(bytes)}");
        }
    }

    /// <summary>
    /// With retry tiers: every copy in the retry topic holds the original record's value; a record whose handler fails on every
    /// attempt (<see cref="RecordKind.Exhaust"/>) is dead-lettered only after every tier, its dead letter carrying one
    /// <c>retry-history</c> line per tier and one for the attempts before it was parked; one that fails fatally, or cannot be
    /// read, is dead-lettered at once, with none (one, tier 0, if it was parked behind its key first), and is never copied to the
    /// retry topic as a failure (tier 1 or more).
    /// Without retry tiers, no dead letter carries a history.
    /// </summary>
    private IEnumerable<Violation> RetryTiersRunOut()
    {
        var tiers = _config.TierCount;
        var copies = new List<string>();
        var histories = new List<string>();
        foreach (var record in _records)
        {
            var where = $"p{record.Partition}@{record.Offset} ({record.Kind})";
            var parked = RetryCopies.GetValueOrDefault((record.Partition, record.Offset)) ?? [];
            foreach (var copy in parked.Where(c => !(c.Value ?? []).AsSpan().SequenceEqual(record.Value ?? [])).Take(1))
            {
                copies.Add($"{where}: a copy of tier {copy.Tier} holds {copy.Value?.Length ?? 0} bytes, {record.Value?.Length ?? 0} produced");
            }

            var failsAtOnce = record.Expected == Outcome.DeadLetter && record.Kind != RecordKind.Exhaust;
            if (failsAtOnce && parked.FirstOrDefault(c => c.Tier > 0) is { } wrongCopy)
            {
                histories.Add($"{where} parked in tier {wrongCopy.Tier}, expected dead-lettered at once");
            }

            if (!_deadLetters.TryGetValue((record.Partition, record.Offset), out var dead))
            {
                continue;
            }

            // A record parked behind its key and failing there has one line too: tier 0, its attempt in the retry topic.
            var expected = record.Kind == RecordKind.Exhaust ? (tiers > 0 ? tiers + 1 : 0) : failsAtOnce ? (parked.Any(c => c.Tier == 0) ? 1 : 0) : -1;
            if (expected >= 0 && dead.RetryHistory != expected)
            {
                histories.Add($"{where} dead-lettered with {dead.RetryHistory} retry-history line(s), expected {expected}");
            }
        }

        if (copies.Count > 0)
        {
            yield return new Violation("retry copies hold the original bytes", $"{copies.Count} record(s): {Some(copies)}");
        }

        if (histories.Count > 0)
        {
            yield return new Violation("dead-lettered after every retry tier", $"{histories.Count} record(s): {Some(histories)}");
        }
    }

    /// <summary>Exactly one effect with a transactional store; more than one only after a crash, a loss or a timeout otherwise.</summary>
    private IEnumerable<Violation> Duplicates()
    {
        var repeated = EffectCounts().Where(e => e.Value > 1).Select(e => $"p{e.Key.Item1}@{e.Key.Item2} x{e.Value}").ToList();
        if (repeated.Count == 0)
        {
            yield break;
        }

        if (ExactlyOnceStore)
        {
            yield return new Violation("exactly-once effects", $"{repeated.Count} record(s) with more than one committed effect: {Some(repeated)}");
        }
        else if (CleanRun)
        {
            yield return new Violation("no duplicates in a clean run", $"{repeated.Count} record(s) handled more than once with no fault, crash, loss or timeout: {Some(repeated)}");
        }
    }

    /// <summary>
    /// Never two handlers of one record at once: within one member's host (G5, across its watchdog restarts and lost
    /// partitions); anywhere with a lease store while the earlier handler's host still runs. A handler that ignored its
    /// cancellation past its host's stop (log 103) is no longer covered: its host and store are gone (a process normally
    /// ends with them).
    /// </summary>
    private IEnumerable<Violation> Concurrency()
    {
        var overlaps = new List<string>();
        foreach (var group in _executions.Where(e => e.EndTicks > 0).GroupBy(e => (e.Partition, e.Offset)))
        {
            var runs = group.OrderBy(e => e.StartTicks).ToList();
            for (var i = 1; i < runs.Count; i++)
            {
                for (var j = 0; j < i; j++)
                {
                    var (earlier, later) = (runs[j], runs[i]);
                    var sameHost = earlier.Member == later.Member && Incarnation(earlier) == Incarnation(later);
                    var earlierHostAlive = !Ended.TryGetValue(Incarnation(earlier), out var ended) || ended > later.StartTicks;
                    if (later.StartTicks < earlier.EndTicks && (sameHost || (LeaseStore && earlierHostAlive)))
                    {
                        overlaps.Add($"p{group.Key.Partition}@{group.Key.Offset}: member {earlier.Member} (epoch {earlier.Epoch}) and member {later.Member} (epoch {later.Epoch}) for {TimeSpan.FromTicks(earlier.EndTicks - later.StartTicks).TotalMilliseconds:0} ms");
                    }
                }
            }
        }

        if (overlaps.Count > 0)
        {
            yield return new Violation("one handler at a time", $"{overlaps.Count} overlapping execution(s): {Some(overlaps)}");
        }
    }

    /// <summary>
    /// Offset order per partition (Sequential) or per key (ByKey), within each assignment of a partition to a member. With retry
    /// tiers a parked record runs later, beside the partition's next records: the order is checked per key under both dispatch
    /// modes, and under Sequential also per partition for the executions at the original record (tier 0) of every record never
    /// parked behind its key (those are handled by the partition's worker, in turn). With Ordered tiers the key order holds for
    /// every execution. With Unordered tiers only a failed record moves: an execution from a tier (RetryTier 1 or more) is out
    /// of the check, so every pair of executions of one key in which one runs from a tier is exempt (that record against the
    /// key's records handled while it waited, before or after it); every pair of executions at tier 0 must keep offset order.
    /// </summary>
    private IEnumerable<Violation> Order()
    {
        if (_config.Dispatch == DispatchMode.Unordered)
        {
            yield break;
        }

        var broken = new List<string>();
        // A batch handler's failed batch runs its records again, from the first: only the batches that succeeded show the order.
        var indexed = _executions.Select((e, i) => (Execution: e, Index: i)).Where(x => x.Execution.Epoch >= 0 && (_config.BatchSize == 0 || x.Execution.Succeeded)).ToList();
        IEnumerable<IGrouping<(int Member, long Epoch, int Partition, string Key), (Execution Execution, int Index)>> lanes;
        if (_config.TierCount == 0)
        {
            lanes = _config.Dispatch == DispatchMode.Sequential
                ? indexed.GroupBy(x => (x.Execution.Member, x.Execution.Epoch, x.Execution.Partition, Key: string.Empty))
                : indexed.GroupBy(x => (x.Execution.Member, x.Execution.Epoch, x.Execution.Partition, x.Execution.Key));
        }
        else
        {
            var byKey = indexed.Where(x => _config.RetryTiers == RetryTierMode.Ordered || x.Execution.Tier == 0)
                .GroupBy(x => (x.Execution.Member, x.Execution.Epoch, x.Execution.Partition, x.Execution.Key));
            var byPartition = _config.Dispatch == DispatchMode.Sequential
                ? indexed.Where(x => x.Execution.Tier == 0 && !(RetryCopies.GetValueOrDefault((x.Execution.Partition, x.Execution.Offset))?.Any(c => c.Tier == 0) ?? false))
                    .GroupBy(x => (x.Execution.Member, x.Execution.Epoch, x.Execution.Partition, Key: string.Empty))
                : [];
            lanes = byKey.Concat(byPartition);
        }

        foreach (var lane in lanes)
        {
            long previous = -1;
            var previousTier = 0;
            foreach (var (execution, _) in lane.OrderBy(x => x.Execution.StartTicks).ThenBy(x => x.Index))
            {
                if (execution.Offset < previous)
                {
                    broken.Add($"member {lane.Key.Member} epoch {lane.Key.Epoch} p{lane.Key.Partition}{(lane.Key.Key.Length > 0 ? " key " + lane.Key.Key : " (partition)")}: @{execution.Offset}{(execution.Tier > 0 ? $" (tier {execution.Tier})" : string.Empty)} after @{previous}{(previousTier > 0 ? $" (tier {previousTier})" : string.Empty)}");
                    break;
                }

                previous = execution.Offset;
                previousTier = execution.Tier;
            }
        }

        if (broken.Count > 0)
        {
            yield return new Violation("order", $"{broken.Count} lane(s) out of offset order: {Some(broken)}");
        }
    }

    /// <summary>
    /// A committed offset never passes a record that is not done, and never goes backwards, except where the embedded broker
    /// let a fenced member back in (<see cref="ReadmittedOwners"/>).
    /// </summary>
    private IEnumerable<Violation> Gaps()
    {
        var done = DoneTicks();
        var readmitted = ReadmittedOwners();
        var passed = new List<string>();
        var backwards = new List<string>();
        foreach (var partition in _commits.GroupBy(c => c.Partition))
        {
            var records = _records.Where(r => r.Partition == partition.Key).OrderBy(r => r.Offset).ToList();
            long previous = -1;
            var resets = Resets.Where(r => r.Partition == partition.Key).ToList();
            var lastTicks = 0L;
            foreach (var sample in partition.OrderBy(c => c.Ticks))
            {
                // A sample is timed when its read returned, which can be seconds after the broker answered it: a sample up to the
                // read's timeout after the reset may still show the offset from before it.
                if (resets.Any(r => sample.Ticks >= r.Ticks && lastTicks <= r.DoneTicks + SampleReadBound))
                {
                    // An explicit reset moved the offset back: the only way it may go backwards.
                    previous = -1;
                }

                lastTicks = sample.Ticks;
                if (sample.Offset < previous && readmitted.Any(r => r.Partition == partition.Key && sample.Ticks >= r.RevokedTicks && sample.Ticks - r.RevokedTicks <= ReadmittedCommitBound))
                {
                    // Moved back by a member the embedded broker let in again (see ReadmittedOwners): the offset counts from here.
                    previous = -1;
                }

                if (sample.Offset < previous)
                {
                    backwards.Add($"p{partition.Key}: {previous} -> {sample.Offset} at {new DateTime(sample.Ticks, DateTimeKind.Utc):HH:mm:ss.fff}");
                }

                previous = Math.Max(previous, sample.Offset);
                var notDone = records.FirstOrDefault(r => r.Offset < sample.Offset && done.GetValueOrDefault((r.Partition, r.Offset), long.MaxValue) > sample.Ticks);
                if (notDone is not null)
                {
                    passed.Add($"p{partition.Key}: committed {sample.Offset} at {new DateTime(sample.Ticks, DateTimeKind.Utc):HH:mm:ss.fff} while @{notDone.Offset} ({notDone.Kind}) was not done");
                    break;
                }
            }
        }

        if (passed.Count > 0)
        {
            yield return new Violation("no gap", $"{passed.Count} partition(s) committed past a record not done: {Some(passed)}");
        }

        if (backwards.Count > 0)
        {
            yield return new Violation("offsets never go backwards", $"{backwards.Count} backward step(s): {Some(backwards)}");
        }
    }

    /// <summary>
    /// After an offsets reset from <c>From</c> back to <c>To</c>, every record in between is read again: handled again, skipped as
    /// a duplicate by the idempotency store (log 212), or dead-lettered again. Nothing the store remembers may jump over it.
    /// </summary>
    private IEnumerable<Violation> ResetsHonoured()
    {
        if (Resets.Count == 0)
        {
            yield break;
        }

        var skipped = new List<(long Ticks, int Partition, long Offset)>();
        foreach (var entry in _logs.Entries.Where(e => e.EventId == 212))
        {
            if (DuplicateLog().Match(entry.Message) is { Success: true } match)
            {
                skipped.Add((entry.At.Ticks, int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture)));
            }
        }

        // A batch's records left out as duplicates (log 233) are read by the batch, which spans the offsets it names.
        foreach (var entry in _logs.Entries.Where(e => e.EventId == 233))
        {
            if (BatchDuplicatesLog().Match(entry.Message) is { Success: true } match)
            {
                var partition = int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
                var last = long.Parse(match.Groups[3].Value, CultureInfo.InvariantCulture);
                for (var offset = long.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture); offset <= last; offset++)
                {
                    skipped.Add((entry.At.Ticks, partition, offset));
                }
            }
        }

        // With retry tiers, a record read again while its copy is still parked is skipped there (log 243).
        foreach (var entry in _logs.Entries.Where(e => e.EventId == 243))
        {
            if (AlreadyParkedLog().Match(entry.Message) is { Success: true } match)
            {
                skipped.Add((entry.At.Ticks, int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture)));
            }
        }

        // The last time each record was read: a handler started, a duplicate skipped, a dead letter written, a copy parked.
        var lastRead = new Dictionary<(int, long), long>();
        void Read(int partition, long offset, long ticks) => lastRead[(partition, offset)] = Math.Max(lastRead.GetValueOrDefault((partition, offset)), ticks);
        foreach (var execution in _executions)
        {
            Read(execution.Partition, execution.Offset, execution.StartTicks);
        }

        foreach (var (ticks, partition, offset) in skipped)
        {
            Read(partition, offset, ticks);
        }

        foreach (var ((partition, offset), ticks) in LastDeadLetter)
        {
            Read(partition, offset, ticks);
        }

        foreach (var ((partition, offset), copies) in RetryCopies)
        {
            Read(partition, offset, copies.Max(c => c.TimestampTicks));
        }

        var unread = new List<string>();
        foreach (var reset in Resets)
        {
            foreach (var record in _records.Where(r => r.Partition == reset.Partition && r.Offset >= reset.To && r.Offset < reset.From && r.Expected != Outcome.Nothing))
            {
                if (lastRead.GetValueOrDefault((record.Partition, record.Offset)) < reset.Ticks)
                {
                    unread.Add($"p{record.Partition}@{record.Offset} ({record.Kind}) after the reset of p{reset.Partition} from {reset.From} to {reset.To}");
                }
            }
        }

        if (unread.Count > 0)
        {
            yield return new Violation("offsets resets honoured", $"{unread.Count} record(s) not read again after an offsets reset: {Some(unread)}");
        }
    }

    /// <summary>
    /// With Kafka transactions, a record's offset is committed by its transaction and by nothing else: a plain commit of W
    /// that the coordinator appends after a transaction's commit of W + 1 moves the group back to W, and a crash then
    /// produces W's output twice (issue 11, defect 8). The embedded broker does not keep the transactions' offsets, so the
    /// run cannot watch the group's offset move; it sees the requests instead: no plain commit, and transactional ones
    /// whenever a record was handled.
    /// </summary>
    private IEnumerable<Violation> TransactionsAloneCommit()
    {
        if (CommitRequests is not { } requests)
        {
            yield break;
        }

        var plain = requests.GetValueOrDefault(KafkaApiKey.OffsetCommit);
        if (plain > 0)
        {
            yield return new Violation("transactions alone commit offsets", string.Create(CultureInfo.InvariantCulture,
                $"{plain} plain OffsetCommit request(s) beside {requests.GetValueOrDefault(KafkaApiKey.TxnOffsetCommit)} transactional one(s): a plain commit can move the group's offset back past a transaction's"));
        }

        if (requests.GetValueOrDefault(KafkaApiKey.TxnOffsetCommit) == 0 && _executions.Any(e => e.Succeeded))
        {
            yield return new Violation("transactions alone commit offsets", "records were handled, but no transaction sent their offsets (no TxnOffsetCommit request)");
        }
    }

    /// <summary>A member must never stop by itself (a fatal error 104, a failed poll loop 105, a failed worker 106, a failed watchdog restart 109): a store outage, a fault or a bad record is not fatal.</summary>
    private IEnumerable<Violation> MembersStoppedThemselves()
    {
        var stopped = _logs.Entries.Where(e => e.EventId is 104 or 105 or 106 or 109).Select(e => $"member {e.Member}.{e.Incarnation}: {e.Message}").ToList();
        if (stopped.Count > 0)
        {
            yield return new Violation("members keep running", Some(stopped));
        }
    }

    /// <summary>
    /// A stop is abandoned at its bound (log 112) only once the poll thread has begun stopping: draining (bounded by
    /// ShutdownTimeout, but a rebalance served meanwhile runs its own drain, commit and store reads), the final commit,
    /// leaving the group or releasing the client (native calls that may not return). A stop abandoned while the poll thread
    /// had not even left its loop is the library's defect.
    /// </summary>
    private IEnumerable<Violation> StopsAbandonedInThePollLoop()
    {
        string[] clientCalls = ["while draining", "while committing", "while leaving its group", "while releasing the client"];
        var abandoned = _logs.Entries.Where(e => e.EventId == 112 && !clientCalls.Any(c => e.Message.Contains(c, StringComparison.Ordinal)))
            .Select(e => $"member {e.Member}.{e.Incarnation}: {e.Message}").ToList();
        if (abandoned.Count > 0)
        {
            yield return new Violation("stops end within their bound", Some(abandoned));
        }
    }

    private Dictionary<(int, long), int> EffectCounts()
    {
        if (ExactlyOnceStore)
        {
            return _storeEffects.ToDictionary(e => (e.Key.Partition, e.Key.Offset), e => e.Value);
        }

        return _executions.Where(e => e.Succeeded).GroupBy(e => (e.Partition, e.Offset)).ToDictionary(g => g.Key, g => g.Count());
    }

    /// <summary>When each record was done: its first successful handling, or its dead letter; skipped records are always done.</summary>
    private Dictionary<(int, long), long> DoneTicks()
    {
        var done = new Dictionary<(int, long), long>();
        foreach (var execution in _executions.Where(e => e.Succeeded))
        {
            var key = (execution.Partition, execution.Offset);
            done[key] = Math.Min(done.GetValueOrDefault(key, long.MaxValue), execution.EndTicks);
        }

        foreach (var (key, copy) in _deadLetters)
        {
            done[key] = Math.Min(done.GetValueOrDefault(key, long.MaxValue), copy.TimestampTicks);
        }

        foreach (var (key, copies) in RetryCopies)
        {
            // With retry tiers, a record is done in its partition once its copy is in the retry topic (the copy then stays
            // uncommitted there until the record is handled or dead-lettered: that is the retry partition's business).
            done[key] = Math.Min(done.GetValueOrDefault(key, long.MaxValue), copies.Min(c => c.TimestampTicks));
        }

        foreach (var record in _records.Where(r => r.Expected == Outcome.Nothing))
        {
            // A skipped tombstone leaves no trace to time it by.
            done.TryAdd((record.Partition, record.Offset), 0);
        }

        return done;
    }

    private static long Incarnation(Execution execution) => execution.Epoch / 1_000_000;

    /// <summary>How long after a readmitted member's revoke its commit may show in the samples.</summary>
    private static readonly long ReadmittedCommitBound = TimeSpan.FromSeconds(2).Ticks;

    /// <summary>
    /// The revokes of a partition by a member that still held it after the group had assigned it to another member (with no
    /// revoke or loss logged in between). librdkafka's mock cluster evicts a member whose heartbeats meet a rebalance after
    /// the session timeout (a real broker waits for max.poll.interval.ms), and when the member's blocked poll thread comes back
    /// the mock takes it in again under its old member id (a real broker answers UNKNOWN_MEMBER_ID, and the client reports its
    /// partitions lost). The member then gets an ordinary revoke in a current generation, and its final commit of an old
    /// watermark is accepted: a committed offset goes back in a way no real broker allows (soak-755517330). Such a revoke
    /// commit excuses a backward step; everything else about the run is still checked.
    /// </summary>
    private List<(int Partition, long RevokedTicks)> ReadmittedOwners()
    {
        var owned = new Dictionary<(int Member, long Incarnation, int Partition), long>();
        var assigned = new List<(int Member, long Incarnation, int Partition, long Ticks)>();
        var readmitted = new List<(int Partition, long RevokedTicks)>();
        foreach (var entry in _logs.Entries.Where(e => e.EventId is 400 or 401 or 402).OrderBy(e => e.At))
        {
            foreach (System.Text.RegularExpressions.Match match in PartitionLog().Matches(entry.Message))
            {
                var partition = int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
                var key = (entry.Member, entry.Incarnation, partition);
                if (entry.EventId == 400)
                {
                    owned[key] = entry.At.Ticks;
                    assigned.Add((entry.Member, entry.Incarnation, partition, entry.At.Ticks));
                    continue;
                }

                if (entry.EventId == 401 && owned.TryGetValue(key, out var since)
                    && assigned.Any(a => a.Partition == partition && (a.Member, a.Incarnation) != (entry.Member, entry.Incarnation) && a.Ticks > since && a.Ticks < entry.At.Ticks))
                {
                    readmitted.Add((partition, entry.At.Ticks));
                }

                owned.Remove(key);
            }
        }

        return readmitted;
    }

    /// <summary>A partition in the library's logs 400-402: "... {Topic} [[{Partition}]] ...".</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"\[\[(\d+)\]\]")]
    private static partial System.Text.RegularExpressions.Regex PartitionLog();

    /// <summary>The library's log 212: "... {Topic} [{Partition}] @{Offset} was handled before ...".</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"\[(\d+)\] @(\d+) was handled before")]
    private static partial System.Text.RegularExpressions.Regex DuplicateLog();

    /// <summary>The library's log 243: "... {Topic} [{Partition}] @{Offset} is parked in {RetryTopic} already ...".</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"\[(\d+)\] @(\d+) is parked in")]
    private static partial System.Text.RegularExpressions.Regex AlreadyParkedLog();

    /// <summary>The library's log 233: "... {Topic} [{Partition}] @{FirstOffset}..{LastOffset} were handled before ...".</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"\[(\d+)\] @(\d+)\.\.(\d+) were handled before")]
    private static partial System.Text.RegularExpressions.Regex BatchDuplicatesLog();

    private static string Some(List<string> items) =>
        string.Join("; ", items.Take(Shown)) + (items.Count > Shown ? string.Create(CultureInfo.InvariantCulture, $"; ... {items.Count - Shown} more") : string.Empty);
}

/// <summary>An offsets reset of one partition: when (the commit was sent at <c>Ticks</c> and answered by <c>DoneTicks</c>), and from which committed offset back to which.</summary>
public sealed record OffsetReset(long Ticks, long DoneTicks, int Partition, long From, long To);

/// <summary>A record as the dead-letter topic holds it; <see cref="RetryHistory"/> counts its <c>retry-history</c> headers.</summary>
public sealed record DeadLetterCopy(byte[]? Value, long TimestampTicks, bool Truncated)
{
    public int RetryHistory { get; init; }
}

/// <summary>A copy of a parked record in the retry topic (retry tiers): when it was written, its tier (0: parked behind its key), its value.</summary>
public sealed record RetryCopy(long TimestampTicks, int Tier, byte[]? Value);
