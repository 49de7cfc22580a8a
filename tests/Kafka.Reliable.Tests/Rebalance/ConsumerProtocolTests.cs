using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Testing;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace Kafka.Reliable.Tests.Rebalance;

/// <summary>
/// The consumer group protocol (KIP-848, <c>GroupProtocol: Consumer</c>) on the embedded broker's ConsumerGroupHeartbeat:
/// incremental assignments scripted partition by partition while records flow, another member exceeding max.poll, and static
/// membership (a fenced member: LostPartitionTests, under both protocols)
/// (docs/concurrency.md, "Group protocols").
/// </summary>
public sealed class ConsumerProtocolTests(KafkaBrokerFixture broker)
{
    [Fact]
    public async Task ScriptedAssignment_MovesPartitionsOneAtATimeBetweenMembers_WhileRecordsFlow_NothingLostNothingRepeated()
    {
        const int Partitions = 4;
        var cluster = broker.Embedded;
        if (cluster is null)
        {
            Assert.Skip("Scripts assignments through the embedded broker's mock coordinator: runs on the embedded broker only.");
            return;
        }

        var topic = await broker.CreateTopicAsync(Partitions);
        var group = "g-" + Guid.NewGuid().ToString("N");
        void Configure(ReliableConsumerOptions o) => o.GroupProtocol = GroupProtocol.Consumer;
        void Health(IServiceCollection s) => s.AddHealthChecks().AddReliableConsumer("test");

        await using var a = await TestConsumer.StartAsync(broker, topic, group, configure: Configure, services: Health);
        await using var b = await TestConsumer.StartAsync(broker, topic, group, configure: Configure, services: Health);
        var memberA = await MemberIdAsync(a);
        var memberB = await MemberIdAsync(b);

        // Everything to A first, then one partition at a time to B, producing between the moves.
        TopicPartition P(int partition) => new(topic, partition);
        cluster.SetConsumerGroupAssignment(group, new Dictionary<string, IReadOnlyList<TopicPartition>>
        {
            [memberA] = [.. Enumerable.Range(0, Partitions).Select(P)],
            [memberB] = [],
        });
        await Eventually.TrueAsync(() => Owned(a).Count == Partitions && Owned(b).Count == 0, "A owns every partition", state: () => $"A {string.Join(",", Owned(a))}, B {string.Join(",", Owned(b))}");

        var produced = 0;
        for (var moved = 1; moved <= Partitions; moved++)
        {
            await broker.ProduceAsync(topic, TestConsumer.Events(200, Partitions, firstId: produced));
            produced += 200;
            var toB = Enumerable.Range(0, moved).ToList();
            cluster.SetConsumerGroupAssignment(group, new Dictionary<string, IReadOnlyList<TopicPartition>>
            {
                [memberA] = [.. Enumerable.Range(moved, Partitions - moved).Select(P)],
                [memberB] = [.. toB.Select(P)],
            });
            await Eventually.TrueAsync(
                () => Owned(b).SetEquals(toB) && Owned(a).SetEquals(Enumerable.Range(moved, Partitions - moved)),
                $"partitions 0-{moved - 1} moved to B, one more than before",
                state: () => $"A {string.Join(",", Owned(a))}, B {string.Join(",", Owned(b))}");
        }

        await broker.ProduceAsync(topic, TestConsumer.Events(200, Partitions, firstId: produced));
        produced += 200;
        var handled = () => a.Handler.Handled.Concat(b.Handler.Handled).Select(h => h.Id).ToList();
        await Eventually.TrueAsync(() => handled().Distinct().Count() == produced, $"all {produced} records are handled", state: () => $"{handled().Distinct().Count()} handled");
        await Eventually.TrueAsync(
            () => broker.GetCommittedOffsets(group, topic, Partitions).SequenceEqual(broker.GetHighWatermarks(topic, Partitions)),
            "every partition is committed to its end");

        // Each revoke drained and committed the partition before the broker gave it to B: no record ran twice.
        var ids = handled();
        Assert.True(ids.Count == ids.Distinct().Count(), $"{ids.Count - ids.Distinct().Count()} records were handled twice");
        Assert.True(a.Logs.CountOf(401) >= Partitions, "A gave its partitions up one revoke at a time");
        Assert.All(b.Handler.Handled, h => Assert.InRange(h.Partition, 0, Partitions - 1));
        cluster.ClearConsumerGroupAssignment(group);
    }

    /// <summary>
    /// Another member of the group stops polling (a plain client whose application is stuck; a reliable consumer keeps
    /// polling whatever its handlers do, see <c>SlowHandler_LongerThanMaxPollInterval_MemberIsNotEvicted</c>): once it exceeds
    /// <c>max.poll.interval.ms</c> it leaves the group, and the reliable member takes its partitions over, incrementally,
    /// and handles every record.
    /// </summary>
    [Theory]
    [InlineData(GroupProtocol.Classic)]
    [InlineData(GroupProtocol.Consumer)]
    public async Task AnotherMemberExceedingMaxPollInterval_LeavesTheGroup_AndItsPartitionsAreTakenOverWithoutLoss(GroupProtocol protocol)
    {
        using var cluster = EmbeddedKafkaCluster.Start();
        cluster.SetConsumerGroupSessionTimeout(TimeSpan.FromSeconds(6));
        cluster.SetConsumerGroupHeartbeatInterval(TimeSpan.FromMilliseconds(200));
        const string Topic = "orders";
        const int Partitions = 4;
        cluster.CreateTopic(Topic, Partitions);
        var group = "g-" + Guid.NewGuid().ToString("N");
        void Configure(ReliableConsumerOptions o) => o.GroupProtocol = protocol;

        await using var reliable = await TestConsumer.StartAsync(cluster.BootstrapServers, Topic, group, configure: Configure);
        await Eventually.TrueAsync(() => reliable.Logs.CountOf(400) >= 1, "the reliable member joins");

        var config = new ConsumerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = group,
            EnableAutoCommit = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            // The classic protocol wants it at least the session timeout (6 s, as the reliable member's: the mock wants them equal).
            MaxPollIntervalMs = protocol == GroupProtocol.Consumer ? 1500 : 6000,
        };
        if (protocol == GroupProtocol.Consumer)
        {
            config.GroupProtocol = Confluent.Kafka.GroupProtocol.Consumer;
        }
        else
        {
            (config.SessionTimeoutMs, config.HeartbeatIntervalMs, config.PartitionAssignmentStrategy) = (6000, 500, PartitionAssignmentStrategy.CooperativeSticky);
        }

        using var stuck = new ConsumerBuilder<Ignore, Ignore>(config).Build();
        stuck.Subscribe(Topic);
        await Eventually.TrueAsync(() => { stuck.Consume(TimeSpan.FromMilliseconds(50)); return stuck.Assignment.Count > 0; }, "the other member gets partitions");
        var taken = stuck.Assignment.Select(p => p.Partition.Value).ToList();

        // It stops polling now. Records go to every partition, its own included.
        await cluster.ProduceAllAsync(Topic, TestConsumer.Events(200, Partitions).Select(r => new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes(r.Key!), Value = Encoding.UTF8.GetBytes(r.Value!) }), TestContext.Current.CancellationToken);
        await Eventually.TrueAsync(
            () => reliable.Handler.Handled.Select(h => h.Id).Distinct().Count() == 200 && cluster.GetCommittedOffsets(group, Topic).Values.Sum() == 200,
            "the reliable member handles and commits every record, those of the stuck member's partitions too",
            state: () => reliable.Logs.Dump());
        Assert.All(taken, partition => Assert.Contains(reliable.Handler.Handled, h => h.Partition == partition));
    }

    [Theory]
    [InlineData(GroupProtocol.Classic)]
    [InlineData(GroupProtocol.Consumer)]
    public async Task StaticMember_ReportsItsInstanceAndMemberIdInHealth_AndResumesAfterARestart(GroupProtocol protocol)
    {
        var topic = await broker.CreateTopicAsync(2);
        var group = "g-" + Guid.NewGuid().ToString("N");
        await broker.ProduceAsync(topic, TestConsumer.Events(100, 2));
        void Configure(ReliableConsumerOptions o)
        {
            o.GroupProtocol = protocol;
            o.GroupInstanceId = "orders-0";
        }

        await using (var first = await TestConsumer.StartAsync(broker, topic, group, configure: Configure, services: s => s.AddHealthChecks().AddReliableConsumer("test")))
        {
            await Eventually.TrueAsync(() => first.Handler.Handled.Count == 100, "the static member handles every record");
            var data = Report(first).Data;
            Assert.Equal("orders-0", data["group_instance_id"]);
            Assert.Equal(protocol.ToString(), data["group_protocol"]);
            Assert.False(string.IsNullOrEmpty((string)data["member_id"]));
        }

        await broker.ProduceAsync(topic, TestConsumer.Events(100, 2, firstId: 100));
        await using var second = await TestConsumer.StartAsync(broker, topic, group, configure: Configure);
        await Eventually.TrueAsync(() => second.Handler.Handled.Count == 100, "the restarted static member handles the new records");
        Assert.Equal(Enumerable.Range(100, 100), second.Handler.Handled.Select(h => h.Id).Order());
    }

    /// <summary>
    /// A static member fenced for its instance id under the classic protocol, on the embedded broker: its coordinator answers
    /// the older member's heartbeat with FENCED_INSTANCE_ID, the error a real broker gives once a newer member joined with the
    /// same id (the embedded broker does not detect that itself). The client's error is fatal: the consumer stops, the host
    /// is asked to stop, and the health check is unhealthy with a reason that names the id and the protocol's rule.
    /// </summary>
    [Fact]
    public async Task StaticMemberFencedByANewerOne_ClassicProtocol_StopsAndItsHealthNamesTheIdAndTheRule()
    {
        using var cluster = await OwnClusterAsync(out var group);
        await using var member = await TestConsumer.StartAsync(cluster.BootstrapServers, StaticTopic, group, configure: o => StaticMember(o, GroupProtocol.Classic), services: Health);
        await Eventually.TrueAsync(() => member.Handler.Handled.Count == 10 && cluster.GetCommittedOffsets(group, StaticTopic)[0] == 10, "the static member handles and commits every record", state: () => member.Logs.Dump());

        cluster.PushRequestErrors(KafkaApiKey.Heartbeat, ErrorCode.FencedInstanceId);

        await Eventually.TrueAsync(
            () => Report(member) is { Status: HealthStatus.Unhealthy } r && r.Description!.Contains("classic protocol: the newer member wins", StringComparison.Ordinal),
            "the fenced member is unhealthy and says why",
            state: () => Report(member).Description + Environment.NewLine + member.Logs.Dump());
        var description = Report(member).Description!;
        Assert.Contains("'orders-0'", description, StringComparison.Ordinal);
        Assert.Contains("Give each member its own GroupInstanceId", description, StringComparison.Ordinal);
        Assert.True(member.Logs.CountOf(104) >= 1, "the fatal error is logged (104)");
        Assert.True(member.Host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested, "the host is asked to stop");
    }

    /// <summary>
    /// Under the consumer protocol a member joining with a static id that another member holds is refused
    /// (UNRELEASED_INSTANCE_ID), and librdkafka makes that fatal. The usual cause is the member's own previous run, killed
    /// without leaving: the broker holds its id until that session expires. So the consumer does not stop the host: it says why
    /// (health, log 110) and joins again with a backoff, and once the id is released it consumes. On the embedded broker, which
    /// does not hold ids itself, the coordinator answers every joining heartbeat with that error until the test releases it.
    /// </summary>
    [Fact]
    public async Task StaticMemberRefusedWhileAnotherHoldsItsId_ConsumerProtocol_SaysWhy_AndJoinsOnceTheIdIsReleased()
    {
        using var cluster = await OwnClusterAsync(out var group);
        cluster.PushRequestErrors(KafkaApiKey.ConsumerGroupHeartbeat, Enumerable.Repeat(ErrorCode.UnreleasedInstanceId, 1000).ToArray());
        await using var member = await TestConsumer.StartAsync(cluster.BootstrapServers, StaticTopic, group, configure: o =>
        {
            StaticMember(o, GroupProtocol.Consumer);
            o.Retry.Delay = TimeSpan.FromMilliseconds(50);
            o.Retry.MaxDelay = TimeSpan.FromMilliseconds(200);
        }, services: Health);

        const string Rule = "consumer protocol: the member holding the id keeps it";
        await Eventually.TrueAsync(
            () => member.Logs.CountOf(110) >= 2 && Report(member) is { Status: HealthStatus.Unhealthy } r && r.Description!.Contains(Rule, StringComparison.Ordinal),
            "the refused member says why, and keeps trying to join",
            state: () => Report(member).Description + Environment.NewLine + member.Logs.Dump());
        Assert.Contains("'orders-0'", Report(member).Description!, StringComparison.Ordinal);
        Assert.Contains(member.Logs.GetSnapshot(), e => e.Id.Id == 110 && e.Message.Contains("orders-0", StringComparison.Ordinal));
        Assert.Empty(member.Handler.Handled);
        Assert.Equal(0, member.Logs.CountOf(104));
        Assert.False(member.Host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested, "the host is not asked to stop");

        // The other member's session expires: the id is free.
        cluster.ClearRequestErrors(KafkaApiKey.ConsumerGroupHeartbeat);
        await Eventually.TrueAsync(
            () => member.Handler.Handled.Count == 10 && cluster.GetCommittedOffsets(group, StaticTopic)[0] == 10,
            "the member joins once its id is released, and handles and commits every record",
            state: () => member.Logs.Dump());
        await Eventually.TrueAsync(() => Report(member).Status == HealthStatus.Healthy, "healthy once it has joined", state: () => Report(member).Description ?? string.Empty);
        Assert.Equal(Enumerable.Range(0, 10), member.Handler.Handled.Select(h => h.Id).Order());

        // Refused again after it had joined: its backoff starts over.
        var refusedBefore = member.Logs.CountOf(110);
        cluster.PushRequestErrors(KafkaApiKey.ConsumerGroupHeartbeat, ErrorCode.UnreleasedInstanceId);
        await Eventually.TrueAsync(() => member.Logs.CountOf(110) > refusedBefore, "the joined member's id is refused again", state: () => member.Logs.Dump());
        var again = member.Logs.GetSnapshot().Where(e => e.Id.Id == 110).Skip(refusedBefore).First();
        Assert.Contains("(attempt 1)", again.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A client out of its group without knowing it (as librdkafka can be after its coordinator moved while the broker it asked
    /// was unreachable: it stops heartbeating and never learns it was removed): the group refuses its every commit as an
    /// unknown member's while it goes on consuming. Past <c>Commit:RejoinWhenRefusedFor</c> the consumer gives its partitions
    /// up uncommitted and joins again with a new client (log 111), without stopping the host; once the group accepts its
    /// commits, everything is committed. On the embedded broker the coordinator answers OffsetCommit with UNKNOWN_MEMBER_ID
    /// until the test stops it (heartbeats go on, so only the library's limit ends the streak).
    /// </summary>
    [Fact]
    public async Task CommitsRefusedAsAnUnknownMembers_PastTheLimit_TheConsumerJoinsAgainWithANewClient_AndCommitsOnceAccepted()
    {
        using var cluster = await OwnClusterAsync(out var group);
        cluster.PushRequestErrors(KafkaApiKey.OffsetCommit, Enumerable.Repeat(ErrorCode.UnknownMemberId, 10_000).ToArray());
        await using var member = await TestConsumer.StartAsync(cluster.BootstrapServers, StaticTopic, group, configure: o =>
        {
            o.GroupProtocol = GroupProtocol.Consumer;
            o.Commit.Interval = TimeSpan.FromMilliseconds(100);
            o.Commit.RejoinWhenRefusedFor = TimeSpan.FromSeconds(1);
            o.Retry.Delay = TimeSpan.FromMilliseconds(50);
        }, services: Health);

        await Eventually.TrueAsync(
            () => member.Logs.CountOf(111) >= 2 && member.Handler.Handled.Select(h => h.Id).Distinct().Count() == 10,
            "the refused member joins again with a new client, more than once while the group refuses its commits",
            state: () => member.Logs.Dump());
        Assert.Equal(0, member.Logs.CountOf(104));
        Assert.Contains(member.Logs.GetSnapshot(), e => e.Id.Id == 111 && e.Message.Contains(group, StringComparison.Ordinal));
        Assert.False(member.Host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested, "the host is not asked to stop");
        Assert.True(cluster.GetCommittedOffsets(group, StaticTopic)[0] <= 0, "nothing is committed while the group refuses");

        cluster.ClearRequestErrors(KafkaApiKey.OffsetCommit);
        await Eventually.TrueAsync(() => cluster.GetCommittedOffsets(group, StaticTopic)[0] == 10, "once the group accepts its commits, the partition is committed to its end", state: () => member.Logs.Dump());
        await Eventually.TrueAsync(() => Report(member).Status == HealthStatus.Healthy, "healthy once it commits", state: () => Report(member).Description ?? string.Empty);
        Assert.Equal(Enumerable.Range(0, 10), member.Handler.Handled.Select(h => h.Id).Distinct().Order());
    }

    private const string StaticTopic = "orders";

    private static void StaticMember(ReliableConsumerOptions o, GroupProtocol protocol)
    {
        o.GroupProtocol = protocol;
        o.GroupInstanceId = "orders-0";
    }

    private static void Health(IServiceCollection services) => services.AddHealthChecks().AddReliableConsumer("test");

    /// <summary>Its own cluster (its request errors are the test's own) with ten records in one partition.</summary>
    private static Task<EmbeddedKafkaCluster> OwnClusterAsync(out string group)
    {
        var cluster = EmbeddedKafkaCluster.Start();
        cluster.SetConsumerGroupSessionTimeout(TimeSpan.FromSeconds(6));
        cluster.SetConsumerGroupHeartbeatInterval(TimeSpan.FromMilliseconds(200));
        cluster.CreateTopic(StaticTopic);
        group = "g-" + Guid.NewGuid().ToString("N");
        return ProduceAsync(cluster);

        static async Task<EmbeddedKafkaCluster> ProduceAsync(EmbeddedKafkaCluster cluster)
        {
            await cluster.ProduceAllAsync(StaticTopic, TestConsumer.Events(10, 1).Select(r => new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes(r.Key!), Value = Encoding.UTF8.GetBytes(r.Value!) }), TestContext.Current.CancellationToken);
            return cluster;
        }
    }

    /// <summary>
    /// Two members with one <c>GroupInstanceId</c>: under the classic protocol the newer one fences the older one; under the
    /// consumer protocol the newer one is refused while the older one holds the id (and keeps trying to join). Either way the
    /// fenced member's health check is unhealthy with a reason that names the id. The embedded broker does not fence static members:
    /// this runs against a real Kafka 4 broker (Testcontainers), skipped with the reason when Docker is not available.
    /// </summary>
    [Theory]
    [InlineData(GroupProtocol.Classic)]
    [InlineData(GroupProtocol.Consumer)]
    public async Task TwoMembersWithOneInstanceId_OneIsFenced_AndItsHealthSaysWhy(GroupProtocol protocol)
    {
        Testcontainers.Kafka.KafkaContainer? container = null;
        var bootstrapServers = broker.BootstrapServers;
        if (broker.Embedded is not null)
        {
            if (!DockerAvailability.IsAvailable(out var reason))
            {
                Assert.Skip($"Needs a broker that fences static members (Kafka 4; the embedded broker does not) and Docker is not available: {reason}.");
            }

            container = new Testcontainers.Kafka.KafkaBuilder("apache/kafka:4.1.0").Build();
            await container.StartAsync(TestContext.Current.CancellationToken);
            bootstrapServers = container.GetBootstrapAddress();
        }

        try
        {
            var topic = "fence-" + Guid.NewGuid().ToString("N");
            using (var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).Build())
            {
                await admin.CreateTopicsAsync([new Confluent.Kafka.Admin.TopicSpecification { Name = topic, NumPartitions = 2, ReplicationFactor = 1 }]);
            }

            var group = "g-" + Guid.NewGuid().ToString("N");
            void Configure(ReliableConsumerOptions o)
            {
                o.GroupProtocol = protocol;
                o.GroupInstanceId = "orders-0";
            }

            void Health(IServiceCollection s) => s.AddHealthChecks().AddReliableConsumer("test");
            await using var older = await TestConsumer.StartAsync(bootstrapServers, topic, group, configure: Configure, services: Health);
            await Eventually.TrueAsync(() => older.Logs.CountOf(400) >= 1, "the first member joins");
            await using var newer = await TestConsumer.StartAsync(bootstrapServers, topic, group, configure: Configure, services: Health);

            var fenced = protocol == GroupProtocol.Classic ? older : newer;
            await Eventually.TrueAsync(
                () => Report(fenced) is { Status: HealthStatus.Unhealthy } r && r.Description!.Contains("GroupInstanceId", StringComparison.Ordinal),
                $"the {(protocol == GroupProtocol.Classic ? "older" : "newer")} member is fenced and says why",
                TimeSpan.FromSeconds(120),
                () => Report(fenced).Description ?? string.Empty);
            Assert.Contains("orders-0", Report(fenced).Description, StringComparison.Ordinal);
        }
        finally
        {
            if (container is not null)
            {
                await container.DisposeAsync();
            }
        }
    }

    private static HashSet<int> Owned(TestConsumer consumer)
    {
        var owned = new HashSet<int>();
        foreach (var entry in consumer.Logs.GetSnapshot())
        {
            if (entry.Id.Id == 400)
            {
                foreach (System.Text.RegularExpressions.Match match in System.Text.RegularExpressions.Regex.Matches(entry.Message, @"\[\[(\d+)\]\]"))
                {
                    owned.Add(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
                }
            }
            else if (entry.Id.Id is 401 or 402)
            {
                foreach (System.Text.RegularExpressions.Match match in System.Text.RegularExpressions.Regex.Matches(entry.Message, @"\[\[(\d+)\]\]"))
                {
                    owned.Remove(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
                }
            }
        }

        return owned;
    }

    private static async Task<string> MemberIdAsync(TestConsumer consumer)
    {
        string? id = null;
        await Eventually.TrueAsync(() => (id = Report(consumer).Data.TryGetValue("member_id", out var value) ? value as string : null) is { Length: > 0 }, "the member has joined and knows its member id");
        return id!;
    }

    private static HealthReportEntry Report(TestConsumer consumer) =>
        consumer.Host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(TestContext.Current.CancellationToken).GetAwaiter().GetResult().Entries.Single().Value;
}
