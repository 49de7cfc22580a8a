using System.Diagnostics;

namespace Kafka.Reliable.Torture.Tests;

/// <summary>
/// Runs the torture harness as its own process (<c>dotnet Kafka.Reliable.Torture.dll ...</c>, exactly the soak and replay
/// command), so that two runs can go side by side: each process has its own servers, and its librdkafka threads to count
/// for the hygiene invariant.
/// </summary>
internal static class HarnessProcess
{
    /// <summary>Longer than a run may take (<see cref="TortureRun.RunCap"/>) plus starting the servers and stopping the members (a child member may take 120 s).</summary>
    private static readonly TimeSpan Bound = TortureRun.RunCap + TimeSpan.FromMinutes(10);

    public static async Task<(int ExitCode, string Output)> RunAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Kafka.Reliable.Torture.dll"));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the torture harness");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var bound = new CancellationTokenSource(Bound);
        try
        {
            await process.WaitForExitAsync(bound.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"the torture harness ({string.Join(' ', arguments)}) did not end within {Bound.TotalMinutes:0} min:{Environment.NewLine}{await output}{Environment.NewLine}{await errors}");
        }

        return (process.ExitCode, $"{await output}{Environment.NewLine}{await errors}");
    }
}
