using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Pipeline;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;
using Polly;
using Microsoft.Extensions.Logging.Testing;

namespace Kafka.Reliable.Tests.DeadLetter;

/// <summary>The dead-letter publisher without a broker: its producer's life cycle and what it writes, through fake producers.</summary>
public sealed class DeadLetterPublisherTests
{
    private static readonly Error Fatal = new(ErrorCode.Local_Fatal, "Fatal error: Broker: Broker received an out of order sequence number", true);

    private readonly FakeLogCollector _logs = new();
    private readonly ReliableConsumerOptions _options = new() { BootstrapServers = "127.0.0.1:9", GroupId = "g" };
    private readonly List<FakeProducer> _created = [];

    [Fact]
    public void PublishAsync_ManyPartitionsDeadLetteringAtOnce_CreateExactlyOneProducer_DisposedOnceByDispose()
    {
        const int Writers = 8;
        var threads = new Thread[Writers];
        var entered = new ConcurrentDictionary<Thread, bool>();
        var arrived = 0;
        var failures = new ConcurrentQueue<Exception>();
        using var barrier = new Barrier(Writers);

        // The first creation waits until every other writer has created a producer of its own or finished with another's
        // (nothing serializes creations), or is blocked waiting for this one (something does): the outcome depends on the
        // publisher, not on timing.
        var publisher = Publisher(() =>
        {
            entered[Thread.CurrentThread] = true;
            if (entered.Count == 1)
            {
                WaitUntil(
                    () => Volatile.Read(ref arrived) == Writers
                        && threads.All(t => t == Thread.CurrentThread || entered.ContainsKey(t) || (t.ThreadState & (ThreadState.WaitSleepJoin | ThreadState.Stopped)) != 0),
                    "every other writer creates a producer or waits for this one",
                    () => $"{Volatile.Read(ref arrived)} arrived; " + string.Join(", ", threads.Select(t => $"{t.Name}: {t.ThreadState}{(entered.ContainsKey(t) ? " (creating)" : string.Empty)}")));
            }

            return new FakeProducer();
        });

        for (var i = 0; i < Writers; i++)
        {
            var partition = i;
            threads[i] = new Thread(() =>
            {
                try
                {
                    barrier.SignalAndWait(TestContext.Current.CancellationToken);
                    Interlocked.Increment(ref arrived);
                    publisher.PublishAsync(Consumer(), Poison(partition), Outcome(), DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, CancellationToken.None)
                        .GetAwaiter().GetResult();
                }
                catch (Exception ex)
                {
                    failures.Enqueue(ex);
                }
            })
            { IsBackground = true, Name = $"dead-letter-writer-{partition}" };
            threads[i].Start();
        }

        foreach (var thread in threads)
        {
            Assert.True(thread.Join(TimeSpan.FromSeconds(60)), $"{thread.Name} finished its dead-letter write");
        }

        Assert.Empty(failures);
        var producer = Assert.Single(_created);
        Assert.Equal(Writers, producer.Written.Count);

        publisher.Dispose();
        Assert.Equal(1, producer.DisposeCount);
        Assert.Equal(1, producer.FlushCount);
    }

    [Fact]
    public async Task PublishAsync_AfterAFatalProduceError_RebuildsTheProducer_AndEveryProducerIsDisposedExactlyOnce()
    {
        var publisher = Publisher(() => _created.Count == 0 ? new FakeProducer { Refuse = _ => Fatal } : new FakeProducer());

        var error = await Assert.ThrowsAsync<ProduceException<byte[]?, byte[]?>>(() => PublishAsync(publisher, 0));
        Assert.True(error.Error.IsFatal);
        var broken = Assert.Single(_created);
        Assert.Equal(1, broken.DisposeCount);
        Assert.Equal(1, _logs.CountOf(611));

        // The next write (the caller's retry) gets a new producer, and succeeds.
        await PublishAsync(publisher, 0);
        Assert.Equal(2, _created.Count);
        var rebuilt = _created[1];
        Assert.Single(rebuilt.Written);
        Assert.Equal(0, rebuilt.DisposeCount);

        publisher.Dispose();
        Assert.All(_created, p => Assert.Equal(1, p.DisposeCount));
    }

    [Fact]
    public async Task PublishAsync_FatalErrorWhileAnotherWriteIsInFlight_DisposesTheOldProducerAfterItsLastWrite()
    {
        var inFlight = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var publisher = Publisher(() => _created.Count == 0
            ? new FakeProducer { Pending = inFlight.Task, Refuse = m => m.Headers.GetLastBytes(DeadLetterHeaders.OriginalOffset)[0] == (byte)'2' ? Fatal : null }
            : new FakeProducer());

        var first = PublishAsync(publisher, 1);
        await Assert.ThrowsAsync<ProduceException<byte[]?, byte[]?>>(() => PublishAsync(publisher, 2));
        var broken = Assert.Single(_created);
        Assert.Equal(0, broken.DisposeCount);

        // The write still in flight fails too (a fatal producer fails all its messages), and releases the producer.
        inFlight.SetException(new ProduceException<byte[]?, byte[]?>(Fatal, new DeliveryResult<byte[]?, byte[]?>()));
        await Assert.ThrowsAsync<ProduceException<byte[]?, byte[]?>>(() => first);
        Assert.Equal(1, broken.DisposeCount);
        Assert.Equal(1, _logs.CountOf(611));

        await PublishAsync(publisher, 3);
        Assert.Equal(2, _created.Count);
        publisher.Dispose();
        Assert.All(_created, p => Assert.Equal(1, p.DisposeCount));
    }

    [Fact]
    public async Task PublishAsync_AfterTheProducerReportedAFatalError_UsesANewProducer_AndDisposesTheOldOne()
    {
        var publisher = Publisher(() => new FakeProducer());
        await PublishAsync(publisher, 0);
        var broken = Assert.Single(_created);

        // What librdkafka's error callback reports, e.g. when the idempotent producer cannot keep its guarantees.
        publisher.OnProducerError(broken, new Error(ErrorCode.Local_TimedOut, "1 request(s) timed out: disconnect"));
        publisher.OnProducerError(broken, Fatal);
        await PublishAsync(publisher, 1);

        Assert.Equal(2, _created.Count);
        Assert.Single(broken.Written);
        Assert.Single(_created[1].Written);
        Assert.Equal(1, broken.DisposeCount);
        Assert.Contains(Fatal.Reason, Assert.Single(_logs.GetSnapshot(), e => e.Id.Id == 611).Message, StringComparison.Ordinal);
        Assert.Contains("1 request(s) timed out", Assert.Single(_logs.GetSnapshot(), e => e.Id.Id == 612).Message, StringComparison.Ordinal);

        publisher.Dispose();
        Assert.All(_created, p => Assert.Equal(1, p.DisposeCount));
    }

    [Fact]
    public async Task PublishAsync_AfterDispose_ThrowsObjectDisposedException_AndCreatesNoProducer()
    {
        var publisher = Publisher(() => new FakeProducer());
        await PublishAsync(publisher, 0);
        publisher.Dispose();
        publisher.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => PublishAsync(publisher, 1));
        var producer = Assert.Single(_created);
        Assert.Equal(1, producer.DisposeCount);

        var unused = Publisher(() => new FakeProducer());
        unused.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => PublishAsync(unused, 0));
        Assert.Single(_created);
    }

    [Fact]
    public async Task PublishAsync_RecordTooLargeForTheProducer_WritesABoundedCopy_WithTheOriginalLength()
    {
        _options.DeadLetter.ProducerSettings["message.max.bytes"] = "20000";
        var publisher = Publisher(() => new FakeProducer { Refuse = m => m.Value!.Length > 20_000 ? new Error(ErrorCode.MsgSizeTooLarge) : null });
        var value = Enumerable.Range(0, 50_000).Select(i => (byte)i).ToArray();

        await PublishAsync(publisher, 7, value);

        var producer = Assert.Single(_created);
        Assert.Equal(2, producer.Attempts.Count);
        var copy = Assert.Single(producer.Written);
        Assert.Equal("50000", Encoding.UTF8.GetString(copy.Headers.GetLastBytes(DeadLetterHeaders.ValueTruncated)));
        Assert.Equal("7", Encoding.UTF8.GetString(copy.Headers.GetLastBytes(DeadLetterHeaders.OriginalOffset)));
        Assert.Equal("k", Encoding.UTF8.GetString(copy.Key!));
        Assert.InRange(copy.Value!.Length, 15_000, 20_000 - 512);
        Assert.True(value.AsSpan(0, copy.Value.Length).SequenceEqual(copy.Value), "the copy holds the start of the value");
        var warning = Assert.Single(_logs.GetSnapshot(), e => e.Id.Id == 610);
        Assert.Contains("t [0] @7", warning.Message, StringComparison.Ordinal);
        Assert.Contains("value 50000 bytes", warning.Message, StringComparison.Ordinal);
        Assert.Contains($"first {copy.Value.Length} bytes", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PublishAsync_BoundedCopyRefusedToo_Throws_SoThatThePartitionHolds()
    {
        var publisher = Publisher(() => new FakeProducer { Refuse = _ => new Error(ErrorCode.MsgSizeTooLarge) });

        var error = await Assert.ThrowsAsync<ProduceException<byte[]?, byte[]?>>(() => PublishAsync(publisher, 0, new byte[1_100_000]));

        Assert.Equal(ErrorCode.MsgSizeTooLarge, error.Error.Code);
        var producer = Assert.Single(_created);
        Assert.Equal(2, producer.Attempts.Count);
        Assert.Equal(0, _logs.CountOf(610));
    }

    [Theory]
    [InlineData(ErrorCode.MsgSizeTooLarge, 100)]
    [InlineData(ErrorCode.TopicAuthorizationFailed, 1_100_000)]
    [InlineData(ErrorCode.Local_MsgTimedOut, 1_100_000)]
    public async Task PublishAsync_RefusalACopyCannotCure_ThrowsAfterOneAttempt(ErrorCode code, int valueBytes)
    {
        // A small value is not what makes a record too large; authorization and time-outs are not about size at all.
        var publisher = Publisher(() => new FakeProducer { Refuse = _ => new Error(code) });

        var error = await Assert.ThrowsAsync<ProduceException<byte[]?, byte[]?>>(() => PublishAsync(publisher, 0, new byte[valueBytes]));

        Assert.Equal(code, error.Error.Code);
        Assert.Single(Assert.Single(_created).Attempts);
    }

    [Theory]
    [InlineData(1_048_576, null, null, null, 1_114_112)]
    [InlineData(1_048_576, "fetch.max.bytes", "52428800", null, 52_428_800)]
    [InlineData(1_048_576, "max.partition.fetch.bytes", "2097152", null, 2_097_152)]
    [InlineData(1_048_576, "message.max.bytes", "3000000", null, 3_000_000)]
    [InlineData(1_048_576, "max.partition.fetch.bytes", "1024", null, 1_114_112)]
    [InlineData(int.MaxValue, null, null, null, 1_000_000_000)]
    [InlineData(10, null, null, null, 65_546)]
    [InlineData(1_048_576, "fetch.max.bytes", "52428800", "5000", 5_000)]
    public void Config_MessageMaxBytes_TakesWhatTheConsumerTakes_UnlessProducerSettingsSayOtherwise(
        int maxPayloadBytes, string? consumerSetting, string? consumerValue, string? producerValue, int expected)
    {
        _options.MaxPayloadBytes = maxPayloadBytes;
        if (consumerSetting is not null)
        {
            _options.KafkaSettings[consumerSetting] = consumerValue!;
        }

        if (producerValue is not null)
        {
            _options.DeadLetter.ProducerSettings["message.max.bytes"] = producerValue;
        }

        using var publisher = new DeadLetterPublisher(_options, "c");

        Assert.Equal(expected.ToString(System.Globalization.CultureInfo.InvariantCulture), publisher.Config.Get("message.max.bytes"));
        Assert.Equal(expected, publisher.MaxMessageBytes);
    }

    [Fact]
    public void Config_ProducerSettings_AreAppliedLast_OverTheLibrarysOwn()
    {
        _options.KafkaSettings["security.protocol"] = "SASL_SSL";
        _options.DeadLetter.ProducerSettings["linger.ms"] = "50";
        _options.DeadLetter.ProducerSettings["compression.type"] = "zstd";
        _options.DeadLetter.ProducerSettings["message.timeout.ms"] = "120000";

        using var publisher = new DeadLetterPublisher(_options, "c");

        Assert.Equal("50", publisher.Config.Get("linger.ms"));
        Assert.Equal("zstd", publisher.Config.Get("compression.type"));
        Assert.Equal("120000", publisher.Config.Get("message.timeout.ms"));
        Assert.Equal("SASL_SSL", publisher.Config.Get("security.protocol"));
        Assert.True(publisher.Config.EnableIdempotence);
        Assert.Equal("c-dlq", publisher.Config.Get("client.id"));
    }

    [Theory]
    [InlineData(DelayBackoffType.Constant, new[] { 1, 1, 1, 1 })]
    [InlineData(DelayBackoffType.Linear, new[] { 1, 2, 3, 4 })]
    [InlineData(DelayBackoffType.Exponential, new[] { 1, 2, 4, 5 })]
    public async Task WriteUntilAcknowledgedAsync_WhileRefused_WaitsTheRetryOptionsBackoff_ThenWritesOnce(DelayBackoffType backoff, int[] expectedSeconds)
    {
        _options.Retry.Delay = TimeSpan.FromSeconds(1);
        _options.Retry.MaxDelay = TimeSpan.FromSeconds(5);
        _options.Retry.BackoffType = backoff;
        _options.Retry.UseJitter = false;
        var delays = await WriteThroughRefusalsAsync(expectedSeconds.Length);

        Assert.Equal(expectedSeconds.Select(s => TimeSpan.FromSeconds(s)), delays);
        Assert.Equal(expectedSeconds.Length + 1, _created.Single().Attempts.Count);
        Assert.Single(_created.Single().Written);
    }

    [Fact]
    public async Task WriteUntilAcknowledgedAsync_WithJitter_RandomizesTheDelays_WithinTheMaxDelay()
    {
        _options.Retry.Delay = TimeSpan.FromSeconds(1);
        _options.Retry.MaxDelay = TimeSpan.FromSeconds(30);
        _options.Retry.BackoffType = DelayBackoffType.Exponential;
        _options.Retry.UseJitter = true;
        var delays = await WriteThroughRefusalsAsync(refusals: 6);

        // Exponential without jitter would be exactly 1, 2, 4, 8, 16, 30 s; jitter makes consumers that fail together retry apart.
        TimeSpan[] nominal = [.. new[] { 1, 2, 4, 8, 16, 30 }.Select(s => TimeSpan.FromSeconds(s))];
        Assert.NotEqual(nominal, delays);
        Assert.All(delays, d => Assert.InRange(d, TimeSpan.Zero, _options.Retry.MaxDelay));
    }

    [Fact]
    public async Task WriteUntilAcknowledgedAsync_StoppedWhileWaiting_ReturnsFalse_AndTheConsumerReportsTheTopicWritableAgain()
    {
        _options.Retry.Delay = TimeSpan.FromSeconds(10);
        var time = new FakeTimeProvider();
        var publisher = Publisher(() => new FakeProducer { Refuse = _ => new Error(ErrorCode.Local_Transport, "broker down") });
        var consumer = new ConsumerContext("c", _options, new FakeLogger(_logs, "test"), time);
        using var stop = new CancellationTokenSource();

        var write = publisher.WriteUntilAcknowledgedAsync(consumer, Poison(0), Outcome(), DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, stop.Token).AsTask();
        await Eventually.TrueAsync(() => _logs.CountOf(206) == 1, "the refused write is logged (206)", state: () => _logs.Dump());
        Assert.Equal(1, consumer.DeadLetterFailing);

        await stop.CancelAsync();
        Assert.False(await write, "expected a stopped write to report that the record is not done");
        Assert.Equal(0, consumer.DeadLetterFailing);
        publisher.Dispose();
    }

    [Fact]
    public async Task WriteUntilAcknowledgedAsync_StoppedDuringARefusedWrite_ReturnsFalseWithoutThrowing()
    {
        var time = new FakeTimeProvider();
        using var stop = new CancellationTokenSource();
        var publisher = Publisher(() => new FakeProducer
        {
            Refuse = _ =>
            {
                // The worker is stopped while the broker refuses this write: the retry does not try again once stopped.
                stop.Cancel();
                return new Error(ErrorCode.Local_Transport, "broker down");
            },
        });
        var consumer = new ConsumerContext("c", _options, new FakeLogger(_logs, "test"), time);

        var written = await publisher.WriteUntilAcknowledgedAsync(consumer, Poison(0), Outcome(), DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, stop.Token);

        Assert.False(written, "expected a write refused as its worker stopped to leave the record undone, not to throw");
        Assert.Equal(0, consumer.DeadLetterFailing);
        publisher.Dispose();
    }

    /// <summary>Writes one record through <paramref name="refusals"/> refused attempts, advancing the fake clock by each logged delay; returns the delays.</summary>
    private async Task<List<TimeSpan>> WriteThroughRefusalsAsync(int refusals)
    {
        var time = new TimerCountingTime();
        var attempts = 0;
        var publisher = Publisher(() => new FakeProducer { Refuse = _ => Interlocked.Increment(ref attempts) <= refusals ? new Error(ErrorCode.Local_MsgTimedOut, "Local: Message timed out") : null });
        var consumer = new ConsumerContext("c", _options, new FakeLogger(_logs, "test"), time);

        var write = publisher.WriteUntilAcknowledgedAsync(consumer, Poison(0), Outcome(), DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, TestContext.Current.CancellationToken).AsTask();
        var delays = new List<TimeSpan>();
        for (var i = 1; i <= refusals; i++)
        {
            // Advanced only once the retry waits on the clock: a timer created after the advance would never fire.
            await Eventually.TrueAsync(
                () => _logs.CountOf(206) == i && time.Timers == i, $"refused attempt {i} is logged (206) and the retry waits for its delay", state: () => $"{time.Timers} timer(s); {_logs.Dump()}");
            Assert.Equal(1, consumer.DeadLetterFailing);
            var delay = TimeSpan.Parse(
                Regex.Match(_logs.GetSnapshot().Last(e => e.Id.Id == 206).Message, @"retrying in (\S+)$").Groups[1].Value, CultureInfo.InvariantCulture);
            delays.Add(delay);
            time.Advance(delay);
        }

        Assert.True(await write, "expected the write to be acknowledged once the producer stops refusing");
        Assert.Equal(0, consumer.DeadLetterFailing);
        publisher.Dispose();
        return delays;
    }

    /// <summary>A fake clock that counts the timers created on it (each retry delay creates one).</summary>
    private sealed class TimerCountingTime : FakeTimeProvider
    {
        private int _timers;

        public int Timers => Volatile.Read(ref _timers);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Interlocked.Increment(ref _timers);
            return base.CreateTimer(callback, state, dueTime, period);
        }
    }

    private static void WaitUntil(Func<bool> condition, string expectation, Func<string> state)
    {
        if (!SpinWait.SpinUntil(condition, TimeSpan.FromSeconds(60)))
        {
            throw new TimeoutException($"Timed out after 60s waiting until {expectation}. State: {state()}");
        }
    }

    private static MessageContext Poison(int partition, long offset = 0, byte[]? value = null)
    {
        var context = new MessageContext("c", "g");
        context.Initialize(new ConsumeResult<byte[]?, byte[]?>
        {
            Topic = "t",
            Partition = partition,
            Offset = offset,
            Message = new Message<byte[]?, byte[]?> { Key = "k"u8.ToArray(), Value = value ?? "not json"u8.ToArray(), Timestamp = new Timestamp(1, TimestampType.CreateTime) },
        });
        context.Attempt = 1;
        return context;
    }

    private static ProcessingOutcome Outcome() => ProcessingOutcome.Failed(ProcessingStage.Deserialize, new InvalidDataException("not a valid TestEvent"));

    private DeadLetterPublisher Publisher(Func<FakeProducer> create) => new(_options, "c", _ =>
    {
        var producer = create();
        lock (_created)
        {
            _created.Add(producer);
        }

        return producer;
    });

    private ConsumerContext Consumer() => new("c", _options, new FakeLogger(_logs, "test"), TimeProvider.System);

    private Task PublishAsync(DeadLetterPublisher publisher, long offset, byte[]? value = null) =>
        publisher.PublishAsync(Consumer(), Poison(0, offset, value), Outcome(), DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, CancellationToken.None);

    /// <summary>A producer that acknowledges every write, refuses the ones <see cref="Refuse"/> says, and counts its disposals.</summary>
    private sealed class FakeProducer : IProducer<byte[]?, byte[]?>
    {
        private int _disposeCount;
        private int _flushCount;

        public Func<Message<byte[]?, byte[]?>, Error?>? Refuse { get; init; }

        /// <summary>Gets the task the first write waits for, if any.</summary>
        public Task? Pending { get; init; }

        public ConcurrentQueue<Message<byte[]?, byte[]?>> Attempts { get; } = new();

        public ConcurrentQueue<Message<byte[]?, byte[]?>> Written { get; } = new();

        public int DisposeCount => Volatile.Read(ref _disposeCount);

        public int FlushCount => Volatile.Read(ref _flushCount);

        public Handle Handle => throw new NotSupportedException();

        public string Name => "fake";

        public async Task<DeliveryResult<byte[]?, byte[]?>> ProduceAsync(string topic, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken = default)
        {
            ObjectDisposedException.ThrowIf(DisposeCount > 0, this);
            Attempts.Enqueue(message);
            if (Attempts.Count == 1 && Pending is { } pending)
            {
                await pending;
            }

            if (Refuse?.Invoke(message) is { } error)
            {
                throw new ProduceException<byte[]?, byte[]?>(error, new DeliveryResult<byte[]?, byte[]?> { Message = message, Topic = topic });
            }

            Written.Enqueue(message);
            return new DeliveryResult<byte[]?, byte[]?> { Message = message, Topic = topic, Status = PersistenceStatus.Persisted };
        }

        public Task<DeliveryResult<byte[]?, byte[]?>> ProduceAsync(TopicPartition topicPartition, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken = default) =>
            ProduceAsync(topicPartition.Topic, message, cancellationToken);

        public int Flush(TimeSpan timeout)
        {
            Interlocked.Increment(ref _flushCount);
            return 0;
        }

        public void Flush(CancellationToken cancellationToken = default) => Flush(TimeSpan.Zero);

        public void Dispose() => Interlocked.Increment(ref _disposeCount);

        public void Produce(string topic, Message<byte[]?, byte[]?> message, Action<DeliveryReport<byte[]?, byte[]?>>? deliveryHandler = null) => throw new NotSupportedException();

        public void Produce(TopicPartition topicPartition, Message<byte[]?, byte[]?> message, Action<DeliveryReport<byte[]?, byte[]?>>? deliveryHandler = null) => throw new NotSupportedException();

        public int Poll(TimeSpan timeout) => 0;

        public void InitTransactions(TimeSpan timeout) => throw new NotSupportedException();

        public void BeginTransaction() => throw new NotSupportedException();

        public void CommitTransaction(TimeSpan timeout) => throw new NotSupportedException();

        public void CommitTransaction() => throw new NotSupportedException();

        public void AbortTransaction(TimeSpan timeout) => throw new NotSupportedException();

        public void AbortTransaction() => throw new NotSupportedException();

        public void SendOffsetsToTransaction(IEnumerable<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, TimeSpan timeout) => throw new NotSupportedException();

        public int AddBrokers(string brokers) => throw new NotSupportedException();

        public void SetSaslCredentials(string username, string password) => throw new NotSupportedException();
    }
}
