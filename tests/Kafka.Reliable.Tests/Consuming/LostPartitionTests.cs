using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Testing;
using Kafka.Reliable.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Kafka.Reliable.Tests.Consuming;

public sealed class LostPartitionTests
{
    [Fact]
    public async Task SessionTimeout_LosesThePartitions_CancelsInFlightHandlers_AndCommitsNothing()
    {
        // Its own cluster of three brokers: the group's coordinator (broker 3) goes down while the partition's leader (broker 1) stays up.
        using var cluster = EmbeddedKafkaCluster.Start(3);
        const string Topic = "orders";
        cluster.CreateTopic(Topic, 1);
        cluster.SetPartitionLeader(Topic, 0, 1);
        var group = "g-" + Guid.NewGuid().ToString("N");
        cluster.SetCoordinator(KafkaCoordinatorType.Group, group, 3);
        await cluster.ProduceAllAsync(Topic, TestConsumer.Events(6, 1).Select(r => new Message<byte[]?, byte[]?>
        {
            Key = Encoding.UTF8.GetBytes(r.Key!),
            Value = Encoding.UTF8.GetBytes(r.Value!),
        }), TestContext.Current.CancellationToken);

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

        cluster.SetBrokerDown(3);
        await Eventually.TrueAsync(() => consumer.Logs.Count(402) >= 1, "the member loses its partition when its session times out", state: () => consumer.Logs.Dump());
        cluster.SetBrokerUp(3);

        Assert.Equal(1, Volatile.Read(ref canceledAttempts));
        Assert.Equal([0], hooks.Lost.Select(p => p.Partition.Value));

        // The member rejoins, gets the partition again, and finishes from the committed offset: nothing lost.
        await Eventually.TrueAsync(() => cluster.GetCommittedOffsets(group, Topic)[0] == 6, "the partition is committed to its end after the member rejoins", state: () => consumer.Logs.Dump());
        Assert.Equal([0, 1, 2, 3, 4, 5], consumer.Handler.Handled.Select(h => h.Id).Distinct().Order());

        // Between losing the partition and being assigned it again, the member committed nothing (and tried nothing).
        var entries = consumer.Logs.Entries.ToList();
        var lost = entries.FindIndex(e => e.EventId == 402);
        var reassigned = entries.FindIndex(lost, e => e.EventId == 400);
        Assert.True(reassigned > lost, "the partition is assigned again after it was lost");
        Assert.DoesNotContain(entries.Skip(lost).Take(reassigned - lost), e => e.EventId is 300 or 301 or 403);
    }
}
