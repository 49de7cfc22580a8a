using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Kafka.Reliable.Idempotency.Tests.Infrastructure;

/// <summary>
/// The crash host (tests/Kafka.Reliable.Idempotency.CrashHost) run as a child process, with what it printed; killed with
/// SIGKILL by <see cref="Kill"/>, stopped with SIGTERM by <see cref="TerminateAsync"/>.
/// </summary>
public sealed class CrashHostProcess : IDisposable
{
    private readonly StringBuilder _log = new();
    private readonly ConcurrentQueue<HeldBatch> _held = new();

    private CrashHostProcess(Process process)
    {
        Process = process;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public Process Process { get; }

    /// <summary>Gets the batches that said they wait inside their transaction (the crash host's <c>--hold-after</c>).</summary>
    public IReadOnlyCollection<HeldBatch> Held => _held;

    public static CrashHostProcess Start(params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Kafka.Reliable.Idempotency.CrashHost.dll"));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return new CrashHostProcess(Process.Start(start)!);
    }

    /// <summary>Kills the process with SIGKILL and waits until it is gone.</summary>
    public async Task KillAsync()
    {
        Process.Kill(entireProcessTree: true);
        await Process.WaitForExitAsync(TestContext.Current.CancellationToken);
    }

    /// <summary>Asks the process to stop (SIGTERM, as a container runtime does) and waits until it exits.</summary>
    public async Task TerminateAsync()
    {
        using (var term = Process.Start("kill", ["-TERM", Process.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await term.WaitForExitAsync(TestContext.Current.CancellationToken);
        }

        await Process.WaitForExitAsync(TestContext.Current.CancellationToken);
    }

    public string Describe()
    {
        lock (_log)
        {
            return $"child {Process.Id}, exited: {Process.HasExited}; its last output:{Environment.NewLine}{(_log.Length > 4000 ? _log.ToString(_log.Length - 4000, 4000) : _log.ToString())}";
        }
    }

    public void Dispose()
    {
        if (!Process.HasExited)
        {
            Process.Kill(entireProcessTree: true);
            Process.WaitForExit();
        }

        Process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        // "holding <partition> <first offset> <last offset> <count> <call>"
        var parts = line.Split(' ');
        if (parts is ["holding", var partition, var first, var last, var count, var call])
        {
            _held.Enqueue(new HeldBatch(
                int.Parse(partition, CultureInfo.InvariantCulture),
                long.Parse(first, CultureInfo.InvariantCulture),
                long.Parse(last, CultureInfo.InvariantCulture),
                int.Parse(count, CultureInfo.InvariantCulture),
                long.Parse(call, CultureInfo.InvariantCulture)));
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }
    }
}

/// <summary>A batch that waits inside its transaction, its rows inserted and not committed: the number of its handler call (the rows' <c>call</c>).</summary>
public sealed record HeldBatch(int Partition, long FirstOffset, long LastOffset, int Count, long Call);
