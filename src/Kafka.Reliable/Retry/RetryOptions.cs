using Polly;

namespace Kafka.Reliable;

/// <summary>
/// How a record whose handler failed with a transient exception is retried in place before it is dead-lettered. A retrying
/// record holds back only its own partition: the partition is paused while the record retries, and the consumer keeps
/// polling, so a retry budget of any length never gets the member evicted from its group.
/// </summary>
/// <remarks>
/// Which exceptions are transient is decided by <see cref="ExceptionClassification"/>
/// (<c>builder.ClassifyExceptions(...)</c>); fatal ones are dead-lettered after the first attempt. Payloads that cannot be
/// deserialized or translated are never retried: they are dead-lettered at once.
/// </remarks>
public sealed class RetryOptions
{
    /// <summary>Gets or sets the number of attempts at a record, the first one included, before it is dead-lettered.</summary>
    /// <value>The default value is 5. Allowed: 1 (no retry) to 1,000,000.</value>
    public int MaxAttempts { get; set; } = ReliableConsumerConstants.DefaultRetryMaxAttempts;

    /// <summary>Gets or sets the delay before the first retry; <see cref="BackoffType"/> says how the next ones grow.</summary>
    /// <value>The default value is 200 milliseconds. Allowed: 0 to 1 hour.</value>
    public TimeSpan Delay { get; set; } = ReliableConsumerConstants.DefaultRetryDelay;

    /// <summary>Gets or sets the longest delay between two attempts.</summary>
    /// <value>The default value is 30 seconds. Allowed: <see cref="Delay"/> to 1 hour.</value>
    public TimeSpan MaxDelay { get; set; } = ReliableConsumerConstants.DefaultRetryMaxDelay;

    /// <summary>Gets or sets how the delay grows from one retry to the next.</summary>
    /// <value>The default value is <see cref="DelayBackoffType.Exponential"/>: Delay, 2 x Delay, 4 x Delay, ... up to <see cref="MaxDelay"/>.</value>
    public DelayBackoffType BackoffType { get; set; } = DelayBackoffType.Exponential;

    /// <summary>Gets or sets a value indicating whether the delays are randomized, so that many consumers failing together do not retry together.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool UseJitter { get; set; } = true;
}
