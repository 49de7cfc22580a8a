using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kafka.Reliable.Torture;

/// <summary>What a record is, and so what its handler does (the payload carries it, so that child processes know too).</summary>
public enum RecordKind
{
    Ok,

    /// <summary>The handler waits a few ms (respecting cancellation).</summary>
    Slow,

    /// <summary>The handler waits longer than the revoke and shutdown timeouts (respecting cancellation).</summary>
    Slower,

    /// <summary>The handler throws a transient exception on its first attempts, then succeeds.</summary>
    Transient,

    /// <summary>The handler throws a transient exception on every attempt: retries run out.</summary>
    Exhaust,

    /// <summary>The handler throws a <see cref="NonRetryableException"/>.</summary>
    Fatal,

    /// <summary>The handler waits without looking at its cancellation token.</summary>
    IgnoreCancel,

    /// <summary>The handler blocks its thread synchronously for a while.</summary>
    Block,

    /// <summary>
    /// The handler ignores its cancellation token for longer than the session timeout and every drain: it outlives a lost
    /// partition, a revoke, a shutdown and a watchdog restart, and is still running when its record is read again.
    /// </summary>
    Stubborn,

    /// <summary>Not JSON.</summary>
    PoisonJson,

    /// <summary>JSON of the wrong shape (a string where a number is).</summary>
    PoisonShape,

    /// <summary>JSON with a property given twice.</summary>
    PoisonDuplicate,

    /// <summary>Larger than <c>MaxPayloadBytes</c>.</summary>
    Oversize,

    /// <summary>Invalid JSON just under <c>MaxPayloadBytes</c>: it must fit in the dead-letter topic.</summary>
    BigPoison,

    /// <summary>A null value.</summary>
    Tombstone,

    /// <summary>Valid JSON that the translator refuses.</summary>
    Untranslatable,

    /// <summary>
    /// With retry tiers only: the handler throws a transient exception on every attempt until its record is tried again from
    /// retry tier <see cref="Job.N"/> (1 to the number of tiers), then succeeds. It outlives its in-place retries, is parked,
    /// and is handled from a tier (with Ordered tiers, its key's later records wait behind it).
    /// </summary>
    Outlast,
}

/// <summary>Where a record must end.</summary>
public enum Outcome
{
    /// <summary>Handled successfully: its effect exists.</summary>
    Effect,

    /// <summary>In the dead-letter topic, with its original bytes.</summary>
    DeadLetter,

    /// <summary>Neither (a tombstone skipped by policy).</summary>
    Nothing,
}

/// <summary>The message type of the torture consumers.</summary>
public sealed record Job(int Id, string Key, RecordKind Do, int Ms, int N);

/// <summary>What the translator makes of a <see cref="Job"/>.</summary>
public sealed record TranslatedJob(Job Job);

[JsonSerializable(typeof(Job))]
[JsonSourceGenerationOptions(UseStringEnumConverter = true)]
public sealed partial class TortureJson : JsonSerializerContext;

/// <summary>One produced record: what it is, its bytes, where it landed, and where it must end.</summary>
public sealed class RecordSpec
{
    public required int Id { get; init; }

    public required string Key { get; init; }

    public required RecordKind Kind { get; init; }

    public required byte[]? Value { get; init; }

    public required Outcome Expected { get; init; }

    public int Partition { get; set; } = -1;

    public long Offset { get; set; } = -1;
}

/// <summary>Draws the records of a run from its seed.</summary>
public static class Workload
{
    public static List<RecordSpec> Draw(TortureConfig config)
    {
        var random = new Random(unchecked(config.Seed * 7919 + 17));
        var limit = config.MaxPayloadBytes > 0 ? config.MaxPayloadBytes : 1024 * 1024;
        var records = new List<RecordSpec>(config.Records);
        var poisonKinds = new List<RecordKind> { RecordKind.PoisonJson, RecordKind.PoisonShape, RecordKind.PoisonDuplicate, RecordKind.Tombstone };
        if (config.Translator)
        {
            poisonKinds.Add(RecordKind.Untranslatable);
        }

        RecordKind[] troubleKinds = [RecordKind.Slow, RecordKind.Transient, RecordKind.Exhaust, RecordKind.Fatal, RecordKind.IgnoreCancel, RecordKind.Block];
        var big = 0;
        var slower = 0;

        // With retry tiers (a stream of its own, drawn from only then, so that a run without them keeps its records): half of the
        // transient failures, and about one plain record in a hundred (one in five thousand in a volume run, whose retry topic the
        // embedded broker must keep), outlast their in-place retries and succeed from a tier.
        var tiers = config.TierCount > 0 ? new Random(unchecked(config.Seed * 48271 + 101)) : null;

        // The stalling records, spread over the run (after the first few records, so that some records are done before them).
        // Each kind a triggered change waits for is among them.
        var wanted = config.Faults.Select(f => f.WhileInFlight).Concat(config.Membership.Select(m => m.WhileInFlight)).OfType<RecordKind>().Distinct().Order().ToList();
        var stalls = new Dictionary<int, RecordKind>();
        for (var i = 0; i < Math.Max(config.Stalls, wanted.Count); i++)
        {
            var kind = i < wanted.Count ? wanted[i] : random.Next(2) == 0 ? RecordKind.Slower : RecordKind.Stubborn;
            while (!stalls.TryAdd(random.Next(config.Records / 20, config.Records * 9 / 10), kind))
            {
            }
        }

        for (var id = 0; id < config.Records; id++)
        {
            var key = "k" + random.Next(config.Keys).ToString(CultureInfo.InvariantCulture);
            var kind = RecordKind.Ok;
            var roll = random.Next(100);
            if (roll < config.PoisonPercent)
            {
                // At most two records near the size limit per run: they are large, and one is enough to hold a partition.
                kind = poisonKinds[random.Next(poisonKinds.Count)];
                if (big < 2 && random.Next(6) == 0)
                {
                    kind = random.Next(2) == 0 ? RecordKind.Oversize : RecordKind.BigPoison;
                    big++;
                }
            }
            else if (roll < config.PoisonPercent + config.TroublePercent)
            {
                kind = troubleKinds[random.Next(troubleKinds.Length)];
                if (kind == RecordKind.Slow && slower < 1 && random.Next(4) == 0)
                {
                    kind = RecordKind.Slower;
                    slower++;
                }
            }

            if (stalls.TryGetValue(id, out var stall))
            {
                kind = stall;
            }

            var (ms, n) = kind switch
            {
                RecordKind.Slow => (random.Next(5, 60), 0),
                RecordKind.Slower => (Math.Max(config.RevokeTimeoutMs, config.ShutdownTimeoutMs) + 1_500, 0),
                RecordKind.Stubborn => (TortureConfig.StubbornMs, 0),
                RecordKind.IgnoreCancel or RecordKind.Block => (random.Next(50, 400), 0),
                RecordKind.Transient => (0, random.Next(1, config.MaxAttempts)),
                _ => (0, 0),
            };
            if (tiers is not null && kind is RecordKind.Transient or RecordKind.Ok
                && tiers.Next(kind == RecordKind.Transient ? 2 : config.Volume ? 5_000 : 100) == 0)
            {
                // After the main stream's draws, which stay those of the run without tiers.
                kind = RecordKind.Outlast;
                (ms, n) = (0, tiers.Next(1, config.TierCount + 1));
            }

            var job = new Job(id, key, kind, ms, n);
            records.Add(new RecordSpec
            {
                Id = id,
                Key = key,
                Kind = kind,
                Value = config.RegistryPayload ? RegistryJobs.Payload(job, limit, config.Payload) : Payload(job, limit),
                Expected = ExpectedOutcome(kind, config),
            });
        }

        return records;
    }

    /// <summary>
    /// The run's epilogue, produced once every drawn record is resolved, in two steps. First a record whose handler fails on
    /// every attempt, alone on an idle consumer: with the circuit breaker, its own retries open the circuit while nothing else
    /// is buffered, so no other record can make the circuit's trial (issue 10, defect 3). Then one plain record per partition:
    /// a partition left paused (by a circuit never closed, a watchdog, a pause never undone) does not handle its one.
    /// </summary>
    public static List<List<RecordSpec>> Epilogue(TortureConfig config)
    {
        RecordSpec Record(int id, string key, RecordKind kind, int partition) => new()
        {
            Id = id,
            Key = key,
            Kind = kind,
            Value = config.RegistryPayload ? RegistryJobs.Payload(new Job(id, key, kind, 0, 0), limit: 0, config.Payload) : Payload(new Job(id, key, kind, 0, 0), limit: 0),
            Expected = ExpectedOutcome(kind, config),
            Partition = partition,
        };

        return
        [
            [Record(config.Records + config.Partitions, "last-failing", RecordKind.Exhaust, 0)],
            [.. Enumerable.Range(0, config.Partitions).Select(p => Record(config.Records + p, "last-" + p.ToString(CultureInfo.InvariantCulture), RecordKind.Ok, p))],
        ];
    }

    public static Outcome ExpectedOutcome(RecordKind kind, TortureConfig config) => kind switch
    {
        RecordKind.Ok or RecordKind.Slow or RecordKind.Slower or RecordKind.Transient or RecordKind.IgnoreCancel or RecordKind.Block or RecordKind.Stubborn => Outcome.Effect,
        RecordKind.Outlast => config.TierCount > 0 ? Outcome.Effect : Outcome.DeadLetter,
        RecordKind.Tombstone => config.Tombstones switch
        {
            TombstonePolicy.Handle => Outcome.Effect,
            TombstonePolicy.Skip => Outcome.Nothing,
            _ => Outcome.DeadLetter,
        },
        _ => Outcome.DeadLetter,
    };

    private static byte[]? Payload(Job job, int limit)
    {
        switch (job.Do)
        {
            case RecordKind.Tombstone:
                return null;
            case RecordKind.PoisonJson:
                return Encoding.UTF8.GetBytes($"{{\"Id\":{job.Id},\"Key\":");
            case RecordKind.PoisonShape:
                return Encoding.UTF8.GetBytes($"{{\"Id\":\"id-{job.Id}\",\"Key\":\"{job.Key}\",\"Do\":\"Ok\",\"Ms\":0,\"N\":0}}");
            case RecordKind.PoisonDuplicate:
                return Encoding.UTF8.GetBytes($"{{\"Id\":{job.Id},\"Key\":\"{job.Key}\",\"Do\":\"Ok\",\"Ms\":0,\"N\":0,\"Id\":{job.Id + 1}}}");
            case RecordKind.Oversize:
            case RecordKind.BigPoison:
                {
                    // Oversize: valid JSON over the limit. BigPoison: invalid JSON 200 bytes under it.
                    var size = job.Do == RecordKind.Oversize ? limit + 100 : limit - 200;
                    var head = Encoding.UTF8.GetBytes($"{{\"Id\":{job.Id},\"Key\":\"{job.Key}\",\"Do\":\"Ok\",\"Ms\":0,\"N\":0,\"Pad\":\"");
                    var bytes = new byte[size];
                    head.CopyTo(bytes, 0);
                    bytes.AsSpan(head.Length).Fill((byte)'x');
                    if (job.Do == RecordKind.Oversize)
                    {
                        bytes[^2] = (byte)'"';
                        bytes[^1] = (byte)'}';
                    }

                    return bytes;
                }

            default:
                return JsonSerializer.SerializeToUtf8Bytes(job, TortureJson.Default.Job);
        }
    }
}
