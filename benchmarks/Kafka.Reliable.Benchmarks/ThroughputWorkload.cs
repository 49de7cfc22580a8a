using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Confluent.Kafka;

namespace Kafka.Reliable.Benchmarks;

/// <summary>
/// The record every variant of the throughput harness decodes: JSON written with System.Text.Json's default options.
/// Public because Wolverine generates its handler code against it.
/// </summary>
public sealed record Order(
    long Id,
    string Customer,
    decimal Amount,
    string Currency,
    string Sku,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Padding = null);

/// <summary>Builds the records of the throughput harness and checks a decoded one.</summary>
internal static class OrderWorkload
{
    /// <summary>Serializes order <paramref name="id"/>, padded with a string field up to <paramref name="valueBytes"/> when it is smaller.</summary>
    public static byte[] Value(long id, int valueBytes)
    {
        var order = Create(id, padding: null);
        var bytes = JsonSerializer.SerializeToUtf8Bytes(order);
        var missing = valueBytes - bytes.Length - ",\"Padding\":\"\"".Length;
        return missing <= 0 ? bytes : JsonSerializer.SerializeToUtf8Bytes(Create(id, new string('x', missing)));
    }

    public static Message<byte[]?, byte[]?> Message(long id, int keys, int valueBytes) => new()
    {
        Key = Key(id, keys),
        Value = Value(id, valueBytes),
    };

    public static byte[] Key(long id, int keys) => Encoding.UTF8.GetBytes($"order-{id % keys}");

    /// <summary>The same trivial check in every variant: the decoded record must be plausible, or the handler throws.</summary>
    public static void Check(Order? order)
    {
        if (order is null || order.Id < 0 || order.Amount <= 0 || order.Currency.Length != 3 || order.Customer.Length == 0)
        {
            throw new InvalidDataException($"Implausible order: {order}");
        }
    }

    private static Order Create(long id, string? padding) =>
        new(id, $"customer-{id % 9973:00000}", 1 + (id % 100_000) / 100m, "EUR", $"SKU-{id % 97:0000}", padding);
}

/// <summary>
/// Counts what one run handled: every handled record, the distinct ids (a redelivered record counts once), the moment
/// the first record was handled and the moment the last distinct id arrived. Thread-safe; one per run. Public because
/// Wolverine's generated handler code takes it as a dependency.
/// </summary>
public sealed class ThroughputRecorder
{
    private readonly int[] _seen;
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _handled;
    private long _outOfRange;
    private int _distinct;
    private long _first;
    private long _last;

    /// <summary>Initializes a new instance of the <see cref="ThroughputRecorder"/> class.</summary>
    /// <param name="expected">The number of distinct ids (0 to expected - 1) that completes the run.</param>
    public ThroughputRecorder(int expected) => _seen = new int[expected];

    /// <summary>Gets a task that completes when every id has been handled at least once.</summary>
    public Task Done => _done.Task;

    /// <summary>Gets the number of distinct ids handled.</summary>
    public int Distinct => Volatile.Read(ref _distinct);

    /// <summary>Gets the number of records handled, duplicates included.</summary>
    public long Handled => Interlocked.Read(ref _handled);

    /// <summary>Gets the number of records whose id is outside the produced range (should be 0).</summary>
    public long OutOfRange => Interlocked.Read(ref _outOfRange);

    /// <summary>Gets the <see cref="Stopwatch"/> timestamp of the first handled record, or 0.</summary>
    public long FirstTimestamp => Interlocked.Read(ref _first);

    /// <summary>Gets the <see cref="Stopwatch"/> timestamp at which the last missing id was handled, or 0.</summary>
    public long LastTimestamp => Interlocked.Read(ref _last);

    /// <summary>
    /// Waits until every id is handled, the host's start fails, or no new id is handled for <paramref name="stall"/>.
    /// </summary>
    /// <returns>Null when done; else what went wrong.</returns>
    public async Task<string?> WaitAsync(Task start, TimeSpan stall, TimeSpan poll)
    {
        var lastDistinct = 0;
        var lastProgress = Stopwatch.GetTimestamp();
        while (await Task.WhenAny(Done, Task.Delay(poll)) != Done)
        {
            if (start.IsFaulted)
            {
                return $"start: {start.Exception!.GetBaseException().Message}";
            }

            if (Distinct != lastDistinct)
            {
                lastDistinct = Distinct;
                lastProgress = Stopwatch.GetTimestamp();
            }
            else if (Stopwatch.GetElapsedTime(lastProgress) > stall)
            {
                return $"STALLED: no new record handled for {stall.TotalSeconds:0} s";
            }
        }

        return null;
    }

    /// <summary>Checks a decoded record and counts it.</summary>
    /// <param name="order">The decoded record.</param>
    public void Record(Order? order)
    {
        OrderWorkload.Check(order);
        var now = Stopwatch.GetTimestamp();
        Interlocked.CompareExchange(ref _first, now, 0);
        Interlocked.Increment(ref _handled);
        if ((ulong)order!.Id >= (ulong)_seen.Length)
        {
            Interlocked.Increment(ref _outOfRange);
            return;
        }

        if (Interlocked.Exchange(ref _seen[order.Id], 1) == 0 && Interlocked.Increment(ref _distinct) == _seen.Length)
        {
            Interlocked.Exchange(ref _last, now);
            _done.TrySetResult();
        }
    }
}

/// <summary>The Kafka.Reliable handler of every <c>reliable*</c> variant: the library decodes, this checks and counts.</summary>
internal sealed class ReliableOrderHandler(ThroughputRecorder recorder) : IMessageHandler<Order>
{
    public ValueTask HandleAsync(Order message, MessageContext context, CancellationToken cancellationToken)
    {
        recorder.Record(message);
        return ValueTask.CompletedTask;
    }
}

/// <summary>The Wolverine handler of the <c>wolverine-*</c> variants: Wolverine decodes, this checks and counts.</summary>
public static class WolverineOrderHandler
{
    /// <summary>Handles one order.</summary>
    /// <param name="order">The order Wolverine decoded.</param>
    /// <param name="recorder">The run's recorder, a singleton of the run's host.</param>
    public static void Handle(Order order, ThroughputRecorder recorder) => recorder.Record(order);
}
