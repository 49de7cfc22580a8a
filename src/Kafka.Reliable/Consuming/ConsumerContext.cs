using Kafka.Reliable.DeadLetter;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Consuming;

/// <summary>What the poll thread and the partition workers of one consumer share.</summary>
internal sealed class ConsumerContext(string name, ReliableConsumerOptions options, ILogger logger, TimeProvider time)
{
    private int _progress;

    public string Name { get; } = name;

    public ReliableConsumerOptions Options { get; } = options;

    public ILogger Logger { get; } = logger;

    public TimeProvider Time { get; } = time;

    /// <summary>Gets or sets the dead-letter publisher; null when dead-lettering is turned off.</summary>
    public DeadLetterPublisher? DeadLetter { get; set; }

    /// <summary>Tells the poll thread that a record is done (any thread).</summary>
    public void NotifyProgress()
    {
        if (Volatile.Read(ref _progress) == 0)
        {
            Volatile.Write(ref _progress, 1);
        }
    }

    /// <summary>Takes the progress flag (poll thread).</summary>
    /// <returns><see langword="true"/> when a record was done since the last call.</returns>
    public bool TakeProgress() => Volatile.Read(ref _progress) != 0 && Interlocked.Exchange(ref _progress, 0) != 0;
}
