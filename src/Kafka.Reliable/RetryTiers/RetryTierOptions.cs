namespace Kafka.Reliable;

/// <summary>
/// Retry tiers: a record whose handler keeps failing with a transient error is moved, once its in-place retries
/// (<see cref="ReliableConsumerOptions.Retry"/>) are used up, to a retry topic on Kafka and tried again there after each
/// delay of <see cref="Delays"/>, by the same consumer and the same pipeline, instead of holding its partition (or key)
/// for the whole outage. After the last delay it is dead-lettered with its whole attempt history in headers. The original
/// record counts as done once its copy in the retry topic is acknowledged.
/// </summary>
/// <remarks>
/// <para>With <see cref="RetryTierOrdering.Ordered"/> (the default), while a key has a record in the retry topic, the
/// later records of that key are moved there behind it instead of being handled, and are handled in offset order once it
/// succeeds or is dead-lettered: a key's records are never applied out of order. Other keys flow at full speed. The set of
/// parked keys is kept in the retry topic itself, so a new owner of the partition (after a restart or a rebalance) knows
/// which keys are parked before it handles any record.</para>
/// <para>The retry topic of a topic is <see cref="Topic"/> with <c>{topic}</c> replaced; it must exist with at least as
/// many partitions as the topic: partition <c>P</c>'s records are parked in partition <c>P</c> of the retry topic. See
/// docs/failure-handling.md for when to use in-place retries, the circuit breaker or retry tiers.</para>
/// </remarks>
public sealed class RetryTierOptions
{
    private readonly List<(Type Type, RetryTierRoute Route)> _routes = [];

    /// <summary>Gets or sets a value indicating whether transient failures that outlive their in-place retries go to retry tiers instead of the dead-letter topic.</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool Enabled { get; set; }

    /// <summary>
    /// Gets the delay of each tier: a record moved to tier <c>n</c> is tried again <c>Delays[n - 1]</c> after it was moved.
    /// When empty, the tiers are 10 seconds, 1 minute and 10 minutes.
    /// </summary>
    /// <value>The default value is empty: 10 seconds, 1 minute, 10 minutes. Allowed: 1 to 100 delays, each from 1 millisecond to 7 days.</value>
    public IList<TimeSpan> Delays { get; } = [];

    /// <summary>Gets or sets whether the later records of a parked key wait behind it.</summary>
    /// <value>The default value is <see cref="RetryTierOrdering.Ordered"/>. Under <see cref="DispatchMode.Unordered"/> dispatch records are never held behind a parked key.</value>
    public RetryTierOrdering Ordering { get; set; } = RetryTierOrdering.Ordered;

    /// <summary>Gets or sets the retry topic; <c>{topic}</c> stands for the record's original topic.</summary>
    /// <value>The default value is <c>{topic}.retry</c>.</value>
    public string Topic { get; set; } = RetryTiers.RetryTierConstants.DefaultTopic;

    /// <summary>
    /// Gets or sets the most records one partition may have parked (failed records and the records waiting behind them).
    /// When it is reached, the partition's next record that would be parked waits until a parked record is done, so memory
    /// stays bounded however long a dependency stays down.
    /// </summary>
    /// <value>The default value is 10,000. Allowed: 1 to 1,000,000.</value>
    public int MaxParkedRecords { get; set; } = RetryTiers.RetryTierConstants.DefaultMaxParkedRecords;

    /// <summary>
    /// Routes <typeparamref name="TException"/> (and the exceptions derived from it) straight to a retry tier, without the
    /// in-place retries: for failures known to last (a downstream service that is not ready for the record yet).
    /// </summary>
    /// <typeparam name="TException">The exception type, a transient one (fatal exceptions are dead-lettered at once).</typeparam>
    /// <param name="tier">The tier to start at, from 1 (the first delay).</param>
    /// <returns>These options.</returns>
    public RetryTierOptions ParkAtOnce<TException>(int tier = 1)
        where TException : Exception
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tier, 1);
        _routes.Add((typeof(TException), RetryTierRoute.AtOnce(tier)));
        return this;
    }

    /// <summary>
    /// Keeps <typeparamref name="TException"/> (and the exceptions derived from it) out of the retry tiers: the record is
    /// retried in place and dead-lettered when its retries are used up, as without retry tiers (for failures that a delay
    /// does not help, such as a deadlock that the next attempt resolves).
    /// </summary>
    /// <typeparam name="TException">The exception type.</typeparam>
    /// <returns>These options.</returns>
    public RetryTierOptions NeverPark<TException>()
        where TException : Exception
    {
        _routes.Add((typeof(TException), RetryTierRoute.Never));
        return this;
    }

    /// <summary>Gets the tiers the routes start at, for validation.</summary>
    internal IEnumerable<(Type Type, int Tier)> RouteTiers => _routes.Where(r => r.Route.Parks).Select(r => (r.Type, r.Route.FirstTier));

    /// <summary>Gets the tiers' delays in effect: <see cref="Delays"/>, or the defaults when it is empty.</summary>
    internal IReadOnlyList<TimeSpan> EffectiveDelays => Delays.Count > 0 ? [.. Delays] : RetryTiers.RetryTierConstants.DefaultDelays;

    /// <summary>Gets how a transient failure is routed: by the last route registered for its type or a base type; else through the in-place retries to tier 1.</summary>
    internal RetryTierRoute RouteOf(Exception exception)
    {
        for (var i = _routes.Count - 1; i >= 0; i--)
        {
            if (_routes[i].Type.IsInstanceOfType(exception))
            {
                return _routes[i].Route;
            }
        }

        return RetryTierRoute.Default;
    }
}

/// <summary>Whether the later records of a key wait behind its record in a retry tier.</summary>
public enum RetryTierOrdering
{
    /// <summary>A key's later records are parked behind its failed record and handled in offset order after it: per-key order holds.</summary>
    Ordered,

    /// <summary>Only the failed record is parked; the key's later records are handled meanwhile (the order of Spring's retry topics, and WolverineFx's).</summary>
    Unordered,
}

/// <summary>How a transient failure is routed to the retry tiers (internal).</summary>
internal readonly record struct RetryTierRoute(bool Parks, bool SkipsInPlaceRetries, int FirstTier)
{
    public static RetryTierRoute Default => new(true, false, 1);

    public static RetryTierRoute Never => new(false, false, 0);

    public static RetryTierRoute AtOnce(int tier) => new(true, true, tier);
}
