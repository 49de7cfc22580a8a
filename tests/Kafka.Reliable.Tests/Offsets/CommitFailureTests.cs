using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Testing;
using Kafka.Reliable.Tests.Infrastructure;

namespace Kafka.Reliable.Tests.Offsets;

public sealed class CommitFailureTests
{
    [Theory]
    [InlineData(CommitStrategy.PerMessage)]
    [InlineData(CommitStrategy.Periodic)]
    public async Task InjectedOffsetCommitErrors_AreRetried_AndNothingIsLost(CommitStrategy strategy)
    {
        // Its own cluster: the injected errors must not reach other tests' groups.
        using var cluster = EmbeddedKafkaCluster.Start();
        const string Topic = "orders";
        cluster.CreateTopic(Topic, 2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await cluster.ProduceAllAsync(Topic, TestConsumer.Events(200, 2).Select(r => new Message<byte[]?, byte[]?>
        {
            Key = Encoding.UTF8.GetBytes(r.Key!),
            Value = Encoding.UTF8.GetBytes(r.Value!),
        }), TestContext.Current.CancellationToken);
        cluster.PushRequestErrors(KafkaApiKey.OffsetCommit, Enumerable.Repeat(ErrorCode.RequestTimedOut, 6).ToArray());

        await using var consumer = await TestConsumer.StartAsync(cluster.BootstrapServers, Topic, group, configure: o =>
        {
            o.Commit.Strategy = strategy;
            o.Commit.Interval = TimeSpan.FromMilliseconds(100);
        });
        await Eventually.TrueAsync(() => consumer.Handler.Handled.Count == 200, "every record is handled");
        await Eventually.TrueAsync(() => cluster.GetCommittedOffsets(group, Topic).Values.Sum() == 200, "the offsets are committed once the errors pass", state: () => consumer.Logs.Dump());

        Assert.True(consumer.Logs.CountOf(301) >= 1, "a failed commit is reported");
        Assert.Equal(Enumerable.Range(0, 200), consumer.Handler.Handled.Select(h => h.Id).Order());
    }
}
