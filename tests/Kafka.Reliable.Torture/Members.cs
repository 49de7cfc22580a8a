using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Torture;

/// <summary>A running member of a run's group, in this process or in a child process.</summary>
public abstract class MemberHandle(int member, long incarnation)
{
    public int Member { get; } = member;

    public long Incarnation { get; } = incarnation;

    /// <summary>Stops gracefully: drain, commit, leave.</summary>
    public abstract Task StopAsync();

    /// <summary>Ends the member without stopping it first (disposal of the host, or SIGKILL of the process).</summary>
    public abstract Task AbandonAsync();
}

public sealed class InProcessMember(int member, long incarnation, IHost host) : MemberHandle(member, incarnation)
{
    public static async Task<InProcessMember> StartAsync(TortureConfig config, MemberEnvironment environment, int member, long incarnation, Journal journal, RunLogs logs, ClientFaults clientFaults)
    {
        var host = MemberHost.Build(config, environment, member, incarnation, journal, logs.For(member, incarnation), clientFaults);
        await host.StartAsync();
        return new InProcessMember(member, incarnation, host);
    }

    public override async Task StopAsync()
    {
        await host.StopAsync(CancellationToken.None);
        host.Dispose();
    }

    public override async Task AbandonAsync()
    {
        if (host is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync();
        }
        else
        {
            host.Dispose();
        }
    }
}

/// <summary>A member in a child process (this harness, run with <c>member</c>): it can be killed with SIGKILL.</summary>
public sealed class ChildMember : MemberHandle
{
    private readonly Process _process;

    private ChildMember(int member, long incarnation, Process process)
        : base(member, incarnation) => _process = process;

    public static ChildMember Start(TortureEnvironment torture, string runDirectory, int member, long incarnation, RunLogs logs)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[]
        {
            torture.HarnessPath, "member", runDirectory, member.ToString(CultureInfo.InvariantCulture), incarnation.ToString(CultureInfo.InvariantCulture),
        })
        {
            start.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = start };
        process.ErrorDataReceived += (_, e) => Forward(logs, member, incarnation, e.Data);
        process.OutputDataReceived += (_, e) => Forward(logs, member, incarnation, e.Data);
        process.Start();
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        return new ChildMember(member, incarnation, process);
    }

    public static string JournalPath(string runDirectory, int member, long incarnation) =>
        Path.Combine(runDirectory, string.Create(CultureInfo.InvariantCulture, $"journal-{member}-{incarnation}.log"));

    public override async Task StopAsync()
    {
        // SIGTERM: the host's console lifetime stops it gracefully.
        using (var term = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await term.WaitForExitAsync();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill();
            throw new TimeoutException($"child member {Member}.{Incarnation} did not stop within 120 s of SIGTERM");
        }
        finally
        {
            _process.Dispose();
        }
    }

    public override async Task AbandonAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    private static void Forward(RunLogs logs, int member, long incarnation, string? line)
    {
        if (line is null)
        {
            return;
        }

        // The child writes "L|level|event id|message"; anything else (a crash report) is kept as it is.
        var fields = line.Split('|', 4);
        if (fields.Length == 4 && fields[0] == "L" && Enum.TryParse<LogLevel>(fields[1], out var level) && int.TryParse(fields[2], CultureInfo.InvariantCulture, out var eventId))
        {
            logs.Add(member, incarnation, level, eventId, fields[3]);
        }
        else
        {
            logs.Add(member, incarnation, LogLevel.Information, 0, line);
        }
    }
}

/// <summary>The logger of a child member: one line per event on standard error, for the parent to read.</summary>
public sealed class ChildLogs : ILoggerProvider
{
    private static readonly Lock Gate = new();

    public ILogger CreateLogger(string categoryName) => new Logger();

    public void Dispose()
    {
    }

    private sealed class Logger : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= RunLogs.MinimumLevel;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            var message = formatter(state, exception);
            if (exception is not null)
            {
                // As the in-process members' log says it (RunLogs), with where it was thrown: a child's failure must be diagnosable.
                message = $"{message} ({exception.GetType().Name}: {exception.Message} {exception.StackTrace?.Split('\n').FirstOrDefault()?.Trim()})";
            }

            message = message.ReplaceLineEndings(" ");
            lock (Gate)
            {
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"L|{logLevel}|{eventId.Id}|{message}"));
            }
        }
    }
}
