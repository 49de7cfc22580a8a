using System.Net.Sockets;
using System.Text;
using Confluent.Kafka;

namespace Kafka.Reliable.Testing.Tests;

public sealed class EmbeddedKafkaClusterTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public async Task Start_NBrokers_ListensOnNLoopbackPorts(int brokers)
    {
        using var cluster = EmbeddedKafkaCluster.Start(brokers);

        var addresses = cluster.BootstrapServers.Split(',');
        Assert.Equal(brokers, addresses.Length);
        Assert.Equal(brokers, cluster.BrokerCount);
        foreach (var address in addresses)
        {
            var (host, port) = (address[..address.LastIndexOf(':')], int.Parse(address[(address.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal("127.0.0.1", host);
            using var client = new TcpClient();
            await client.ConnectAsync(host, port, Token);
            Assert.True(client.Connected, $"nothing listens on {address}");
        }
    }

    [Fact]
    public void Dispose_Twice_IsHarmless_AndLaterCallsThrowObjectDisposed()
    {
        var cluster = EmbeddedKafkaCluster.Start();
        cluster.Dispose();
        cluster.Dispose();

        Assert.Throws<ObjectDisposedException>(() => cluster.CreateTopic("t"));
        Assert.Throws<ObjectDisposedException>(() => cluster.SetBrokerDown(1));
        Assert.Throws<ObjectDisposedException>(() => cluster.PushRequestErrors(KafkaApiKey.Produce, ErrorCode.NotLeaderForPartition));
        Assert.Throws<ObjectDisposedException>(() => cluster.GetTrackedRequests());
        Assert.Throws<ObjectDisposedException>(() => { _ = cluster.ProduceAsync("t", new Message<byte[]?, byte[]?>()); });
    }

    [Fact]
    public void Start_InvalidArguments_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => EmbeddedKafkaCluster.Start(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => EmbeddedKafkaCluster.Start(17));
        using var cluster = EmbeddedKafkaCluster.Start();
        Assert.Throws<ArgumentException>(() => cluster.CreateTopic(" "));
        Assert.Throws<ArgumentOutOfRangeException>(() => cluster.CreateTopic("t", partitions: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => cluster.CreateTopic("t", replicationFactor: 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => cluster.SetBrokerDown(2));
        Assert.Throws<ArgumentOutOfRangeException>(() => cluster.SetBrokerRoundTripTime(1, TimeSpan.FromMilliseconds(-1)));
    }

    [Fact]
    public async Task ProduceAndConsume_1000KeyedRecordsOver6Partitions_AllBackInPartitionOrder()
    {
        using var cluster = EmbeddedKafkaCluster.Start();
        var topic = NewTopic();
        cluster.CreateTopic(topic, partitions: 6);

        var written = await cluster.ProduceStringsAsync(topic, Enumerable.Range(0, 1000).Select(i => new KeyValuePair<string?, string?>($"key-{i % 37}", $"value-{i}")), Token);

        Assert.Equal(1000, written.Count);
        Assert.Equal(1000, cluster.GetHighWatermarks(topic).Values.Sum());
        var read = ReadAll(cluster, topic, 6, 1000);
        Assert.Equal(Enumerable.Range(0, 1000).Select(i => $"value-{i}").Order(), read.Select(r => Encoding.UTF8.GetString(r.Message.Value!)).Order());
        foreach (var partition in read.GroupBy(r => r.Partition.Value))
        {
            var values = partition.Select(r => int.Parse(Encoding.UTF8.GetString(r.Message.Value!)["value-".Length..], System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(values.Order(), values);
        }

        // The same key always lands in the same partition.
        Assert.All(read.GroupBy(r => Encoding.UTF8.GetString(r.Message.Key!)), g => Assert.Single(g.Select(r => r.Partition.Value).Distinct()));
    }

    [Fact]
    public async Task GetCommittedOffsets_AfterAGroupCommits_ReturnsTheCommittedValues_AndUnsetForOtherGroups()
    {
        using var cluster = EmbeddedKafkaCluster.Start();
        var topic = NewTopic();
        cluster.CreateTopic(topic, partitions: 2);
        await cluster.ProduceStringsAsync(topic, [new("a", "1"), new("b", "2")], Token);

        using (var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = cluster.BootstrapServers, GroupId = "committer" }).Build())
        {
            consumer.Commit([new TopicPartitionOffset(topic, 0, 7), new TopicPartitionOffset(topic, 1, 3)]);
        }

        Assert.Equal(new Dictionary<int, long> { [0] = 7, [1] = 3 }, cluster.GetCommittedOffsets("committer", topic));
        Assert.All(cluster.GetCommittedOffsets("nobody", topic).Values, offset => Assert.Equal(Offset.Unset.Value, offset));
    }

    [Fact]
    public async Task TrackedRequests_RecordWhatClientsSent_OnlyWhileTracking()
    {
        using var cluster = EmbeddedKafkaCluster.Start(3);
        var topic = NewTopic();
        cluster.CreateTopic(topic, partitions: 2);
        await cluster.ProduceStringsAsync(topic, [new("a", "1")], Token);
        Assert.Empty(cluster.GetTrackedRequests());

        cluster.StartRequestTracking();
        using (var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = cluster.BootstrapServers, GroupId = "tracked" }).Build())
        {
            consumer.Commit([new TopicPartitionOffset(topic, 0, 1)]);
            consumer.Commit([new TopicPartitionOffset(topic, 1, 0)]);
        }

        var tracked = cluster.GetTrackedRequests();
        var commits = tracked.Where(r => r.ApiKey == KafkaApiKey.OffsetCommit).ToList();
        Assert.True(commits.Count == 2, $"expected the two commits among the tracked requests, saw: {string.Join(", ", tracked.Select(r => r.ApiKey))}");
        Assert.Contains(tracked, r => r.ApiKey == KafkaApiKey.FindCoordinator);
        Assert.All(tracked, r => Assert.InRange(r.BrokerId, 1, 3));
        Assert.True(commits[0].TimestampMicroseconds <= commits[1].TimestampMicroseconds, "requests are recorded in the order received");
        Assert.DoesNotContain(tracked, r => r.ApiKey == KafkaApiKey.Produce);

        cluster.ClearTrackedRequests();
        Assert.Empty(cluster.GetTrackedRequests());
        await cluster.ProduceStringsAsync(topic, [new("b", "2")], Token);
        Assert.Contains(cluster.GetTrackedRequests(), r => r.ApiKey == KafkaApiKey.Produce);

        cluster.StopRequestTracking();
        await cluster.ProduceStringsAsync(topic, [new("c", "3")], Token);
        Assert.Empty(cluster.GetTrackedRequests());
    }

    [Fact]
    public async Task PushRequestErrors_NonRetriableProduceError_FailsThatManyProducesThenRecovers()
    {
        using var cluster = EmbeddedKafkaCluster.Start();
        var topic = NewTopic();
        cluster.CreateTopic(topic);
        await cluster.ProduceStringsAsync(topic, [new("warm", "up")], Token);

        cluster.PushRequestErrors(KafkaApiKey.Produce, ErrorCode.MsgSizeTooLarge, ErrorCode.MsgSizeTooLarge);

        var failures = new List<ErrorCode>();
        DeliveryResult<byte[]?, byte[]?>? delivered = null;
        while (delivered is null && failures.Count < 10)
        {
            try
            {
                delivered = await cluster.ProduceAsync(topic, Message("k", "v"), Token);
            }
            catch (ProduceException<byte[]?, byte[]?> ex)
            {
                failures.Add(ex.Error.Code);
            }
        }

        Assert.Equal([ErrorCode.MsgSizeTooLarge, ErrorCode.MsgSizeTooLarge], failures);
        Assert.Equal(PersistenceStatus.Persisted, delivered!.Status);
    }

    [Fact]
    public async Task PushRequestErrors_RetriableProduceErrors_AreRetriedByTheClient()
    {
        using var cluster = EmbeddedKafkaCluster.Start();
        var topic = NewTopic();
        cluster.CreateTopic(topic);
        await cluster.ProduceStringsAsync(topic, [new("warm", "up")], Token);

        cluster.PushRequestErrors(KafkaApiKey.Produce, ErrorCode.NotEnoughReplicas, ErrorCode.NotEnoughReplicas, ErrorCode.NotEnoughReplicas);
        var delivered = await cluster.ProduceAsync(topic, Message("k", "v"), Token);

        Assert.Equal(PersistenceStatus.Persisted, delivered.Status);
        Assert.Equal(2, cluster.GetHighWatermarks(topic)[0]);
    }

    [Fact]
    public async Task ClearRequestErrors_ForgetsUnusedErrors()
    {
        using var cluster = EmbeddedKafkaCluster.Start();
        var topic = NewTopic();
        cluster.CreateTopic(topic);
        await cluster.ProduceStringsAsync(topic, [new("warm", "up")], Token);

        cluster.PushRequestErrors(KafkaApiKey.Produce, ErrorCode.TopicAuthorizationFailed);
        cluster.ClearRequestErrors(KafkaApiKey.Produce);

        Assert.Equal(PersistenceStatus.Persisted, (await cluster.ProduceAsync(topic, Message("k", "v"), Token)).Status);
    }

    [Fact]
    public async Task SetBrokerDown_ThenUp_AProduceWaitingMeanwhileSucceeds()
    {
        using var cluster = EmbeddedKafkaCluster.Start();
        var topic = NewTopic();
        cluster.CreateTopic(topic);
        using var producer = new ProducerBuilder<string, string>(new ProducerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            MessageTimeoutMs = 120_000,
            ReconnectBackoffMaxMs = 200,
        }).Build();
        await producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "before" }, Token);

        cluster.SetBrokerDown(1);
        var pending = producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = "during" }, Token);
        cluster.SetBrokerUp(1);

        var delivered = await pending.WaitAsync(TimeSpan.FromSeconds(110), Token);
        Assert.Equal(PersistenceStatus.Persisted, delivered.Status);
        Assert.Equal(1, delivered.Offset.Value);
    }

    [Fact]
    public async Task SetBrokerRoundTripTime_ProducesStillSucceed()
    {
        using var cluster = EmbeddedKafkaCluster.Start();
        var topic = NewTopic();
        cluster.CreateTopic(topic);
        cluster.SetBrokerRoundTripTime(1, TimeSpan.FromMilliseconds(50));

        var delivered = await cluster.ProduceAsync(topic, Message("k", "slow"), Token);
        cluster.SetBrokerRoundTripTime(1, TimeSpan.Zero);

        Assert.Equal(PersistenceStatus.Persisted, delivered.Status);
    }

    [Fact]
    public async Task SetCoordinatorAndPartitionLeader_OnThreeBrokers_ClientsKeepWorking()
    {
        using var cluster = EmbeddedKafkaCluster.Start(3);
        var topic = NewTopic();
        cluster.CreateTopic(topic, partitions: 3, replicationFactor: 3);
        cluster.SetCoordinator(KafkaCoordinatorType.Group, "moved-group", 3);
        cluster.SetCoordinator(KafkaCoordinatorType.Transaction, "moved-txn", 2);
        cluster.SetPartitionLeader(topic, 0, 2);

        await cluster.ProduceStringsAsync(topic, Enumerable.Range(0, 30).Select(i => new KeyValuePair<string?, string?>($"k{i}", $"v{i}")), Token);
        using (var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = cluster.BootstrapServers, GroupId = "moved-group" }).Build())
        {
            consumer.Commit([new TopicPartitionOffset(topic, 0, 1)]);
        }

        Assert.Equal(30, cluster.GetHighWatermarks(topic).Values.Sum());
        Assert.Equal(1, cluster.GetCommittedOffsets("moved-group", topic)[0]);
    }

    [Fact]
    public void CreateTopic_Twice_ThrowsWithTheBrokersReason()
    {
        using var cluster = EmbeddedKafkaCluster.Start();
        var topic = NewTopic();
        cluster.CreateTopic(topic);

        var error = Assert.Throws<InvalidOperationException>(() => cluster.CreateTopic(topic));
        Assert.Contains(topic, error.Message, StringComparison.Ordinal);
    }

    private static string NewTopic() => "t-" + Guid.NewGuid().ToString("N");

    private static Message<byte[]?, byte[]?> Message(string key, string value) =>
        new() { Key = Encoding.UTF8.GetBytes(key), Value = Encoding.UTF8.GetBytes(value) };

    private static List<ConsumeResult<byte[]?, byte[]?>> ReadAll(EmbeddedKafkaCluster cluster, string topic, int partitions, int expected)
    {
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig { BootstrapServers = cluster.BootstrapServers, GroupId = "reader" }).Build();
        consumer.Assign(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        var records = new List<ConsumeResult<byte[]?, byte[]?>>();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (records.Count < expected && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(100)) is { } record)
            {
                records.Add(record);
            }
        }

        Assert.True(records.Count == expected, $"expected {expected} records back, read {records.Count}");
        return records;
    }
}
