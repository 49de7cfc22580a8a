using static Kafka.Reliable.Benchmarks.HarnessReport;
using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Benchmarks;

/// <summary>
/// The Parallel Consumer workload of DESIGN.md on the embedded broker: 10,000 records on 1 partition with 1,000 keys, a
/// handler that sleeps a random 0-5 ms, Kafka.Reliable with <c>Dispatch = ByKey</c> and <c>MaxInFlight = 100</c> and every
/// other option at its default. Nominally the work takes records x 2.5 ms / 100 = 0.25 s; timers are coarse, so the harness
/// also measures the handler time it actually got and derives the physical limit from it: the total handler time spread
/// over MaxInFlight lanes, and no less than the busiest key's total (a key's records run one after another).
/// Every round uses a fresh consumer group on the same records.
/// </summary>
internal static class ConcurrencyHarness
{
    private const double NominalHandlerMs = 2.5;

    public static async Task<int> RunAsync(string[] args)
    {
        var records = HarnessArguments.Option(args, "--records", 10_000);
        var keys = HarnessArguments.Option(args, "--keys", 1_000);
        var inFlight = HarnessArguments.Option(args, "--in-flight", 100);
        var rounds = HarnessArguments.Option(args, "--rounds", 5);
        var stall = TimeSpan.FromSeconds(HarnessArguments.Option(args, "--stall-seconds", 30));

        await using var cluster = EmbeddedKafkaCluster.Start();
        const string Topic = "by-key";
        cluster.CreateTopic(Topic, 1);
        await cluster.ProduceAllAsync(Topic, Enumerable.Range(0, records).Select(i => new Message<byte[]?, byte[]?>
        {
            Key = Encoding.ASCII.GetBytes($"key-{i % keys}"),
            Value = BitConverter.GetBytes(i),
        }));

        var nominal = TimeSpan.FromMilliseconds(records * NominalHandlerMs / inFlight);
        Console.WriteLine(
            $"Workload: {records:N0} records, 1 partition, {keys:N0} keys, handler sleeping a random 0-5 ms (Task.Delay), Kafka.Reliable with "
            + $"Dispatch = ByKey and MaxInFlight = {inFlight}, every other option default; {rounds} rounds, each with a fresh group.");
        Console.WriteLine(
            $"Nominal limit: {records:N0} x {NominalHandlerMs} ms / {inFlight} = {nominal.TotalSeconds:0.000} s. "
            + "Measured limit: max(total handler time / MaxInFlight, busiest key's total handler time), from the handler times of the round.");
        Console.WriteLine("Times: 'from start' runs from the moment before the host starts, 'first->last' from the first handler call to the last record done.");
        Console.WriteLine();

        var results = new List<Result>();
        for (var round = 1; round <= rounds; round++)
        {
            var result = await MeasureAsync(cluster.BootstrapServers, Topic, records, keys, inFlight, stall);
            results.Add(result);
            if (result.Stalled)
            {
                Console.WriteLine($"round {round}: STALLED after {result.Done:N0} of {records:N0} records (no record done for {stall.TotalSeconds:0} s)");
                continue;
            }

            var limit = result.Limit(inFlight);
            Console.WriteLine(
                $"round {round}: {result.Done:N0} records; from start {result.FromStart.TotalSeconds:0.000} s, first->last {result.FirstToLast.TotalSeconds:0.000} s "
                + $"= {records / result.FirstToLast.TotalSeconds:N0} rec/s; mean handler {result.MeanHandler.TotalMilliseconds:0.00} ms, "
                + $"total handler {result.TotalHandler.TotalSeconds:0.00} s, busiest key {result.BusiestKey.TotalMilliseconds:0} ms; "
                + $"measured limit {limit.TotalSeconds:0.000} s: first->last is {Percent(result.FirstToLast, limit)} of it, from start {Percent(result.FromStart, limit)}; "
                + $"nominal {nominal.TotalSeconds:0.000} s: first->last is {Percent(result.FirstToLast, nominal)} of it, from start {Percent(result.FromStart, nominal)}");
        }

        var completed = results.Where(r => !r.Stalled).ToList();
        if (completed.Count > 0)
        {
            var firstToLast = Median(completed.Select(r => r.FirstToLast.TotalSeconds));
            var fromStart = Median(completed.Select(r => r.FromStart.TotalSeconds));
            var limit = Median(completed.Select(r => r.Limit(inFlight).TotalSeconds));
            Console.WriteLine();
            Console.WriteLine(
                $"median of {completed.Count} completed rounds: first->last {firstToLast:0.000} s, from start {fromStart:0.000} s; measured limit {limit:0.000} s "
                + $"(first->last at {firstToLast / limit:0%} of it), nominal {nominal.TotalSeconds:0.000} s (first->last at {firstToLast / nominal.TotalSeconds:0%} of it); "
                + $"stalled rounds: {results.Count - completed.Count}. 100% would be the limit itself; higher is slower.");
        }

        return completed.Count == results.Count ? 0 : 1;
    }

    private static string Percent(TimeSpan achieved, TimeSpan limit) => (achieved / limit).ToString("0%");

    private static async Task<Result> MeasureAsync(string bootstrapServers, string topic, int records, int keys, int inFlight, TimeSpan stall)
    {
        HarnessReport.CollectGarbage();
        var handler = new SleepingHandler(records, keys);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(handler);
        builder.Services.AddReliableConsumer<int>("concurrency", o =>
            {
                o.BootstrapServers = bootstrapServers;
                o.GroupId = "concurrency-" + Guid.NewGuid().ToString("N");
                o.Topics.Add(topic);
                o.Dispatch = DispatchMode.ByKey;
                o.MaxInFlight = inFlight;
            })
            .WithDeserializer(new IntDeserializer())
            .WithHandler<SleepingHandler>(ServiceLifetime.Singleton);
        using var host = builder.Build();
        var started = Stopwatch.GetTimestamp();
        await host.StartAsync();
        var stalled = false;
        var lastDone = -1;
        var lastProgress = Stopwatch.GetTimestamp();
        while (await Task.WhenAny(handler.Completed, Task.Delay(TimeSpan.FromMilliseconds(250))) != handler.Completed)
        {
            if (handler.Done != lastDone)
            {
                lastDone = handler.Done;
                lastProgress = Stopwatch.GetTimestamp();
            }
            else if (Stopwatch.GetElapsedTime(lastProgress) > stall)
            {
                stalled = true;
                break;
            }
        }

        using (var stopping = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            await host.StopAsync(stopping.Token);
        }

        return new Result(
            handler.Done,
            stalled,
            Stopwatch.GetElapsedTime(started, handler.LastTimestamp),
            Stopwatch.GetElapsedTime(handler.FirstTimestamp, handler.LastTimestamp),
            handler.TotalHandler,
            handler.MeanHandler,
            handler.BusiestKey);
    }

    private sealed record Result(int Done, bool Stalled, TimeSpan FromStart, TimeSpan FirstToLast, TimeSpan TotalHandler, TimeSpan MeanHandler, TimeSpan BusiestKey)
    {
        public TimeSpan Limit(int inFlight) => TimeSpan.FromTicks(Math.Max(TotalHandler.Ticks / inFlight, BusiestKey.Ticks));
    }

    private sealed class IntDeserializer : IMessageDeserializer<int>
    {
        public int Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) => BitConverter.ToInt32(value);
    }

    /// <summary>Sleeps a random 0-5 ms per record and keeps the handler time per key; a redelivered record is timed again but counted once.</summary>
    private sealed class SleepingHandler(int expected, int keys) : IMessageHandler<int>
    {
        private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly int[] _seen = new int[expected];
        private readonly long[] _keyTicks = new long[keys];
        private long _handlerTicks;
        private long _calls;
        private long _first;
        private long _last;
        private int _done;

        public Task Completed => _completed.Task;

        public int Done => Volatile.Read(ref _done);

        public long FirstTimestamp => Interlocked.Read(ref _first);

        public long LastTimestamp => Interlocked.Read(ref _last);

        public TimeSpan TotalHandler => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _handlerTicks));

        public TimeSpan MeanHandler => TotalHandler / Math.Max(1, Interlocked.Read(ref _calls));

        public TimeSpan BusiestKey => Stopwatch.GetElapsedTime(0, _keyTicks.Max());

        public async ValueTask HandleAsync(int message, MessageContext context, CancellationToken cancellationToken)
        {
            var start = Stopwatch.GetTimestamp();
            Interlocked.CompareExchange(ref _first, start, 0);
            var sleep = Random.Shared.Next(0, 6);
            if (sleep > 0)
            {
                await Task.Delay(sleep, cancellationToken);
            }

            var end = Stopwatch.GetTimestamp();
            Interlocked.Add(ref _handlerTicks, end - start);
            Interlocked.Add(ref _keyTicks[message % _keyTicks.Length], end - start);
            Interlocked.Increment(ref _calls);
            if (Interlocked.Exchange(ref _seen[message], 1) == 0 && Interlocked.Increment(ref _done) == _seen.Length)
            {
                Interlocked.Exchange(ref _last, end);
                _completed.TrySetResult();
            }
        }
    }
}
