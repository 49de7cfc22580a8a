namespace Kafka.Reliable.Tests.Pipeline;

public sealed class RetryBackoffTests
{
    [Theory]
    [InlineData(1, 100)]
    [InlineData(2, 200)]
    [InlineData(3, 400)]
    [InlineData(6, 3200)]
    [InlineData(7, 5000)]
    [InlineData(1000, 5000)]
    public void Delay_DoublesPerAttemptUpToTheCap(int attempt, int expectedMilliseconds)
    {
        var options = new RetryOptions { Delay = TimeSpan.FromMilliseconds(100), MaxDelay = TimeSpan.FromSeconds(5) };
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMilliseconds), RetryBackoff.Delay(options, attempt));
    }
}
