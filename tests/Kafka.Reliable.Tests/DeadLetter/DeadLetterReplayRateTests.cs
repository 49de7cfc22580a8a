using Kafka.Reliable.DeadLetter;
using System.Text;
using System.Threading.RateLimiting;
using Confluent.Kafka;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.DeadLetter;

/// <summary>The replay's rate limit: a System.Threading.RateLimiting token bucket, one permit per republished record.</summary>
public sealed class DeadLetterReplayRateTests(KafkaBrokerFixture broker)
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(19)]
    [InlineData(20)]
    [InlineData(100)]
    [InlineData(999)]
    [InlineData(1_000_000)]
    public void Options_LetThroughAtMostTheRate_WithBurstsOfOneStep(int recordsPerSecond)
    {
        var options = DeadLetterReplayRate.Options(recordsPerSecond);

        var perSecond = options.TokensPerPeriod * (double)TimeSpan.TicksPerSecond / options.ReplenishmentPeriod.Ticks;
        Assert.True(perSecond <= recordsPerSecond, $"expected at most {recordsPerSecond} permits per second, the bucket refills {perSecond}");
        Assert.True(perSecond >= recordsPerSecond * 0.999, $"expected about {recordsPerSecond} permits per second, the bucket refills only {perSecond}");
        Assert.Equal(options.TokensPerPeriod, options.TokenLimit);
        Assert.True(options.ReplenishmentPeriod <= TimeSpan.FromSeconds(1), $"expected a refill at least every second, got every {options.ReplenishmentPeriod}");
        Assert.True(options.AutoReplenishment);
    }

    [Fact]
    public void Options_HandOutOneStepOfPermits_ThenTheNextRecordWaits()
    {
        // The replay's own options without the refill timer: permits, not time.
        var options = DeadLetterReplayRate.Options(100);
        options.AutoReplenishment = false;
        using var limiter = new TokenBucketRateLimiter(options);

        // A full bucket holds one step's permits (5 at 100/s); the record after them waits for the refill.
        for (var i = 0; i < options.TokenLimit; i++)
        {
            using var lease = limiter.AttemptAcquire();
            Assert.True(lease.IsAcquired, $"expected permit {i + 1} of the {options.TokenLimit} in a full bucket");
        }

        using var next = limiter.AttemptAcquire();
        Assert.False(next.IsAcquired, "expected the record after a full step to wait for the refill");
    }

    [Fact]
    public async Task ReplayAsync_RepublishesARecord_OnlyWithAPermit_AndStopsWhileWaitingForOne()
    {
        var deadLetterTopic = await broker.CreateTopicAsync(1, "rate-dlq");
        var target = await broker.CreateTopicAsync(1, "rate-target");
        await broker.ProduceMessagesAsync(deadLetterTopic, Enumerable.Range(0, 5).Select(i => (0, new Message<byte[]?, byte[]?>
        {
            Key = Encoding.UTF8.GetBytes($"k{i}"),
            Value = [(byte)i],
            Headers = new Headers { { DeadLetterHeaders.OriginalTopic, Encoding.UTF8.GetBytes(target) } },
        })));
        using var limiter = new GrantedPermits();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var replayer = new DeadLetterReplayer(
            new DeadLetterReplayOptions { BootstrapServers = broker.BootstrapServers, DeadLetterTopic = deadLetterTopic, MaxRecordsPerSecond = 7 },
            logger: null,
            rateLimiter: rate =>
            {
                Assert.Equal(7, rate);
                return limiter;
            });

        var replay = replayer.ReplayAsync(cancellationToken: stop.Token);

        // The first record waits for its permit: nothing is republished before it is granted.
        await Eventually.TrueAsync(() => limiter.Asked == 1, "the replay asks for the first record's permit", state: () => $"asked {limiter.Asked}");
        Assert.Equal(0, broker.GetHighWatermarks(target, 1)[0]);

        limiter.Grant(2);
        await Eventually.TrueAsync(() => limiter.Asked == 3, "the replay asks for the third record's permit after two were granted", state: () => $"asked {limiter.Asked}");
        await Eventually.TrueAsync(() => broker.GetHighWatermarks(target, 1)[0] == 2, "the two records with a permit reach the target topic", state: () => $"high watermark {broker.GetHighWatermarks(target, 1)[0]}");

        // Stopped while the third record waits: two replayed, and the next run starts at the third.
        await stop.CancelAsync();
        var result = await replay;
        Assert.Equal(new DeadLetterReplayProgress(Replayed: 2, Skipped: 0, Pending: 5, Completed: false), result);
        Assert.Equal(2, broker.GetHighWatermarks(target, 1)[0]);
        Assert.Equal(2, broker.GetCommittedOffsets(replayer.GroupId, deadLetterTopic, 1)[0]);
        Assert.True(limiter.Disposed, "expected the replay to dispose its rate limiter");
    }

    /// <summary>A rate limiter whose permits the test grants: each acquisition waits until one is granted.</summary>
    private sealed class GrantedPermits : RateLimiter
    {
        private readonly SemaphoreSlim _permits = new(0);
        private int _asked;

        public int Asked => Volatile.Read(ref _asked);

        public bool Disposed { get; private set; }

        public override TimeSpan? IdleDuration => null;

        public void Grant(int permits) => _permits.Release(permits);

        public override RateLimiterStatistics? GetStatistics() => null;

        protected override RateLimitLease AttemptAcquireCore(int permitCount) => throw new NotSupportedException("The replay waits for its permits.");

        protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
        {
            Assert.Equal(1, permitCount);
            Interlocked.Increment(ref _asked);
            await _permits.WaitAsync(cancellationToken);
            return new Lease();
        }

        protected override void Dispose(bool disposing)
        {
            Disposed = true;
            _permits.Dispose();
            base.Dispose(disposing);
        }

        private sealed class Lease : RateLimitLease
        {
            public override bool IsAcquired => true;

            public override IEnumerable<string> MetadataNames => [];

            public override bool TryGetMetadata(string metadataName, out object? metadata)
            {
                metadata = null;
                return false;
            }
        }
    }
}
