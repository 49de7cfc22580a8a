using System.Diagnostics;
using System.Text.Json;
using Confluent.Kafka;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wolverine;
using Wolverine.Kafka;

namespace Kafka.Reliable.Benchmarks;

/// <summary>What one run of a variant reads and where it counts.</summary>
internal sealed record RunSetup(string BootstrapServers, string Topic, string GroupId, ThroughputRecorder Recorder);

/// <summary>One run of a variant: prepared (hosts built) before the clock starts, started, stopped.</summary>
internal interface IVariantRun
{
    /// <summary>Gets a task that faults if the variant's own loop fails; null when the variant has no such loop.</summary>
    Task? Loop { get; }

    /// <summary>Starts consuming: the clock runs from the moment before this call.</summary>
    Task StartAsync();

    /// <summary>Stops the clients cleanly (closing the consumer, committing what is stored) and releases them.</summary>
    Task StopAsync();
}

/// <summary>A variant of the throughput harness.</summary>
/// <param name="Name">The name used by <c>--variants</c>.</param>
/// <param name="Description">What it runs, printed at the top.</param>
/// <param name="Prepare">Builds one run; nothing may connect or subscribe yet.</param>
internal sealed record ThroughputVariant(string Name, string Description, Func<RunSetup, IVariantRun> Prepare);

/// <summary>The variants of the throughput harness; each decodes the same JSON into <see cref="Order"/> and runs the same check.</summary>
internal static class ThroughputVariants
{
    public static IReadOnlyList<ThroughputVariant> All { get; } =
    [
        new("raw",
            "Confluent.Kafka loop: Consume, System.Text.Json decode, check, StoreOffset; enable.auto.commit=true, enable.auto.offset.store=false (at-least-once)",
            setup => new RawRun(setup, tuned: false)),
        new("raw-tuned",
            "the raw loop with fetch.queue.backoff.ms=20, which Kafka.Reliable sets by default (librdkafka's 1,000 ms idles a consumer whose fetched-record queue passed queued.min.messages)",
            setup => new RawRun(setup, tuned: true)),
        new("reliable",
            "Kafka.Reliable, default options (BootstrapServers, GroupId, Topics), default JSON deserializer, handler scoped (the default)",
            setup => ReliableRun(setup, ServiceLifetime.Scoped, configure: null, inMemoryIdempotency: false)),
        new("reliable-singleton",
            "Kafka.Reliable, default options, handler registered singleton",
            setup => ReliableRun(setup, ServiceLifetime.Singleton, configure: null, inMemoryIdempotency: false)),
        new("reliable-bykey",
            "Kafka.Reliable, Dispatch = ByKey, all else default",
            setup => ReliableRun(setup, ServiceLifetime.Scoped, o => o.Dispatch = DispatchMode.ByKey, inMemoryIdempotency: false)),
        new("reliable-unordered",
            "Kafka.Reliable, Dispatch = Unordered, all else default",
            setup => ReliableRun(setup, ServiceLifetime.Scoped, o => o.Dispatch = DispatchMode.Unordered, inMemoryIdempotency: false)),
        new("reliable-inmemory",
            "Kafka.Reliable, default options plus UseInMemoryIdempotency() (default capacity)",
            setup => ReliableRun(setup, ServiceLifetime.Scoped, configure: null, inMemoryIdempotency: true)),
        new("wolverine-inline",
            "WolverineFx.Kafka, ListenToKafkaTopic(..).ReceiveRawJson<Order>().ProcessInline(), default commit mode StoreThenAutoFlush (offset stored after the handler, auto-commit flushes it)",
            setup => WolverineRun(setup, inline: true)),
        new("wolverine-default",
            "WolverineFx.Kafka, ListenToKafkaTopic(..).ReceiveRawJson<Order>(), default (buffered in memory) listener, default commit mode; "
            + "its receiver completes (stores the offset of) a record once it is queued in memory, before the handler runs: not at-least-once",
            setup => WolverineRun(setup, inline: false)),
    ];

    /// <summary>Gets or sets a byte budget for every Kafka.Reliable variant (<c>--max-buffered-mib</c>); 0 keeps the default.</summary>
    public static long MaxBufferedBytes { get; set; }

    private static HostRun ReliableRun(RunSetup setup, ServiceLifetime lifetime, Action<ReliableConsumerOptions>? configure, bool inMemoryIdempotency)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(setup.Recorder);
        var consumer = builder.Services.AddReliableConsumer<Order>("throughput", o =>
        {
            o.BootstrapServers = setup.BootstrapServers;
            o.GroupId = setup.GroupId;
            o.Topics.Add(setup.Topic);
            if (MaxBufferedBytes > 0)
            {
                o.MaxBufferedBytes = MaxBufferedBytes;
            }

            configure?.Invoke(o);
        });
        if (inMemoryIdempotency)
        {
            consumer.UseInMemoryIdempotency();
        }

        consumer.WithHandler<ReliableOrderHandler>(lifetime);
        return new HostRun(builder.Build());
    }

    private static HostRun WolverineRun(RunSetup setup, bool inline)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(setup.Recorder);
        builder.UseWolverine(opts =>
        {
            opts.ServiceName = "throughput-bench";
            // Only the benchmark's handler: conventional discovery would also pick up the Kafka.Reliable handler types.
            opts.Discovery.DisableConventionalDiscovery().IncludeType(typeof(WolverineOrderHandler));
            opts.UseKafka(setup.BootstrapServers).ConfigureConsumers(c =>
            {
                c.GroupId = setup.GroupId;
                c.AutoOffsetReset = AutoOffsetReset.Earliest;
            });
            var listener = opts.ListenToKafkaTopic(setup.Topic).ReceiveRawJson<Order>();
            if (inline)
            {
                listener.ProcessInline();
            }
        });
        return new HostRun(builder.Build());
    }

    private sealed class HostRun(IHost host) : IVariantRun
    {
        public Task? Loop => null;

        public Task StartAsync() => host.StartAsync();

        public async Task StopAsync()
        {
            try
            {
                await host.StopAsync();
            }
            finally
            {
                if (host is IAsyncDisposable asyncDisposable)
                {
                    await asyncDisposable.DisposeAsync();
                }
                else
                {
                    host.Dispose();
                }
            }
        }
    }

    private sealed class RawRun(RunSetup setup, bool tuned) : IVariantRun
    {
        private readonly CancellationTokenSource _stop = new();

        public Task? Loop { get; private set; }

        public Task StartAsync()
        {
            var config = new ConsumerConfig
            {
                BootstrapServers = setup.BootstrapServers,
                GroupId = setup.GroupId,
                AutoOffsetReset = AutoOffsetReset.Earliest,
                EnableAutoCommit = true,
                EnableAutoOffsetStore = false,
            };
            if (tuned)
            {
                config.Set("fetch.queue.backoff.ms", "20");
            }

            var consumer = new ConsumerBuilder<Ignore, byte[]>(config).Build();
            consumer.Subscribe(setup.Topic);
            Loop = Task.Factory.StartNew(() => Consume(consumer, _stop.Token), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            return Task.CompletedTask;
        }

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            try
            {
                if (Loop is not null)
                {
                    await Loop;
                }
            }
            finally
            {
                _stop.Dispose();
            }
        }

        private void Consume(IConsumer<Ignore, byte[]> consumer, CancellationToken stop)
        {
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    ConsumeResult<Ignore, byte[]> result;
                    try
                    {
                        result = consumer.Consume(stop);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }

                    if (result?.Message is null)
                    {
                        continue;
                    }

                    setup.Recorder.Record(JsonSerializer.Deserialize<Order>(result.Message.Value));
                    consumer.StoreOffset(result);
                }

                // Close commits the stored offsets (auto-commit) and leaves the group.
                consumer.Close();
            }
            finally
            {
                consumer.Dispose();
            }
        }
    }

    /// <summary>Stops a run, giving up after <paramref name="timeout"/> (the stop is left behind) so a hung stop cannot hang the harness.</summary>
    public static async Task<(bool Stopped, TimeSpan Elapsed)> StopWithin(IVariantRun run, TimeSpan timeout)
    {
        var started = Stopwatch.GetTimestamp();
        var stop = run.StopAsync();
        var finished = await Task.WhenAny(stop, Task.Delay(timeout)) == stop;
        if (finished)
        {
            await stop;
        }
        else
        {
            _ = stop.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
        }

        return (finished, Stopwatch.GetElapsedTime(started));
    }
}
