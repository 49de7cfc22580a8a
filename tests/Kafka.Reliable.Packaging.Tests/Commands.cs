using System.Diagnostics;
using System.Text;

namespace Kafka.Reliable.Packaging.Tests;

/// <summary>What a test ran, in order, with the output of each step: the message of any failure.</summary>
internal sealed class Transcript
{
    private readonly StringBuilder _text = new();

    public void Add(string step)
    {
        lock (_text)
        {
            _text.AppendLine(step);
        }
    }

    public override string ToString()
    {
        lock (_text)
        {
            return _text.ToString();
        }
    }
}

/// <summary>Runs the dotnet CLI and the workers as child processes, with an environment cleaned of the test host's MSBuild settings.</summary>
internal static class Commands
{
    /// <summary>Runs a command to its end; fails the test, with the transcript, if it exits with another code than 0 or outlives the timeout.</summary>
    public static async Task<string> RunAsync(Transcript transcript, string workingDirectory, TimeSpan timeout, string fileName, params IEnumerable<string> arguments)
    {
        var args = arguments.ToList();
        var line = $"$ {fileName} {string.Join(' ', args)}    (in {workingDirectory})";
        using var process = Create(fileName, args, workingDirectory, null);
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        var watch = Stopwatch.StartNew();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            transcript.Add($"{line}\n  -> still running after {timeout}, killed\n{Tail(output)}");
            Assert.Fail($"A step did not finish within {timeout}.\n{transcript}");
        }

        process.WaitForExit(); // drains the redirected output
        var text = Read(output);
        transcript.Add($"{line}\n  -> exit code {process.ExitCode} after {watch.Elapsed.TotalSeconds:F1} s" + (process.ExitCode == 0 ? string.Empty : "\n" + Tail(output)));
        Assert.True(process.ExitCode == 0, $"A step failed: expected exit code 0.\n{transcript}");
        return text;
    }

    /// <summary>Starts a long-running process (a worker) whose output can be waited on.</summary>
    public static RunningProcess Start(Transcript transcript, string workingDirectory, IReadOnlyDictionary<string, string> environment, string fileName, params IEnumerable<string> arguments)
    {
        var args = arguments.ToList();
        transcript.Add($"$ {string.Join(' ', environment.Select(static kv => $"{kv.Key}={kv.Value}"))} {fileName} {string.Join(' ', args)}    (in {workingDirectory}, left running)");
        return new RunningProcess(Create(fileName, args, workingDirectory, environment));
    }

    private static Process Create(string fileName, List<string> arguments, string workingDirectory, IReadOnlyDictionary<string, string>? environment)
    {
        var start = new ProcessStartInfo(fileName, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };

        // Under `dotnet test`, the host's MSBuild variables would point the child builds at the test host's MSBuild; a
        // version chosen for this repository's own packs (VersionSuffix in CI) must not reach the fresh projects either.
        foreach (var key in start.Environment.Keys.ToList())
        {
            if (key.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || key.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase) ||
                key is "VersionSuffix" or "VersionPrefix" or "Version" or "PackageVersion")
            {
                start.Environment.Remove(key);
            }
        }

        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        start.Environment["DOTNET_CLI_UI_LANGUAGE"] = "en";
        // Leave no build servers or MSBuild nodes behind once the test ends.
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        start.Environment["UseSharedCompilation"] = "false";
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        return new Process { StartInfo = start };
    }

    internal static void Append(StringBuilder output, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            output.AppendLine(line);
        }
    }

    internal static string Read(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    internal static string Tail(StringBuilder output, int max = 6000)
    {
        var text = Read(output);
        return text.Length <= max ? text : "...\n" + text[^max..];
    }
}

/// <summary>A started process; disposing it kills it (and its children) and waits for it.</summary>
internal sealed class RunningProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly Lock _gate = new();
    private readonly List<(string Text, TaskCompletionSource Seen)> _waiters = [];

    public RunningProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Output => Commands.Tail(_output);

    /// <summary>Waits until a line of output contains <paramref name="text"/>; false if the timeout passes or the process exits first.</summary>
    public async Task<bool> WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (Commands.Read(_output).Contains(text, StringComparison.Ordinal))
            {
                return true;
            }

            _waiters.Add((text, seen));
        }

        using var cts = new CancellationTokenSource(timeout);
        var exited = _process.WaitForExitAsync(cts.Token);
        var first = await Task.WhenAny(seen.Task, exited, Task.Delay(Timeout.InfiniteTimeSpan, cts.Token)).ConfigureAwait(false);
        if (first == seen.Task)
        {
            return true;
        }

        // The process may have printed the line just before it exited.
        return Commands.Read(_output).Contains(text, StringComparison.Ordinal);
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            Commands.Append(_output, line);
            foreach (var (text, seen) in _waiters)
            {
                if (line.Contains(text, StringComparison.Ordinal))
                {
                    seen.TrySetResult();
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            await _process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            _process.Dispose();
        }
    }
}
