using System.Text.RegularExpressions;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.FailureHandling;

public sealed partial class CircuitBreakerTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task DependencyDown_OpensTheCircuit_PausesEveryPartition_DeadLettersNothing_AndEverythingIsHandledOnRecovery()
    {
        var topic = await broker.CreateTopicAsync(3);
        await broker.CreateTopicNamedAsync(topic + ".dlq", 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(300, 3));
        var dependencyUp = false;
        var handler = new RecordingHandler
        {
            Behavior = (_, _, _) => Volatile.Read(ref dependencyUp) ? ValueTask.CompletedTask : throw new TimeoutException("the database is down"),
        };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, o =>
        {
            o.Retry.MaxAttempts = 5;
            o.CircuitBreaker.Enabled = true;
            o.CircuitBreaker.FailureRatio = 0.5;
            o.CircuitBreaker.MinimumThroughput = 3;
            o.CircuitBreaker.SamplingDuration = TimeSpan.FromSeconds(10);
            o.CircuitBreaker.BreakDuration = TimeSpan.FromMilliseconds(500);
        });

        // The circuit opens, and each trial after a break fails and opens it again: the records wait, they are not dead-lettered.
        await Eventually.TrueAsync(() => consumer.Logs.Count(209) >= 3, "the circuit opens, and opens again after failed trials", state: () => consumer.Logs.Dump());
        await Eventually.TrueAsync(
            () => PausedPartitions(consumer.Logs).SetEquals([0, 1, 2]),
            "every partition is paused while the circuit is open",
            state: () => consumer.Logs.Dump());
        Assert.Empty(handler.Handled);
        Assert.Equal(0, consumer.Logs.Count(205));
        Assert.Equal(0, broker.GetHighWatermarks(topic + ".dlq", 1)[0]);
        Assert.All(broker.GetCommittedOffsets(group, topic, 3).Values, offset => Assert.True(offset <= 0, $"nothing is committed while the dependency is down (found {offset})"));

        Volatile.Write(ref dependencyUp, true);
        await Eventually.TrueAsync(() => broker.GetCommittedOffsets(group, topic, 3).Values.All(o => o == 100), "every partition is committed to its end after recovery");

        Assert.Equal(Enumerable.Range(0, 300), handler.Handled.Select(h => h.Id).Order());
        Assert.True(consumer.Logs.Count(211) >= 1, "the circuit closed");
        Assert.Equal(0, consumer.Logs.Count(205));
        Assert.Equal(0, broker.GetHighWatermarks(topic + ".dlq", 1)[0]);
    }

    private static HashSet<int> PausedPartitions(TestLogs logs) =>
        logs.Entries.Where(e => e.EventId == 201).Select(e => int.Parse(PartitionOf().Match(e.Message).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();

    [GeneratedRegex(@"\[(\d+)\] paused")]
    private static partial Regex PartitionOf();
}
