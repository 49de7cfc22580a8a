using System.Text.Json;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Kafka.Reliable.Testing;

namespace Kafka.Reliable.Cli.Tests;

/// <summary>
/// <c>group list</c> and <c>group describe</c>. The embedded broker lacks ListGroups and DescribeGroups (found by these tests):
/// there the commands say so with exit code 7, and describe still shows the committed offsets and lag. The state and
/// members view is checked from a description built as Kafka would answer, and end to end where a real broker is given.
/// </summary>
public sealed class GroupCommandTests : IDisposable
{
    private readonly EmbeddedKafkaCluster _cluster = EmbeddedKafkaCluster.Start();

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public async Task List_OnTheEmbeddedBroker_SaysItCannotListGroups_WithExitCode7()
    {
        var (code, output, error) = await Cli.RunAsync("group", "list", "-b", _cluster.BootstrapServers);

        Assert.True(code == 7, $"expected exit code 7 (unsupported), got {code}: {error}");
        Assert.Contains("This broker does not support listing consumer groups (the ListGroups API", error, StringComparison.Ordinal);
        Assert.Equal(string.Empty, output);
        Cli.AssertNoStackTrace(error);
    }

    [Fact]
    public async Task Describe_OnTheEmbeddedBroker_ShowsCommittedOffsetsAndLag_AndSaysStateAndMembersAreUnknown_WithExitCode7()
    {
        _cluster.CreateTopic("orders", 2);
        _cluster.CreateTopic("payments", 1);
        await _cluster.ProduceAllAsync("orders", Enumerable.Range(0, 10).Select(i => new Message<byte[]?, byte[]?> { Key = [(byte)i], Value = [1] }), TestContext.Current.CancellationToken);
        using (var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = _cluster.BootstrapServers, GroupId = "loader", EnableAutoCommit = false }).Build())
        {
            consumer.Commit([new TopicPartitionOffset("orders", 0, 1), new TopicPartitionOffset("orders", 1, 0)]);
        }

        var high = _cluster.GetHighWatermarks("orders");
        var (code, output, error) = await Cli.RunAsync("group", "describe", "-b", _cluster.BootstrapServers, "loader");

        Assert.True(code == 7, $"expected exit code 7 (unsupported), got {code}: {error}");
        Assert.Contains("does not support describing consumer groups (the DescribeGroups API", error, StringComparison.Ordinal);
        Cli.AssertNoStackTrace(error);
        var lines = output.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal($"Group 'loader': state and members unknown, total lag {high[0] - 1 + high[1]}", lines[0]);
        Assert.Matches($@"^orders\s+0\s+1\s+{high[0]}\s+{high[0] - 1}\s+-\s+-\s+-$", lines[2]);
        Assert.Matches($@"^orders\s+1\s+0\s+{high[1]}\s+{high[1]}\s+-\s+-\s+-$", lines[3]);
        Assert.Equal(4, lines.Length);

        var (jsonCode, json, _) = await Cli.RunAsync("group", "describe", "-b", _cluster.BootstrapServers, "loader", "--json");
        Assert.Equal(7, jsonCode);
        var report = JsonDocument.Parse(json).RootElement;
        Assert.Equal(JsonValueKind.Null, report.GetProperty("State").ValueKind);
        Assert.Equal(JsonValueKind.Null, report.GetProperty("Members").ValueKind);
        Assert.Equal(high[0] - 1 + high[1], report.GetProperty("TotalLag").GetInt64());
        Assert.Equal([("orders", 0, 1L), ("orders", 1, 0L)], report.GetProperty("Partitions").EnumerateArray().Select(p => (p.GetProperty("Topic").GetString(), p.GetProperty("Partition").GetInt32(), p.GetProperty("Committed").GetInt64())));
    }

    [Fact]
    public async Task Describe_OnTheEmbeddedBroker_AGroupWithoutCommits_IsUnknown_WithExitCode7()
    {
        var (code, output, error) = await Cli.RunAsync("group", "describe", "-b", _cluster.BootstrapServers, "no-such-group");

        Assert.True(code == 7, $"expected exit code 7 (unsupported), got {code}: {error}");
        Assert.Contains("Group 'no-such-group' has no committed offsets", error, StringComparison.Ordinal);
        Assert.Equal(string.Empty, output);
        Cli.AssertNoStackTrace(error);
    }

    [Fact]
    public async Task Report_FromADescription_ShowsStateMembersAssignmentsAndLagPerPartition()
    {
        TopicPartition P(int partition) => new("orders", partition);
        var description = new ConsumerGroupDescription
        {
            GroupId = "loader",
            State = ConsumerGroupState.Stable,
            GroupType = ConsumerGroupType.Classic,
            PartitionAssignor = "cooperative-sticky",
            Coordinator = new Node { Id = 1, Host = "broker-1", Port = 9092 },
            Members =
            [
                new MemberDescription { ConsumerId = "m-2", ClientId = "orders-b", Host = "/10.0.0.2", Assignment = new MemberAssignment { TopicPartitions = [P(2)] } },
                new MemberDescription { ConsumerId = "m-1", ClientId = "orders-a", Host = "/10.0.0.1", Assignment = new MemberAssignment { TopicPartitions = [P(1), P(0)] } },
            ],
        };
        var committed = new Dictionary<TopicPartition, long> { [P(0)] = 90, [P(1)] = 100 };
        var ends = new Dictionary<TopicPartition, long> { [P(0)] = 100, [P(1)] = 100, [P(2)] = 40 };

        var report = GroupReport.Build("loader", description, committed, ends);

        Assert.Equal("Stable", report.State);
        Assert.Equal("Classic", report.Type);
        Assert.Equal("1 (broker-1:9092)", report.Coordinator);
        Assert.Equal(10, report.TotalLag);
        Assert.Equal(
            [("orders", 0, (long?)90, 100L, (long?)10, "orders-a"), ("orders", 1, 100, 100, 0, "orders-a"), ("orders", 2, null, 40, null, "orders-b")],
            report.Partitions.Select(p => (p.Topic, p.Partition, p.Committed, p.End, p.Lag, p.ClientId)));
        Assert.Equal(["orders-a", "orders-b"], report.Members!.Select(m => m.ClientId));
        Assert.Equal(["orders[0]", "orders[1]"], report.Members![0].Assignment);

        using var output = new StringWriter();
        await GroupCommands.PrintAsync(new CliConsole(output, interactive: false), report);
        var lines = output.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("Group 'loader': state Stable, 2 member(s), assignor cooperative-sticky, coordinator 1 (broker-1:9092), total lag 10", lines[0]);
        Assert.Matches(@"^TOPIC\s+PARTITION\s+COMMITTED\s+END\s+LAG\s+CLIENT-ID\s+HOST\s+MEMBER-ID$", lines[1]);
        Assert.Matches(@"^orders\s+0\s+90\s+100\s+10\s+orders-a\s+/10\.0\.0\.1\s+m-1$", lines[2]);
        Assert.Matches(@"^orders\s+2\s+-\s+40\s+-\s+orders-b\s+/10\.0\.0\.2\s+m-2$", lines[4]);
        Assert.Matches(@"^MEMBER-ID\s+INSTANCE-ID\s+CLIENT-ID\s+HOST\s+PARTITIONS\s+ASSIGNMENT$", lines[5]);
        Assert.Matches(@"^m-1\s+-\s+orders-a\s+/10\.0\.0\.1\s+2\s+orders\[0\], orders\[1\]$", lines[6]);
    }

    /// <summary>Both kinds of group: a classic one, and one of KIP-848's consumer protocol (Kafka 4), whose type the broker reports as <c>Consumer</c>.</summary>
    [Theory]
    [InlineData(Confluent.Kafka.GroupProtocol.Classic)]
    [InlineData(Confluent.Kafka.GroupProtocol.Consumer)]
    public async Task ListAndDescribe_AgainstARealBroker_ShowTheGroupItsTypeMembersAndLag(Confluent.Kafka.GroupProtocol protocol)
    {
        var servers = Environment.GetEnvironmentVariable("KAFKA_RELIABLE_BOOTSTRAP_SERVERS");
        if (string.IsNullOrWhiteSpace(servers))
        {
            Assert.Skip("Needs a Kafka broker with ListGroups and DescribeGroups (the embedded broker has neither): set KAFKA_RELIABLE_BOOTSTRAP_SERVERS.");
        }

        var topic = "group-cli-" + Guid.NewGuid().ToString("N");
        var group = "group-cli-" + Guid.NewGuid().ToString("N");
        using (var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = servers }).Build())
        {
            await admin.CreateTopicsAsync([new TopicSpecification { Name = topic, NumPartitions = 2, ReplicationFactor = 1 }]);
        }

        using (var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = servers }).Build())
        {
            for (var i = 0; i < 6; i++)
            {
                await producer.ProduceAsync(new TopicPartition(topic, i % 2), new Message<byte[]?, byte[]?> { Value = [1] }, TestContext.Current.CancellationToken);
            }
        }

        var memberConfig = new ConsumerConfig { BootstrapServers = servers, GroupId = group, ClientId = "cli-test-member", EnableAutoCommit = false, AutoOffsetReset = AutoOffsetReset.Earliest };
        if (protocol == Confluent.Kafka.GroupProtocol.Consumer)
        {
            memberConfig.GroupProtocol = Confluent.Kafka.GroupProtocol.Consumer;
        }

        using var member = new ConsumerBuilder<Ignore, Ignore>(memberConfig).Build();
        member.Subscribe(topic);
        await Eventually.TrueAsync(() => { member.Consume(100); return member.Assignment.Count == 2; }, "the member is assigned both partitions");
        member.Commit([new TopicPartitionOffset(topic, 0, 1), new TopicPartitionOffset(topic, 1, 3)]);

        var (listed, list, listError) = await Cli.RunAsync("group", "list", "-b", servers, "--json");
        Assert.True(listed == 0, listError);
        Assert.Contains(
            JsonDocument.Parse(list).RootElement.EnumerateArray(),
            g => g.GetProperty("Group").GetString() == group && g.GetProperty("State").GetString() == "Stable" && g.GetProperty("Type").GetString() == protocol.ToString());

        var (described, json, describeError) = await Cli.RunAsync("group", "describe", "-b", servers, group, "--json");
        Assert.True(described == 0, describeError);
        var report = JsonDocument.Parse(json).RootElement;
        Assert.Equal("Stable", report.GetProperty("State").GetString());
        Assert.Equal(protocol.ToString(), report.GetProperty("Type").GetString());
        Assert.Equal("cli-test-member", report.GetProperty("Members").EnumerateArray().Single().GetProperty("ClientId").GetString());
        Assert.Equal(2, report.GetProperty("TotalLag").GetInt64());
    }
}
