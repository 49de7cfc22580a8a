using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Kafka.Reliable.Testing;

namespace Kafka.Reliable.Cli.Tests;

public sealed class CliTests : IDisposable
{
    private readonly EmbeddedKafkaCluster _cluster = EmbeddedKafkaCluster.Start();

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public async Task Lag_ShowsCommittedHighWatermarkAndLag_PerPartition()
    {
        const string Topic = "orders";
        _cluster.CreateTopic(Topic, 2);
        using (var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = _cluster.BootstrapServers }).Build())
        {
            for (var i = 0; i < 10; i++)
            {
                await producer.ProduceAsync(new TopicPartition(Topic, i % 2), new Message<byte[]?, byte[]?> { Value = [1] }, TestContext.Current.CancellationToken);
            }
        }

        using (var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = _cluster.BootstrapServers, GroupId = "loader", EnableAutoCommit = false }).Build())
        {
            consumer.Commit([new TopicPartitionOffset(Topic, 0, 2), new TopicPartitionOffset(Topic, 1, 5)]);
        }

        var (code, output, error) = await Cli.RunAsync("lag", "-b", _cluster.BootstrapServers, "--group", "loader", "--topic", Topic, "--json");

        Assert.True(code == 0, error);
        var rows = JsonDocument.Parse(output).RootElement.EnumerateArray()
            .Select(r => (Partition: r.GetProperty("Partition").GetInt32(), Committed: r.GetProperty("Committed").GetInt64(), High: r.GetProperty("HighWatermark").GetInt64(), Lag: r.GetProperty("Lag").GetInt64()))
            .ToList();
        Assert.Equal([(0, 2L, 5L, 3L), (1, 5L, 5L, 0L)], rows);

        var (_, table, _) = await Cli.RunAsync("lag", "-b", _cluster.BootstrapServers, "--group", "loader", "--topic", Topic);
        Assert.Contains("total lag: 3", table, StringComparison.Ordinal);

        // Without --topic: every topic the group committed on, and only those.
        _cluster.CreateTopic("payments", 1);
        _cluster.CreateTopic("refunds", 1);
        using (var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = _cluster.BootstrapServers, GroupId = "loader", EnableAutoCommit = false }).Build())
        {
            consumer.Commit([new TopicPartitionOffset("payments", 0, 0)]);
        }

        var (all, everything, allError) = await Cli.RunAsync("lag", "-b", _cluster.BootstrapServers, "--group", "loader", "--json");
        Assert.True(all == 0, allError);
        Assert.Equal(
            [("orders", 0), ("orders", 1), ("payments", 0)],
            JsonDocument.Parse(everything).RootElement.EnumerateArray().Select(r => (r.GetProperty("Topic").GetString()!, r.GetProperty("Partition").GetInt32())));
    }

    [Fact]
    public async Task DeadLetters_AreListedFilteredShownAndReplayed()
    {
        _cluster.CreateTopic("orders", 1);
        _cluster.CreateTopic("orders.dlq", 1);
        Message<byte[]?, byte[]?> Dead(string key, string type) => new()
        {
            Key = Encoding.UTF8.GetBytes(key),
            Value = Encoding.UTF8.GetBytes($"{{\"order\":\"{key}\"}}"),
            Headers = new Headers
            {
                { DeadLetterHeaders.OriginalTopic, "orders"u8.ToArray() },
                { DeadLetterHeaders.OriginalPartition, "0"u8.ToArray() },
                { DeadLetterHeaders.OriginalOffset, "7"u8.ToArray() },
                { DeadLetterHeaders.FailureStage, "handle"u8.ToArray() },
                { DeadLetterHeaders.ExceptionType, Encoding.UTF8.GetBytes(type) },
                { DeadLetterHeaders.ExceptionMessage, "the database timed out"u8.ToArray() },
            },
        };
        await _cluster.ProduceAllAsync("orders.dlq", [Dead("a", "System.TimeoutException"), Dead("b", "System.ArgumentException"), Dead("c", "System.TimeoutException")], TestContext.Current.CancellationToken);

        var (listed, all, _) = await Cli.RunAsync("dlq", "list", "-b", _cluster.BootstrapServers, "--topic", "orders.dlq", "--json");
        Assert.Equal(0, listed);
        Assert.Equal(["a", "b", "c"], JsonDocument.Parse(all).RootElement.EnumerateArray().Select(r => r.GetProperty("Key").GetString()));

        var (_, timeouts, _) = await Cli.RunAsync("dlq", "list", "-b", _cluster.BootstrapServers, "--topic", "orders.dlq", "--exception-type", "System.TimeoutException");
        Assert.Contains("2 record(s)", timeouts, StringComparison.Ordinal);
        Assert.Contains("orders[0]@7", timeouts, StringComparison.Ordinal);

        var (shown, one, _) = await Cli.RunAsync("dlq", "show", "-b", _cluster.BootstrapServers, "--topic", "orders.dlq", "--partition", "0", "--offset", "1");
        Assert.Equal(0, shown);
        Assert.Contains("dlq-exception-type: System.ArgumentException", one, StringComparison.Ordinal);
        Assert.Contains("value: {\"order\":\"b\"}", one, StringComparison.Ordinal);

        var (replayed, report, error) = await Cli.RunAsync("dlq", "replay", "-b", _cluster.BootstrapServers, "--topic", "orders.dlq", "--exception-type", "System.TimeoutException", "--rate", "1000");
        Assert.True(replayed == 0, error);
        Assert.Contains("done: 2 replayed, 1 skipped", report, StringComparison.Ordinal);
        Assert.Contains("] 100% 3/3 (2 replayed, 1 skipped)", report, StringComparison.Ordinal);
        Assert.Equal(2, _cluster.GetHighWatermarks("orders")[0]);
    }

    [Fact]
    public async Task DeadLetters_OnSeveralPartitions_AreAllListed()
    {
        _cluster.CreateTopic("payments.dlq", 3);
        using (var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = _cluster.BootstrapServers }).Build())
        {
            for (var i = 0; i < 6; i++)
            {
                await producer.ProduceAsync(new TopicPartition("payments.dlq", i % 3), new Message<byte[]?, byte[]?> { Key = Encoding.UTF8.GetBytes($"p{i}"), Value = [1] }, TestContext.Current.CancellationToken);
            }
        }

        var (code, output, error) = await Cli.RunAsync("dlq", "list", "-b", _cluster.BootstrapServers, "--topic", "payments.dlq", "--json");

        Assert.True(code == 0, error);
        Assert.Equal(
            ["p0", "p1", "p2", "p3", "p4", "p5"],
            JsonDocument.Parse(output).RootElement.EnumerateArray().Select(r => r.GetProperty("Key").GetString()).Order());
    }

    [Fact]
    public async Task Errors_SayWhatIsWrong_WithTheirExitCodes()
    {
        var (unknownTopic, _, topicError) = await Cli.RunAsync("lag", "-b", _cluster.BootstrapServers, "--group", "g", "--topic", "no-such-topic");
        Assert.Equal(4, unknownTopic);
        Assert.Contains("Topic 'no-such-topic' was not found", topicError, StringComparison.Ordinal);

        var (unreachable, _, unreachableError) = await Cli.RunAsync("lag", "-b", $"127.0.0.1:{FreePort.Next()}", "--group", "g", "--topic", "orders");
        Assert.Equal(3, unreachable);
        Assert.Contains("Could not reach Kafka at 127.0.0.1:", unreachableError, StringComparison.Ordinal);

        _cluster.CreateTopic("payments", 1);
        var (unknownGroup, _, groupError) = await Cli.RunAsync("lag", "-b", _cluster.BootstrapServers, "--group", "no-such-group", "--topic", "payments");
        Assert.Equal(4, unknownGroup);
        Assert.Contains("Group 'no-such-group' has no committed offset on 'payments'", groupError, StringComparison.Ordinal);

        var (badArguments, _, argumentsError) = await Cli.RunAsync("lag", "--topic", "orders");
        var (noGroupAnywhere, _, anywhereError) = await Cli.RunAsync("lag", "-b", _cluster.BootstrapServers, "--group", "no-such-group");
        Assert.Equal(4, noGroupAnywhere);
        Assert.Contains("Group 'no-such-group' has no committed offset on any topic", anywhereError, StringComparison.Ordinal);
        Assert.Equal(1, badArguments);
        Assert.Contains("--group", argumentsError, StringComparison.Ordinal);

        var (unknownRecord, _, recordError) = await Cli.RunAsync("dlq", "show", "-b", _cluster.BootstrapServers, "--topic", CreateTopic("empty.dlq"), "--partition", "0", "--offset", "3");
        Assert.Equal(4, unknownRecord);
        Assert.Contains("has no record at offset 3", recordError, StringComparison.Ordinal);
    }

    private string CreateTopic(string name)
    {
        _cluster.CreateTopic(name, 1);
        return name;
    }

    [Fact]
    public void ProgressBar_ShowsTheShareDone_InPlaceOnATerminal_AndAsLinesOtherwise()
    {
        Assert.Equal("[###############---------------]  50% 500/1000 (480 replayed, 20 skipped)", ProgressBar.Render(new DeadLetterReplayProgress(480, 20, 1000, Completed: false)));
        Assert.Equal("[##############################] 100% 0/0 (0 replayed, 0 skipped)", ProgressBar.Render(new DeadLetterReplayProgress(0, 0, 0, Completed: true)));

        using var terminal = new StringWriter();
        var bar = new ProgressBar(terminal, interactive: true);
        bar.Report(new DeadLetterReplayProgress(1, 0, 2, Completed: false));
        bar.Report(new DeadLetterReplayProgress(2, 0, 2, Completed: true));
        bar.Finish();
        Assert.Equal($"\r{ProgressBar.Render(new DeadLetterReplayProgress(1, 0, 2, false))}\r{ProgressBar.Render(new DeadLetterReplayProgress(2, 0, 2, true))}{Environment.NewLine}", terminal.ToString());

        using var log = new StringWriter();
        var lines = new ProgressBar(log, interactive: false);
        lines.Report(new DeadLetterReplayProgress(1, 0, 2, Completed: false));
        lines.Report(new DeadLetterReplayProgress(2, 0, 2, Completed: true));
        lines.Finish();
        Assert.Equal(2, log.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries).Length);
    }
}
