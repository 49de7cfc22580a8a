namespace Kafka.Reliable;

/// <summary>
/// The failure a parked record is dead-lettered with when an operator released its key
/// (<c>kafka-reliable retry release</c>): the record goes to the dead-letter topic without another attempt, and the records
/// of its key parked behind it are handled in order.
/// </summary>
public sealed class RetryTierReleasedException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="RetryTierReleasedException"/> class.</summary>
    public RetryTierReleasedException()
        : this(0)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="RetryTierReleasedException"/> class.</summary>
    /// <param name="message">The message.</param>
    public RetryTierReleasedException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="RetryTierReleasedException"/> class.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The exception that caused it.</param>
    public RetryTierReleasedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="RetryTierReleasedException"/> class.</summary>
    /// <param name="tier">The tier the record was released from.</param>
    internal RetryTierReleasedException(int tier)
        : base($"Released by an operator from retry tier {tier}: dead-lettered without another attempt; the records of its key parked behind it are handled next.")
    {
    }
}
