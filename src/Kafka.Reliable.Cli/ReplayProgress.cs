using Kafka.Reliable.DeadLetter;
using System.Globalization;
using Spectre.Console;

namespace Kafka.Reliable.Cli;

/// <summary>
/// Shows a replay's progress: a Spectre.Console progress bar redrawn in place on a terminal; one line per report when the
/// output is redirected (a log file, a CI job), so that neither fills up with carriage returns; nothing with <c>--json</c>,
/// whose output is the final report alone.
/// </summary>
internal static class ReplayProgress
{
    public static async Task<DeadLetterReplayProgress> RunAsync(CliConsole console, bool json, Func<IProgress<DeadLetterReplayProgress>?, Task<DeadLetterReplayProgress>> replay)
    {
        if (json)
        {
            return await replay(null).ConfigureAwait(false);
        }

        if (!console.Interactive)
        {
            return await replay(new Lines(console)).ConfigureAwait(false);
        }

        return await console.Console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask("replaying", maxValue: 1);
                task.IsIndeterminate = true;
                return await replay(new Bar(task)).ConfigureAwait(false);
            }).ConfigureAwait(false);
    }

    /// <summary>Renders <c>50% 500/1000 (480 replayed, 20 skipped)</c>.</summary>
    internal static string Render(DeadLetterReplayProgress value)
    {
        var done = value.Replayed + value.Skipped;
        var percent = value.Pending <= 0 ? 100 : (int)Math.Clamp(done * 100 / value.Pending, 0, 100);
        return string.Create(CultureInfo.InvariantCulture, $"{percent,3}% {done}/{value.Pending} ({value.Replayed} replayed, {value.Skipped} skipped)");
    }

    private sealed class Lines(CliConsole console) : IProgress<DeadLetterReplayProgress>
    {
        // Reports come from the replay's thread, one at a time.
        public void Report(DeadLetterReplayProgress value) => console.LineAsync(Render(value)).GetAwaiter().GetResult();
    }

    private sealed class Bar(ProgressTask task) : IProgress<DeadLetterReplayProgress>
    {
        public void Report(DeadLetterReplayProgress value)
        {
            task.IsIndeterminate = false;
            task.MaxValue = Math.Max(1, value.Pending);
            task.Value = value.Replayed + value.Skipped;
            task.Description = string.Create(CultureInfo.InvariantCulture, $"{value.Replayed} replayed, {value.Skipped} skipped");
        }
    }
}
