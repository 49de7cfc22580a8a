namespace Kafka.Reliable.Tests.Infrastructure;

/// <summary>Waits on conditions with a timeout, never on the clock alone, and says what was expected when it gives up.</summary>
internal static class Eventually
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(90);

    public static async Task TrueAsync(Func<bool> condition, string expectation, TimeSpan? timeout = null, Func<string>? state = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? DefaultTimeout);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out after {(timeout ?? DefaultTimeout).TotalSeconds:0}s waiting until {expectation}.{(state is null ? string.Empty : " State: " + state())}");
            }

            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }
}
