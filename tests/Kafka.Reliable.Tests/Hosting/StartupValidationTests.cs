using Kafka.Reliable.Idempotency;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable.Tests.Hosting;

public sealed class StartupValidationTests
{
    private static readonly Dictionary<string, string?> Valid = new()
    {
        ["Kafka:Orders:BootstrapServers"] = "127.0.0.1:9",
        ["Kafka:Orders:GroupId"] = "orders-loader",
        ["Kafka:Orders:Topics:0"] = "orders",
    };

    [Theory]
    [InlineData("Kafka:Orders:GroupId", "", "Kafka:Orders:GroupId is required")]
    [InlineData("Kafka:Orders:BootstrapServers", "", "Kafka:Orders:BootstrapServers is required")]
    [InlineData("Kafka:Orders:Topics:0", "", "Kafka:Orders:Topics is empty")]
    [InlineData("Kafka:Orders:Topics:1", "bad topic!", "Kafka:Orders:Topics:1 ('bad topic!') is not a valid topic name")]
    [InlineData("Kafka:Orders:Topics:1", "orders", "Kafka:Orders:Topics:1 ('orders') is listed twice")]
    [InlineData("Kafka:Orders:PartitionBufferSize", "0", "Kafka:Orders:PartitionBufferSize is 0")]
    [InlineData("Kafka:Orders:MaxBufferedBytes", "1000", "Kafka:Orders:MaxBufferedBytes is 1000: use a number of bytes from 1048576 (1 MiB)")]
    [InlineData("Kafka:Orders:ShutdownTimeout", "-00:00:01", "Kafka:Orders:ShutdownTimeout is -00:00:01")]
    [InlineData("Kafka:Orders:PollTimeout", "00:01:00", "Kafka:Orders:PollTimeout is 00:01:00")]
    [InlineData("Kafka:Orders:Commit:Interval", "00:00:00", "Kafka:Orders:Commit:Interval is 00:00:00")]
    [InlineData("Kafka:Orders:Commit:Count", "-1", "Kafka:Orders:Commit:Count is -1")]
    [InlineData("Kafka:Orders:Commit:RejoinWhenRefusedFor", "00:00:00.5000000", "Kafka:Orders:Commit:RejoinWhenRefusedFor is 00:00:00.5000000")]
    [InlineData("Kafka:Orders:Retry:MaxDelay", "00:00:00.001", "Kafka:Orders:Retry:MaxDelay is 00:00:00.0010000")]
    [InlineData("Kafka:Orders:Retry:MaxAttempts", "0", "Kafka:Orders:Retry:MaxAttempts is 0: use a value from 1 (no retry)")]
    [InlineData("Kafka:Orders:MaxPayloadBytes", "0", "Kafka:Orders:MaxPayloadBytes is 0")]
    [InlineData("Kafka:Orders:Batch:MaxSize", "0", "Kafka:Orders:Batch:MaxSize is 0: use a number of messages from 1 to 100000")]
    [InlineData("Kafka:Orders:Batch:MaxBytes", "10", "Kafka:Orders:Batch:MaxBytes is 10: use a number of bytes from 1024 (1 KiB)")]
    [InlineData("Kafka:Orders:Batch:Linger", "00:05:00", "Kafka:Orders:Batch:Linger is 00:05:00")]
    [InlineData("Kafka:Orders:MaxInFlight", "0", "Kafka:Orders:MaxInFlight is 0: use a number of records from 1 to 100000")]
    [InlineData("Kafka:Orders:Watchdog:StuckAfter", "00:00:00", "Kafka:Orders:Watchdog:StuckAfter is 00:00:00: use a duration from 00:00:01 to 1.00:00:00")]
    [InlineData("Kafka:Orders:Watchdog:StuckAfter", "-00:05:00", "Kafka:Orders:Watchdog:StuckAfter is -00:05:00: use a duration from 00:00:01 to 1.00:00:00")]
    [InlineData("Kafka:Orders:KafkaSettings:enable.auto.commit", "true", "Kafka:Orders:KafkaSettings:enable.auto.commit is managed by Kafka.Reliable: remove it and set Kafka:Orders:Commit:Strategy instead")]
    [InlineData("Kafka:Orders:KafkaSettings:group.id", "x", "set Kafka:Orders:GroupId instead")]
    [InlineData("Kafka:Orders:KafkaSettings:session.timeout.ms", "abc", "Kafka:Orders:KafkaSettings: librdkafka rejected the consumer settings")]
    [InlineData("Kafka:Orders:KafkaSettings:no.such.property", "1", "Kafka:Orders:KafkaSettings: librdkafka rejected the consumer settings")]
    [InlineData("Kafka:Orders:DeadLetter:ProducerSettings:bootstrap.servers", "other:9092", "Kafka:Orders:DeadLetter:ProducerSettings:bootstrap.servers is managed by Kafka.Reliable (the dead-letter producer uses the consumer's BootstrapServers): remove it")]
    [InlineData("Kafka:Orders:DeadLetter:ProducerSettings:transactional.id", "dlq", "Kafka:Orders:DeadLetter:ProducerSettings:transactional.id is managed by Kafka.Reliable (the dead-letter producer is idempotent, not transactional)")]
    [InlineData("Kafka:Orders:DeadLetter:ProducerSettings:acks", "1", "Kafka:Orders:DeadLetter:ProducerSettings:acks is '1': a dead letter counts as written only once every in-sync replica has it")]
    [InlineData("Kafka:Orders:DeadLetter:ProducerSettings:message.max.bytes", "10", "Kafka:Orders:DeadLetter:ProducerSettings: librdkafka rejected the dead-letter producer settings")]
    [InlineData("Kafka:Orders:DeadLetter:ProducerSettings:no.such.property", "1", "Kafka:Orders:DeadLetter:ProducerSettings: librdkafka rejected the dead-letter producer settings")]
    public async Task Start_InvalidSetting_FailsWithAMessageNamingIt(string key, string value, string expected)
    {
        var settings = new Dictionary<string, string?>(Valid) { [key] = value };
        if (key == "Kafka:Orders:Topics:0")
        {
            settings.Remove(key);
        }

        using var host = BuildHost(settings);

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("RetryTiers:Enabled=true;DeadLetter:Enabled=false", "Kafka:Orders:RetryTiers:Enabled is true and Kafka:Orders:DeadLetter:Enabled is false: a record that fails in its last tier is dead-lettered")]
    [InlineData("RetryTiers:Enabled=true;Commit:Strategy=Manual", "Kafka:Orders:RetryTiers:Enabled is true and Kafka:Orders:Commit:Strategy is Manual")]
    [InlineData("RetryTiers:Enabled=true;Commit:Strategy=Transactional", "Kafka:Orders:RetryTiers:Enabled is true and Kafka:Orders:Commit:Strategy is Transactional")]
    [InlineData("RetryTiers:Enabled=true;RetryTiers:Topic=orders", "Kafka:Orders:RetryTiers:Topic ('orders') does not give a valid retry topic for 'orders'")]
    [InlineData("RetryTiers:Enabled=true;RetryTiers:Topic=bad topic", "Kafka:Orders:RetryTiers:Topic ('bad topic') does not give a valid retry topic")]
    [InlineData("RetryTiers:Enabled=true;RetryTiers:Topic={topic}.dlq", "Kafka:Orders:RetryTiers:Topic and Kafka:Orders:DeadLetter:Topic name the same topic ('orders.dlq')")]
    [InlineData("RetryTiers:Enabled=true;RetryTiers:Topic=audit;Topics:1=audit", "Kafka:Orders:RetryTiers:Topic ('audit') names a topic this consumer reads ('audit')")]
    [InlineData("RetryTiers:Delays:0=00:00:00", "Kafka:Orders:RetryTiers:Delays:0 is 00:00:00: use a duration from 00:00:00.0010000 to 7.00:00:00")]
    [InlineData("RetryTiers:Delays:0=8.00:00:00", "Kafka:Orders:RetryTiers:Delays:0 is 8.00:00:00")]
    [InlineData("RetryTiers:MaxParkedRecords=0", "Kafka:Orders:RetryTiers:MaxParkedRecords is 0: use a number of records from 1 to 1000000")]
    [InlineData("RetryTiers:Ordering=Sorted", "Kafka:Orders:RetryTiers:Ordering")]
    public Task Start_InvalidRetryTiers_FailsWithAMessageNamingTheSetting(string pairs, string expected)
        => FailsWithAsync(pairs, expected);

    [Theory]
    [InlineData("GroupProtocol=Consumer;KafkaSettings:partition.assignment.strategy=range", "Kafka:Orders:KafkaSettings:partition.assignment.strategy belongs to the classic group protocol, and Kafka:Orders:GroupProtocol is Consumer: the broker assigns partitions under the consumer protocol: choose its assignor with KafkaSettings:group.remote.assignor")]
    [InlineData("GroupProtocol=Consumer;KafkaSettings:session.timeout.ms=10000", "Kafka:Orders:KafkaSettings:session.timeout.ms belongs to the classic group protocol, and Kafka:Orders:GroupProtocol is Consumer: the session timeout is the broker's under the consumer protocol: set group.consumer.session.timeout.ms on the broker")]
    [InlineData("GroupProtocol=Consumer;KafkaSettings:heartbeat.interval.ms=1000", "set group.consumer.heartbeat.interval.ms on the broker")]
    [InlineData("KafkaSettings:group.remote.assignor=uniform", "Kafka:Orders:KafkaSettings:group.remote.assignor is for the consumer group protocol, and Kafka:Orders:GroupProtocol is Classic")]
    [InlineData("KafkaSettings:group.protocol=consumer", "Kafka:Orders:KafkaSettings:group.protocol is managed by Kafka.Reliable: remove it and set Kafka:Orders:GroupProtocol instead")]
    [InlineData("KafkaSettings:group.instance.id=pod-0", "Kafka:Orders:KafkaSettings:group.instance.id is managed by Kafka.Reliable: remove it and set Kafka:Orders:GroupInstanceId instead")]
    [InlineData("GroupInstanceId=   ", "Kafka:Orders:GroupInstanceId ('   ') is not a valid group instance id")]
    [InlineData("GroupProtocol=Next", "Kafka:Orders:GroupProtocol")]
    public Task Start_InvalidGroupProtocolSettings_SayWhatReplacesThem(string pairs, string expected)
        => FailsWithAsync(pairs, expected);

    [Fact]
    public async Task Start_TheConsumerProtocolWithItsOwnSettings_IsAccepted()
    {
        using var host = BuildHost(new Dictionary<string, string?>(Valid)
        {
            ["Kafka:Orders:GroupProtocol"] = "Consumer",
            ["Kafka:Orders:GroupInstanceId"] = "orders-0",
            ["Kafka:Orders:KafkaSettings:group.remote.assignor"] = "uniform",
        });

        // Validation passes: the consumer starts (against no broker) and stops.
        await host.StartAsync(TestContext.Current.CancellationToken);
        await host.StopAsync(TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task Start_ParkAtOnceToATierThatDoesNotExist_SaysHowManyTiersThereAre()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(Valid);
        builder.Services.AddReliableConsumer<TestEvent>(builder.Configuration.GetSection("Kafka:Orders"))
            .WithHandler<RecordingHandler>();
        builder.Services.PostConfigureAll<ReliableConsumerOptions>(o => o.RetryTiers.ParkAtOnce<TimeoutException>(tier: 4));
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("RetryTiers.ParkAtOnce<TimeoutException>(tier: 4) names tier 4, but there are 3 tiers (Kafka:Orders:RetryTiers:Delays): use a tier from 1 to 3.", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_UnknownStartPosition_FailsNamingTheSetting()
    {
        using var host = BuildHost(new Dictionary<string, string?>(Valid) { ["Kafka:Orders:StartPosition"] = "Middle" });

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("Kafka:Orders:StartPosition", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_InvalidCircuitBreaker_NamesEachSetting()
    {
        using var host = BuildHost(new Dictionary<string, string?>(Valid)
        {
            ["Kafka:Orders:CircuitBreaker:Enabled"] = "true",
            ["Kafka:Orders:CircuitBreaker:FailureRatio"] = "1.5",
            ["Kafka:Orders:CircuitBreaker:MinimumThroughput"] = "1",
            ["Kafka:Orders:CircuitBreaker:BreakDuration"] = "00:00:00.1",
        });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("Kafka:Orders:CircuitBreaker:FailureRatio is 1.5", error.Message, StringComparison.Ordinal);
        Assert.Contains("Kafka:Orders:CircuitBreaker:MinimumThroughput is 1", error.Message, StringComparison.Ordinal);
        Assert.Contains("Kafka:Orders:CircuitBreaker:BreakDuration is 00:00:00.1", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_InvalidIdempotency_NamesEachSetting()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>(Valid)
        {
            ["Kafka:Orders:Idempotency:KeyHeader"] = " ",
            ["Kafka:Orders:Idempotency:LeaseDuration"] = "00:00:00",
            ["Kafka:Orders:Idempotency:Retention"] = "00:00:10",
        });
        builder.Services.AddReliableConsumer<TestEvent>(builder.Configuration.GetSection("Kafka:Orders"))
            .UseInMemoryIdempotency()
            .WithHandler<RecordingHandler>();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("Kafka:Orders:Idempotency:KeyHeader is empty", error.Message, StringComparison.Ordinal);
        Assert.Contains("Kafka:Orders:Idempotency:LeaseDuration is 00:00:00", error.Message, StringComparison.Ordinal);
        Assert.Contains("Kafka:Orders:Idempotency:Retention is 00:00:10", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_ManualCommitsWithATransactionalIdempotencyStore_SaysWhyAndWhatToUseInstead()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>(Valid) { ["Kafka:Orders:Commit:Strategy"] = "Manual" });
        builder.Services.AddReliableConsumer<TestEvent>(builder.Configuration.GetSection("Kafka:Orders"))
            .UseTransactionalIdempotencyStore(_ => new NoTransactions())
            .WithHandler<RecordingHandler>();
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("Kafka:Orders:Commit:Strategy is Manual, which cannot be combined with a transactional idempotency store", error.Message, StringComparison.Ordinal);
        Assert.Contains("Use Commit:Strategy PerMessage or Periodic with the transactional store", error.Message, StringComparison.Ordinal);
        Assert.Contains("Transactional = false", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_TransactionalCommitsWithConcurrentDispatch_SaysWhatToChange()
    {
        using var host = BuildHost(new Dictionary<string, string?>(Valid)
        {
            ["Kafka:Orders:Commit:Strategy"] = "Transactional",
            ["Kafka:Orders:Dispatch"] = "ByKey",
        });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("Kafka:Orders:Commit:Strategy is Transactional, which needs Kafka:Orders:Dispatch = Sequential", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_TransactionalCommitsWithWatchdogRestarts_SaysWhatToChange()
    {
        using var host = BuildHost(new Dictionary<string, string?>(Valid)
        {
            ["Kafka:Orders:Commit:Strategy"] = "Transactional",
            ["Kafka:Orders:Watchdog:RestartWhenStuck"] = "true",
        });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("Kafka:Orders:Commit:Strategy is Transactional, which cannot be combined with Kafka:Orders:Watchdog:RestartWhenStuck", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_SeveralProblems_ReportsEachOfThem()
    {
        using var host = BuildHost(new Dictionary<string, string?> { ["Kafka:Orders:PartitionBufferSize"] = "5" });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("BootstrapServers is required", error.Message, StringComparison.Ordinal);
        Assert.Contains("GroupId is required", error.Message, StringComparison.Ordinal);
        Assert.Contains("Topics is empty", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_NoHandler_FailsSayingWhatToCall()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(Valid);
        builder.Services.AddReliableConsumer<TestEvent>(builder.Configuration.GetSection("Kafka:Orders"));
        using var host = builder.Build();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("Reliable consumer 'Orders' has no handler: call WithHandler<THandler>()", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddReliableConsumer_SameNameTwice_Throws()
    {
        var services = new ServiceCollection();
        services.AddReliableConsumer<TestEvent>("orders", o => { });

        var error = Assert.Throws<InvalidOperationException>(() => services.AddReliableConsumer<TestEvent>("orders", o => { }));
        Assert.Contains("'orders' is already registered", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_BoundFromConfiguration_CarryEverySetting()
    {
        var settings = new Dictionary<string, string?>(Valid)
        {
            ["Kafka:Orders:Topics:1"] = "returns",
            ["Kafka:Orders:StartPosition"] = "Latest",
            ["Kafka:Orders:Commit:Strategy"] = "PerMessage",
            ["Kafka:Orders:Commit:Interval"] = "00:00:02",
            ["Kafka:Orders:Commit:Count"] = "500",
            ["Kafka:Orders:Commit:RejoinWhenRefusedFor"] = "00:01:00",
            ["Kafka:Orders:PartitionBufferSize"] = "64",
            ["Kafka:Orders:MaxBufferedBytes"] = "8388608",
            ["Kafka:Orders:ShutdownTimeout"] = "00:00:07",
            ["Kafka:Orders:RevokeTimeout"] = "00:00:03",
            ["Kafka:Orders:Retry:Delay"] = "00:00:01",
            ["Kafka:Orders:Retry:MaxDelay"] = "00:00:09",
            ["Kafka:Orders:Retry:MaxAttempts"] = "3",
            ["Kafka:Orders:Retry:BackoffType"] = "Linear",
            ["Kafka:Orders:Retry:UseJitter"] = "false",
            ["Kafka:Orders:CircuitBreaker:Enabled"] = "true",
            ["Kafka:Orders:CircuitBreaker:FailureRatio"] = "0.25",
            ["Kafka:Orders:CircuitBreaker:MinimumThroughput"] = "4",
            ["Kafka:Orders:CircuitBreaker:SamplingDuration"] = "00:01:00",
            ["Kafka:Orders:CircuitBreaker:BreakDuration"] = "00:00:15",
            ["Kafka:Orders:Watchdog:RestartWhenStuck"] = "true",
            ["Kafka:Orders:Watchdog:StuckAfter"] = "00:02:00",
            ["Kafka:Orders:Tombstones"] = "Skip",
            ["Kafka:Orders:MaxPayloadBytes"] = "2048",
            ["Kafka:Orders:Dispatch"] = "ByKey",
            ["Kafka:Orders:MaxInFlight"] = "32",
            ["Kafka:Orders:KafkaSettings:session.timeout.ms"] = "12000",
            ["Kafka:Orders:DeadLetter:ProducerSettings:message.max.bytes"] = "2000000",
            ["Kafka:Orders:DeadLetter:ProducerSettings:compression.type"] = "zstd",
        };
        using var host = BuildHost(settings);

        var options = host.Services.GetRequiredService<IOptionsMonitor<ReliableConsumerOptions>>().Get("Orders");

        Assert.Equal(["orders", "returns"], options.Topics);
        Assert.Equal(StartPosition.Latest, options.StartPosition);
        Assert.Equal(CommitStrategy.PerMessage, options.Commit.Strategy);
        Assert.Equal(TimeSpan.FromSeconds(2), options.Commit.Interval);
        Assert.Equal(500, options.Commit.Count);
        Assert.Equal(TimeSpan.FromMinutes(1), options.Commit.RejoinWhenRefusedFor);
        Assert.Equal(64, options.PartitionBufferSize);
        Assert.Equal(8 * 1024 * 1024, options.MaxBufferedBytes);
        Assert.Equal(TimeSpan.FromSeconds(7), options.ShutdownTimeout);
        Assert.Equal(TimeSpan.FromSeconds(3), options.RevokeTimeout);
        Assert.Equal(TimeSpan.FromSeconds(1), options.Retry.Delay);
        Assert.Equal(TimeSpan.FromSeconds(9), options.Retry.MaxDelay);
        Assert.Equal(3, options.Retry.MaxAttempts);
        Assert.Equal(Polly.DelayBackoffType.Linear, options.Retry.BackoffType);
        Assert.False(options.Retry.UseJitter);
        Assert.True(options.CircuitBreaker.Enabled);
        Assert.Equal(0.25, options.CircuitBreaker.FailureRatio);
        Assert.Equal(4, options.CircuitBreaker.MinimumThroughput);
        Assert.Equal(TimeSpan.FromMinutes(1), options.CircuitBreaker.SamplingDuration);
        Assert.Equal(TimeSpan.FromSeconds(15), options.CircuitBreaker.BreakDuration);
        Assert.True(options.Watchdog.RestartWhenStuck);
        Assert.Equal(TimeSpan.FromMinutes(2), options.Watchdog.StuckAfter);
        Assert.Equal(TombstonePolicy.Skip, options.Tombstones);
        Assert.Equal(2048, options.MaxPayloadBytes);
        Assert.Equal(DispatchMode.ByKey, options.Dispatch);
        Assert.Equal(32, options.MaxInFlight);
        Assert.Equal("12000", options.KafkaSettings["session.timeout.ms"]);
        Assert.Equal("2000000", options.DeadLetter.ProducerSettings["message.max.bytes"]);
        Assert.Equal("zstd", options.DeadLetter.ProducerSettings["compression.type"]);
    }

    [Fact]
    public async Task Start_BadDeadLetterProducerSettings_FailEvenWhileDeadLetteringIsOff()
    {
        using var host = BuildHost(new Dictionary<string, string?>(Valid)
        {
            ["Kafka:Orders:DeadLetter:Enabled"] = "false",
            ["Kafka:Orders:DeadLetter:ProducerSettings:linger.ms"] = "soon",
        });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains("Kafka:Orders:DeadLetter:ProducerSettings: librdkafka rejected the dead-letter producer settings", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Starts a host with the valid settings and <paramref name="pairs"/> (<c>Key=Value;...</c> under the consumer's section) over them, and expects it to fail saying <paramref name="expected"/>.</summary>
    private static async Task FailsWithAsync(string pairs, string expected)
    {
        var settings = new Dictionary<string, string?>(Valid);
        foreach (var pair in pairs.Split(';'))
        {
            var (key, value) = (pair[..pair.IndexOf('=')], pair[(pair.IndexOf('=') + 1)..]);
            settings["Kafka:Orders:" + key] = value;
        }

        using var host = BuildHost(settings);

        var error = await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync(TestContext.Current.CancellationToken));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    private static IHost BuildHost(Dictionary<string, string?> settings)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddReliableConsumer<TestEvent>(builder.Configuration.GetSection("Kafka:Orders"))
            .WithHandler<RecordingHandler>();
        return builder.Build();
    }

    private sealed class NoTransactions : ITransactionalIdempotencyStore
    {
        public ValueTask<IdempotencyTransaction?> BeginTransactionAsync(string key, MessageContext context, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("The consumer must not start.");
    }
}
