namespace Kafka.Reliable;

/// <summary>
/// A circuit breaker over the handler. When the dependency behind the handler is down (a database, an API), every record
/// fails; instead of retrying and dead-lettering them one after the other, the consumer opens the circuit: all its partitions
/// pause for <see cref="BreakDuration"/>, no record is dead-lettered while the circuit is open, and a trial attempt after the
/// break closes the circuit and resumes consumption when it succeeds.
/// </summary>
/// <remarks>
/// Only transient failures (see <see cref="ExceptionClassification"/>) count against the circuit. With a single busy partition,
/// keep <see cref="MinimumThroughput"/> at or below <see cref="RetryOptions.MaxAttempts"/>, so that the circuit can open
/// before the first record runs out of attempts.
/// </remarks>
public sealed class CircuitBreakerOptions
{
    /// <summary>Gets or sets a value indicating whether the circuit breaker is used.</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool Enabled { get; set; }

    /// <summary>Gets or sets the share of failed attempts within <see cref="SamplingDuration"/> that opens the circuit.</summary>
    /// <value>The default value is 0.5. Allowed: greater than 0, at most 1.</value>
    public double FailureRatio { get; set; } = ReliableConsumerConstants.DefaultCircuitFailureRatio;

    /// <summary>Gets or sets how many attempts must be made within <see cref="SamplingDuration"/> before the ratio is considered.</summary>
    /// <value>The default value is 10. Allowed: 2 to 1,000,000.</value>
    public int MinimumThroughput { get; set; } = ReliableConsumerConstants.DefaultCircuitMinimumThroughput;

    /// <summary>Gets or sets the window over which the failure ratio is measured.</summary>
    /// <value>The default value is 30 seconds. Allowed: 500 milliseconds to 1 day.</value>
    public TimeSpan SamplingDuration { get; set; } = ReliableConsumerConstants.DefaultCircuitSamplingDuration;

    /// <summary>Gets or sets how long the circuit stays open (all partitions paused) before a trial attempt.</summary>
    /// <value>The default value is 30 seconds. Allowed: 500 milliseconds to 1 day.</value>
    public TimeSpan BreakDuration { get; set; } = ReliableConsumerConstants.DefaultCircuitBreakDuration;
}
