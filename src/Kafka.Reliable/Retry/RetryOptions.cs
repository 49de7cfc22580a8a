namespace Kafka.Reliable;

/// <summary>
/// How a failed record is retried in place. A retrying record holds back only its own partition: the partition is paused when
/// its buffer fills, and the consumer keeps polling, so a long retry never gets the member evicted from its group.
/// </summary>
public sealed class RetryOptions
{
    /// <summary>Gets or sets the delay before the first retry; each further retry doubles it, up to <see cref="MaxDelay"/>.</summary>
    /// <value>The default value is 200 milliseconds. Allowed: 0 to 1 hour.</value>
    public TimeSpan Delay { get; set; } = ReliableConsumerConstants.DefaultRetryDelay;

    /// <summary>Gets or sets the longest delay between two attempts.</summary>
    /// <value>The default value is 30 seconds. Allowed: <see cref="Delay"/> to 1 hour.</value>
    public TimeSpan MaxDelay { get; set; } = ReliableConsumerConstants.DefaultRetryMaxDelay;
}
