using System.Text;
using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Batching;

public sealed class BatchHandlerTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task Batches_ArePerPartitionInOffsetOrder_BoundedByMaxSize_AndEveryRecordIsHandledOnce()
    {
        var topic = await broker.CreateTopicAsync(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(1000, 2));

        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, configure: o => o.Batch.MaxSize = 100);
        await Eventually.TrueAsync(() => consumer.Handler.Handled.Count >= 1000, "all 1000 records are handled", state: () => $"{consumer.Handler.Handled.Count} handled");
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2) is { } c && c[0] == 500 && c[1] == 500, "both partitions are committed to their end");
        await consumer.StopAsync();

        var calls = consumer.Handler.Calls.ToList();
        Assert.Equal(Enumerable.Range(0, 1000), consumer.Handler.Handled.Order());
        Assert.All(calls, call => Assert.InRange(call.Ids.Count, 1, 100));
        Assert.Contains(calls, call => call.Ids.Count > 1);
        foreach (var partition in calls.GroupBy(c => c.Partition))
        {
            var offsets = partition.SelectMany(c => c.Offsets).ToList();
            Assert.Equal(Enumerable.Range(0, 500).Select(i => (long)i), offsets);
        }

        Assert.All(calls, call => Assert.True(call is { Attempt: 1, Isolating: false, Succeeded: true }, $"batch {string.Join(',', call.Ids)} was attempt {call.Attempt}"));
    }

    /// <summary>
    /// A batch that fails for good is bisected down to the records that fail alone, which are dead-lettered with the size of
    /// the batch they failed in; every other record is handled exactly once, in offset order within its partition.
    /// </summary>
    [Theory]
    [InlineData(1, new[] { 37 })]
    [InlineData(2, new[] { 37 })]
    [InlineData(500, new[] { 37 })]
    [InlineData(2, new[] { 10, 11 })]
    [InlineData(500, new[] { 10, 11 })]
    [InlineData(500, new[] { 3, 50, 51, 52, 120, 199 })]
    public async Task FailingBatch_IsBisected_OnlyTheRecordsThatFailAloneAreDeadLettered(int maxSize, int[] poisonIds)
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(200, 1));
        var poison = poisonIds.ToHashSet();
        var handler = new RecordingBatchHandler
        {
            Behavior = (batch, _) => batch.Any(item => poison.Contains(item.Message.Id))
                ? throw new NonRetryableException($"the batch holds a poison record ({batch.Count} records)")
                : ValueTask.CompletedTask,
        };

        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, handler, o => o.Batch.MaxSize = maxSize);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 200, "the partition is committed to its end", state: () => $"{handler.Handled.Count} handled; {consumer.Logs.Dump(20)}");
        var deadLetters = broker.ReadAll(topic + ".dlq", 1, expected: poison.Count);
        await consumer.StopAsync();

        Assert.Equal(Enumerable.Range(0, 200).Where(id => !poison.Contains(id)), handler.Handled);
        Assert.Equal(poisonIds.Select(id => (long)id), deadLetters.Select(d => long.Parse(Header(d, DeadLetterHeaders.OriginalOffset), System.Globalization.CultureInfo.InvariantCulture)));
        Assert.All(deadLetters, d => Assert.Equal("handle", Header(d, DeadLetterHeaders.FailureStage)));
        Assert.All(deadLetters, d => Assert.Equal(typeof(NonRetryableException).FullName, Header(d, DeadLetterHeaders.ExceptionType)));
        if (maxSize > 1)
        {
            // Each poison record failed alone after failing in a larger batch.
            Assert.All(deadLetters, d => Assert.True(int.Parse(Header(d, DeadLetterHeaders.FailedInBatch), System.Globalization.CultureInfo.InvariantCulture) >= 2, "the dead letter names the size of the batch it failed in"));
            Assert.True(consumer.Logs.CountOf(231) >= 1, "the isolation is logged");
        }
        else
        {
            Assert.All(deadLetters, d => Assert.False(d.Message.Headers.TryGetLastBytes(DeadLetterHeaders.FailedInBatch, out _), "a batch of one failed alone from the start"));
        }

        // A fatal failure is never retried as it is: every failed call is followed by smaller batches or the record alone.
        Assert.All(consumer.Handler.Calls.Where(c => !c.Succeeded), call => Assert.Equal(1, call.Attempt));
    }

    [Fact]
    public async Task TransientFailureOfTheWholeBatch_RetriesTheBatchAsAWhole_NothingIsIsolatedOrDeadLettered()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(50, 1));
        var failures = 0;
        var handler = new RecordingBatchHandler
        {
            Behavior = (batch, _) => batch.Attempt <= 2 && Interlocked.Increment(ref failures) <= 2
                ? throw new TimeoutException("the database did not answer")
                : ValueTask.CompletedTask,
        };

        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.Batch.Linger = TimeSpan.FromSeconds(10);
            o.Batch.MaxSize = 50;
        });
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 50, "the partition is committed to its end");
        await consumer.StopAsync();

        var calls = consumer.Handler.Calls.ToList();
        Assert.Equal([(50, 1, false), (50, 2, false), (50, 3, true)], calls.Select(c => (c.Ids.Count, c.Attempt, c.Succeeded)));
        Assert.Equal(Enumerable.Range(0, 50), handler.Handled);
        Assert.Equal(0, consumer.Logs.CountOf(231));
        Assert.Equal(2, consumer.Logs.CountOf(230));
    }

    /// <summary>
    /// A dependency that is down fails every batch transiently: with the circuit breaker the batch waits for the circuit instead
    /// of being taken apart into single records, and is handled whole once the dependency is back.
    /// </summary>
    [Fact]
    public async Task DependencyDown_WithTheCircuitBreaker_TheBatchWaitsForTheCircuit_NothingIsIsolatedOrDeadLettered()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(50, 1));
        var down = 1;
        var handler = new RecordingBatchHandler
        {
            Behavior = (_, _) => Volatile.Read(ref down) == 1 ? throw new TimeoutException("the database is down") : ValueTask.CompletedTask,
        };

        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.Batch.Linger = TimeSpan.FromSeconds(10);
            o.Batch.MaxSize = 50;
            o.CircuitBreaker.Enabled = true;
            o.CircuitBreaker.MinimumThroughput = 2;
            o.CircuitBreaker.SamplingDuration = TimeSpan.FromSeconds(30);
            o.CircuitBreaker.BreakDuration = TimeSpan.FromMilliseconds(500);
        });
        await Eventually.TrueAsync(() => consumer.Logs.CountOf(209) >= 1, "the circuit opens while the database is down");
        Volatile.Write(ref down, 0);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 50, "the partition is committed to its end once the database is back");
        await consumer.StopAsync();

        Assert.Equal(Enumerable.Range(0, 50), handler.Handled);
        Assert.All(handler.Calls, call => Assert.Equal(50, call.Ids.Count));
        Assert.Equal(0, consumer.Logs.CountOf(231));
        Assert.Equal(0, broker.GetHighWatermarks(topic + ".dlq", 1)[0]);
    }

    /// <summary>
    /// Isolating a record that fails on every attempt takes the batch's retries, then one attempt at each smaller part, then
    /// the record's own retries, before any record is done. Each attempt that returns shows a handler that is not stuck: the
    /// watchdog must not restart the consumer meanwhile (it once did, and the batch started over for ever: torture seed
    /// 2656). Retries 1 s apart, 5 attempts: a record alone fails for 4 s, below the watchdog's 7 s, but with the failing
    /// record first in a batch of 16 no record is done for 8 s (4 s as a batch of 16, one attempt each at 8, 4 and 2, and
    /// 4 s alone).
    /// </summary>
    [Fact]
    public async Task IsolatingARecordThatAlwaysFails_TakesLongerThanTheWatchdog_WhichDoesNotRestartTheConsumer()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(16, 1));
        var handler = new RecordingBatchHandler
        {
            Behavior = (batch, _) => batch.Any(item => item.Message.Id == 0) ? throw new TimeoutException("record 0 always times out") : ValueTask.CompletedTask,
        };

        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.Batch.Linger = TimeSpan.FromSeconds(10);
            o.Batch.MaxSize = 16;
            o.Retry.MaxAttempts = 5;
            o.Retry.Delay = TimeSpan.FromSeconds(1);
            o.Retry.MaxDelay = TimeSpan.FromSeconds(1);
            o.Retry.BackoffType = Polly.DelayBackoffType.Constant;
            o.Retry.UseJitter = false;
            o.Watchdog.RestartWhenStuck = true;
            o.Watchdog.StuckAfter = TimeSpan.FromSeconds(7);
        });
        var deadLetters = broker.ReadAll(topic + ".dlq", 1, expected: 1, TimeSpan.FromSeconds(90));
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 16, "the partition is committed to its end");

        Assert.Equal("0", Header(deadLetters[0], DeadLetterHeaders.OriginalOffset));
        Assert.Equal(Enumerable.Range(1, 15), handler.Handled.Order());
        Assert.True(consumer.Logs.CountOf(107) == 0, $"the watchdog restarted the consumer while the batch was being isolated: {consumer.Logs.Dump(10)}");

        // The batch's retries, one attempt at each part that holds the record, then the record's own retries.
        Assert.Equal(
            [(16, 1), (16, 2), (16, 3), (16, 4), (16, 5), (8, 1), (4, 1), (2, 1), (1, 1), (1, 2), (1, 3), (1, 4), (1, 5)],
            handler.Calls.Where(c => !c.Succeeded).Select(c => (c.Ids.Count, c.Attempt)));
    }

    [Fact]
    public async Task RecordsReportedFailed_TheOthersAreDone_EachReportedRecordRunsAloneAndIsDeadLetteredWhenItFailsAgain()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(40, 1));
        var handler = new RecordingBatchHandler
        {
            Behavior = (batch, _) =>
            {
                for (var i = 0; i < batch.Count; i++)
                {
                    if (batch[i].Message.Id is 7 or 21)
                    {
                        batch.Fail(i, new NonRetryableException($"order {batch[i].Message.Id} has no customer"));
                    }
                }

                return ValueTask.CompletedTask;
            },
        };

        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, handler, o => o.Batch.Linger = TimeSpan.FromSeconds(10));
        var deadLetters = broker.ReadAll(topic + ".dlq", 1, expected: 2);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 40, "the partition is committed to its end");
        await consumer.StopAsync();

        Assert.Equal(Enumerable.Range(0, 40).Where(id => id is not (7 or 21)), handler.Handled.Order());
        Assert.Equal(["7", "21"], deadLetters.Select(d => Header(d, DeadLetterHeaders.OriginalOffset)));
        Assert.All(deadLetters, d => Assert.Contains("has no customer", Header(d, DeadLetterHeaders.ExceptionMessage), StringComparison.Ordinal));
        Assert.All(deadLetters, d => Assert.Equal("40", Header(d, DeadLetterHeaders.FailedInBatch)));
        var alone = consumer.Handler.Calls.Where(c => c.Ids.Count == 1).ToList();
        Assert.Equal([7, 21], alone.Select(c => c.Ids[0]));
        Assert.All(alone, c => Assert.True(c.Isolating, "a record handled alone after failing in a batch is marked as isolating"));
        Assert.Equal(2, consumer.Logs.CountOf(232));
    }

    [Fact]
    public async Task PoisonPayloads_AreDeadLetteredBeforeTheBatchIsFormed_TheHandlerNeverSeesThem()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var records = TestConsumer.Events(20, 1).ToList();
        records[5] = (0, "k5", "{not json");
        records[12] = (0, "k12", null);
        await broker.ProduceAsync(topic, records);

        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, configure: o => o.Batch.Linger = TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 20, "the partition is committed to its end", state: () => consumer.Logs.Dump(20));
        var deadLetters = broker.ReadAll(topic + ".dlq", 1, expected: 2);
        await consumer.StopAsync();

        Assert.Equal(Enumerable.Range(0, 20).Where(id => id is not (5 or 12)), consumer.Handler.Handled);
        Assert.Equal(["5", "12"], deadLetters.Select(d => Header(d, DeadLetterHeaders.OriginalOffset)));
        Assert.All(deadLetters, d => Assert.Equal("deserialize", Header(d, DeadLetterHeaders.FailureStage)));
        Assert.All(deadLetters, d => Assert.False(d.Message.Headers.TryGetLastBytes(DeadLetterHeaders.FailedInBatch, out _), "poison never reached a batch"));
        Assert.DoesNotContain(consumer.Handler.Calls, c => !c.Succeeded);
    }

    [Fact]
    public async Task Linger_WaitsForAFullBatch_AndEndsEarlyWhenItFills()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, configure: o =>
        {
            o.Batch.MaxSize = 10;
            o.Batch.Linger = TimeSpan.FromSeconds(5);
        });

        await broker.ProduceAsync(topic, TestConsumer.Events(10, 1));
        await Eventually.TrueAsync(() => consumer.Handler.Handled.Count == 10, "the first 10 records are handled");
        await broker.ProduceAsync(topic, TestConsumer.Events(3, 1, firstId: 10));
        await Eventually.TrueAsync(() => consumer.Handler.Handled.Count == 13, "the next 3 records are handled once the linger time has passed");

        Assert.Equal([10, 3], consumer.Handler.Calls.Select(c => c.Ids.Count));
    }

    [Fact]
    public async Task LeaseStore_RecordsWithAKeyHandledBefore_AreLeftOutOfTheBatch()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var records = Enumerable.Range(0, 30).Select(i => (0, Message(i, $"order-{i % 20}"))).ToList();
        await broker.ProduceMessagesAsync(topic, records);

        await using var consumer = await BatchTestConsumer.StartAsync(broker, topic, group, configure: o => o.Batch.Linger = TimeSpan.FromSeconds(10), customize: c => c.UseInMemoryIdempotency());
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 30, "the partition is committed to its end");
        await consumer.StopAsync();

        // Records 20-29 repeat the idempotency keys of records 0-9.
        Assert.Equal(Enumerable.Range(0, 20), consumer.Handler.Handled.Order());
        Assert.Equal(1, consumer.Logs.CountOf(233));
    }

    private static Confluent.Kafka.Message<byte[]?, byte[]?> Message(int id, string idempotencyKey) => new()
    {
        Key = Encoding.UTF8.GetBytes($"k{id}"),
        Value = Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(new TestEvent(id, $"k{id}"))),
        Headers = new Confluent.Kafka.Headers { { new IdempotencyOptions().KeyHeader, Encoding.UTF8.GetBytes(idempotencyKey) } },
    };

    private static string Header(Confluent.Kafka.ConsumeResult<byte[]?, byte[]?> record, string key) =>
        Encoding.UTF8.GetString(record.Message.Headers.GetLastBytes(key));
}
