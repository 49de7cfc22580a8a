using Kafka.Reliable.DeadLetter;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.FailureHandling;

public sealed class RetryTests(KafkaBrokerFixture broker)
{
    /// <summary>The documented bound on the exception message and stack trace headers (docs/failure-handling.md).</summary>
    private const int MaxHeaderText = 4096;

    // With the circuit breaker off, a record's first attempt runs outside the Polly pipeline; with it on, every attempt runs
    // through it. Both paths must give the same attempts.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TransientFailureTwiceThenSuccess_IsHandledOnce_AfterThreeAttempts_AndNothingIsDeadLettered(bool circuitBreaker)
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(10, 1));
        var handler = new RecordingHandler
        {
            Behavior = (message, context, _) => message.Id == 3 && context.Attempt <= 2
                ? throw new TimeoutException($"the database did not answer (attempt {context.Attempt})")
                : ValueTask.CompletedTask,
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o => o.CircuitBreaker.Enabled = circuitBreaker);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 10, "all 10 records are committed");

        Assert.Equal([1, 2, 3], handler.Attempts.Where(a => a.Id == 3).Select(a => a.Attempt));
        Assert.Equal(3, Assert.Single(handler.Handled, h => h.Id == 3).Attempt);
        Assert.Equal(Enumerable.Range(0, 10), handler.Handled.Select(h => h.Id));
        Assert.Equal(2, consumer.Logs.CountOf(200));
        Assert.Equal(0, consumer.Logs.CountOf(205));
        Assert.Equal(0, broker.GetHighWatermarks(topic + ".dlq", 1)[0]);
    }

    [Fact]
    public async Task FatalException_IsDeadLetteredAtOnce_WithEveryProvenanceHeader_AndTheOriginalBytes()
    {
        var topic = await broker.CreateTopicAsync(2);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        var key = "order-42"u8.ToArray();
        var value = Encoding.UTF8.GetBytes("{\"Id\":42,\"Key\":\"order-42\",\"Extra\":[1,2]}");
        var produced = await broker.ProduceMessagesAsync(topic,
        [
            (1, new Message<byte[]?, byte[]?> { Key = "k0"u8.ToArray(), Value = Encoding.UTF8.GetBytes("{\"Id\":41,\"Key\":\"k0\"}") }),
            (1, new Message<byte[]?, byte[]?> { Key = key, Value = value, Headers = new Headers { { "traceparent", "00-abc-def-01"u8.ToArray() }, { "binary", [0, 255, 7] } } }),
            (1, new Message<byte[]?, byte[]?> { Key = "k2"u8.ToArray(), Value = Encoding.UTF8.GetBytes("{\"Id\":43,\"Key\":\"k2\"}") }),
        ]);
        var handler = new RecordingHandler
        {
            Behavior = (message, _, _) => message.Id == 42 ? throw new NonRetryableException("order 42 has a negative total") : ValueTask.CompletedTask,
        };

        var before = DateTimeOffset.UtcNow;
        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o => o.Retry.MaxAttempts = 10);
        var dead = Assert.Single(broker.ReadAll(topic + ".dlq", 1, expected: 1));
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2)[1] == 3, "partition 1 is committed past the dead-lettered record");
        var after = DateTimeOffset.UtcNow;

        Assert.Equal([1], handler.Attempts.Where(a => a.Id == 42).Select(a => a.Attempt));
        Assert.Equal([41, 43], handler.Handled.Select(h => h.Id));
        Assert.Equal(key, dead.Message.Key);
        Assert.Equal(value, dead.Message.Value);
        string Header(string name) => Encoding.UTF8.GetString(dead.Message.Headers.GetLastBytes(name));
        // Kept as it was, unless something listens to the library's activities (another test running meanwhile may): then
        // it is the dead-letter publish span's (docs/observability.md).
        Assert.Matches("^(00-abc-def-01|00-[0-9a-f]{32}-[0-9a-f]{16}-0[01])$", Header("traceparent"));
        Assert.Equal([0, 255, 7], dead.Message.Headers.GetLastBytes("binary"));
        Assert.Equal(topic, Header(DeadLetterHeaders.OriginalTopic));
        Assert.Equal("1", Header(DeadLetterHeaders.OriginalPartition));
        Assert.Equal(produced[1].Offset.Value.ToString(CultureInfo.InvariantCulture), Header(DeadLetterHeaders.OriginalOffset));
        Assert.Equal(key, dead.Message.Headers.GetLastBytes(DeadLetterHeaders.OriginalKey));
        Assert.Equal(group, Header(DeadLetterHeaders.ConsumerGroup));
        Assert.Equal("handle", Header(DeadLetterHeaders.FailureStage));
        Assert.Equal(typeof(NonRetryableException).FullName, Header(DeadLetterHeaders.ExceptionType));
        Assert.Equal("order 42 has a negative total", Header(DeadLetterHeaders.ExceptionMessage));
        Assert.Equal("1", Header(DeadLetterHeaders.Attempts));
        var originalTimestamp = DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(Header(DeadLetterHeaders.OriginalTimestamp), CultureInfo.InvariantCulture));
        Assert.InRange(originalTimestamp, before.AddMinutes(-5), after);
        var first = DateTimeOffset.Parse(Header(DeadLetterHeaders.FirstFailure), CultureInfo.InvariantCulture);
        var last = DateTimeOffset.Parse(Header(DeadLetterHeaders.LastFailure), CultureInfo.InvariantCulture);
        Assert.InRange(first, before.AddSeconds(-1), after.AddSeconds(1));
        Assert.Equal(first, last);
        Assert.False(dead.Message.Headers.TryGetLastBytes(DeadLetterHeaders.ExceptionStackTrace, out _), "stack traces are off by default");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RetriesExhausted_DeadLettersAfterExactlyMaxAttempts_ThenTheLaterRecordsOfThePartitionFollowInOrder(bool circuitBreaker)
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(20, 1));
        var thrown = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        var handler = new RecordingHandler
        {
            Behavior = (message, _, _) =>
            {
                if (message.Id != 5)
                {
                    return ValueTask.CompletedTask;
                }

                var failure = new TimeoutException("the API keeps timing out");
                thrown.Enqueue(failure);
                throw failure;
            },
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.Retry.MaxAttempts = 4;
            o.DeadLetter.IncludeStackTrace = true;
            o.CircuitBreaker.Enabled = circuitBreaker;
        });
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 20, "all 20 records are committed");

        var dead = Assert.Single(broker.ReadAll(topic + ".dlq", 1, expected: 1));
        Assert.Equal("4", Encoding.UTF8.GetString(dead.Message.Headers.GetLastBytes(DeadLetterHeaders.Attempts)));
        Assert.Equal(typeof(TimeoutException).FullName, Encoding.UTF8.GetString(dead.Message.Headers.GetLastBytes(DeadLetterHeaders.ExceptionType)));
        // The header holds the stack trace the runtime reported for the last attempt's exception, as it was when the library
        // caught it. Which frames it holds is the JIT's business (inlining can drop the throwing lambda's frame), so the test
        // compares it with that exception's own trace instead of looking for a frame by name.
        Assert.Equal(4, thrown.Count);
        var reported = thrown.Last().StackTrace;
        Assert.False(string.IsNullOrEmpty(reported), "the thrown exception has a stack trace");
        var header = Encoding.UTF8.GetString(dead.Message.Headers.GetLastBytes(DeadLetterHeaders.ExceptionStackTrace));
        Assert.Equal(reported.Length <= MaxHeaderText ? reported : reported[..MaxHeaderText], header);
        var first = DateTimeOffset.Parse(Encoding.UTF8.GetString(dead.Message.Headers.GetLastBytes(DeadLetterHeaders.FirstFailure)), CultureInfo.InvariantCulture);
        var last = DateTimeOffset.Parse(Encoding.UTF8.GetString(dead.Message.Headers.GetLastBytes(DeadLetterHeaders.LastFailure)), CultureInfo.InvariantCulture);
        Assert.True(last >= first, $"the last failure ({last:O}) is not before the first ({first:O})");

        Assert.Equal([1, 2, 3, 4], handler.Attempts.Where(a => a.Id == 5).Select(a => a.Attempt));
        Assert.Equal(Enumerable.Range(0, 20).Where(i => i != 5), handler.Handled.Select(h => h.Id));
        var attempts = handler.Attempts.Select(a => a.Id).ToList();
        Assert.True(attempts.LastIndexOf(5) < attempts.IndexOf(6), "record 6 is attempted only after record 5 is dead-lettered");
    }

    [Fact]
    public async Task ClassifyExceptions_OverridesTheDefaults_BothWays()
    {
        var topic = await broker.CreateTopicAsync(1);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(4, 1));
        var handler = new RecordingHandler
        {
            Behavior = (message, context, _) => message.Id switch
            {
                1 => throw new InvalidOperationException("the order is closed"),              // transient by default, made fatal
                2 when context.Attempt < 3 => throw new ArgumentException("not yet replicated"), // fatal by default, made transient
                3 => throw new IOException("rejected by the classifier function"),
                _ => ValueTask.CompletedTask,
            },
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, customize: b => b.ClassifyExceptions(c => c
            .Fatal<InvalidOperationException>()
            .Transient<ArgumentException>()
            .Use(ex => ex is IOException { Message: "rejected by the classifier function" } ? FailureKind.Fatal : null)));
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 4, "all 4 records are committed");

        Assert.Equal([1], handler.Attempts.Where(a => a.Id == 1).Select(a => a.Attempt));
        Assert.Equal([1, 2, 3], handler.Attempts.Where(a => a.Id == 2).Select(a => a.Attempt));
        Assert.Equal([1], handler.Attempts.Where(a => a.Id == 3).Select(a => a.Attempt));
        Assert.Equal([0, 2], handler.Handled.Select(h => h.Id));
        Assert.Equal(2, broker.ReadAll(topic + ".dlq", 1, expected: 2).Count);
    }

    [Fact]
    public async Task RetryBudgetLongerThanMaxPollInterval_DoesNotGetTheMemberEvicted()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(5, 1));
        var handler = new RecordingHandler
        {
            // Record 1 fails 7 times, 1 s apart: 7 s of retries against a max.poll.interval.ms of 3 s.
            Behavior = (message, context, _) => message.Id == 1 && context.Attempt <= 7 ? throw new TimeoutException("still down") : ValueTask.CompletedTask,
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.Retry.MaxAttempts = 8;
            o.Retry.Delay = TimeSpan.FromSeconds(1);
            o.Retry.MaxDelay = TimeSpan.FromSeconds(1);
            o.Retry.BackoffType = Polly.DelayBackoffType.Constant;
            o.Retry.UseJitter = false;
            o.KafkaSettings["session.timeout.ms"] = "3000";
            o.KafkaSettings["heartbeat.interval.ms"] = "500";
            o.KafkaSettings["max.poll.interval.ms"] = "3000";
        });
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 1)[0] == 5, "all 5 records are committed");

        Assert.Equal(8, handler.Attempts.Count(a => a.Id == 1));
        Assert.Equal(Enumerable.Range(0, 5), handler.Handled.Select(h => h.Id));
        Assert.Equal(1, consumer.Logs.CountOf(400));
        Assert.Equal(0, consumer.Logs.CountOf(402));
        Assert.DoesNotContain(consumer.Logs.GetSnapshot(), e => e.Message.Contains("max.poll.interval", StringComparison.OrdinalIgnoreCase));
        Assert.Contains(consumer.Logs.GetSnapshot(), e => e.Id.Id == 201);
    }
}
