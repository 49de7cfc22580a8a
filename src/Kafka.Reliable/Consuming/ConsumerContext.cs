using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Idempotency;
using Microsoft.Extensions.Logging;
using Polly;

namespace Kafka.Reliable.Consuming;

/// <summary>What the poll thread and the partition workers of one consumer share.</summary>
internal sealed class ConsumerContext(string name, ReliableConsumerOptions options, ILogger logger, TimeProvider time)
{
    private readonly Dictionary<(string Topic, int Partition), Task> _lastWorkers = [];
    private long _assignments;
    private int _progress;
    private volatile bool _circuitOpen;
    private int _deadLetterFailing;

    public string Name { get; } = name;

    public ReliableConsumerOptions Options { get; } = options;

    public ILogger Logger { get; } = logger;

    public TimeProvider Time { get; } = time;

    /// <summary>Gets the instruments the consumer records on: its service provider's (one meter per provider), or a detached set outside one.</summary>
    public ReliableMetrics Metrics { get; init; } = ReliableMetrics.Detached;

    /// <summary>Gets what the consumer's spans and measurements say about it (client id, group, broker), worked out once.</summary>
    public ConsumerTelemetry Telemetry { get; } = new(name, options);

    /// <summary>Gets a number for a new assignment of a partition, unique for the consumer's lifetime, restarts included.</summary>
    public long NextAssignment() => Interlocked.Increment(ref _assignments);

    /// <summary>
    /// Starts the worker of a new assignment of a partition once the worker of its previous assignment in this consumer is
    /// finished: a handler that ignored cancellation when the partition was lost, or outlived a revoke's or a shutdown's
    /// drain, never runs beside a second handler of the same records. Kept in the context, so it holds across the
    /// watchdog's restarts (poll thread; rebalances only).
    /// </summary>
    public void StartPartitionWorker(PartitionWorker worker)
    {
        lock (_lastWorkers)
        {
            var key = (worker.TopicPartition.Topic, worker.TopicPartition.Partition.Value);
            worker.Start(_lastWorkers.GetValueOrDefault(key, Task.CompletedTask));
            _lastWorkers[key] = worker.Completion;
        }
    }

    /// <summary>Gets the number of records whose dead-letter write is failing now (any thread).</summary>
    public int DeadLetterFailing => Volatile.Read(ref _deadLetterFailing);

    public void DeadLetterFailed() => Interlocked.Increment(ref _deadLetterFailing);

    public void DeadLetterRecovered() => Interlocked.Decrement(ref _deadLetterFailing);

    /// <summary>Gets the in-flight slots shared by the partitions dispatched by key or unordered.</summary>
    public SemaphoreSlim InFlight { get; } = new(Math.Max(1, options.MaxInFlight));

    /// <summary>Gets or sets how to read the consumer's group metadata, for offsets sent to Kafka transactions (any thread).</summary>
    public Func<Confluent.Kafka.IConsumerGroupMetadata>? GroupMetadata { get; set; }

    /// <summary>Gets or sets what wraps the consumer's Kafka client when it is built; null in production (a seam for fault-injection tests).</summary>
    public IClientInterceptor? ClientInterceptor { get; set; }

    /// <summary>
    /// Gets or sets what the consumer tells when partitions are released (revoked, lost, or given up at shutdown), after their
    /// workers were stopped: owners of per-partition resources (the transactional producers) let them go (poll thread).
    /// </summary>
    public Action<IReadOnlyList<Confluent.Kafka.TopicPartition>>? PartitionsReleased { get; set; }

    /// <summary>Gets or sets the user's rebalance hooks; null without.</summary>
    public IRebalanceHandler? RebalanceHandler { get; set; }

    /// <summary>Gets or sets the idempotency store's partition offsets, when it keeps them; read on assignment.</summary>
    public IStoredOffsets? StoredOffsets { get; set; }

    /// <summary>Gets or sets the member id the group coordinator knows the consumer by, as of its last assignment; null before one (written by the poll thread, read by the health check).</summary>
    public volatile string? MemberId;

    /// <summary>Gets or sets the reader of the retry topics, with retry tiers; null without (poll thread).</summary>
    public RetryTiers.RetryTierConsumer? RetryTiers { get; set; }

    /// <summary>Gets or sets the dead-letter publisher; null when dead-lettering is turned off.</summary>
    public DeadLetterPublisher? DeadLetter { get; set; }

    /// <summary>Gets or sets the resilience pipeline every attempt at a handler runs through (retry, circuit breaker).</summary>
    public ResiliencePipeline Resilience { get; set; } = ResiliencePipeline.Empty;

    /// <summary>
    /// Gets or sets a value indicating whether the first attempt at a record may run outside <see cref="Resilience"/>: true when
    /// that pipeline is the built-in retry alone, which does nothing for an attempt that succeeds. A circuit breaker must see
    /// every success, and a user's pipeline may do anything (a timeout), so with either of them every attempt goes through it.
    /// </summary>
    public bool FirstAttemptOutsidePipeline { get; set; }

    /// <summary>Gets or sets how handler exceptions are classified.</summary>
    public ExceptionClassification Classification { get; set; } = new();

    /// <summary>Gets a value indicating whether the circuit breaker is open: every partition stays paused (any thread).</summary>
    public bool CircuitOpen => _circuitOpen;

    public void OnCircuitOpened(TimeSpan breakDuration)
    {
        _circuitOpen = true;
        Log.CircuitOpened(Logger, Name, breakDuration);
        NotifyProgress();
    }

    public void OnCircuitHalfOpened() => Log.CircuitHalfOpened(Logger, Name);

    public void OnCircuitClosed()
    {
        _circuitOpen = false;
        Log.CircuitClosed(Logger, Name);
        NotifyProgress();
    }

    /// <summary>Waits on the consumer's clock (a retry's backoff, an open circuit, a store outage).</summary>
    /// <returns><see langword="false"/> when <paramref name="stop"/> ended the wait.</returns>
    public async ValueTask<bool> DelayAsync(TimeSpan delay, CancellationToken stop)
    {
        try
        {
            await Task.Delay(delay, Time, stop).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Tells the poll thread that a record is done or that a worker or the circuit changed state (any thread).</summary>
    public void NotifyProgress()
    {
        // A full fence between the caller's write (a record marked done, a hold flag) and the read of the flag below. Without
        // it the read can be served before the write is visible to the poll thread (store-load reordering, which x86 does):
        // this thread sees the flag still set and skips setting it, while the poll thread takes the flag and reads the record
        // as not yet done. That completion is then never seen, and when it is a partition's last one, the partition stalls.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _progress) == 0)
        {
            Volatile.Write(ref _progress, 1);
        }
    }

    /// <summary>Takes the progress flag (poll thread).</summary>
    /// <returns><see langword="true"/> when a record was done since the last call.</returns>
    public bool TakeProgress() => Volatile.Read(ref _progress) != 0 && Interlocked.Exchange(ref _progress, 0) != 0;
}

/// <summary>
/// Wraps the Kafka clients a consumer builds (registered in the container; internal). Tests use it to watch client calls,
/// or to make them fail the way a real cluster sometimes makes them fail, which the embedded broker cannot be asked to do.
/// </summary>
internal interface IClientInterceptor
{
    Confluent.Kafka.IConsumer<byte[]?, byte[]?> Wrap(Confluent.Kafka.IConsumer<byte[]?, byte[]?> client) => client;

    /// <summary>Wraps a transactional producer of <see cref="CommitStrategy.Transactional"/>.</summary>
    Confluent.Kafka.IProducer<byte[]?, byte[]?> WrapTransactional(Confluent.Kafka.IProducer<byte[]?, byte[]?> producer) => producer;
}
