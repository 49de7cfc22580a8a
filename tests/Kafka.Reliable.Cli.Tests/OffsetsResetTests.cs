using System.Globalization;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Kafka.Reliable.Testing;

namespace Kafka.Reliable.Cli.Tests;

/// <summary><c>kafka-reliable offsets reset</c> end to end against the embedded broker.</summary>
public sealed class OffsetsResetTests : IDisposable
{
    private const string Topic = "orders";
    private readonly EmbeddedKafkaCluster _cluster = EmbeddedKafkaCluster.Start();

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public async Task DryRun_ShowsThePlan_AndChangesNothing()
    {
        await ProduceAsync(partitions: 2, perPartition: 5);
        Commit("loader", (0, 2), (1, 5));

        var (code, output, error) = await Cli.RunAsync("offsets", "reset", "-b", _cluster.BootstrapServers, "--group", "loader", "--topic", Topic, "--to-earliest", "--json");

        Assert.True(code == 0, error);
        var report = JsonDocument.Parse(output).RootElement;
        Assert.False(report.GetProperty("Executed").GetBoolean());
        Assert.Equal([(0, (long?)2, 0L), (1, (long?)5, 0L)], Rows(report));
        Assert.Contains("Dry run: nothing changed", error, StringComparison.Ordinal);
        Assert.Equal(new Dictionary<int, long> { [0] = 2, [1] = 5 }, _cluster.GetCommittedOffsets("loader", Topic));

        var (_, table, _) = await Cli.RunAsync("offsets", "reset", "-b", _cluster.BootstrapServers, "--group", "loader", "--topic", Topic, "--shift-by", "-3");
        Assert.Contains("Plan for group 'loader' on 'orders' (shift by -3)", table, StringComparison.Ordinal);
        Assert.Matches(@"\n\s+0\s+2\s+0\s+-2\s+0\s+5\s+kept within 0-5 \(asked -1\)", table);
        Assert.Matches(@"\n\s+1\s+5\s+2\s+-3\s+0\s+5", table);
        Assert.Equal(new Dictionary<int, long> { [0] = 2, [1] = 5 }, _cluster.GetCommittedOffsets("loader", Topic));

        // A shift past the end ("skip everything") stops at the end; it must not wrap around to the earliest offset.
        var (_, farForward, _) = await Cli.RunAsync("offsets", "reset", "-b", _cluster.BootstrapServers, "--group", "loader", "--topic", Topic, "--shift-by", long.MaxValue.ToString(CultureInfo.InvariantCulture), "--json");
        Assert.Equal([(0, (long?)2, 5L), (1, (long?)5, 5L)], Rows(JsonDocument.Parse(farForward).RootElement));
        var (_, farBack, _) = await Cli.RunAsync("offsets", "reset", "-b", _cluster.BootstrapServers, "--group", "loader", "--topic", Topic, "--shift-by", long.MinValue.ToString(CultureInfo.InvariantCulture), "--json");
        Assert.Equal([(0, (long?)2, 0L), (1, (long?)5, 0L)], Rows(JsonDocument.Parse(farBack).RootElement));
    }

    [Fact]
    public async Task Execute_MovesTheCommittedOffsets_AndAConsumerThenStartsThere()
    {
        await ProduceAsync(partitions: 2, perPartition: 10);
        await using (var first = await GroupConsumer.StartAsync(_cluster.BootstrapServers, Topic, "loader"))
        {
            await WaitUntilCommittedAsync("loader", 10, 10);
        }

        var (toOffset, _, toOffsetError) = await Cli.RunAsync("offsets", "reset", "-b", _cluster.BootstrapServers, "--group", "loader", "--topic", Topic, "--partition", "0", "--to-offset", "6", "--execute", "--session-timeout-ms", "6000");
        Assert.True(toOffset == 0, toOffsetError);
        var (shifted, output, shiftError) = await Cli.RunAsync("offsets", "reset", "-b", _cluster.BootstrapServers, "--group", "loader", "--topic", Topic, "--partition", "1", "--shift-by", "-3", "--execute", "--session-timeout-ms", "6000");
        Assert.True(shifted == 0, shiftError);
        Assert.Contains("Reset group 'loader' on 'orders' (shift by -3)", output, StringComparison.Ordinal);
        Assert.Equal(new Dictionary<int, long> { [0] = 6, [1] = 7 }, _cluster.GetCommittedOffsets("loader", Topic));

        await using var second = await GroupConsumer.StartAsync(_cluster.BootstrapServers, Topic, "loader");
        await WaitUntilCommittedAsync("loader", 10, 10, () => $"handled {string.Join(" ", second.Handled)}; logs:{Environment.NewLine}{second.RecentLogs}");
        Assert.Equal(
            [(0, 6L), (0, 7L), (0, 8L), (0, 9L), (1, 7L), (1, 8L), (1, 9L)],
            second.Handled.Order().ToList());
    }

    [Fact]
    public async Task Execute_IsRefused_WhileTheGroupHasActiveMembers()
    {
        await ProduceAsync(partitions: 2, perPartition: 4);
        await using (var live = await GroupConsumer.StartAsync(_cluster.BootstrapServers, Topic, "live"))
        {
            await WaitUntilCommittedAsync("live", 4, 4);

            var (code, _, error) = await Cli.RunAsync("offsets", "reset", "-b", _cluster.BootstrapServers, "--group", "live", "--topic", Topic, "--to-earliest", "--execute", "--session-timeout-ms", "6000");

            Assert.True(code == 6, $"expected exit code 6 (group active), got {code}: {error}");
            // How many partitions the rebalance hands the tool before it gives up (0 or 1 of 2) depends on the rebalance's
            // timing: what matters is that it got fewer than all, and so refused.
            Assert.Matches(@"Refused: group 'live' has other active members \(joining it gave this tool [01] of the 2 partitions of 'orders'\)", error);
            Assert.Contains("Stop every member of the group", error, StringComparison.Ordinal);
            Assert.Equal(new Dictionary<int, long> { [0] = 4, [1] = 4 }, _cluster.GetCommittedOffsets("live", Topic));
        }

        var (afterStop, _, afterStopError) = await Cli.RunAsync("offsets", "reset", "-b", _cluster.BootstrapServers, "--group", "live", "--topic", Topic, "--to-earliest", "--execute", "--session-timeout-ms", "6000");
        Assert.True(afterStop == 0, afterStopError);
        Assert.Equal(new Dictionary<int, long> { [0] = 0, [1] = 0 }, _cluster.GetCommittedOffsets("live", Topic));
    }

    [Fact]
    public async Task ToDatetime_PlansTheFirstRecordAtOrAfterTheTime_OrTheEnd()
    {
        var start = new DateTimeOffset(2026, 11, 23, 8, 0, 0, TimeSpan.Zero);
        _cluster.CreateTopic(Topic, 1);
        await _cluster.ProduceAllAsync(Topic, Enumerable.Range(0, 10).Select(i => new Message<byte[]?, byte[]?>
        {
            Value = [(byte)i],
            Timestamp = new Timestamp(start.AddMinutes(i)),
        }), TestContext.Current.CancellationToken);

        async Task<long> TargetAsync(DateTimeOffset time)
        {
            var (code, output, error) = await Cli.RunAsync("offsets", "reset", "-b", _cluster.BootstrapServers, "--group", "replayer", "--topic", Topic, "--to-datetime", time.ToString("O"), "--json");
            Assert.True(code == 0, error);
            return Rows(JsonDocument.Parse(output).RootElement).Single().Target;
        }

        Assert.Equal(4, await TargetAsync(start.AddMinutes(3.5)));
        Assert.Equal(3, await TargetAsync(start.AddMinutes(3)));
        Assert.Equal(0, await TargetAsync(start.AddHours(-1)));
        Assert.Equal(10, await TargetAsync(start.AddHours(1)));
    }

    [Fact]
    public async Task BadRequests_SayWhatToFix_WithTheirExitCodes()
    {
        await ProduceAsync(partitions: 2, perPartition: 1);
        string[] Reset(params string[] more) => ["offsets", "reset", "-b", _cluster.BootstrapServers, "--group", "new-group", "--topic", Topic, .. more];

        var (none, _, noneError) = await Cli.RunAsync(Reset());
        Assert.Equal(1, none);
        Assert.Contains("Choose exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime or --shift-by (none was given)", noneError, StringComparison.Ordinal);

        var (two, _, twoError) = await Cli.RunAsync(Reset("--to-earliest", "--to-offset", "3"));
        Assert.Equal(1, two);
        Assert.Contains("(2 were given)", twoError, StringComparison.Ordinal);

        var (shift, _, shiftError) = await Cli.RunAsync(Reset("--shift-by", "-1"));
        Assert.Equal(1, shift);
        Assert.Contains("Group 'new-group' has no committed offset on orders[0] to shift from", shiftError, StringComparison.Ordinal);

        var (partition, _, partitionError) = await Cli.RunAsync(Reset("--partition", "7", "--to-earliest"));
        Assert.Equal(4, partition);
        Assert.Contains("Topic 'orders' has no partition 7 (it has 2: 0-1)", partitionError, StringComparison.Ordinal);

        var (topic, _, topicError) = await Cli.RunAsync("offsets", "reset", "-b", _cluster.BootstrapServers, "--group", "g", "--topic", "no-such-topic", "--to-earliest");
        Assert.Equal(4, topic);
        Assert.Contains("Topic 'no-such-topic' was not found", topicError, StringComparison.Ordinal);
    }

    private static List<(int Partition, long? Current, long Target)> Rows(JsonElement report) =>
        report.GetProperty("Partitions").EnumerateArray()
            .Select(r => (r.GetProperty("Partition").GetInt32(), r.GetProperty("Current").ValueKind == JsonValueKind.Null ? (long?)null : r.GetProperty("Current").GetInt64(), r.GetProperty("Target").GetInt64()))
            .ToList();

    private async Task ProduceAsync(int partitions, int perPartition)
    {
        _cluster.CreateTopic(Topic, partitions);
        using var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = _cluster.BootstrapServers }).Build();
        for (var i = 0; i < partitions * perPartition; i++)
        {
            await producer.ProduceAsync(new TopicPartition(Topic, i % partitions), new Message<byte[]?, byte[]?> { Value = Encoding.UTF8.GetBytes($"order {i}") }, TestContext.Current.CancellationToken);
        }
    }

    private void Commit(string group, params (int Partition, long Offset)[] offsets)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = _cluster.BootstrapServers, GroupId = group, EnableAutoCommit = false }).Build();
        consumer.Commit(offsets.Select(o => new TopicPartitionOffset(Topic, o.Partition, o.Offset)));
    }

    private Task WaitUntilCommittedAsync(string group, long partition0, long partition1, Func<string>? more = null) =>
        Eventually.TrueAsync(
            () => _cluster.GetCommittedOffsets(group, Topic) is var c && c[0] == partition0 && c[1] == partition1,
            $"group '{group}' committed {partition0} and {partition1}",
            state: () => $"committed {string.Join(", ", _cluster.GetCommittedOffsets(group, Topic))}; {more?.Invoke()}");
}
