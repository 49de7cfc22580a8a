using Kafka.Reliable.DeadLetter;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Kafka.Reliable.Tests.FailureHandling;

public sealed class ReplayTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task DeadLetteredRecords_ReplayedAfterTheFix_AreHandled_AndAStoppedReplayResumesWhereItStopped()
    {
        var topic = await broker.CreateTopicAsync(2);
        var deadLetterTopic = topic + ".dlq";
        await broker.CreateTopicNamedAsync(deadLetterTopic, 2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceMessagesAsync(topic, Enumerable.Range(0, 100).Select(id => (id % 2, new Message<byte[]?, byte[]?>
        {
            Key = Encoding.UTF8.GetBytes($"k{id}"),
            Value = Encoding.UTF8.GetBytes($"{{\"Id\":{id},\"Key\":\"k{id}\"}}"),
            Headers = new Headers { { "tenant", "acme"u8.ToArray() } },
        })));

        // A bug rejects every tenth order: they go to the dead-letter topic.
        var bugFixed = false;
        var handler = new RecordingHandler
        {
            Behavior = (message, _, _) => message.Id % 10 == 0 && !Volatile.Read(ref bugFixed)
                ? throw new NonRetryableException("orders ending in 0 are rejected by a bug")
                : ValueTask.CompletedTask,
        };
        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2).Values.Sum() == 100, "all 100 records are committed");
        Assert.Equal(10, broker.GetHighWatermarks(deadLetterTopic, 2).Values.Sum());
        Assert.Equal(90, handler.Handled.Count);

        // The fix is deployed; the replay runs in two goes.
        Volatile.Write(ref bugFixed, true);
        var options = new DeadLetterReplayOptions
        {
            BootstrapServers = broker.BootstrapServers,
            DeadLetterTopic = deadLetterTopic,
            MaxRecordsPerSecond = 1000,
            MaxRecords = 4,
        };
        var firstRun = await new DeadLetterReplayer(options).ReplayAsync(cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(new DeadLetterReplayProgress(Replayed: 4, Skipped: 0, Pending: 10, Completed: false), firstRun);
        await Eventually.TrueAsync(() => handler.Handled.Count == 94, "the 4 replayed records are handled");

        options.MaxRecords = null;
        var reports = new List<DeadLetterReplayProgress>();
        var secondRun = await new DeadLetterReplayer(options).ReplayAsync(new SynchronousProgress(reports), TestContext.Current.CancellationToken);
        Assert.Equal(new DeadLetterReplayProgress(Replayed: 6, Skipped: 0, Pending: 6, Completed: true), secondRun);
        Assert.Equal(secondRun, reports[^1]);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 2).Values.Sum() == 110, "the 10 replayed records are committed");

        Assert.Equal(Enumerable.Range(0, 100), handler.Handled.Select(h => h.Id).Order());
        Assert.Equal(0, handler.Handled.Select(h => h.Id).Count(id => handler.Handled.Count(h => h.Id == id) > 1));

        // The replayed records carry the original headers and a replay count, and none of the dead-letter headers.
        var all = broker.ReadAll(topic, 2, expected: 110);
        var replayed = all.Where(r => r.Message.Headers.TryGetLastBytes(DeadLetterHeaders.ReplayCount, out _)).ToList();
        Assert.Equal(10, replayed.Count);
        Assert.All(replayed, r =>
        {
            Assert.Equal("1", Encoding.UTF8.GetString(r.Message.Headers.GetLastBytes(DeadLetterHeaders.ReplayCount)));
            Assert.Equal("acme", Encoding.UTF8.GetString(r.Message.Headers.GetLastBytes("tenant")));
            Assert.DoesNotContain(r.Message.Headers, h => h.Key.StartsWith("dlq-", StringComparison.Ordinal) && h.Key != DeadLetterHeaders.ReplayCount);
        });

        // Run again: everything was replayed already.
        var thirdRun = await new DeadLetterReplayer(options).ReplayAsync(cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(new DeadLetterReplayProgress(0, 0, 0, Completed: true), thirdRun);
    }

    [Fact]
    public async Task Filters_SelectByOriginalTopicExceptionTypeKeyAndTime_AndATargetTopicCanBeChosen()
    {
        var deadLetterTopic = await broker.CreateTopicAsync(1, "dlq");
        var target = await broker.CreateTopicAsync(1, "target");
        var now = DateTimeOffset.UtcNow;
        Message<byte[]?, byte[]?> Dead(string key, string topic, string exceptionType, DateTimeOffset at) => new()
        {
            Key = Encoding.UTF8.GetBytes(key),
            Value = Encoding.UTF8.GetBytes("{}"),
            Timestamp = new Timestamp(at),
            Headers = new Headers
            {
                { DeadLetterHeaders.OriginalTopic, Encoding.UTF8.GetBytes(topic) },
                { DeadLetterHeaders.ExceptionType, Encoding.UTF8.GetBytes(exceptionType) },
                { DeadLetterHeaders.ReplayCount, "2"u8.ToArray() },
            },
        };
        await broker.ProduceMessagesAsync(deadLetterTopic,
        [
            (0, Dead("a", "orders", "System.TimeoutException", now.AddHours(-2))),
            (0, Dead("b", "orders", "System.TimeoutException", now.AddMinutes(-5))),
            (0, Dead("c", "payments", "System.TimeoutException", now.AddMinutes(-5))),
            (0, Dead("d", "orders", "System.ArgumentException", now.AddMinutes(-5))),
            (0, Dead("e", "orders", "System.TimeoutException", now.AddMinutes(-4))),
        ]);

        var result = await new DeadLetterReplayer(new DeadLetterReplayOptions
        {
            BootstrapServers = broker.BootstrapServers,
            DeadLetterTopic = deadLetterTopic,
            TargetTopic = target,
            OriginalTopic = "orders",
            ExceptionType = "System.TimeoutException",
            From = now.AddHours(-1),
            To = now,
            MaxRecordsPerSecond = 1000,
        }).ReplayAsync(cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(new DeadLetterReplayProgress(Replayed: 2, Skipped: 3, Pending: 5, Completed: true), result);
        var replayed = broker.ReadAll(target, 1, expected: 2);
        Assert.Equal(["b", "e"], replayed.Select(r => Encoding.UTF8.GetString(r.Message.Key!)));
        Assert.All(replayed, r => Assert.Equal("3", Encoding.UTF8.GetString(r.Message.Headers.GetLastBytes(DeadLetterHeaders.ReplayCount))));

        var byKey = await new DeadLetterReplayer(new DeadLetterReplayOptions
        {
            BootstrapServers = broker.BootstrapServers,
            DeadLetterTopic = deadLetterTopic,
            TargetTopic = target,
            Key = "d",
        }).ReplayAsync(cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(new DeadLetterReplayProgress(Replayed: 1, Skipped: 4, Pending: 5, Completed: true), byKey);
    }

    [Fact]
    public async Task BoundedCopy_IsNotReplayed_AndTheWarningSaysWhereTheWholeRecordIs()
    {
        var deadLetterTopic = await broker.CreateTopicAsync(1, "dlq");
        var target = await broker.CreateTopicAsync(1, "target");
        Message<byte[]?, byte[]?> Dead(string key, string offset, string? truncatedFrom)
        {
            var headers = new Headers
            {
                { DeadLetterHeaders.OriginalTopic, "orders"u8.ToArray() },
                { DeadLetterHeaders.OriginalPartition, "3"u8.ToArray() },
                { DeadLetterHeaders.OriginalOffset, Encoding.UTF8.GetBytes(offset) },
            };
            if (truncatedFrom is not null)
            {
                headers.Add(DeadLetterHeaders.ValueTruncated, Encoding.UTF8.GetBytes(truncatedFrom));
            }

            return new() { Key = Encoding.UTF8.GetBytes(key), Value = "{\"Id\": 1, \"Key\": \"xxxx"u8.ToArray(), Headers = headers };
        }

        await broker.ProduceMessagesAsync(deadLetterTopic, [(0, Dead("whole", "41", null)), (0, Dead("cut", "42", "2000000"))]);
        var logs = new FakeLogCollector();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(new FakeLoggerProvider(logs)));

        var result = await new DeadLetterReplayer(
            new DeadLetterReplayOptions { BootstrapServers = broker.BootstrapServers, DeadLetterTopic = deadLetterTopic, TargetTopic = target, MaxRecordsPerSecond = 1000 },
            loggers.CreateLogger<DeadLetterReplayer>())
            .ReplayAsync(cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(new DeadLetterReplayProgress(Replayed: 1, Skipped: 1, Pending: 2, Completed: true), result);
        Assert.Equal(["whole"], broker.ReadAll(target, 1, expected: 1).Select(r => Encoding.UTF8.GetString(r.Message.Key!)));
        var warning = Assert.Single(logs.GetSnapshot(), e => e.Id.Id == 603);
        Assert.Contains("cut from 2000000 bytes", warning.Message, StringComparison.Ordinal);
        Assert.Contains("from orders [3] @42", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_AreCheckedWithMessagesThatSayWhatToFix()
    {
        var missing = Assert.Throws<ArgumentException>(() => new DeadLetterReplayer(new DeadLetterReplayOptions { BootstrapServers = "localhost:9092" }));
        Assert.Contains("DeadLetterTopic is required", missing.Message, StringComparison.Ordinal);
        var rate = Assert.Throws<ArgumentException>(() => new DeadLetterReplayer(new DeadLetterReplayOptions { BootstrapServers = "localhost:9092", DeadLetterTopic = "x.dlq", MaxRecordsPerSecond = 0 }));
        Assert.Contains("MaxRecordsPerSecond is 0", rate.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DefaultGroupId_DependsOnTheRequest_SoThatTheSameReplayResumesAndAnotherStartsOver()
    {
        var a = new DeadLetterReplayer(new DeadLetterReplayOptions { BootstrapServers = "b:1", DeadLetterTopic = "orders.dlq", ExceptionType = "System.TimeoutException" });
        var same = new DeadLetterReplayer(new DeadLetterReplayOptions { BootstrapServers = "b:1", DeadLetterTopic = "orders.dlq", ExceptionType = "System.TimeoutException", MaxRecordsPerSecond = 5 });
        var other = new DeadLetterReplayer(new DeadLetterReplayOptions { BootstrapServers = "b:1", DeadLetterTopic = "orders.dlq", ExceptionType = "System.IO.IOException" });
        var named = new DeadLetterReplayer(new DeadLetterReplayOptions { BootstrapServers = "b:1", DeadLetterTopic = "orders.dlq", GroupId = "my-replay" });

        Assert.StartsWith("kafka-reliable-replay.orders.dlq.", a.GroupId, StringComparison.Ordinal);
        Assert.Equal(a.GroupId, same.GroupId);
        Assert.NotEqual(a.GroupId, other.GroupId);
        Assert.Equal("my-replay", named.GroupId);
    }

    private sealed class SynchronousProgress(List<DeadLetterReplayProgress> reports) : IProgress<DeadLetterReplayProgress>
    {
        public void Report(DeadLetterReplayProgress value)
        {
            lock (reports)
            {
                reports.Add(value);
            }
        }
    }
}
