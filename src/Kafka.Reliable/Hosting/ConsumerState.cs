using Kafka.Reliable.Consuming;

namespace Kafka.Reliable.Hosting;

/// <summary>
/// A consumer's running state, registered as a keyed singleton under the consumer's name: its hosted service publishes the
/// runner it starts (again after each watchdog restart), and the health check reads it by name.
/// </summary>
internal sealed class ConsumerState
{
    private volatile ConsumerRunner? _runner;

    /// <summary>Gets the runner started last; null before the consumer starts.</summary>
    public ConsumerRunner? Runner => _runner;

    public void Publish(ConsumerRunner runner) => _runner = runner;
}
