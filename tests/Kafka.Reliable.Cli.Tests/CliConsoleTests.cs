using Kafka.Reliable.DeadLetter;
using System.Text.RegularExpressions;

namespace Kafka.Reliable.Cli.Tests;

/// <summary>The tool's tables and progress through Spectre.Console: plain when redirected, drawn on a terminal.</summary>
public sealed class CliConsoleTests
{
    private static readonly string LongTopic = "orders-" + new string('x', 150);

    [Fact]
    public async Task Table_Redirected_IsPlainAlignedColumns_AsWideAsTheContent_WithoutTrailingSpaces()
    {
        using var output = new StringWriter();

        await new CliConsole(output, interactive: false).TableAsync(["TOPIC", ">LAG"], [[LongTopic, "7"], ["short", "12345"]]);

        Assert.Equal(
            [$"TOPIC{new string(' ', LongTopic.Length - 5 + 4)}LAG", $"{LongTopic}      7", $"short{new string(' ', LongTopic.Length - 5 + 2)}12345"],
            output.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task Table_OnATerminal_HasBorders_AndWrapsALongNameInsideItsCell()
    {
        using var output = new StringWriter();
        var console = new CliConsole(output, interactive: true);
        console.Console.Profile.Width = 80;

        await console.TableAsync(["TOPIC", ">LAG"], [[LongTopic, "7"]]);

        // Without the colour codes (bold headers): what the terminal shows.
        var lines = Regex.Replace(output.ToString(), @"\x1b\[[0-9;]*m", string.Empty).Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("╭", lines[0], StringComparison.Ordinal);
        Assert.All(lines, line => Assert.True(line.Length <= 80, $"expected every line within the 80 columns of the terminal, got {line.Length}: {line}"));
        Assert.Equal(LongTopic, string.Concat(lines.Skip(3).SkipLast(1).Select(l => l.Split('│')[1].Trim())));
    }

    [Fact]
    public async Task ReplayProgress_OnATerminal_RunsTheReplayInsideASpectreProgress_AndReturnsItsResult()
    {
        using var output = new StringWriter();
        var done = new DeadLetterReplayProgress(3, 1, 4, Completed: true);

        var result = await ReplayProgress.RunAsync(new CliConsole(output, interactive: true), json: false, progress =>
        {
            Assert.NotNull(progress);
            progress.Report(new DeadLetterReplayProgress(1, 1, 4, Completed: false));
            progress.Report(done);
            return Task.FromResult(done);
        });

        Assert.Equal(done, result);
        Assert.Contains("3 replayed, 1 skipped", output.ToString(), StringComparison.Ordinal);
    }
}
