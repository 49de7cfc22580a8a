using System.Globalization;

namespace Kafka.Reliable.Cli;

/// <summary>
/// Shows a replay's progress: one bar redrawn in place on a terminal, or one line per report when the output is
/// redirected (a log file, a CI job), so that neither fills up with carriage returns.
/// </summary>
internal sealed class ProgressBar(TextWriter output, bool interactive) : IProgress<DeadLetterReplayProgress>
{
    private const int Width = 30;
    private bool _drawn;

    public void Report(DeadLetterReplayProgress value)
    {
        var line = Render(value);
        if (interactive)
        {
            output.Write('\r');
            output.Write(line);
            _drawn = true;
        }
        else
        {
            output.WriteLine(line);
        }
    }

    /// <summary>Ends the bar's line on a terminal, before the next output.</summary>
    public void Finish()
    {
        if (_drawn)
        {
            output.WriteLine();
            _drawn = false;
        }
    }

    /// <summary>Renders <c>[#########---------]  50% 500/1000 (480 replayed, 20 skipped)</c>.</summary>
    internal static string Render(DeadLetterReplayProgress value)
    {
        var done = value.Replayed + value.Skipped;
        var fraction = value.Pending <= 0 ? 1.0 : Math.Clamp((double)done / value.Pending, 0, 1);
        var filled = (int)(fraction * Width);
        return string.Create(CultureInfo.InvariantCulture,
            $"[{new string('#', filled)}{new string('-', Width - filled)}] {(int)(fraction * 100),3}% {done}/{value.Pending} ({value.Replayed} replayed, {value.Skipped} skipped)");
    }
}
