using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Testing;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable.Tests.Consuming;

public sealed class LostPartitionTests
{
    /// <summary>
    /// The member loses its partition (classic protocol: its session times out while the coordinator is down; consumer
    /// protocol: the coordinator fences it): the handler in flight is cancelled, nothing is committed until the partition is
    /// assigned again, and the rejoined member finishes from the committed offset.
    /// </summary>
    [Theory]
    [InlineData(GroupProtocol.Classic)]
    [InlineData(GroupProtocol.Consumer)]
    public async Task MemberLosesThePartitions_CancelsInFlightHandlers_AndCommitsNothing(GroupProtocol protocol)
    {
        using var speaking = TestConsumer.UseProtocol(protocol);
        using var cluster = await StartClusterAsync(out var group);

        var firstAttemptOf3 = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var canceledAttempts = 0;
        var handler = new RecordingHandler
        {
            Behavior = async (message, context, ct) =>
            {
                if (message.Id == 3 && !firstAttemptOf3.Task.IsCompleted)
                {
                    firstAttemptOf3.SetResult();
                    try
                    {
                        await Task.Delay(Timeout.Infinite, ct);
                    }
                    catch (OperationCanceledException)
                    {
                        Interlocked.Increment(ref canceledAttempts);
                        throw;
                    }
                }
            },
        };
        var hooks = new RebalanceHookTests.RecordingHooks();

        await using var consumer = await TestConsumer.StartAsync(cluster.BootstrapServers, Topic, group, handler, o =>
        {
            o.Commit.Strategy = CommitStrategy.PerMessage;
            o.KafkaSettings["session.timeout.ms"] = "2000";
            o.KafkaSettings["heartbeat.interval.ms"] = "200";
        }, b => b.WithRebalanceHandler<RebalanceHookTests.RecordingHooks>(), s => s.AddSingleton(hooks));
        await firstAttemptOf3.Task.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        await Eventually.TrueAsync(() => cluster.GetCommittedOffsets(group, Topic)[0] == 3, "records 0-2 are committed");

        await LosePartitionAsync(cluster, protocol, consumer, ErrorCode.FencedMemberEpoch);

        Assert.Equal(1, Volatile.Read(ref canceledAttempts));
        Assert.Equal([0], hooks.Lost.Select(p => p.Partition.Value));

        // The member rejoins, gets the partition again, and finishes from the committed offset: nothing lost.
        await Eventually.TrueAsync(() => cluster.GetCommittedOffsets(group, Topic)[0] == 6, "the partition is committed to its end after the member rejoins", state: () => consumer.Logs.Dump());
        Assert.Equal([0, 1, 2, 3, 4, 5], consumer.Handler.Handled.Select(h => h.Id).Distinct().Order());

        // Between losing the partition and being assigned it again, the member committed nothing (and tried nothing).
        var entries = consumer.Logs.GetSnapshot().ToList();
        var lost = entries.FindIndex(e => e.Id.Id == 402);
        var reassigned = entries.FindIndex(lost, e => e.Id.Id == 400 && e.Message.Contains(Topic, StringComparison.Ordinal));
        Assert.True(reassigned > lost, "the partition is assigned again after it was lost");
        Assert.DoesNotContain(entries.Skip(lost).Take(reassigned - lost), e => e.Id.Id is 300 or 301 or 403);
    }

    /// <summary>
    /// The partition is lost while a handler ignores its cancellation, then assigned back to the same member. The record is
    /// read again under the new assignment, but its handler must not run beside the one still running from the earlier
    /// assignment: the new assignment waits for it. With an idempotency store the earlier handler's completion makes the
    /// second run a skipped duplicate (one effect); without one the record runs again after it (at-least-once), never beside it.
    /// </summary>
    [Theory]
    [InlineData(GroupProtocol.Classic, false)]
    [InlineData(GroupProtocol.Classic, true)]
    [InlineData(GroupProtocol.Consumer, false)]
    [InlineData(GroupProtocol.Consumer, true)]
    public async Task LostWhileAHandlerIgnoresCancellation_AssignedBack_TheRecordNeverRunsTwiceAtOnce(GroupProtocol protocol, bool inMemoryStore)
    {
        using var speaking = TestConsumer.UseProtocol(protocol);
        using var cluster = await StartClusterAsync(out var group);

        var firstAttemptOf3 = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var running = 0;
        var mostAtOnce = 0;
        var handler = new RecordingHandler
        {
            Behavior = async (message, _, _) =>
            {
                if (message.Id != 3)
                {
                    return;
                }

                var now = Interlocked.Increment(ref running);
                InterlockedMax(ref mostAtOnce, now);
                try
                {
                    if (firstAttemptOf3.TrySetResult())
                    {
                        // Ignores its cancellation token: it returns only when the test says so.
                        await release.Task;
                    }
                }
                finally
                {
                    Interlocked.Decrement(ref running);
                }
            },
        };

        await using var consumer = await TestConsumer.StartAsync(cluster.BootstrapServers, Topic, group, handler, o =>
        {
            o.Commit.Strategy = CommitStrategy.PerMessage;
            o.KafkaSettings["session.timeout.ms"] = "2000";
            o.KafkaSettings["heartbeat.interval.ms"] = "200";
        }, b =>
        {
            if (inMemoryStore)
            {
                b.UseInMemoryIdempotency();
            }
        });
        await firstAttemptOf3.Task.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        await Eventually.TrueAsync(() => cluster.GetCommittedOffsets(group, Topic)[0] == 3, "records 0-2 are committed");

        await LosePartitionAsync(cluster, protocol, consumer, ErrorCode.UnknownMemberId);

        // Assigned back: the new assignment waits for the handler the old one could not stop.
        await Eventually.TrueAsync(() => consumer.Logs.CountOf(408) >= 1, "the new assignment waits for the earlier assignment's handler", state: () => consumer.Logs.Dump());
        Assert.Equal(1, handler.Attempts.Count(a => a.Id == 3));

        release.SetResult();
        await Eventually.TrueAsync(() => cluster.GetCommittedOffsets(group, Topic)[0] == 6, "the partition is committed to its end", state: () => consumer.Logs.Dump());
        Assert.Equal(1, Volatile.Read(ref mostAtOnce));
        Assert.Equal([0, 1, 2, 3, 4, 5], handler.Handled.Select(h => h.Id).Distinct().Order());
        if (inMemoryStore)
        {
            // The earlier handler finished, so its key is complete: the new assignment skips record 3 as a duplicate.
            Assert.Equal(1, handler.Attempts.Count(a => a.Id == 3));
            Assert.True(consumer.Logs.CountOf(212) >= 1, "record 3 is skipped as a duplicate under the new assignment");
        }
    }

    /// <summary>
    /// Makes the member lose its partition the way its protocol does. Classic: the coordinator (broker 3) goes down until the
    /// client's session times out. Consumer: the session is the broker's, so the coordinator answers the next heartbeat with
    /// <paramref name="consumerProtocolError"/> (FENCED_MEMBER_EPOCH or UNKNOWN_MEMBER_ID, which is what a member whose
    /// session expired hears).
    /// </summary>
    private static async Task LosePartitionAsync(EmbeddedKafkaCluster cluster, GroupProtocol protocol, TestConsumer consumer, ErrorCode consumerProtocolError)
    {
        if (protocol == GroupProtocol.Consumer)
        {
            cluster.PushRequestErrors(KafkaApiKey.ConsumerGroupHeartbeat, consumerProtocolError);
            await Eventually.TrueAsync(() => consumer.Logs.CountOf(402) >= 1, $"the member loses its partition when the coordinator answers {consumerProtocolError}", state: () => consumer.Logs.Dump());
            return;
        }

        cluster.SetBrokerDown(3);
        await Eventually.TrueAsync(() => consumer.Logs.CountOf(402) >= 1, "the member loses its partition when its session times out", state: () => consumer.Logs.Dump());
        cluster.SetBrokerUp(3);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current && Interlocked.CompareExchange(ref target, value, current) is var seen && seen != current)
        {
            current = seen;
        }
    }

    private const string Topic = "orders";

    /// <summary>
    /// Its own cluster of three brokers with records 0-5 in one partition: the group's coordinator (broker 3) can go down while
    /// the partition's leader (broker 1) stays up, which times the member's session out and loses it its partition.
    /// </summary>
    private static Task<EmbeddedKafkaCluster> StartClusterAsync(out string group)
    {
        var cluster = EmbeddedKafkaCluster.Start(3);
        cluster.SetConsumerGroupSessionTimeout(TimeSpan.FromSeconds(6));
        cluster.SetConsumerGroupHeartbeatInterval(TimeSpan.FromMilliseconds(200));
        cluster.CreateTopic(Topic, 1);
        cluster.SetPartitionLeader(Topic, 0, 1);
        group = "g-" + Guid.NewGuid().ToString("N");
        cluster.SetCoordinator(KafkaCoordinatorType.Group, group, 3);
        return ProduceAsync(cluster);

        static async Task<EmbeddedKafkaCluster> ProduceAsync(EmbeddedKafkaCluster cluster)
        {
            await cluster.ProduceAllAsync(Topic, TestConsumer.Events(6, 1).Select(r => new Message<byte[]?, byte[]?>
            {
                Key = Encoding.UTF8.GetBytes(r.Key!),
                Value = Encoding.UTF8.GetBytes(r.Value!),
            }), TestContext.Current.CancellationToken);
            return cluster;
        }
    }
}
