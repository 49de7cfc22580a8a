using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Testing;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable.Tests.Diagnostics;

public sealed class HealthCheckTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task Lag_MakesItDegraded_AStuckPartition_Unhealthy_AndBothClearWhenTheRecordIsDone()
    {
        var topic = await broker.CreateTopicAsync(1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(30, 1));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new RecordingHandler { Behavior = async (message, _, _) => { if (message.Id == 0) { await release.Task; } } };

        await using var consumer = await TestConsumer.StartAsync(broker, topic, group, handler, services: s => s.AddHealthChecks()
            .AddReliableConsumer("test", o => (o.MaxLag, o.MaxRecordAge, o.StallTimeout) = (5, TimeSpan.FromHours(1), TimeSpan.FromMilliseconds(500))));
        var health = consumer.Host.Services.GetRequiredService<HealthCheckService>();

        await Eventually.TrueAsync(
            () => Report(health) is { Status: HealthStatus.Unhealthy } r && r.Description!.Contains("lags", StringComparison.Ordinal) && r.Description.Contains("finished none", StringComparison.Ordinal),
            "the blocked partition shows as lagging and stuck",
            state: () => Report(health).Description ?? string.Empty);

        release.SetResult();
        // Lag is measured about once a second from the last commit: wait for the commit and the lag together.
        await Eventually.TrueAsync(
            () => Report(health) is { Status: HealthStatus.Healthy } r && r.Data.TryGetValue($"lag:{topic}[0]", out var lag) && lag is 0L,
            "healthy again with no lag once every record is done",
            state: () => Report(health).Description ?? string.Empty);

        await consumer.StopAsync();
        var stopped = Report(health);
        Assert.Equal(HealthStatus.Unhealthy, stopped.Status);
        Assert.Contains("is not running", stopped.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DeadLetterTopicNotWritable_MakesItUnhealthy_UntilItCanBeWritten()
    {
        // Its own cluster: the injected Produce errors must not reach other tests' producers.
        using var cluster = EmbeddedKafkaCluster.Start();
        const string Topic = "orders";
        cluster.CreateTopic(Topic);
        cluster.CreateTopic(Topic + ".dlq");
        var group = "g-" + Guid.NewGuid().ToString("N");
        await cluster.ProduceAllAsync(Topic, [new Message<byte[]?, byte[]?> { Key = "k"u8.ToArray(), Value = Encoding.UTF8.GetBytes("not json") }], TestContext.Current.CancellationToken);
        cluster.PushRequestErrors(KafkaApiKey.Produce, Enumerable.Repeat(ErrorCode.MsgSizeTooLarge, 100_000).ToArray());

        await using var consumer = await TestConsumer.StartAsync(cluster.BootstrapServers, Topic, group, services: s => s.AddHealthChecks().AddReliableConsumer("test"));
        var health = consumer.Host.Services.GetRequiredService<HealthCheckService>();
        await Eventually.TrueAsync(
            () => Report(health) is { Status: HealthStatus.Unhealthy } r && r.Description!.Contains("dead-letter topic", StringComparison.Ordinal),
            "the consumer reports the dead-letter topic as not writable");

        cluster.ClearRequestErrors(KafkaApiKey.Produce);
        await Eventually.TrueAsync(() => Report(health).Status == HealthStatus.Healthy, "healthy again once the dead letter is written", state: () => Report(health).Description ?? string.Empty);
    }

    [Fact]
    public async Task UnknownConsumer_FailsTheStart_WithAMessageThatSaysSo()
    {
        // A check of a consumer that does not exist would be Unhealthy for ever (a restart loop under a liveness probe): the
        // host refuses to start instead (G9).
        var topic = await broker.CreateTopicAsync(1);
        var error = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            await using var consumer = await TestConsumer.StartAsync(broker, topic, "g-" + Guid.NewGuid().ToString("N"), services: s => s.AddHealthChecks().AddReliableConsumer("orders"));
        });
        Assert.Contains("checks a reliable consumer named 'orders', but no consumer has that name", error.Message, StringComparison.Ordinal);
    }

    private static HealthReportEntry Report(HealthCheckService health) =>
        health.CheckHealthAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult().Entries.Single().Value;
}
