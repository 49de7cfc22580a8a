using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable.Torture;

/// <summary>Which values of which axes a set of runs exercises, so that the CI seeds can be shown to cover every one.</summary>
public static class Coverage
{
    /// <summary>Every axis value the matrix has.</summary>
    public static IReadOnlySet<string> Universe { get; } = BuildUniverse();

    /// <summary>The axis values one configuration exercises (nothing if the validator refuses it).</summary>
    public static IEnumerable<string> Of(TortureConfig config)
    {
        yield return $"Dispatch={config.Dispatch}";
        yield return $"Commit={config.Commit}";
        yield return $"Store={config.Store}";
        yield return $"CircuitBreaker={config.CircuitBreaker}";
        yield return $"Watchdog={config.Watchdog}";
        yield return $"Tombstones={config.Tombstones}";
        yield return $"Translator={config.Translator}";
        yield return $"ChildProcesses={config.ChildProcesses}";
        yield return $"MaxPayloadBytes={(config.MaxPayloadBytes == 0 ? "default" : "limited")}";
        yield return $"Members={config.Members}";
        yield return $"Volume={config.Volume}";
        yield return $"PartitionBufferSize={(config.PartitionBufferSize == 0 ? "default" : "set")}";
        yield return $"MaxBufferedBytes={(config.MaxBufferedBytes == 0 ? "default" : "1MiB")}";
        yield return $"BuilderOrder={(config.HandlerFirst ? "HandlerFirst" : "StoreFirst")}";
        if (config.Store is StoreKind.PostgresLease or StoreKind.PostgresTransactional or StoreKind.Redis)
        {
            yield return $"StoreConnection={(config.ApplicationConnection ? "Application" : "Own")}";
        }
        yield return $"Handler={(config.BatchSize == 0 ? "Message" : config.BatchAcrossPartitions ? "BatchAcrossPartitions" : "Batch")}";
        yield return $"Deserializer={(config.AsyncDeserializer ? "Async" : "Sync")}";
        yield return $"Payload={config.Payload}";
        yield return $"RetryTiers={config.RetryTiers}";
        yield return $"Protocol={config.Protocol}";
        yield return $"StaticMembers={config.StaticMembers}";
        if (config.SqliteTimeoutSeconds > 0)
        {
            yield return "SqliteTimeout=short";
        }

        if (config.Membership.Any(m => m.Member >= 3))
        {
            yield return "StoreDown=DuringRebalance";
        }

        foreach (var kind in config.Faults.Select(f => f.WhileInFlight).Concat(config.Membership.Select(m => m.WhileInFlight)).OfType<RecordKind>())
        {
            yield return $"Trigger={kind}";
        }
        yield return config.Faults.Count == 0 ? "Fault=none" : "Fault=some";
        foreach (var fault in config.Faults)
        {
            yield return $"Fault={fault.Kind}";
            if (fault.BeforeStart)
            {
                yield return fault.Kind == FaultKind.RegistryDown ? "RegistryDown=BeforeStart" : "StoreDown=BeforeStart";
            }

            if (fault.Api is not null)
            {
                var (api, error) = config.RequestErrorFor(fault);
                yield return $"RequestErrors={api}";
                if (error == "UnreleasedInstanceId")
                {
                    yield return "RequestErrors=UnreleasedInstanceId";
                }
            }
        }

        foreach (var change in config.Membership)
        {
            yield return $"Membership={change.Action}";
        }

        foreach (var kind in Workload.Draw(config).Select(r => r.Kind).Distinct())
        {
            yield return $"Record={kind}";
        }
    }

    /// <summary>The validator's refusal of a configuration, or null if it accepts it (asked without starting anything).</summary>
    public static string? Refusal(TortureConfig config, string bootstrapServers)
    {
        var environment = new MemberEnvironment(bootstrapServers, "t", "g", "Host=127.0.0.1;Username=x", "/tmp/refusal-probe.db", "127.0.0.1:6379", "p:");
        using var journal = new Journal();
        using var host = MemberHost.Build(config, environment, 0, 0, journal, null);
        try
        {
            host.Services.GetService<IStartupValidator>()?.Validate();
            return null;
        }
        catch (OptionsValidationException ex)
        {
            return ex.Message;
        }
    }

    /// <summary>Picks few seeds (from 1 up) whose accepted configurations cover, with the seeds to keep, every axis value, greedily.</summary>
    public static List<int> PickSeeds(int candidates, IReadOnlyList<int> keep)
    {
        using var cluster = Kafka.Reliable.Testing.EmbeddedKafkaCluster.Start();
        var pool = Enumerable.Range(1, candidates)
            .Select(seed => TortureConfig.Draw(seed))
            .Where(c => Refusal(c, cluster.BootstrapServers) is null)
            .Select(c => (c.Seed, Values: Of(c).ToHashSet(), Cost: c.Records * c.Members + c.Faults.Count * 500))
            .ToList();
        var missing = new HashSet<string>(Universe);
        var picked = new List<int>(keep);
        foreach (var seed in keep)
        {
            missing.ExceptWith(Of(TortureConfig.Draw(seed)));
        }

        while (missing.Count > 0)
        {
            var useful = pool.Where(p => p.Values.Any(missing.Contains)).ToList();
            if (useful.Count == 0)
            {
                break;
            }

            var best = useful.MaxBy(p => (p.Values.Count(missing.Contains) * 10_000) - p.Cost);

            picked.Add(best.Seed);
            missing.ExceptWith(best.Values);
            pool.Remove(best);
        }

        return picked;
    }

    private static HashSet<string> BuildUniverse()
    {
        var values = new HashSet<string>();
        values.UnionWith(Enum.GetValues<DispatchMode>().Select(v => $"Dispatch={v}"));
        values.UnionWith(Enum.GetValues<CommitMode>().Select(v => $"Commit={v}"));
        values.UnionWith(Enum.GetValues<StoreKind>().Select(v => $"Store={v}"));
        values.UnionWith(["CircuitBreaker=True", "CircuitBreaker=False", "Watchdog=True", "Watchdog=False", "Translator=True", "Translator=False"]);
        values.UnionWith(["ChildProcesses=True", "ChildProcesses=False", "MaxPayloadBytes=default", "MaxPayloadBytes=limited", "Members=1", "Members=2", "Members=3"]);
        values.UnionWith(["PartitionBufferSize=default", "PartitionBufferSize=set", "MaxBufferedBytes=default", "MaxBufferedBytes=1MiB"]);
        values.UnionWith(["BuilderOrder=StoreFirst", "BuilderOrder=HandlerFirst", "StoreConnection=Own", "StoreConnection=Application"]);
#if !TORTURE_OLD_LIBRARY
        values.UnionWith(["Handler=Message", "Handler=Batch", "Handler=BatchAcrossPartitions", "Deserializer=Sync", "Deserializer=Async", "Payload=Json", "Payload=Avro", "Payload=JsonSchema", "Payload=Protobuf"]);
        values.UnionWith(Enum.GetValues<RetryTierMode>().Select(v => $"RetryTiers={v}"));
        values.UnionWith(["Protocol=Classic", "Protocol=Consumer", "RequestErrors=ConsumerGroupHeartbeat", "StaticMembers=True", "StaticMembers=False", "RequestErrors=UnreleasedInstanceId"]);
#endif
        values.UnionWith(["Volume=True", "Volume=False", "SqliteTimeout=short", "StoreDown=BeforeStart", "StoreDown=DuringRebalance", "Trigger=Slower", "Trigger=Stubborn"]);
        values.UnionWith(Enum.GetValues<TombstonePolicy>().Select(v => $"Tombstones={v}"));
        values.UnionWith(Enum.GetValues<FaultKind>().Select(v => $"Fault={v}"));
        values.UnionWith(["Fault=none", "Fault=some"]);
        values.UnionWith(TortureConfig.RequestErrorApis.Select(v => $"RequestErrors={v}"));
        values.UnionWith(Enum.GetValues<MemberAction>().Select(v => $"Membership={v}"));
        values.UnionWith(Enum.GetValues<RecordKind>().Select(v => $"Record={v}"));
#if TORTURE_OLD_LIBRARY
        values.Remove("Record=Outlast");
#endif
        return values;
    }
}
