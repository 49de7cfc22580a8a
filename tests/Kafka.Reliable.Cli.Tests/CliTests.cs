using Kafka.Reliable.DeadLetter;
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
        var rows = JsonDocument.Parse(all).RootElement.EnumerateArray().ToList();
        Assert.Equal(["a", "b", "c"], rows.Select(r => r.GetProperty("Key").GetString()));

        // Numbers are JSON numbers; a header the record lacks is null.
        Assert.All(rows, r =>
        {
            Assert.Equal(JsonValueKind.Number, r.GetProperty("OriginalPartition").ValueKind);
            Assert.Equal(7, r.GetProperty("OriginalOffset").GetInt64());
            Assert.Equal(JsonValueKind.Null, r.GetProperty("Attempts").ValueKind);
        });

        var (_, timeouts, _) = await Cli.RunAsync("dlq", "list", "-b", _cluster.BootstrapServers, "--topic", "orders.dlq", "--exception-type", "System.TimeoutException");
        Assert.Contains("2 record(s)", timeouts, StringComparison.Ordinal);
        Assert.Contains("orders[0]@7", timeouts, StringComparison.Ordinal);

        var (shown, one, _) = await Cli.RunAsync("dlq", "show", "-b", _cluster.BootstrapServers, "--topic", "orders.dlq", "--partition", "0", "--offset", "1");
        Assert.Equal(0, shown);
        Assert.Matches(@"(?m)^dlq-exception-type\s+System\.ArgumentException$", one);
        Assert.Contains("value: {\"order\":\"b\"}", one, StringComparison.Ordinal);

        var (shownJson, record, _) = await Cli.RunAsync("dlq", "show", "-b", _cluster.BootstrapServers, "--topic", "orders.dlq", "--partition", "0", "--offset", "1", "--json");
        Assert.Equal(0, shownJson);
        var json = JsonDocument.Parse(record).RootElement;
        Assert.Equal(1, json.GetProperty("Offset").GetInt64());
        Assert.Equal("b", json.GetProperty("Key").GetString());
        Assert.Equal("{\"order\":\"b\"}", json.GetProperty("Value").GetString());
        Assert.Contains(json.GetProperty("Headers").EnumerateArray(), h => h.GetProperty("Key").GetString() == DeadLetterHeaders.ExceptionType && h.GetProperty("Value").GetString() == "System.ArgumentException");

        var (replayed, report, error) = await Cli.RunAsync("dlq", "replay", "-b", _cluster.BootstrapServers, "--topic", "orders.dlq", "--exception-type", "System.TimeoutException", "--rate", "1000");
        Assert.True(replayed == 0, error);
        Assert.Contains("done: 2 replayed, 1 skipped", report, StringComparison.Ordinal);
        Assert.Contains("100% 3/3 (2 replayed, 1 skipped)", report, StringComparison.Ordinal);
        Assert.Equal(2, _cluster.GetHighWatermarks("orders")[0]);

        // --json: the final report alone, as one JSON object (no progress lines); nothing left to replay in this group.
        var (again, replayJson, againError) = await Cli.RunAsync("dlq", "replay", "-b", _cluster.BootstrapServers, "--topic", "orders.dlq", "--exception-type", "System.TimeoutException", "--json");
        Assert.True(again == 0, againError);
        var result = JsonDocument.Parse(replayJson).RootElement;
        Assert.Equal(0, result.GetProperty("Replayed").GetInt64());
        Assert.True(result.GetProperty("Completed").GetBoolean());
        Assert.StartsWith("kafka-reliable-replay.orders.dlq.", result.GetProperty("Group").GetString(), StringComparison.Ordinal);
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
        Cli.AssertNoStackTrace(unreachableError);

        _cluster.CreateTopic("payments", 1);
        var (unknownGroup, _, groupError) = await Cli.RunAsync("lag", "-b", _cluster.BootstrapServers, "--group", "no-such-group", "--topic", "payments");
        Assert.Equal(4, unknownGroup);
        Assert.Contains("Group 'no-such-group' has no committed offset on 'payments'", groupError, StringComparison.Ordinal);

        var (noGroupAnywhere, _, anywhereError) = await Cli.RunAsync("lag", "-b", _cluster.BootstrapServers, "--group", "no-such-group");
        Assert.Equal(4, noGroupAnywhere);
        Assert.Contains("Group 'no-such-group' has no committed offset on any topic", anywhereError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DeadLetterCommands_OnMissingTopicsPartitionsAndRecords_ExitWithNotFound()
    {
        var topic = CreateTopic("empty.dlq");
        string[][] commands =
        [
            ["dlq", "show", "-b", _cluster.BootstrapServers, "--topic", topic, "--partition", "0", "--offset", "3"],
            ["dlq", "show", "-b", _cluster.BootstrapServers, "--topic", topic, "--partition", "5", "--offset", "0"],
            ["dlq", "show", "-b", _cluster.BootstrapServers, "--topic", "no-such.dlq", "--partition", "0", "--offset", "0"],
            ["dlq", "list", "-b", _cluster.BootstrapServers, "--topic", "no-such.dlq"],
            ["dlq", "replay", "-b", _cluster.BootstrapServers, "--topic", "no-such.dlq"],
            ["dlq", "replay", "-b", _cluster.BootstrapServers, "--topic", topic, "--target-topic", "no-such-target"],
        ];
        string[] messages =
        [
            "empty.dlq[0] has no record at offset 3 (it is empty; its high watermark is 0).",
            "Topic 'empty.dlq' has no partition 5 (it has 1: 0-0).",
            "Topic 'no-such.dlq' was not found",
            "Topic 'no-such.dlq' was not found",
            "Topic 'no-such.dlq' was not found",
            "Topic 'no-such-target' was not found",
        ];

        for (var i = 0; i < commands.Length; i++)
        {
            var (code, output, error) = await Cli.RunAsync(commands[i]);
            Assert.True(code == 4, $"expected exit code 4 (not found) from '{string.Join(' ', commands[i])}', got {code}: {error}");
            Assert.Contains(messages[i], error, StringComparison.Ordinal);
            Assert.Equal(string.Empty, output);
            Cli.AssertNoStackTrace(error);
        }
    }

    [Fact]
    public async Task Tables_KeepLongTopicNamesOnOneRow()
    {
        var topic = "orders-" + new string('x', 120);
        _cluster.CreateTopic(topic, 2);
        await _cluster.ProduceAllAsync(topic, Enumerable.Range(0, 6).Select(i => new Message<byte[]?, byte[]?> { Key = [(byte)i], Value = [1] }), TestContext.Current.CancellationToken);
        using (var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = _cluster.BootstrapServers, GroupId = "long", EnableAutoCommit = false }).Build())
        {
            consumer.Commit([new TopicPartitionOffset(topic, 0, 1), new TopicPartitionOffset(topic, 1, 0)]);
        }

        var (code, output, error) = await Cli.RunAsync("lag", "-b", _cluster.BootstrapServers, "--group", "long", "--topic", topic);

        Assert.True(code == 0, error);
        var high = _cluster.GetHighWatermarks(topic);
        var lines = output.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches(@"^TOPIC\s+PARTITION\s+COMMITTED\s+HIGH\s+LAG$", lines[0]);
        Assert.Matches($@"^{topic}\s+0\s+1\s+{high[0]}\s+{high[0] - 1}$", lines[1]);
        Assert.Matches($@"^{topic}\s+1\s+0\s+{high[1]}\s+{high[1]}$", lines[2]);
        Assert.Equal("total lag: 5", lines[3]);
    }

    [Fact]
    public async Task Embedded_PrintsItsBootstrapServers_CreatesTheTopics_AndStopsOnCtrlC()
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        using var output = new SynchronizedStringWriter();
        using var error = new StringWriter();
        var run = KafkaReliableCli.RunAsync(["embedded", "--brokers", "2", "--topic", "orders:3", "--topic", "orders.dlq", "--json"], output, error, stop.Token);

        await Eventually.TrueAsync(() => output.ToString().Contains('\n', StringComparison.Ordinal), "the embedded broker prints its bootstrap servers", state: () => $"output '{output}', error '{error}'");
        var report = JsonDocument.Parse(output.ToString()).RootElement;
        var servers = report.GetProperty("BootstrapServers").GetString()!;
        using (var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = servers }).Build())
        {
            var metadata = admin.GetMetadata(TimeSpan.FromSeconds(10));
            Assert.Equal(2, metadata.Brokers.Count);
            Assert.Equal(3, metadata.Topics.Single(t => t.Topic == "orders").Partitions.Count);
            Assert.Single(metadata.Topics.Single(t => t.Topic == "orders.dlq").Partitions);
        }

        await stop.CancelAsync();
        Assert.Equal(0, await run);
    }

    private string CreateTopic(string name)
    {
        _cluster.CreateTopic(name, 1);
        return name;
    }

    [Fact]
    public async Task ReplayProgress_PrintsOneLinePerReport_WhenRedirected_AndNothingWithJson()
    {
        Assert.Equal(" 50% 500/1000 (480 replayed, 20 skipped)", ReplayProgress.Render(new DeadLetterReplayProgress(480, 20, 1000, Completed: false)));
        Assert.Equal("100% 0/0 (0 replayed, 0 skipped)", ReplayProgress.Render(new DeadLetterReplayProgress(0, 0, 0, Completed: true)));

        using var log = new StringWriter();
        var result = await ReplayProgress.RunAsync(new CliConsole(log, interactive: false), json: false, progress =>
        {
            progress!.Report(new DeadLetterReplayProgress(1, 0, 2, Completed: false));
            progress.Report(new DeadLetterReplayProgress(2, 0, 2, Completed: true));
            return Task.FromResult(new DeadLetterReplayProgress(2, 0, 2, Completed: true));
        });
        Assert.True(result.Completed);
        Assert.Equal([" 50% 1/2 (1 replayed, 0 skipped)", "100% 2/2 (2 replayed, 0 skipped)"], log.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries));

        using var json = new StringWriter();
        await ReplayProgress.RunAsync(new CliConsole(json, interactive: false), json: true, progress =>
        {
            Assert.Null(progress);
            return Task.FromResult(new DeadLetterReplayProgress(0, 0, 0, Completed: true));
        });
        Assert.Equal(string.Empty, json.ToString());
    }

    /// <summary>A writer read by the test while the tool writes to it from another thread.</summary>
    private sealed class SynchronizedStringWriter : StringWriter
    {
        private readonly Lock _gate = new();

        public override void Write(char value)
        {
            lock (_gate)
            {
                base.Write(value);
            }
        }

        public override void Write(string? value)
        {
            lock (_gate)
            {
                base.Write(value);
            }
        }

        public override Task WriteLineAsync(string? value)
        {
            lock (_gate)
            {
                base.WriteLine(value);
            }

            return Task.CompletedTask;
        }

        public override string ToString()
        {
            lock (_gate)
            {
                return base.ToString();
            }
        }
    }
}
