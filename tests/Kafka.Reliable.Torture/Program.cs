using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Kafka.Reliable.Torture;
using Microsoft.Extensions.Hosting;

// The torture harness. See docs/guarantees.md ("Torture matrix").
//   soak:    dotnet run --project tests/Kafka.Reliable.Torture -c Release -- --minutes 30 [--config Store=Redis ...]
//   replay:  dotnet run --project tests/Kafka.Reliable.Torture -c Release -- --seed 12345 [--seed ...]
//            dotnet run --project tests/Kafka.Reliable.Torture -c Release -- --replay <regression case name or .json file> [--replay ...]
//   show:    dotnet run --project tests/Kafka.Reliable.Torture -c Release -- --show <seed or case> [...]   (prints the drawn configuration)
//   child:   member <run folder> <member> <incarnation>   (started by a run whose members are child processes)
if (args.Length > 0 && args[0] == "member")
{
    return await RunMemberAsync(args);
}

if (args is ["--pick-ci-seeds", var candidates, .. var keep])
{
    // Prints few seeds whose configurations cover every axis value: the CI list (see CiSeeds in the tests). Seeds given after
    // --keep (those that found a defect) are kept, and the fewest others are added for what they leave uncovered.
    var kept = keep is ["--keep", var list] ? list.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToList() : [];
    var picked = Coverage.PickSeeds(int.Parse(candidates, CultureInfo.InvariantCulture), kept);
    foreach (var seed in picked)
    {
        Console.WriteLine($"{seed}: {TortureConfig.Draw(seed).Describe()}");
    }

    var covered = picked.SelectMany(s => Coverage.Of(TortureConfig.Draw(s))).ToHashSet();
    Console.WriteLine($"covers {covered.Count} of {Coverage.Universe.Count} axis values; missing: {string.Join(", ", Coverage.Universe.Except(covered))}");
    return 0;
}

if (args is ["--show", .. var shown])
{
    // Prints what seeds draw (or regression cases hold), without running them.
    foreach (var what in shown)
    {
        var config = int.TryParse(what, CultureInfo.InvariantCulture, out var seed) ? TortureConfig.Draw(seed) : RegressionCase.Load(what).Config;
        Console.WriteLine(config.Describe());
        Console.WriteLine("  " + config.ToJson());
    }

    return 0;
}

if (args is ["--refusals"])
{
    // Asks the validator about every combination of dispatch mode, commit strategy and store: the refused ones are listed in docs/guarantees.md.
    using var cluster = Kafka.Reliable.Testing.EmbeddedKafkaCluster.Start();
    foreach (var commit in Enum.GetValues<CommitMode>())
    {
        foreach (var store in Enum.GetValues<StoreKind>())
        {
            foreach (var dispatch in Enum.GetValues<Kafka.Reliable.DispatchMode>())
            {
                var probe = TortureConfig.Draw(1) with { Commit = commit, Store = store, Dispatch = dispatch };
                if (Coverage.Refusal(probe, cluster.BootstrapServers) is { } refusal)
                {
                    Console.WriteLine($"{commit} + {store} + {dispatch}: {refusal}");
                }
            }
        }
    }

    return 0;
}

if (!TryParse(args, out var options, out var usage))
{
    Console.Error.WriteLine(usage);
    return 2;
}

await using var environment = new TortureEnvironment();
var clock = Stopwatch.StartNew();
var random = new Random();
var results = new List<RunResult>();
var queue = new Queue<TortureConfig>(options.Seeds.Select(TortureConfig.Draw).Concat(options.Replays.Select(r => RegressionCase.Load(r).Config)));
var fixedRuns = queue.Count > 0;
while (true)
{
    TortureConfig config;
    if (queue.Count > 0)
    {
        config = queue.Dequeue();
    }
    else if (!fixedRuns && clock.Elapsed < options.Duration && (options.Runs == 0 || results.Count < options.Runs))
    {
        config = TortureConfig.Draw(random.Next());
        if (!options.Matches(config))
        {
            continue;
        }
    }
    else
    {
        break;
    }

    RunResult result;
    try
    {
        result = await new TortureRun(config, environment, line => Console.WriteLine($"[{clock.Elapsed:hh\\:mm\\:ss}] {line}")).RunAsync();
    }
    catch (Exception ex)
    {
        // The harness itself failed (a server it needs, the machine): a failed run with its seed, not the end of the soak.
        result = new RunResult(config, null, [new Violation("harness", ex.ToString())], new RunStats(config.Records, 0, 0, 0, 0, 0, 0, TimeSpan.Zero), string.Empty);
    }

    results.Add(result);
    if (result.Refused is not null)
    {
        Console.WriteLine($"           refused: seed {config.Seed}: {result.Refused}");
    }
    else if (!result.Passed)
    {
        Console.WriteLine(result.Report());
    }
}

var failed = results.Where(r => !r.Passed).ToList();
var ran = results.Where(r => r.Refused is null).ToList();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"Torture: {results.Count} runs in {clock.Elapsed.TotalMinutes:0.0} min: {ran.Count - failed.Count} passed, {failed.Count} with violations, {results.Count - ran.Count} refused by the validator; " +
    $"{ran.Select(r => Axes(r.Config)).Distinct().Count()} distinct configurations, {ran.Sum(r => r.Stats.FaultsInjected)} faults injected, {ran.Sum(r => r.Stats.Kills)} kills, " +
    $"{ran.Sum(r => r.Stats.Records)} records, {ran.Sum(r => r.Stats.Executions)} handler executions"));
foreach (var failure in failed)
{
    Console.WriteLine($"  failing seed {failure.Config.Seed}: {string.Join(", ", failure.Violations.Select(v => v.Invariant).Distinct())}");
}

return failed.Count == 0 ? 0 : 1;

static string Axes(TortureConfig c) =>
    $"{c.Dispatch}/{c.Commit}/{c.Store}/{c.CircuitBreaker}/{c.Watchdog}/{c.Tombstones}/{c.Translator}/{c.ChildProcesses}";

static async Task<int> RunMemberAsync(string[] args)
{
    var runDirectory = args[1];
    var member = int.Parse(args[2], CultureInfo.InvariantCulture);
    var incarnation = long.Parse(args[3], CultureInfo.InvariantCulture);
    var config = TortureConfig.FromJson(await File.ReadAllTextAsync(Path.Combine(runDirectory, "config.json")));
    var environment = JsonSerializer.Deserialize<MemberEnvironment>(await File.ReadAllTextAsync(Path.Combine(runDirectory, "environment.json")))!;
    using var journal = new Journal(ChildMember.JournalPath(runDirectory, member, incarnation));
    using var host = MemberHost.Build(config, environment, member, incarnation, journal, new ChildLogs());
    await host.RunAsync();
    return 0;
}

static bool TryParse(string[] args, out SoakOptions options, out string usage)
{
    usage = "usage: [--minutes M] [--runs N] [--seed S ...] [--replay CASE ...] [--config Axis=Value ...]   (axes: any property of the configuration, e.g. Dispatch, Commit, Store, Keys, Volume; or any coverage value, e.g. Fault=StoreDown, Membership=Kill, Trigger=Stubborn, StoreDown=BeforeStart)";
    options = new SoakOptions();
    for (var i = 0; i < args.Length; i++)
    {
        var value = i + 1 < args.Length ? args[i + 1] : null;
        switch (args[i])
        {
            case "--minutes" when double.TryParse(value, CultureInfo.InvariantCulture, out var minutes):
                options.Duration = TimeSpan.FromMinutes(minutes);
                i++;
                break;
            case "--runs" when int.TryParse(value, CultureInfo.InvariantCulture, out var runs):
                options.Runs = runs;
                options.Duration = options.Duration == TimeSpan.Zero ? TimeSpan.MaxValue : options.Duration;
                i++;
                break;
            case "--seed" when int.TryParse(value, CultureInfo.InvariantCulture, out var seed):
                options.Seeds.Add(seed);
                i++;
                break;
            case "--replay" when value is not null:
                options.Replays.Add(value);
                i++;
                break;
            case "--config" when value?.Split('=', 2) is [var axis, var wanted]:
                if (!SoakOptions.IsKnownFilter(axis, wanted))
                {
                    // A value no configuration can have would make the soak draw seeds for ever.
                    usage = $"--config {value}: no configuration has that value (booleans are True or False; coverage values: {string.Join(", ", Coverage.Universe.Order())})";
                    return false;
                }

                options.Filters[axis] = wanted;
                i++;
                break;
            default:
                return false;
        }
    }

    if (options.Seeds.Count == 0 && options.Replays.Count == 0 && options.Duration == TimeSpan.Zero)
    {
        options.Duration = TimeSpan.FromMinutes(1);
    }

    return true;
}

internal sealed class SoakOptions
{
    public TimeSpan Duration { get; set; }

    public int Runs { get; set; }

    public List<int> Seeds { get; } = [];

    /// <summary>Gets the regression cases to replay (names in the Regressions folder, or paths to case files).</summary>
    public List<string> Replays { get; } = [];

    public Dictionary<string, string> Filters { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Whether some configuration can have the value: a property's value of its type, or a coverage value.</summary>
    public static bool IsKnownFilter(string axis, string wanted)
    {
        var type = typeof(TortureConfig).GetProperty(axis, System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.IgnoreCase)?.PropertyType;
        var ofItsType = type switch
        {
            null => false,
            _ when type == typeof(bool) => bool.TryParse(wanted, out _),
            _ when type == typeof(int) => int.TryParse(wanted, CultureInfo.InvariantCulture, out _),
            { IsEnum: true } => Enum.TryParse(type, wanted, ignoreCase: true, out _),
            _ => false,
        };
        return ofItsType || Coverage.Universe.Contains($"{axis}={wanted}", StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Whether a drawn configuration has every axis value asked for with <c>--config</c>: a property of the configuration
    /// (<c>Keys=2</c>), or any value the coverage counts (<c>Fault=StoreDown</c>, <c>Membership=Kill</c>, <c>Trigger=Stubborn</c>,
    /// <c>StoreDown=BeforeStart</c>, <c>Record=Oversize</c>): schedules match when any of their entries does.
    /// </summary>
    public bool Matches(TortureConfig config)
    {
        HashSet<string>? covered = null;
        foreach (var (axis, wanted) in Filters)
        {
            var property = typeof(TortureConfig).GetProperty(axis, System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.IgnoreCase);
            if (property is not null && string.Equals(property.GetValue(config)?.ToString(), wanted, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            covered ??= new HashSet<string>(Coverage.Of(config), StringComparer.OrdinalIgnoreCase);
            if (!covered.Contains($"{axis}={wanted}"))
            {
                return false;
            }
        }

        return true;
    }
}
