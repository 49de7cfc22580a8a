using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Diagnostics;
using Kafka.Reliable.Idempotency;
using Kafka.Reliable.Pipeline;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Microsoft.Extensions.Logging.Testing;

namespace Kafka.Reliable.Idempotency.Tests;

/// <summary>
/// The lease of a key taken by a record, through the pipeline's idempotency stage: renewed while its handler runs or its
/// acknowledgement is pending, completed by the acknowledgement with Manual commits, and lost loudly.
/// </summary>
public sealed class LeaseTests : IDisposable
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly FakeLogCollector _logs = new();
    private readonly RecordingStore _store;
    private readonly IdempotencyGate _gate;
    private readonly BlockingHandler _handler = new();
    private readonly RecordProcessor<int, int> _processor;
    private readonly ServiceProvider _services = new ServiceCollection().BuildServiceProvider();
    private readonly CancellationTokenSource _abort = new();
    private readonly ConcurrentQueue<long> _done = new();
    private readonly MeterListener _meters = new();
    private int _leasesLost;

    public LeaseTests()
    {
        _store = new RecordingStore(new InMemoryIdempotencyStore(timeProvider: _time));
        var consumer = new ConsumerContext("c", new ReliableConsumerOptions { GroupId = "g" }, new FakeLogger(_logs, "lease"), _time);
        _gate = new IdempotencyGate(_store, transactional: false, "g", new IdempotencyOptions { LeaseDuration = Lease }, consumer.Logger, consumer);
        _handler.Time = _time;
        _processor = new RecordProcessor<int, int>(new IntDeserializer(), IdentityTranslator<int>.Instance, _ => _handler, handlerIsSingleton: true, _services, _gate);
        _meters.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Name == "kafka.reliable.idempotency.leases_lost")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _meters.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref _leasesLost, (int)value));
        _meters.Start();
    }

    private static string Key => "g/t-0-5";

    public void Dispose()
    {
        _meters.Dispose();
        _abort.Dispose();
        _services.Dispose();
    }

    [Fact]
    public async Task HandlerSlowerThanTheLease_KeepsItsKey_BecauseTheLeaseIsRenewed()
    {
        var processing = _processor.ProcessAsync(NewContext(), _abort.Token).AsTask();
        await _handler.Started.Task.WaitAsync(TestContext.Current.CancellationToken);

        await PassUntilAsync(() => _store.Renewals >= 4, "four renewals (one every third of the lease) while the handler runs");
        Assert.True(_time.GetUtcNow() - _handler.StartedAt > Lease, "more than a lease has passed");
        Assert.Equal(IdempotencyStatus.HeldByAnother, (await _store.TryBeginAsync(Key, "other", Lease, TestContext.Current.CancellationToken)).Status);

        _handler.Finish.SetResult();
        Assert.True((await processing).IsSuccess);
        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await _store.TryBeginAsync(Key, "other", Lease, TestContext.Current.CancellationToken)).Status);
        Assert.Equal(0, _gate.RenewedKeys);
        Assert.Equal(0, _logs.CountOf(216) + _logs.CountOf(217));
    }

    [Fact]
    public async Task HandlerFasterThanATenthOfTheLease_CostsNoRenewal()
    {
        _handler.Finish.SetResult();

        Assert.True((await _processor.ProcessAsync(NewContext(), _abort.Token)).IsSuccess);
        _time.Advance(Lease);

        Assert.Equal(0, _store.Renewals);
        Assert.Equal(0, _gate.RenewedKeys);
    }

    [Fact]
    public async Task LeaseTakenByAnotherConsumer_WhileTheHandlerRuns_IsLoggedAndCounted_AndTheRecordCountsAsDone()
    {
        var processing = _processor.ProcessAsync(NewContext(), _abort.Token).AsTask();
        await _handler.Started.Task.WaitAsync(TestContext.Current.CancellationToken);

        // As if the renewals had failed (the store unreachable) until the lease expired and another consumer took the key.
        await _store.Inner.ReleaseAsync(Key, _store.Owners[Key], TestContext.Current.CancellationToken);
        Assert.Equal(IdempotencyStatus.Acquired, (await _store.TryBeginAsync(Key, "other", Lease, TestContext.Current.CancellationToken)).Status);
        await PassUntilAsync(() => _logs.CountOf(216) == 1, "the renewal finds the lease lost and says so");

        _handler.Finish.SetResult();
        var outcome = await processing;

        Assert.True(outcome.IsSuccess, "the handler's effects happened: the record counts as done");
        var completion = Assert.Single(_logs.GetSnapshot(), e => e.Id.Id == 217);
        Assert.Contains(Key, completion.Message, StringComparison.Ordinal);
        Assert.Contains("t [0] @5", completion.Message, StringComparison.Ordinal);
        Assert.Contains("another consumer holds the key", completion.Message, StringComparison.Ordinal);
        Assert.Equal(1, Volatile.Read(ref _leasesLost));
        Assert.Equal(IdempotencyStatus.HeldByAnother, (await _store.TryBeginAsync(Key, "third", Lease, TestContext.Current.CancellationToken)).Status);
    }

    [Fact]
    public async Task LeaseExpiredAndRemoved_BeforeTheCompletion_TheKeyIsCompletedAnyway_AndTheLossIsLogged()
    {
        _handler.Finish.SetResult();
        _store.LoseNextCompletion = true;

        Assert.True((await _processor.ProcessAsync(NewContext(), _abort.Token)).IsSuccess);

        var completion = Assert.Single(_logs.GetSnapshot(), e => e.Id.Id == 217);
        Assert.Contains("the key was free, and is completed now", completion.Message, StringComparison.Ordinal);
        Assert.Equal(1, Volatile.Read(ref _leasesLost));
        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await _store.TryBeginAsync(Key, "other", Lease, TestContext.Current.CancellationToken)).Status);
    }

    [Fact]
    public async Task FailingCompletion_IsRetried_NotReleased_SoTheHandlerDoesNotRunTwice()
    {
        _handler.Finish.SetResult();
        _store.FailCompletions = 2;

        var processing = _processor.ProcessAsync(NewContext(), _abort.Token).AsTask();
        await PassUntilAsync(() => processing.IsCompleted, "the completion succeeds on its third try", step: TimeSpan.FromMilliseconds(200));

        Assert.True((await processing).IsSuccess);
        Assert.Equal(2, _logs.CountOf(218));
        Assert.Equal(1, _handler.Calls);
        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await _store.TryBeginAsync(Key, "other", Lease, TestContext.Current.CancellationToken)).Status);
    }

    [Fact]
    public async Task DeferredAcknowledgement_CompletesTheKey_OnlyWhenGiven_AndTheLeaseIsRenewedUntilThen()
    {
        var context = NewContext(manual: true);
        var acknowledgement = context.PendingAcknowledgement!;
        _handler.Finish.SetResult();

        Assert.True((await _processor.ProcessAsync(context, _abort.Token)).IsSuccess);

        // Handled, not acknowledged: the key is not completed, and stays held across more than a lease.
        await PassUntilAsync(() => _store.Renewals >= 3, "the lease is renewed while the acknowledgement is pending");
        Assert.Equal(IdempotencyStatus.HeldByAnother, (await _store.TryBeginAsync(Key, "other", Lease, TestContext.Current.CancellationToken)).Status);
        Assert.Empty(_done);

        acknowledgement.Acknowledge();

        await Eventually.TrueAsync(() => _done.Count == 1, "the acknowledgement completes the key, then marks the record done");
        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await _store.TryBeginAsync(Key, "other", Lease, TestContext.Current.CancellationToken)).Status);
        Assert.Equal(0, _gate.RenewedKeys);
    }

    [Fact]
    public async Task DeferredAcknowledgementNeverGiven_LeavesTheKeyUncompleted_SoTheRedeliveryIsHandled()
    {
        _handler.Finish.SetResult();
        Assert.True((await _processor.ProcessAsync(NewContext(manual: true), _abort.Token)).IsSuccess);

        // The worker stops (shutdown, lost partition): renewals stop, and the lease runs out.
        await _abort.CancelAsync();
        await PassUntilAsync(() => _gate.RenewedKeys == 0, "the renewals stop once the worker is aborted");
        _time.Advance(Lease);

        Assert.Equal(IdempotencyStatus.Acquired, (await _store.TryBeginAsync(Key, "next-owner", Lease, TestContext.Current.CancellationToken)).Status);
        Assert.Empty(_done);
    }

    [Fact]
    public async Task AcknowledgementWhoseKeyCompletionFails_IsRetried_AndTheRecordIsDoneOnlyOnceTheKeyIsCompleted()
    {
        var context = NewContext(manual: true);
        _handler.Finish.SetResult();
        Assert.True((await _processor.ProcessAsync(context, _abort.Token)).IsSuccess);
        _store.FailCompletions = 2;

        context.PendingAcknowledgement!.Acknowledge();
        await Eventually.TrueAsync(() => _logs.CountOf(218) == 1, "the first completion fails");
        Assert.Empty(_done);

        await PassUntilAsync(() => !_done.IsEmpty, "the acknowledgement's completion is retried until it succeeds", step: TimeSpan.FromMilliseconds(200));
        Assert.Equal(2, _logs.CountOf(218));
        Assert.Equal(IdempotencyStatus.AlreadyCompleted, (await _store.TryBeginAsync(Key, "other", Lease, TestContext.Current.CancellationToken)).Status);
    }

    [Fact]
    public async Task AcknowledgementWhoseKeyCompletionFails_AfterTheWorkerStopped_LeavesTheRecordUndone()
    {
        var context = NewContext(manual: true);
        _handler.Finish.SetResult();
        Assert.True((await _processor.ProcessAsync(context, _abort.Token)).IsSuccess);
        _store.FailCompletions = int.MaxValue;
        await _abort.CancelAsync();

        context.PendingAcknowledgement!.Acknowledge();

        await Eventually.TrueAsync(() => _logs.GetSnapshot().Any(e => e.Id.Id == 218 && e.Message.Contains("stays undone", StringComparison.Ordinal)), "the completion gives up once the worker is aborted");
        Assert.Empty(_done);
    }

    private MessageContext NewContext(bool manual = false)
    {
        var context = new MessageContext("c", "g") { Assignment = 1 };
        context.Initialize(new ConsumeResult<byte[]?, byte[]?>
        {
            TopicPartitionOffset = new TopicPartitionOffset("t", 0, 5),
            Message = new Message<byte[]?, byte[]?> { Value = Encoding.ASCII.GetBytes("1") },
        });
        if (manual)
        {
            context.PendingAcknowledgement = new MessageAcknowledgement(_done.Enqueue, 0, "t", 0, 5);
        }

        return context;
    }

    /// <summary>Lets fake time pass a step at a time (firing the renewal timer and retry delays) until the condition holds.</summary>
    private async Task PassUntilAsync(Func<bool> condition, string expectation, TimeSpan? step = null)
    {
        await Eventually.TrueAsync(
            () =>
            {
                if (condition())
                {
                    return true;
                }

                _time.Advance(step ?? TimeSpan.FromSeconds(5));
                return false;
            },
            expectation,
            state: () => _logs.Dump());
    }

    private sealed class IntDeserializer : IMessageDeserializer<int>
    {
        public int Deserialize(ReadOnlySpan<byte> value, bool isNull, MessageContext context) => int.Parse(Encoding.ASCII.GetString(value), System.Globalization.CultureInfo.InvariantCulture);
    }

    private sealed class BlockingHandler : IMessageHandler<int>
    {
        private int _calls;

        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Finish { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public DateTimeOffset StartedAt { get; private set; }

        public int Calls => Volatile.Read(ref _calls);

        public FakeTimeProvider? Time { get; set; }

        public async ValueTask HandleAsync(int message, MessageContext context, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            StartedAt = Time?.GetUtcNow() ?? DateTimeOffset.MinValue;
            Started.TrySetResult();
            await Finish.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>The in-memory store, recording owners and renewals, and failing or losing completions on demand.</summary>
    private sealed class RecordingStore(InMemoryIdempotencyStore inner) : IIdempotencyStore
    {
        private int _renewals;

        public InMemoryIdempotencyStore Inner { get; } = inner;

        public ConcurrentDictionary<string, string> Owners { get; } = new();

        public int Renewals => Volatile.Read(ref _renewals);

        public int FailCompletions { get; set; }

        public bool LoseNextCompletion { get; set; }

        public ValueTask<IdempotencyBeginResult> TryBeginAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken)
        {
            Owners.TryAdd(key, owner);
            return Inner.TryBeginAsync(key, owner, lease, cancellationToken);
        }

        public async ValueTask<IdempotencyLeaseStatus> CompleteAsync(string key, string owner, CancellationToken cancellationToken)
        {
            if (FailCompletions > 0)
            {
                FailCompletions--;
                throw new TimeoutException("The store did not answer.");
            }

            if (LoseNextCompletion)
            {
                // The lease expired and cleanup removed the key before the completion arrived.
                LoseNextCompletion = false;
                await Inner.ReleaseAsync(key, owner, cancellationToken);
            }

            return await Inner.CompleteAsync(key, owner, cancellationToken);
        }

        public ValueTask<IdempotencyLeaseStatus> RenewAsync(string key, string owner, TimeSpan lease, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _renewals);
            return Inner.RenewAsync(key, owner, lease, cancellationToken);
        }

        public ValueTask ReleaseAsync(string key, string owner, CancellationToken cancellationToken) => Inner.ReleaseAsync(key, owner, cancellationToken);

        public ValueTask<long> CleanupAsync(DateTimeOffset completedBefore, CancellationToken cancellationToken) => Inner.CleanupAsync(completedBefore, cancellationToken);
    }
}
