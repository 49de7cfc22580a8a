using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable.Tests.FailureHandling;

/// <summary>Retry tiers (docs/failure-handling.md, "Retry tiers"): failing records wait in a retry topic, their keys' later records behind them.</summary>
public sealed class RetryTierTests(KafkaBrokerFixture broker)
{
    private static readonly TimeSpan ShortTier = TimeSpan.FromMilliseconds(100);

    [Theory]
    [InlineData(DispatchMode.Sequential)]
    [InlineData(DispatchMode.ByKey)]
    public async Task FailingKey_IsParked_WhileOtherKeysFlow_AndItsRecordsAreHandledInOffsetOrderAfterRecovery(DispatchMode dispatch)
    {
        var (topic, group) = await TopicsAsync(partitions: 2);
        var produced = await broker.ProduceAsync(topic, Keyed(200, keys: 10, partitions: 2));
        var failing = new StrongBox(true);
        var handler = new RecordingHandler
        {
            Behavior = (message, _, _) => message.Key == "k3" && failing.Value
                ? throw new TimeoutException("the downstream service of k3 is down")
                : ValueTask.CompletedTask,
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o => Tiers(o, dispatch, delays: 50));

        // Every other key's 180 records are handled while k3 is parked, and k3 is handled not once.
        await Eventually.TrueAsync(() => handler.Handled.Count(h => h.Id % 10 != 3) == 180, "the 180 records of the other keys are handled", state: () => $"{handler.Handled.Count} handled");
        Assert.DoesNotContain(handler.Handled, h => h.Id % 10 == 3);
        await Eventually.TrueAsync(() => consumer.Logs.CountOf(241) >= 2, "k3's first record was moved between tiers");

        failing.Value = false;
        await Eventually.TrueAsync(() => handler.Handled.Count == 200, "all 200 records are handled once k3's dependency is back", state: () => $"{handler.Handled.Count} handled");

        // k3's 20 records (all in partition 1), in offset order, each once.
        var k3 = handler.Handled.Where(h => h.Id % 10 == 3).Select(h => h.Offset).ToList();
        Assert.Equal(produced.Where((_, i) => i % 10 == 3).Select(p => p.Offset.Value).Order(), k3);
        Assert.Equal(200, handler.Handled.Select(h => h.Id).Distinct().Count());
        await Eventually.TrueAsync(
            () => broker.GetCommittedOffsets(group, topic, 2).Values.All(o => o == 100),
            "both partitions are committed to their ends");
        var retryTopic = topic + ".retry";
        await Eventually.TrueAsync(
            () => broker.GetHighWatermarks(retryTopic, 2) is var ends && broker.GetCommittedOffsets(group, retryTopic, 2).All(c => c.Value == ends[c.Key]),
            "the retry topic is committed to its end: nothing is parked any more",
            state: () => string.Join(", ", broker.GetCommittedOffsets(group, retryTopic, 2).Select(c => $"{c.Key}: {c.Value}")));
        Assert.Equal(0, broker.GetHighWatermarks(topic + ".dlq", 1)[0]);
    }

    [Fact]
    public async Task RecordFailingInItsLastTier_IsDeadLetteredWithItsHistory_AndTheRecordsBehindItAreHandledInOrder()
    {
        var (topic, group) = await TopicsAsync(partitions: 1);
        var produced = await broker.ProduceAsync(topic, Keyed(30, keys: 3, partitions: 1));
        var poisoned = produced[4].Offset.Value; // key k1
        var handler = new RecordingHandler
        {
            Behavior = (_, context, _) => context.Offset == poisoned ? throw new TimeoutException("still down") : ValueTask.CompletedTask,
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            Tiers(o, DispatchMode.Sequential, delays: 20);
            o.Retry.MaxAttempts = 2;
        });

        var dead = Assert.Single(broker.ReadAll(topic + ".dlq", 1, expected: 1));
        await Eventually.TrueAsync(() => handler.Handled.Count == 29, "the 29 other records are handled");

        string Header(string name) => Encoding.UTF8.GetString(dead.Message.Headers.GetLastBytes(name));
        Assert.Equal(poisoned.ToString(CultureInfo.InvariantCulture), Header(DeadLetterHeaders.OriginalOffset));
        Assert.Equal(topic, Header(DeadLetterHeaders.OriginalTopic));
        Assert.Equal("6", Header(DeadLetterHeaders.Attempts));
        var history = dead.Message.Headers.Where(h => h.Key == RetryTierHeaders.History).Select(h => Encoding.UTF8.GetString(h.GetValueBytes())).ToList();
        Assert.Equal(3, history.Count);
        Assert.StartsWith("tier=0; ", history[0]);
        Assert.StartsWith("tier=1; ", history[1]);
        Assert.StartsWith("tier=2; ", history[2]);
        Assert.All(history, line => Assert.Contains("attempts=2; exception=System.TimeoutException: still down", line));
        Assert.Equal("k1", Encoding.UTF8.GetString(dead.Message.Key!));

        // k1's records after the dead-lettered one, in offset order, after it.
        var k1 = handler.Handled.Where(h => h.Id % 3 == 1).Select(h => h.Offset).ToList();
        Assert.Equal(k1.Order(), k1);
        Assert.Equal(9, k1.Count);
        Assert.Equal(6, handler.Attempts.Count(a => a.Offset == poisoned));
    }

    [Fact]
    public async Task ParkAtOnce_SkipsTheInPlaceRetries_NeverPark_DeadLettersAfterThem_AndFatalFailuresAreNeverParked()
    {
        var (topic, group) = await TopicsAsync(partitions: 1);
        var produced = await broker.ProduceAsync(topic, Keyed(9, keys: 9, partitions: 1));
        long Offset(int index) => produced[index].Offset.Value;
        var recovered = new StrongBox(false);
        var handler = new RecordingHandler
        {
            Behavior = (message, _, _) => message.Id switch
            {
                1 when !recovered.Value => throw new NotReadyException(),
                2 => throw new InvalidOperationException("deadlock"),
                3 => throw new NonRetryableException("bad order"),
                _ => ValueTask.CompletedTask,
            },
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            Tiers(o, DispatchMode.Sequential, delays: 50);
            o.Retry.MaxAttempts = 4;
            o.RetryTiers.ParkAtOnce<NotReadyException>().NeverPark<InvalidOperationException>();
        });

        var dead = broker.ReadAll(topic + ".dlq", 1, expected: 2);
        await Eventually.TrueAsync(() => handler.Handled.Count == 6, "the six healthy records are handled");
        recovered.Value = true;
        await Eventually.TrueAsync(() => handler.Handled.Count == 7, "record 1 is handled from its tier");

        Assert.Equal([Offset(2), Offset(3)], dead.Select(d => long.Parse(Encoding.UTF8.GetString(d.Message.Headers.GetLastBytes(DeadLetterHeaders.OriginalOffset)), CultureInfo.InvariantCulture)).Order());
        Assert.Equal(4, handler.Attempts.Count(a => a.Id == 2));
        Assert.Equal(1, handler.Attempts.Count(a => a.Id == 3));
        Assert.Equal(1, handler.Attempts.First(a => a.Id == 1).Attempt);
        Assert.True(handler.Attempts.Count(a => a.Id == 1) >= 2);
        Assert.All(dead, d => Assert.Null(d.Message.Headers.FirstOrDefault(h => h.Key == RetryTierHeaders.History)));
    }

    [Fact]
    public async Task UnorderedTiers_LetTheKeysLaterRecordsThrough_WhileItsFailedRecordWaits()
    {
        var (topic, group) = await TopicsAsync(partitions: 1);
        await broker.ProduceAsync(topic, Keyed(20, keys: 2, partitions: 1));
        var failing = new StrongBox(true);
        var handler = new RecordingHandler
        {
            Behavior = (message, _, _) => message.Id == 0 && failing.Value ? throw new TimeoutException("down") : ValueTask.CompletedTask,
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            Tiers(o, DispatchMode.Sequential, delays: 50);
            o.RetryTiers.Ordering = RetryTierOrdering.Unordered;
        });

        await Eventually.TrueAsync(() => handler.Handled.Count == 19, "every record but the failing one is handled, its key's included");
        failing.Value = false;
        await Eventually.TrueAsync(() => handler.Handled.Count == 20, "the failed record is handled from its tier");
        Assert.Equal(0, handler.Handled.Last().Id);
    }

    [Fact]
    public async Task ANewConsumer_KnowsTheParkedKeysFromTheRetryTopic_AndKeepsTheirLaterRecordsBehindThem()
    {
        var (topic, group) = await TopicsAsync(partitions: 1);
        await broker.ProduceAsync(topic, Keyed(10, keys: 5, partitions: 1));
        var failing = new StrongBox(true);
        var handled = new ConcurrentQueue<(int Id, int Tier)>();
        Func<TestEvent, MessageContext, CancellationToken, ValueTask> behavior = (message, context, _) =>
        {
            if (message.Key == "k2" && failing.Value)
            {
                throw new TimeoutException("down");
            }

            handled.Enqueue((message.Id, context.RetryTier));
            return ValueTask.CompletedTask;
        };

        // A long first tier: the parked record stays parked across the restart.
        await using (var first = await TestConsumer.StartAsync(broker, topic, group, new RecordingHandler { Behavior = behavior }, o => Tiers(o, DispatchMode.ByKey, delays: 60_000)))
        {
            await Eventually.TrueAsync(() => handled.Count == 8, "the records of the other keys are handled");
            await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 10, "the partition is committed past the parked records");
        }

        await broker.ProduceAsync(topic, Keyed(10, keys: 5, partitions: 1, firstId: 10));
        failing.Value = false;
        await using var second = await TestConsumer.StartAsync(broker, topic, group, new RecordingHandler { Behavior = behavior }, o =>
        {
            Tiers(o, DispatchMode.ByKey, delays: 60_000);
        });

        // k2's new records wait behind its parked ones (due in a minute); the other keys' new records are handled.
        await Eventually.TrueAsync(() => handled.Count == 16, "the other keys' 8 new records are handled");
        Assert.DoesNotContain(handled, h => h.Id % 5 == 2);
        await Eventually.TrueAsync(() => second.Logs.CountOf(245) >= 1, "the new consumer read its parked keys");

        // The operator tries k2 now instead of waiting for its delay: k2's four records, in order.
        await broker.ProduceMessagesAsync(topic + ".retry", [(0, new Message<byte[]?, byte[]?> { Key = "k2"u8.ToArray(), Headers = new Headers { { RetryTierHeaders.Command, "retry-now"u8.ToArray() } } })]);
        await Eventually.TrueAsync(() => handled.Count == 20, "k2's four records are handled");
        Assert.Equal([2, 7, 12, 17], handled.Where(h => h.Id % 5 == 2).Select(h => h.Id));
        Assert.Equal(1, handled.First(h => h.Id == 2).Tier);
    }

    [Fact]
    public async Task ReleasingAKey_DeadLettersItsFailedRecord_AndHandlesTheRecordsBehindIt()
    {
        var (topic, group) = await TopicsAsync(partitions: 1);
        await broker.ProduceAsync(topic, Keyed(6, keys: 2, partitions: 1));
        var handler = new RecordingHandler
        {
            Behavior = (message, _, _) => message.Id == 1 ? throw new TimeoutException("down") : ValueTask.CompletedTask,
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o => Tiers(o, DispatchMode.Sequential, delays: 60_000));
        await Eventually.TrueAsync(() => handler.Handled.Count == 3, "key k0's three records are handled");
        await broker.ProduceMessagesAsync(topic + ".retry", [(0, new Message<byte[]?, byte[]?> { Key = "k1"u8.ToArray(), Headers = new Headers { { RetryTierHeaders.Command, "release"u8.ToArray() } } })]);

        var dead = Assert.Single(broker.ReadAll(topic + ".dlq", 1, expected: 1));
        await Eventually.TrueAsync(() => handler.Handled.Count == 5, "k1's two later records are handled");
        Assert.Equal(typeof(RetryTierReleasedException).FullName, Encoding.UTF8.GetString(dead.Message.Headers.GetLastBytes(DeadLetterHeaders.ExceptionType)));
        Assert.Equal([3, 5], handler.Handled.Where(h => h.Id % 2 == 1).Select(h => h.Id));
    }

    [Fact]
    public async Task ParkedRecords_AreCounted_AgeTheHealthCheck_AndTheirRetriesLinkToTheSpanThatParkedThem()
    {
        var (topic, group) = await TopicsAsync(partitions: 1);
        await broker.ProduceAsync(topic, Keyed(10, keys: 2, partitions: 1));
        var failing = new StrongBox(true);
        var handler = new RecordingHandler
        {
            Behavior = (message, _, _) => message.Key == "k1" && failing.Value ? throw new TimeoutException("down") : ValueTask.CompletedTask,
        };
        var spans = new ConcurrentQueue<System.Diagnostics.Activity>();
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name == KafkaReliableDiagnostics.ActivitySourceName,
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if ((string?)activity.GetTagItem("messaging.consumer.group.name") == group)
                {
                    spans.Enqueue(activity);
                }
            },
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        using var meters = new TestMeters();
        var parked = meters.Collect<long>("kafka.reliable.retry.parked");
        var parkedKeys = meters.Collect<long>("kafka.reliable.retry.parked_keys");
        var parkedRecords = meters.Collect<long>("kafka.reliable.retry.parked_records");
        long? Latest(Microsoft.Extensions.Diagnostics.Metrics.Testing.MetricCollector<long> collector) => collector.GetMeasurementSnapshot() is { Count: > 0 } all ? all[^1].Value : null;
        var oldest = meters.Collect<double>("kafka.reliable.retry.oldest_parked_age");

        await using var consumer = await TestConsumer.StartAsync(
            broker, topic, group, handler, o => Tiers(o, DispatchMode.ByKey, delays: 200), meters: meters,
            services: s => s.AddHealthChecks().AddReliableConsumer("test", o => o.MaxParkedAge = TimeSpan.FromMilliseconds(1)));
        var health = consumer.Host.Services.GetRequiredService<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckService>();

        // k1's five records: its first failed and parked, the four others parked behind it.
        await Eventually.TrueAsync(() => handler.Handled.Count == 5, "k0's five records are handled");
        await Eventually.TrueAsync(
            () =>
            {
                meters.Observe();
                return Latest(parkedRecords) == 5 && Latest(parkedKeys) == 1 && parked.Sum() >= 5;
            },
            "one key and five records are parked",
            state: () => $"records {Latest(parkedRecords)}, keys {Latest(parkedKeys)}, parked (counter) {parked.Sum()}");
        Assert.True(oldest.GetMeasurementSnapshot()[^1].Value >= 0);
        await Eventually.TrueAsync(
            () => health.CheckHealthAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult().Entries.Single().Value is { Status: Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Degraded } r
                && r.Description!.Contains("parked in a retry tier", StringComparison.Ordinal),
            "the health check is degraded by the parked record's age");

        failing.Value = false;
        await Eventually.TrueAsync(() => handler.Handled.Count == 10, "k1's records are handled after recovery");
        await Eventually.TrueAsync(
            () =>
            {
                meters.Observe();
                return Latest(parkedRecords) == 0;
            },
            "nothing is parked any more");
        await Eventually.TrueAsync(
            () => health.CheckHealthAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult().Entries.Single().Value.Status == Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy,
            "healthy again");

        // The first record of k1: its first span parked it in tier 1; the span of its retry links to that span.
        await Eventually.TrueAsync(() => spans.Any(a => a.GetTagItem("kafka.reliable.retry") is true), "a retry's span ended");
        var first = spans.First(a => a.GetTagItem("kafka.reliable.parked_tier") is 1);
        var retry = spans.First(a => a.GetTagItem("kafka.reliable.retry") is true && (long)a.GetTagItem("messaging.kafka.offset")! == (long)first.GetTagItem("messaging.kafka.offset")!);
        Assert.Contains(retry.Links, link => link.Context.SpanId == first.SpanId && link.Context.TraceId == first.TraceId);
        Assert.Contains(spans, a => a.GetTagItem("kafka.reliable.parked_tier") is 0);
    }

    [Fact]
    public async Task ARestartedConsumer_DoesNotRunParkedRecordsAgainThatWereDone_NorAnotherGroupsCopies()
    {
        var (topic, group) = await TopicsAsync(partitions: 1);
        await broker.ProduceAsync(topic, Keyed(6, keys: 2, partitions: 1));

        // Another group's copy of a record, in the same retry topic: never run by this group.
        var other = new Headers
        {
            { RetryTierHeaders.OriginalTopic, Encoding.UTF8.GetBytes(topic) },
            { RetryTierHeaders.OriginalPartition, "0"u8.ToArray() },
            { RetryTierHeaders.OriginalOffset, "99"u8.ToArray() },
            { RetryTierHeaders.ConsumerGroup, "someone-else"u8.ToArray() },
            { RetryTierHeaders.Tier, "1"u8.ToArray() },
            { RetryTierHeaders.Due, "0"u8.ToArray() },
        };
        await broker.ProduceMessagesAsync(topic + ".retry", [(0, new Message<byte[]?, byte[]?> { Key = "k9"u8.ToArray(), Value = Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(new TestEvent(99, "k9"))), Headers = other })]);
        var calls = new ConcurrentDictionary<int, int>();
        var failing = new StrongBox(true);
        Func<TestEvent, MessageContext, CancellationToken, ValueTask> behavior = (message, _, _) =>
        {
            calls.AddOrUpdate(message.Id, 1, (_, n) => n + 1);
            return message.Id == 1 && failing.Value ? throw new TimeoutException("down") : ValueTask.CompletedTask;
        };

        await using (var first = await TestConsumer.StartAsync(broker, topic, group, new RecordingHandler { Behavior = behavior }, o => Tiers(o, DispatchMode.Sequential, delays: 50)))
        {
            await Eventually.TrueAsync(() => first.Handler.Handled.Count == 3, "k0's records are handled");
            failing.Value = false;
            await Eventually.TrueAsync(() => first.Handler.Handled.Count == 6, "k1's records are handled from the retry topic");
            await Eventually.TrueAsync(
                () => broker.GetHighWatermarks(topic + ".retry", 1)[0] >= 1 + 3 + 3,
                "the other group's copy, k1's three copies and their three done markers are in the retry topic");
        }

        // Stopped at once: the retry partition may be committed only part of the way. The next run reads the done markers.
        var before = calls.ToDictionary(c => c.Key, c => c.Value);
        await using var second = await TestConsumer.StartAsync(broker, topic, group, new RecordingHandler { Behavior = behavior }, o => Tiers(o, DispatchMode.Sequential, delays: 50));
        await Eventually.TrueAsync(() => second.Logs.CountOf(245) >= 1, "the second run read its parked records");
        Assert.Contains("0 record(s) of 0 key(s)", second.Logs.GetSnapshot().First(r => r.Id.Id == 245).Message, StringComparison.Ordinal);
        Assert.Equal(before, calls.ToDictionary(c => c.Key, c => c.Value));
        Assert.False(calls.ContainsKey(99));
    }

    [Fact]
    public async Task AFullLot_MakesTheNextRecordToParkWait_WithoutDeadlockingTheKeysThatMustDrainIt()
    {
        var (topic, group) = await TopicsAsync(partitions: 1);
        await broker.ProduceAsync(topic, Keyed(40, keys: 4, partitions: 1));
        var failing = new StrongBox(true);
        var handler = new RecordingHandler
        {
            Behavior = (message, _, _) => message.Key is "k1" or "k2" && failing.Value ? throw new TimeoutException("down") : ValueTask.CompletedTask,
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            Tiers(o, DispatchMode.ByKey, delays: 50);
            o.RetryTiers.Delays.Clear();
            for (var i = 0; i < 50; i++)
            {
                o.RetryTiers.Delays.Add(TimeSpan.FromMilliseconds(50));
            }

            o.RetryTiers.MaxParkedRecords = 3;
            o.MaxInFlight = 2;
        });

        await Eventually.TrueAsync(() => consumer.Logs.CountOf(244) >= 1, "a record waits for room in the full lot");
        Assert.DoesNotContain(handler.Handled, h => h.Id % 4 is 1 or 2);
        failing.Value = false;
        await Eventually.TrueAsync(() => handler.Handled.Count == 40, "every record is handled once the keys recover", state: () => $"{handler.Handled.Count} handled");
        foreach (var key in new[] { 1, 2 })
        {
            var ids = handler.Handled.Where(h => h.Id % 4 == key).Select(h => h.Id).ToList();
            Assert.Equal(ids.Order(), ids);
        }
    }

    [Fact]
    public async Task ARetryTopicWithoutThePartitionsPartition_HoldsThatPartition_AndMakesTheConsumerUnhealthy()
    {
        var topic = await broker.CreateTopicAsync(2);
        await broker.CreateTopicNamedAsync(topic + ".retry", 1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, Keyed(10, keys: 10, partitions: 2));

        await using var consumer = await TestConsumer.StartAsync(
            broker, topic, group, configure: o => Tiers(o, DispatchMode.Sequential, delays: 50), services: s => s.AddHealthChecks().AddReliableConsumer("test"));
        var health = consumer.Host.Services.GetRequiredService<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckService>();

        await Eventually.TrueAsync(() => consumer.Handler.Handled.Count == 5, "partition 0's records are handled");
        await Eventually.TrueAsync(
            () => health.CheckHealthAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult().Entries.Single().Value is { Status: Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Unhealthy } r
                && r.Description!.Contains($"{topic}[1] waits: its retry topic {topic}.retry cannot be read", StringComparison.Ordinal),
            "unhealthy: partition 1 has no retry partition",
            state: () => health.CheckHealthAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult().Entries.Single().Value.Description ?? string.Empty);
        Assert.DoesNotContain(consumer.Handler.Handled, h => h.Partition == 1);
        Assert.True(consumer.Logs.CountOf(246) >= 1);
    }

    /// <summary>
    /// With the circuit breaker: a record that fails on every attempt, alone on the consumer, opens the circuit with its
    /// retries, is parked when its trials fail too, and opens the circuit again from its tier. Waiting for the circuit there,
    /// it makes the circuit's trials itself (nothing else would), and goes through every tier to the dead-letter topic.
    /// (Found by the torture matrix, soak 1197958763: such a record was never tried again.)
    /// </summary>
    [Theory]
    [InlineData(DispatchMode.Sequential)]
    [InlineData(DispatchMode.Unordered)]
    public async Task ARecordThatReopensTheCircuitFromItsTier_MakesTheTrialsItself_AndReachesTheDeadLetterTopic(DispatchMode dispatch)
    {
        var (topic, group) = await TopicsAsync(partitions: 1);
        await broker.ProduceAsync(topic, Keyed(1, keys: 1, partitions: 1));
        var handler = new RecordingHandler { Behavior = (_, _, _) => throw new TimeoutException("fails on every attempt") };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            Tiers(o, dispatch, delays: 50);
            o.Retry.MaxAttempts = 3;
            o.CircuitBreaker.Enabled = true;
            o.CircuitBreaker.MinimumThroughput = 2;
            o.CircuitBreaker.BreakDuration = TimeSpan.FromMilliseconds(700);
        });

        var dead = Assert.Single(broker.ReadAll(topic + ".dlq", 1, expected: 1, timeout: TimeSpan.FromSeconds(90)));
        Assert.Equal(3, dead.Message.Headers.Count(h => h.Key == RetryTierHeaders.History));
        await Eventually.TrueAsync(
            () => broker.GetHighWatermarks(topic + ".retry", 1) is var ends && broker.GetCommittedOffsets(group, topic + ".retry", 1)[0] == ends[0],
            "the retry topic is committed to its end");
    }

    [Fact]
    public async Task AParkedRecordStuckInItsTier_MakesThePartitionStalled_ForTheHealthCheckAndTheWatchdog()
    {
        var (topic, group) = await TopicsAsync(partitions: 1);
        await broker.ProduceAsync(topic, Keyed(1, keys: 1, partitions: 1));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new RecordingHandler
        {
            Behavior = async (_, context, _) =>
            {
                if (context.RetryTier == 0)
                {
                    throw new TimeoutException("down");
                }

                await release.Task;
            },
        };

        await using var consumer = await TestConsumer.StartAsync(
            broker, topic, group, handler, o => Tiers(o, DispatchMode.Sequential, delays: 50),
            services: s => s.AddHealthChecks().AddReliableConsumer("test", o => o.StallTimeout = TimeSpan.FromMilliseconds(500)));
        var health = consumer.Host.Services.GetRequiredService<Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckService>();
        await Eventually.TrueAsync(
            () => health.CheckHealthAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult().Entries.Single().Value is { Status: Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Unhealthy } r
                && r.Description!.Contains($"{topic}[0] has records pending and finished none", StringComparison.Ordinal),
            "the partition whose parked record hangs in its tier is reported stalled");

        release.SetResult();
        await Eventually.TrueAsync(() => handler.Handled.Count == 1, "the parked record is handled");
        await Eventually.TrueAsync(
            () => health.CheckHealthAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult().Entries.Single().Value.Status == Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy,
            "healthy again");
    }

    private async Task<(string Topic, string Group)> TopicsAsync(int partitions)
    {
        var topic = await broker.CreateTopicAsync(partitions);
        await broker.CreateTopicNamedAsync(topic + ".retry", partitions);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        return (topic, "g-" + Guid.NewGuid().ToString("N"));
    }

    private static void Tiers(ReliableConsumerOptions options, DispatchMode dispatch, int delays)
    {
        options.Dispatch = dispatch;
        options.Retry.MaxAttempts = 2;
        options.RetryTiers.Enabled = true;
        options.RetryTiers.Delays.Add(TimeSpan.FromMilliseconds(delays));
        options.RetryTiers.Delays.Add(TimeSpan.FromMilliseconds(delays));
    }

    /// <summary>Records with ids from <paramref name="firstId"/>, key <c>k{id % keys}</c>, spread over the partitions by id.</summary>
    private static IEnumerable<(int Partition, string? Key, string? Value)> Keyed(int count, int keys, int partitions, int firstId = 0) =>
        Enumerable.Range(firstId, count).Select(id =>
        {
            var key = $"k{id % keys}";
            return (id % partitions, (string?)key, (string?)System.Text.Json.JsonSerializer.Serialize(new TestEvent(id, key)));
        });

    private sealed class StrongBox(bool value)
    {
        public volatile bool Value = value;
    }

    private sealed class NotReadyException() : Exception("the downstream service is not ready for this record yet");
}
