namespace Kafka.Reliable.Cli.Tests;

/// <summary>
/// Every option's bad values: a one-line message that names the option, the value and what it expects, exit code 1, no
/// stack trace, and nothing on stdout. None of these reach a broker (the port below has none).
/// </summary>
public sealed class CliErrorTests
{
    private const string Nowhere = "127.0.0.1:9";

    public static TheoryData<string[], int, string> BadCommandLines => new()
    {
        { ["embedded", "--brokers", "99"], 1, "--brokers expects a whole number from 1 to 16, not '99'." },
        { ["embedded", "--brokers", "0"], 1, "--brokers expects a whole number from 1 to 16, not '0'." },
        { ["embedded", "--brokers", "abc"], 1, "--brokers expects a whole number from 1 to 16, not 'abc'." },
        { ["embedded", "--topic", "orders:abc"], 1, "--topic 'orders:abc': the partition count after ':' must be a whole number from 1 to 1000, not 'abc'." },
        { ["embedded", "--topic", "orders:0"], 1, "--topic 'orders:0': the partition count after ':' must be a whole number from 1 to 1000, not '0'." },
        { ["embedded", "--topic", "bad/name"], 1, "--topic 'bad/name': a topic name is 1 to 249 of the characters" },
        { ["embedded", "--topic", ":3"], 1, "--topic ':3': a topic name is 1 to 249 of the characters" },
        { ["embedded", "--topic", "a", "--topic", "a"], 1, "--topic names 'a' more than once." },
        { ["embedded", "-b", Nowhere], 1, "Unrecognized command or argument '-b'." },
        { ["lag", "-b", Nowhere], 1, "Option '--group' is required." },
        { ["lag", "-b", Nowhere, "--group", ""], 1, "--group expects a value, not an empty one." },
        { ["lag", "-b", "broker:notaport", "--group", "g"], 1, "--bootstrap-servers 'broker:notaport' is not a list of host:port pairs separated by commas: 'broker:notaport' has port 'notaport', not a number from 1 to 65535." },
        { ["lag", "-b", "broker:70000", "--group", "g"], 1, "has port '70000', not a number from 1 to 65535." },
        { ["lag", "-b", ",", "--group", "g"], 1, "--bootstrap-servers ',' is not a list of host:port pairs separated by commas: it names no broker." },
        { ["lag", "-b", ":9092", "--group", "g"], 1, "':9092' has no host." },
        { ["dlq", "list", "-b", Nowhere, "--topic", "t.dlq", "--limit", "-1"], 1, "--limit expects a whole number of at least 1, not '-1'." },
        { ["dlq", "list", "-b", Nowhere, "--topic", "t.dlq", "--limit", "ten"], 1, "--limit expects a whole number of at least 1, not 'ten'." },
        { ["dlq", "list", "-b", Nowhere, "--topic", "t.dlq", "--from", "yesterday"], 1, "--from expects an ISO 8601 time such as 2026-11-23T08:00:00Z (UTC) or 2026-11-23T09:00:00+01:00, not 'yesterday'." },
        { ["dlq", "list", "-b", Nowhere, "--topic", "t.dlq", "--from", "2026-11-24", "--to", "2026-11-23"], 1, "must be before --to" },
        { ["dlq", "show", "-b", Nowhere, "--topic", "t.dlq", "--partition", "-1", "--offset", "0"], 1, "--partition expects a whole number of at least 0, not '-1'." },
        { ["dlq", "show", "-b", Nowhere, "--topic", "t.dlq", "--partition", "0", "--offset", "x"], 1, "--offset expects a whole number of at least 0, not 'x'." },
        { ["dlq", "show", "-b", Nowhere, "--topic", "t.dlq", "--partition", "0"], 1, "Option '--offset' is required." },
        { ["dlq", "replay", "-b", Nowhere, "--topic", "t.dlq", "--rate", "0"], 1, "--rate expects a whole number from 1 to 1000000, not '0'." },
        { ["dlq", "replay", "-b", Nowhere, "--topic", "t.dlq", "--rate", "2000000"], 1, "--rate expects a whole number from 1 to 1000000, not '2000000'." },
        { ["dlq", "replay", "-b", Nowhere, "--topic", "t.dlq", "--max", "0"], 1, "--max expects a whole number of at least 1, not '0'." },
        { ["dlq", "replay", "-b", Nowhere, "--topic", "t.dlq", "--to", "noon"], 1, "--to expects an ISO 8601 time" },
        { ["offsets", "reset", "-b", Nowhere, "-g", "g", "-t", "t", "--to-datetime", "yesterday"], 1, "--to-datetime expects an ISO 8601 time such as 2026-11-23T08:00:00Z (UTC) or 2026-11-23T09:00:00+01:00, not 'yesterday'." },
        { ["offsets", "reset", "-b", Nowhere, "-g", "g", "-t", "t", "--to-offset", "-5"], 1, "--to-offset expects a whole number of at least 0, not '-5'." },
        { ["offsets", "reset", "-b", Nowhere, "-g", "g", "-t", "t", "--shift-by", "many"], 1, "--shift-by expects a whole number, not 'many'." },
        { ["offsets", "reset", "-b", Nowhere, "-g", "g", "-t", "t", "--partition", "-1", "--to-earliest"], 1, "--partition expects a whole number of at least 0, not '-1'." },
        { ["offsets", "reset", "-b", Nowhere, "-g", "g", "-t", "t", "--to-earliest", "--join-timeout", "0"], 1, "--join-timeout expects a whole number from 1 to 3600, not '0'." },
        { ["offsets", "reset", "-b", Nowhere, "-g", "g", "-t", "t", "--to-earliest", "--session-timeout-ms", "abc"], 1, "--session-timeout-ms expects a whole number from 1 to 3600000, not 'abc'." },
        { ["retry", "list", "-b", Nowhere, "--topic", "orders"], 1, "Option '--group' is required." },
        { ["retry", "list", "-b", Nowhere, "--topic", "orders", "--group", "g", "--retry-topic", ""], 1, "--retry-topic expects a value, not an empty one." },
        { ["retry", "show", "-b", Nowhere, "-t", "orders", "-g", "g"], 1, "Option '--key' is required." },
        { ["retry", "show", "-b", Nowhere, "-t", "orders", "-g", "g", "--key", "a", "--partition", "x"], 1, "--partition expects a whole number of at least 0, not 'x'." },
        { ["retry", "release", "-b", Nowhere, "-t", "orders", "-g", "g", "--key", ""], 1, "--key expects a value, not an empty one." },
        { ["retry", "release", "-b", Nowhere, "-t", "orders", "-g", "g", "--key", "a", "--partition", "-1"], 1, "--partition expects a whole number of at least 0, not '-1'." },
        { ["retry", "release", "-b", Nowhere, "-t", "orders", "-g", "g", "--key", "a", "--show-values"], 1, "Unrecognized command or argument '--show-values'." },
        { ["group", "describe", "-b", Nowhere, ""], 1, "The group name is empty." },
        { ["group", "describe", "-b", Nowhere], 1, "Required argument missing for command: 'describe'." },
        { ["no-such-command"], 1, "Unrecognized command or argument 'no-such-command'." },
    };

    [Theory]
    [MemberData(nameof(BadCommandLines))]
    public async Task BadCommandLine_SaysWhatIsWrong_InOneLine_WithExitCode1(string[] args, int expectedCode, string expectedMessage)
    {
        var (code, output, error) = await Cli.RunAsync(args);

        Assert.True(code == expectedCode, $"expected exit code {expectedCode} from '{string.Join(' ', args)}', got {code}: {error}");
        Assert.Contains(expectedMessage, error, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", error, StringComparison.Ordinal);
        Assert.Equal(string.Empty, output);
        Cli.AssertNoStackTrace(error);
    }

    [Fact]
    public async Task UnresolvableHost_IsReportedAsSuch_WithExitCode3_BeforeAnyKafkaClientTries()
    {
        // .invalid never resolves (RFC 6761).
        var (code, output, error) = await Cli.RunAsync("dlq", "list", "-b", "no-such-broker.invalid:9092", "--topic", "orders.dlq");

        Assert.True(code == 3, $"expected exit code 3 (unreachable), got {code}: {error}");
        Assert.StartsWith("Cannot resolve the brokers of --bootstrap-servers 'no-such-broker.invalid:9092': 'no-such-broker.invalid'", error, StringComparison.Ordinal);
        Assert.Contains("Check the host names.", error, StringComparison.Ordinal);
        Assert.DoesNotContain("Could not reach Kafka", error, StringComparison.Ordinal);
        Assert.Equal(string.Empty, output);
        Cli.AssertNoStackTrace(error);
    }

    [Fact]
    public void ExitCodes_AreExactlyTheOnesTheOperationsGuideLists()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "docs", "operations.md")))
        {
            directory = directory.Parent;
        }

        Assert.True(directory is not null, $"expected docs/operations.md above {AppContext.BaseDirectory}");
        var guide = File.ReadAllText(Path.Combine(directory.FullName, "docs", "operations.md"));
        var table = guide[guide.IndexOf("## Exit codes", StringComparison.Ordinal)..];
        var documented = System.Text.RegularExpressions.Regex.Matches(table, @"(?m)^\| (\d+) \|").Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        var defined = typeof(ExitCodes).GetFields().Select(f => (int)f.GetRawConstantValue()!).Order();

        Assert.Equal(defined, documented);
    }

    [Fact]
    public void BootstrapServers_Parse_AcceptsWhatLibrdkafkaAccepts()
    {
        Assert.Equal(
            [("broker-1", (int?)9092), ("10.0.0.2", 9093), ("::1", 9094), ("broker-4", null)],
            BootstrapServers.Parse("broker-1:9092, PLAINTEXT://10.0.0.2:9093,[::1]:9094,broker-4"));
    }
}
