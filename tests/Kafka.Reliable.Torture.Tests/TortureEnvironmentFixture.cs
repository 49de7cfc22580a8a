[assembly: AssemblyFixture(typeof(Kafka.Reliable.Torture.Tests.TortureEnvironmentFixture))]

namespace Kafka.Reliable.Torture.Tests;

/// <summary>The servers and temp folder every CI seed shares (one PostgreSQL, one Redis, started on first use).</summary>
public sealed class TortureEnvironmentFixture : IAsyncDisposable
{
    public TortureEnvironment Environment { get; } = new();

    public ValueTask DisposeAsync() => Environment.DisposeAsync();
}
