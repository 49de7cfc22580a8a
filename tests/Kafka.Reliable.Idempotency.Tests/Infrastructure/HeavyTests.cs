namespace Kafka.Reliable.Idempotency.Tests.Infrastructure;

/// <summary>
/// The crash tests and the rebalance storm each push tens of thousands of records through a database with child processes
/// or several members: on a 2-core machine they run one after the other, not side by side.
/// </summary>
[CollectionDefinition(Name)]
public sealed class HeavyTests
{
    public const string Name = "heavy";
}
