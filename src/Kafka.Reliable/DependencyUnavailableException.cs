namespace Kafka.Reliable;

/// <summary>
/// Thrown by a deserializer (or a translator) when something it depends on, not the record, failed: a schema registry that
/// is down, unreachable or too slow. The record is not poison: it is retried with the retry policy (each attempt counts for
/// the circuit breaker), then waits with the retry backoff, holding its partition, until the dependency answers. It is
/// never dead-lettered for this failure, whatever the exception classification says.
/// </summary>
public class DependencyUnavailableException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="DependencyUnavailableException"/> class.</summary>
    public DependencyUnavailableException()
        : base("A dependency of the consumer's pipeline is unavailable.")
    {
    }

    /// <summary>Initializes a new instance of the <see cref="DependencyUnavailableException"/> class.</summary>
    /// <param name="message">What is unavailable, for the logs.</param>
    public DependencyUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="DependencyUnavailableException"/> class.</summary>
    /// <param name="message">What is unavailable, for the logs.</param>
    /// <param name="innerException">The failure of the dependency.</param>
    public DependencyUnavailableException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
