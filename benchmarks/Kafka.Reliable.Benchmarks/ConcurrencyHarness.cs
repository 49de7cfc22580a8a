using System.Diagnostics;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Benchmarks;

/// <summary>
/// DESIGN.md's concurrency workload on the embedded broker: 10,000 records on 1 partition with 1,000 keys, a handler that
/// takes a random 0-5 ms, 100 in flight. The physical limit is in-flight / mean handler time; the harness measures the mean
/// handler time it actually got (timers are coarse) and reports throughput against that limit, for ByKey and Sequential.
/// </summary>
internal static class ConcurrencyHarness
{
    public static async Task<int> RunAsync(string[] args)
    {
        var records = HarnessArguments.Option(args, "--records", 10_000);
        var keys = HarnessArguments.Option(args, "--keys", 1_000);
        var inFlight = HarnessArguments.Option(args, "--in-flight", 100);
        var sequentialRecords = HarnessArguments.Option(args, "--sequential-records", 2_000);
        var buffer = HarnessArguments.Option(args, "--buffer", 1_000);
        var fetchWaitMs = HarnessArguments.Option(args, "--fetch-wait-ms", 0);

        using var cluster = EmbeddedKafkaCluster.Start();
        foreach (var (topic, count) in new[] { ("by-key", records), ("sequential", sequentialRecords) })
        {
            cluster.CreateTopic(topic, 1);
            await cluster.ProduceAllAsync(topic, Enumerable.Range(0, count).Select(i => new Message<byte[]?, byte[]?>
            {
                Key = Encoding.ASCII.GetBytes($"key-{i % keys}"),
                Value = BitConverter.GetBytes(i),
            }));
        }

        Console.WriteLine(
            $"Workload: {records:N0} records, 1 partition, {keys:N0} keys, handler sleeping a random 0-5 ms, MaxInFlight {inFlight}, " +
            $"PartitionBufferSize {buffer:N0}, fetch.wait.max.ms {(fetchWaitMs > 0 ? fetchWaitMs.ToString(CultureInfo.InvariantCulture) : "librdkafka's default (500)")}.");
        var byKey = await MeasureAsync(cluster.BootstrapServers, "by-key", records, DispatchMode.ByKey, inFlight, buffer, fetchWaitMs);
        var sequential = await MeasureAsync(cluster.BootstrapServers, "sequential", sequentialRecords, DispatchMode.Sequential, inFlight, buffer, fetchWaitMs);
        foreach (var (name, result, lanes) in new[] { ("ByKey", byKey, inFlight), ("Sequential", sequential, 1) })
        {
            var limit = lanes / result.MeanHandler.TotalSeconds;
            Console.WriteLine(
                $"{name,-10}: {result.Records:N0} records in {result.Elapsed.TotalSeconds:0.00} s = {result.Throughput:N0} rec/s; mean handler time {result.MeanHandler.TotalMilliseconds:0.00} ms; " +
                $"physical limit {lanes} / mean = {limit:N0} rec/s; reached {result.Throughput / limit:P0}");
        }

        Console.WriteLine($"ByKey / Sequential throughput: {byKey.Throughput / sequential.Throughput:0.0}x (goal: ByKey reaches at least 60% of its limit)");
        return 0;
    }

    private static async Task<Result> MeasureAsync(string bootstrapServers, string topic, int records, DispatchMode mode, int inFlight, int buffer, int fetchWaitMs)
    {
        var handler = new SleepingHandler(records);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(handler);
        builder.Services.AddReliableConsumer<int>("concurrency", o =>
            {
                o.BootstrapServers = bootstrapServers;
                o.GroupId = "concurrency-" + Guid.NewGuid().ToString("N");
                o.Topics.Add(topic);
                o.Dispatch = mode;
                o.MaxInFlight = inFlight;
                o.PartitionBufferSize = buffer;
                if (fetchWaitMs > 0)
                {
                    o.KafkaSettings["fetch.wait.max.ms"] = fetchWaitMs.ToString(CultureInfo.InvariantCulture);
                }
            })
            .WithDeserializer(new IntDeserializer())
            .WithHandler<SleepingHandler>(ServiceLifetime.Singleton);
        using var host = builder.Build();
        await host.StartAsync();
        await handler.Done;
        await host.StopAsync();
        return new Result(records, handler.Elapsed, records / handler.Elapsed.TotalSeconds, handler.MeanHandlerTime);
    }

    private sealed record Result(int Records, TimeSpan Elapsed, double Throughput, TimeSpan MeanHandler);

    private sealed class IntDeserializer : IMessageDeserializer<int>
    {
        public int Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) => BitConverter.ToInt32(value);
    }

    private sealed class SleepingHandler(int expected) : IMessageHandler<int>
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private long _first;
        private long _last;
        private long _handlerTicks;
        private int _count;

        public Task Done => _done.Task;

        public TimeSpan Elapsed => Stopwatch.GetElapsedTime(_first, _last);

        public TimeSpan MeanHandlerTime => TimeSpan.FromTicks(Interlocked.Read(ref _handlerTicks) / Math.Max(1, Volatile.Read(ref _count)));

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
            Interlocked.Add(ref _handlerTicks, Stopwatch.GetElapsedTime(start, end).Ticks);
            if (Interlocked.Increment(ref _count) == expected)
            {
                _last = end;
                _done.TrySetResult();
            }
        }
    }
}
