using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Kafka.Reliable.RetryTiers;
using Kafka.Reliable.Testing;

namespace Kafka.Reliable.Cli.Tests;

/// <summary>
/// <c>retry list</c>, <c>show</c>, <c>release</c> against a retry topic written here with the copies the consumer writes
/// (<see cref="RetryRecords.Copy"/>): two keys of orders[0] (one with a superseded copy, one done before the group's
/// committed offset), a key and a key that is not UTF-8 on orders[1], where the group has committed nothing.
/// </summary>
public sealed class RetryCommandTests : IDisposable
{
    private const string Topic = "orders";
    private const string RetryTopic = "orders.retry";
    private const string Group = "loader";

    private static readonly byte[] BinaryKey = [0xff, 0xfe];

    private readonly EmbeddedKafkaCluster _cluster = EmbeddedKafkaCluster.Start();
    private readonly long _now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    public RetryCommandTests()
    {
        _cluster.CreateTopic(Topic, 2);
        _cluster.CreateTopic(RetryTopic, 2);
    }

    private long DueA => _now + 3_600_000;

    private long ParkedAtA => _now - 120_000;

    public void Dispose() => _cluster.Dispose();

    [Fact]
    public async Task List_ShowsEachPartitionsKeys_FromTheGroupsCommittedOffset_WithTheNewestCopyOfEachRecord()
    {
        await ParkAsync();

        var (code, output, error) = await Cli.RunAsync("retry", "list", "-b", _cluster.BootstrapServers, "--topic", Topic, "--group", Group, "--json");

        Assert.True(code == 0, error);
        var report = JsonDocument.Parse(output).RootElement;
        Assert.Equal(RetryTopic, report.GetProperty("RetryTopic").GetString());
        Assert.Equal(3, report.GetProperty("Keys").GetInt32());
        Assert.Equal(4, report.GetProperty("Records").GetInt64());
        Assert.Contains("may include records done since", report.GetProperty("Note").GetString(), StringComparison.Ordinal);
        var partitions = report.GetProperty("Partitions").EnumerateArray().ToList();
        Assert.Equal([0, 1], partitions.Select(p => p.GetProperty("Partition").GetInt32()));

        // orders.retry[0]: "done" is before the committed offset (1) and left out; "a" has its tier-1 copy superseded by
        // its tier-2 copy (one record, tier 2) and a tier-0 record behind it.
        var zero = partitions[0];
        Assert.Equal(1, zero.GetProperty("Committed").GetInt64());
        Assert.Equal(4, zero.GetProperty("End").GetInt64());
        Assert.Equal(2, zero.GetProperty("Records").GetInt64());
        var a = Assert.Single(zero.GetProperty("Keys").EnumerateArray());
        Assert.Equal("a", a.GetProperty("Key").GetString());
        Assert.Equal(2, a.GetProperty("Records").GetInt32());
        Assert.Equal(5, a.GetProperty("FirstOriginalOffset").GetInt64());
        Assert.Equal(2, a.GetProperty("Tier").GetInt32());
        Assert.Equal(4, a.GetProperty("Attempts").GetInt32());
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(DueA).UtcDateTime, a.GetProperty("Due").GetDateTime().ToUniversalTime());
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(ParkedAtA).UtcDateTime, a.GetProperty("ParkedAt").GetDateTime().ToUniversalTime());
        Assert.InRange(a.GetProperty("AgeSeconds").GetInt64(), 119, 3600);

        // orders.retry[1]: no committed offset (null), read from the beginning; the key that is not UTF-8 is base64.
        var one = partitions[1];
        Assert.Equal(JsonValueKind.Null, one.GetProperty("Committed").ValueKind);
        Assert.Equal(["b", "base64:" + Convert.ToBase64String(BinaryKey)], one.GetProperty("Keys").EnumerateArray().Select(k => k.GetProperty("Key").GetString()));
        Assert.All(one.GetProperty("Keys").EnumerateArray(), k => Assert.Equal(1, k.GetProperty("Tier").GetInt32()));

        var (tableCode, table, tableError) = await Cli.RunAsync("retry", "list", "-b", _cluster.BootstrapServers, "--topic", Topic, "--group", Group);
        Assert.True(tableCode == 0, tableError);
        Assert.Equal(string.Empty, tableError);
        var lines = table.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("Retry topic 'orders.retry' of 'orders', group 'loader' (from its committed offsets to the end):", lines[0]);
        Assert.Matches(@"^PARTITION\s+COMMITTED\s+END\s+PARKED\s+KEYS$", lines[1]);
        Assert.Matches(@"^\s*0\s+1\s+4\s+2\s+1$", lines[2]);
        Assert.Matches(@"^\s*1\s+-\s+2\s+2\s+2$", lines[3]);
        Assert.Matches(@"^PARTITION\s+KEY\s+RECORDS\s+FIRST\s+TIER\s+DUE\s+ATTEMPTS\s+AGE$", lines[4]);
        Assert.Matches(@"^\s*0\s+a\s+2\s+orders\[0\]@5\s+2\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \(in \d+m \d\ds\)\s+4\s+2m \d\ds$", lines[5]);
        Assert.Matches(@"^\s*1\s+b\s+1\s+orders\[1\]@2\s+1\s", lines[6]);
        Assert.Matches(@"^\s*1\s+base64://4=\s+1\s+orders\[1\]@4\s+1\s", lines[7]);
        Assert.Equal("3 key(s), 4 parked record(s) on 2 partition(s); may include records done since the group's last commit.", lines[8]);
    }

    [Fact]
    public async Task Show_PrintsAKeysRecordsInOrder_WithTheirHistoryHeaderNamesAndValueSizes()
    {
        await ParkAsync();

        var (code, output, error) = await Cli.RunAsync("retry", "show", "-b", _cluster.BootstrapServers, "--topic", Topic, "--group", Group, "--key", "a");

        Assert.True(code == 0, error);
        var lines = output.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("Key 'a' in orders.retry[0] (committed 1, end 4): 2 parked record(s), in the order they are handled;", lines[0], StringComparison.Ordinal);
        Assert.Matches(@"^orders\[0\]@5  tier 2, due \S+Z \(in \d+m \d\ds\), 4 attempt\(s\), parked \S+Z \(2m \d\ds ago\), retry offset 3$", lines[1]);
        Assert.Equal("  history  tier=0; at=2026-11-23T08:00:00.0000000Z; attempts=3; exception=System.TimeoutException: the database timed out", lines[2]);
        Assert.Equal("  history  tier=1; at=2026-11-23T08:00:10.0000000Z; attempts=1; exception=System.TimeoutException: the database timed out again", lines[3]);
        Assert.Equal("  headers  traceparent, content-type", lines[4]);
        Assert.Equal("  value    14 byte(s)", lines[5]);
        Assert.Matches(@"^orders\[0\]@7  tier 0, waiting behind orders\[0\]@5, 0 attempt\(s\), parked \S+Z \(\d+s ago\), retry offset 2$", lines[6]);
        Assert.Equal("  headers  (none)", lines[7]);
        Assert.Equal("  value    14 byte(s)", lines[8]);
        Assert.Equal(9, lines.Length);
        Assert.DoesNotContain("{\"order\":", output, StringComparison.Ordinal);

        // --show-values adds the values; --json has the same records, values only when asked for.
        var (_, values, _) = await Cli.RunAsync("retry", "show", "-b", _cluster.BootstrapServers, "--topic", Topic, "--group", Group, "--key", "a", "--show-values");
        Assert.Contains("  value    14 byte(s): {\"order\":\"a5\"}", values, StringComparison.Ordinal);
        var (jsonCode, json, jsonError) = await Cli.RunAsync("retry", "show", "-b", _cluster.BootstrapServers, "--topic", Topic, "--group", Group, "--key", "a", "--partition", "0", "--json");
        Assert.True(jsonCode == 0, jsonError);
        var records = Assert.Single(JsonDocument.Parse(json).RootElement.GetProperty("Partitions").EnumerateArray()).GetProperty("Records").EnumerateArray().ToList();
        Assert.Equal([5L, 7L], records.Select(r => r.GetProperty("OriginalOffset").GetInt64()));
        Assert.Equal(2, records[0].GetProperty("History").GetArrayLength());
        Assert.Equal(["traceparent", "content-type"], records[0].GetProperty("Headers").EnumerateArray().Select(h => h.GetString()));
        Assert.Equal(JsonValueKind.Null, records[0].GetProperty("Value").ValueKind);
        Assert.Equal(JsonValueKind.Null, records[1].GetProperty("Due").ValueKind);
    }

    [Fact]
    public async Task Release_WritesTheCommandToTheKeysRetryPartition_AndRetryNowToo()
    {
        await ParkAsync();

        var (code, output, error) = await Cli.RunAsync("retry", "release", "-b", _cluster.BootstrapServers, "--topic", Topic, "--group", Group, "--key", "a");

        Assert.True(code == 0, error);
        Assert.Equal(
            $"Wrote 'release' for key 'a' to orders.retry[0]@4: when the consumer of group 'loader' that owns orders[0] reads it, it dead-letters orders[0]@5 (tier 2, 4 attempt(s)) without another attempt, then handles the 1 record(s) behind it.{Environment.NewLine}",
            output);
        var release = ReadOne(0, 4);
        Assert.Equal("a"u8.ToArray(), release.Message.Key);
        Assert.Null(release.Message.Value);
        var command = RetryRecords.Read(release);
        Assert.Equal(RetryRecordKind.Command, command.Kind);
        Assert.Equal("release", command.Command);
        Assert.Equal("release", Encoding.UTF8.GetString(Assert.Single(release.Message.Headers).GetValueBytes()));
        Assert.Equal(RetryTierHeaders.Command, release.Message.Headers[0].Key);
        Assert.Equal(5, _cluster.GetHighWatermarks(RetryTopic)[0]);

        // --retry-now, for the key that is not UTF-8 (named as 'retry list' prints it), on the other partition; --json.
        var (now, json, nowError) = await Cli.RunAsync("retry", "release", "-b", _cluster.BootstrapServers, "--topic", Topic, "--group", Group, "--key", "base64:" + Convert.ToBase64String(BinaryKey), "--retry-now", "--json");
        Assert.True(now == 0, nowError);
        var row = Assert.Single(JsonDocument.Parse(json).RootElement.EnumerateArray());
        Assert.Equal("retry-now", row.GetProperty("Command").GetString());
        Assert.Equal(1, row.GetProperty("Partition").GetInt32());
        Assert.Equal(2, row.GetProperty("Offset").GetInt64());
        Assert.Equal(4, row.GetProperty("FirstOriginalOffset").GetInt64());
        var retryNow = ReadOne(1, 2);
        Assert.Equal(BinaryKey, retryNow.Message.Key);
        Assert.Null(retryNow.Message.Value);
        var nowCommand = RetryRecords.Read(retryNow);
        Assert.Equal(RetryRecordKind.Command, nowCommand.Kind);
        Assert.Equal("retry-now", nowCommand.Command);

        // The commands are not parked records: the list is unchanged.
        var (_, listed, _) = await Cli.RunAsync("retry", "list", "-b", _cluster.BootstrapServers, "--topic", Topic, "--group", Group, "--json");
        Assert.Equal(4, JsonDocument.Parse(listed).RootElement.GetProperty("Records").GetInt64());
    }

    [Fact]
    public async Task Release_OfAKeyNotParked_FailsWithNotFound_AndWritesNothing()
    {
        await ParkAsync();
        var before = _cluster.GetHighWatermarks(RetryTopic);

        // "done" was parked, but before the group's committed offset: it is done, so it is not parked any more.
        foreach (var key in new[] { "zzz", "done" })
        {
            var (code, output, error) = await Cli.RunAsync("retry", "release", "-b", _cluster.BootstrapServers, "--topic", Topic, "--group", Group, "--key", key);

            Assert.Equal(4, code);
            Assert.Equal(string.Empty, output);
            Assert.Contains($"Key '{key}' is not parked in 'orders.retry' for group 'loader' (read from the group's committed offsets to the end). 'kafka-reliable retry list' lists the parked keys", error, StringComparison.Ordinal);
            Cli.AssertNoStackTrace(error);
        }

        // Parked on partition 0, not 1.
        var (onOther, _, otherError) = await Cli.RunAsync("retry", "release", "-b", _cluster.BootstrapServers, "--topic", Topic, "--group", Group, "--key", "a", "--partition", "1");
        Assert.Equal(4, onOther);
        Assert.Contains("Key 'a' is not parked in orders.retry[1] for group 'loader'", otherError, StringComparison.Ordinal);
        Assert.Equal(before, _cluster.GetHighWatermarks(RetryTopic));

        var (noPartition, _, partitionError) = await Cli.RunAsync("retry", "show", "-b", _cluster.BootstrapServers, "--topic", Topic, "--group", Group, "--key", "a", "--partition", "7");
        Assert.Equal(4, noPartition);
        Assert.Contains("Retry topic 'orders.retry' has no partition 7 (it has 2: 0-1).", partitionError, StringComparison.Ordinal);

        _cluster.CreateTopic("payments", 1);
        var (noTopic, _, topicError) = await Cli.RunAsync("retry", "list", "-b", _cluster.BootstrapServers, "--topic", "payments", "--group", Group);
        Assert.Equal(4, noTopic);
        Assert.Contains("Retry topic 'payments.retry' was not found on", topicError, StringComparison.Ordinal);
        Assert.Contains("pass --retry-topic", topicError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task List_WithARetryTopicOfAnotherName_AndNothingParked_SaysSo()
    {
        _cluster.CreateTopic("parked-payments", 1);
        _cluster.CreateTopic("payments", 1);

        var (code, output, error) = await Cli.RunAsync("retry", "list", "-b", _cluster.BootstrapServers, "--topic", "payments", "--group", Group, "--retry-topic", "parked-{topic}");

        Assert.True(code == 0, error);
        var lines = output.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("Retry topic 'parked-payments' of 'payments', group 'loader' (from its committed offsets to the end):", lines[0]);
        Assert.Matches(@"^\s*0\s+-\s+0\s+0\s+0$", lines[2]);
        Assert.Equal("Nothing parked.", lines[^1]);
    }

    [Fact]
    public void Durations_AreShownInTheirTwoLargestUnits()
    {
        Assert.Equal("0s", RetryCommands.Duration(-5));
        Assert.Equal("45s", RetryCommands.Duration(45_999));
        Assert.Equal("12m 05s", RetryCommands.Duration(((12 * 60) + 5) * 1000));
        Assert.Equal("3h 02m", RetryCommands.Duration(((3 * 3600) + 120 + 59) * 1000L));
        Assert.Equal("2d 04h", RetryCommands.Duration(((2 * 86400) + (4 * 3600) + 59) * 1000L));
    }

    /// <summary>
    /// orders.retry[0]: @0 "done" (before the committed offset 1), @1 "a"@5 tier 1, @2 "a"@7 tier 0, @3 "a"@5 tier 2;
    /// orders.retry[1]: @0 "b"@2 tier 1, @1 0xfffe@4 tier 1. The group committed orders.retry[0] at 1, nothing on [1].
    /// </summary>
    private async Task ParkAsync()
    {
        var at = new DateTimeOffset(2026, 11, 23, 8, 0, 0, TimeSpan.Zero);
        var first = RetryRecords.HistoryLine(0, at, 3, new TimeoutException("the database timed out"));
        var second = RetryRecords.HistoryLine(1, at.AddSeconds(10), 1, new TimeoutException("the database timed out again"));
        var headers = new Headers { { "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"u8.ToArray() }, { "content-type", "application/json"u8.ToArray() } };
        Message<byte[]?, byte[]?>[] zero =
        [
            RetryRecords.Copy(Original(0, 3, "done"u8.ToArray()), Group, 1, _now, _now - 1000, 3, [first], parkedBy: null),
            RetryRecords.Copy(Original(0, 5, "a"u8.ToArray(), headers), Group, 1, _now - 5000, ParkedAtA, 3, [first], parkedBy: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            RetryRecords.Copy(Original(0, 7, "a"u8.ToArray()), Group, 0, 0, _now - 1000, 0, [], parkedBy: null),
            RetryRecords.Copy(Original(0, 5, "a"u8.ToArray(), headers), Group, 2, DueA, ParkedAtA, 4, [first, second], parkedBy: null),
        ];
        Message<byte[]?, byte[]?>[] one =
        [
            RetryRecords.Copy(Original(1, 2, "b"u8.ToArray()), Group, 1, _now + 10_000, _now - 1000, 3, [first], parkedBy: null),
            RetryRecords.Copy(Original(1, 4, BinaryKey), Group, 1, _now + 10_000, _now - 1000, 3, [first], parkedBy: null),
        ];
        using (var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig { BootstrapServers = _cluster.BootstrapServers, EnableIdempotence = true }).Build())
        {
            foreach (var (partition, messages) in new[] { (0, zero), (1, one) })
            {
                foreach (var message in messages)
                {
                    await producer.ProduceAsync(new TopicPartition(RetryTopic, partition), message, TestContext.Current.CancellationToken);
                }
            }
        }

        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = _cluster.BootstrapServers, GroupId = Group, EnableAutoCommit = false }).Build();
        consumer.Commit([new TopicPartitionOffset(RetryTopic, 0, 1)]);
    }

    private static ConsumeResult<byte[]?, byte[]?> Original(int partition, long offset, byte[] key, Headers? headers = null) => new()
    {
        Topic = Topic,
        Partition = new Partition(partition),
        Offset = new Offset(offset),
        Message = new Message<byte[]?, byte[]?>
        {
            Key = key,
            Value = Encoding.UTF8.GetBytes($"{{\"order\":\"{(key.Length == 1 ? (char)key[0] : 'x')}{offset}\"}}"),
            Headers = headers ?? [],
            Timestamp = new Timestamp(1_790_000_000_000 + offset, TimestampType.CreateTime),
        },
    };

    private ConsumeResult<byte[]?, byte[]?> ReadOne(int partition, long offset)
    {
        using var consumer = new ConsumerBuilder<byte[]?, byte[]?>(new ConsumerConfig { BootstrapServers = _cluster.BootstrapServers, GroupId = "retry-command-tests", EnableAutoCommit = false }).Build();
        consumer.Assign(new TopicPartitionOffset(RetryTopic, partition, offset));
        return consumer.Consume(TimeSpan.FromSeconds(30)) ?? throw new InvalidOperationException($"{RetryTopic}[{partition}]@{offset} could not be read within 30 s");
    }
}
