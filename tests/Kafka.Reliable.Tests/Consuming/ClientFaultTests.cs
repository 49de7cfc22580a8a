using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable.Tests.Consuming;

/// <summary>
/// Kafka client calls the poll thread makes can fail without the cluster being gone for good (a partition in a state where
/// librdkafka refuses a pause or a seek for a moment). Only a fatal Kafka error may end the poll loop.
/// </summary>
public sealed class ClientFaultTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task PauseResumeAndSeekRefusedForAWhile_TheConsumerGoesOn_AndEveryRecordIsHandled()
    {
        var topic = await broker.CreateTopicAsync(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(600, 2));
        var faults = new FaultyClient(failuresPerOperation: 3);

        // The first record waits until the client has refused three pauses: its partition's buffer fills behind it, so the
        // pauses happen whatever the fetch sizes and the machine's speed; draining it afterwards makes the resumes happen.
        var handler = new RecordingHandler
        {
            Behavior = async (message, _, ct) =>
            {
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while (message.Id == 0 && faults.Failed("Pause") < 3 && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(10, ct);
                }
            },
        };
        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, configure: o => o.PartitionBufferSize = 16,
            services: s => s.AddSingleton<IClientInterceptor>(faults));
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2).Values.Sum() == 600, "every record is committed", state: () => consumer.Logs.Dump());

        Assert.Equal(Enumerable.Range(0, 600), consumer.Handler.Handled.Select(h => h.Id).Order());
        Assert.True(faults.Failed("Pause") == 3 && faults.Failed("Resume") == 3, $"the client refused pauses ({faults.Failed("Pause")}) and resumes ({faults.Failed("Resume")})");
        Assert.True(consumer.Logs.CountOf(503) + consumer.Logs.CountOf(504) >= 6, "each refused pause, resume or seek is logged");
        Assert.Equal(0, consumer.Logs.CountOf(104) + consumer.Logs.CountOf(105));
        Assert.True(consumer.Host.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested is false, "the host keeps running");
    }

    /// <summary>Found by the torture matrix's client-call faults: the pause of a stopping consumer was the one call left unguarded.</summary>
    [Fact]
    public async Task PauseRefusedWhileStopping_TheConsumerDrainsAndStopsCleanly()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(20, 1));
        var faults = new FaultyClient(failuresPerOperation: 2, operations: ["Pause"]);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var lastStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new RecordingHandler
        {
            // The last record is in flight when the host stops: the drain runs, and polls while it waits.
            Behavior = async (message, _, _) =>
            {
                if (message.Id == 19)
                {
                    lastStarted.TrySetResult();
                    await release.Task;
                }
            },
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, services: s => s.AddSingleton<IClientInterceptor>(faults));
        await lastStarted.Task.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        var stopping = consumer.StopAsync();
        await Eventually.TrueAsync(() => faults.Failed("Pause") == 2, "the stopping consumer's pause is refused twice", state: () => consumer.Logs.Dump());
        release.SetResult();
        await stopping.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

        Assert.Equal(0, consumer.Logs.CountOf(104) + consumer.Logs.CountOf(105));
        Assert.True(consumer.Logs.CountOf(503) >= 2, "each refused pause is logged");
        Assert.Equal(20, broker.GetCommittedOffsets(group, topic, 1)[0]);
    }

    [Fact]
    public async Task AnUnexpectedExceptionInThePollLoop_IsLoggedAndTheLoopGoesOn()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(50, 1));
        var faults = new FaultyClient(failuresPerOperation: 2, fault: () => new InvalidOperationException("a bug in a client wrapper"), operations: ["Consume"]);

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, services: s => s.AddSingleton<IClientInterceptor>(faults));
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 50, "every record is committed", state: () => consumer.Logs.Dump());

        Assert.Equal(2, faults.Failed("Consume"));
        Assert.Equal(2, consumer.Logs.CountOf(504));
        Assert.Equal(0, consumer.Logs.CountOf(104) + consumer.Logs.CountOf(105));
    }

    /// <summary>
    /// Found by the torture matrix: librdkafka's close has been seen not to return during a rebalance, and the member's host
    /// then never stopped (its disposal waited for the poll thread for ever). A stop is bounded: past ShutdownTimeout +
    /// RevokeTimeout + 10 s the client is abandoned, what was committed stays committed, and the host stops.
    /// </summary>
    [Fact]
    public async Task ACloseThatDoesNotReturn_TheStopIsAbandonedAtItsBound_AndWhatWasDoneStaysCommitted()
    {
        var topic = await broker.CreateTopicAsync(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(40, 2));
        using var hung = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var interceptor = new HangingClose(hung, release);
        try
        {
            await using var consumer = await TestConsumer.StartAsync(broker, topic, group, configure: o =>
            {
                o.ShutdownTimeout = TimeSpan.FromSeconds(1);
                o.RevokeTimeout = TimeSpan.FromSeconds(1);
            }, services: s => s.AddSingleton<IClientInterceptor>(interceptor));
            await Eventually.TrueAsync(() => consumer.Handler.Handled.Count == 40, "every record is handled", state: () => consumer.Logs.Dump());

            var stopping = consumer.StopAsync();
            Assert.True(hung.Wait(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken), "the stopping consumer closes its client");
            await stopping.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

            Assert.False(release.IsSet, "the host stopped while the client's close had not returned");
            var abandoned = consumer.Logs.GetSnapshot().Where(r => r.Id.Id == 112).ToList();
            Assert.True(abandoned.Count == 1, $"one log 112 for the abandoned stop, got {abandoned.Count}: {consumer.Logs.Dump()}");
            Assert.Contains("leaving its group", abandoned[0].Message, StringComparison.Ordinal);
            Assert.Contains("00:00:12", abandoned[0].Message, StringComparison.Ordinal);
            Assert.Equal(0, consumer.Logs.CountOf(102) + consumer.Logs.CountOf(104) + consumer.Logs.CountOf(105));
            Assert.Equal(40, broker.GetCommittedOffsets(group, topic, 2).Values.Sum());
        }
        finally
        {
            // The close goes through once released, and the abandoned thread ends.
            release.Set();
        }
    }

    /// <summary>Lets every call through; the client's Close first blocks until released.</summary>
    private sealed class HangingClose(ManualResetEventSlim hung, ManualResetEventSlim release) : IClientInterceptor
    {
        public IConsumer<byte[]?, byte[]?> Wrap(IConsumer<byte[]?, byte[]?> client) =>
            CallInterceptor.Wrap(client, (method, _) =>
            {
                if (method.Name == nameof(IConsumer<byte[], byte[]>.Close))
                {
                    hung.Set();
                    release.Wait(TimeSpan.FromMinutes(5));
                }

                return null;
            });
    }

    /// <summary>Wraps the consumer's client; the first calls of the chosen operations throw, every other call goes through.</summary>
    private sealed class FaultyClient(int failuresPerOperation, Func<Exception>? fault = null, string[]? operations = null) : IClientInterceptor
    {
        private readonly Dictionary<string, int> _failed = [];

        public int Failed(string operation)
        {
            lock (_failed)
            {
                return _failed.GetValueOrDefault(operation);
            }
        }

        public IConsumer<byte[]?, byte[]?> Wrap(IConsumer<byte[]?, byte[]?> client) =>
            CallInterceptor.Wrap(client, (method, _) => ShouldFail(method.Name));

        private Exception? ShouldFail(string operation)
        {
            if (!(operations ?? ["Pause", "Resume", "Seek"]).Contains(operation))
            {
                return null;
            }

            lock (_failed)
            {
                var failed = _failed.GetValueOrDefault(operation);
                if (failed >= failuresPerOperation)
                {
                    return null;
                }

                _failed[operation] = failed + 1;
            }

            return fault?.Invoke() ?? new KafkaException(new Error(ErrorCode.Local_State, $"{operation} refused for now (injected)"));
        }
    }
}
