using Confluent.Kafka;
using Kafka.Reliable.Consuming;

namespace Kafka.Reliable.Tests.Consuming;

/// <summary>The librdkafka settings the consumer derives from its options, and that the user's own settings win.</summary>
public sealed class ConsumerConfigTests
{
    [Fact]
    public void Defaults_ShortenTheFetchQueueBackoff_AndUseCooperativeSticky()
    {
        var config = ConsumerRunner.BuildConfig("orders", Options());

        // librdkafka's 1,000 ms idles a consumer whose fetched-record queue passed queued.min.messages (docs/performance.md).
        Assert.Equal("20", config.Get("fetch.queue.backoff.ms"));
        Assert.Equal(PartitionAssignmentStrategy.CooperativeSticky, config.PartitionAssignmentStrategy);
        Assert.False(config.EnableAutoCommit);
        Assert.False(config.EnableAutoOffsetStore);
    }

    [Fact]
    public void UserSettings_WinOverTheDerivedOnes()
    {
        var options = Options();
        options.KafkaSettings["fetch.queue.backoff.ms"] = "500";
        options.KafkaSettings["partition.assignment.strategy"] = "range";

        var config = ConsumerRunner.BuildConfig("orders", options);

        Assert.Equal("500", config.Get("fetch.queue.backoff.ms"));
        Assert.Equal(PartitionAssignmentStrategy.Range, config.PartitionAssignmentStrategy);
    }

    [Fact]
    public void ConsumerProtocol_SetsGroupProtocol_LeavesTheAssignmentToTheBroker_AndStaticMembershipSetsTheInstanceId()
    {
        var options = Options();
        options.GroupProtocol = GroupProtocol.Consumer;
        options.GroupInstanceId = "orders-0";

        var config = ConsumerRunner.BuildConfig("orders", options);

        Assert.Equal(Confluent.Kafka.GroupProtocol.Consumer, config.GroupProtocol);
        Assert.Null(config.PartitionAssignmentStrategy);
        Assert.Equal("orders-0", config.GroupInstanceId);

        var classic = ConsumerRunner.BuildConfig("orders", Options());
        Assert.Null(classic.GroupProtocol);
        Assert.Null(classic.GroupInstanceId);
    }

    private static ReliableConsumerOptions Options()
    {
        var options = new ReliableConsumerOptions { BootstrapServers = "127.0.0.1:9092", GroupId = "g" };
        options.Topics.Add("orders");
        return options;
    }
}
