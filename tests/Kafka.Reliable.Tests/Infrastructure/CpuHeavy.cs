namespace Kafka.Reliable.Tests.Infrastructure;

/// <summary>
/// Tests that keep both cores busy (lock-step stress tests) run in this collection, alone, after the parallel ones: beside
/// them, tests with short session timeouts could miss a heartbeat for a reason that has nothing to do with what they test.
/// </summary>
[CollectionDefinition(Collection, DisableParallelization = true)]
public sealed class CpuHeavy
{
    public const string Collection = "CPU-heavy stress tests";
}
