using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace Kafka.Reliable.Torture;

/// <summary>
/// One handler execution (one attempt) as the handler saw it. Times are UTC ticks of this machine's clock. <see cref="Tier"/> is
/// <see cref="MessageContext.RetryTier"/>: from 1 when the record is tried again from a retry tier.
/// </summary>
public sealed record Execution(int Member, long Epoch, int Partition, long Offset, string Key, int Attempt, long StartTicks, int Tier = 0)
{
    /// <summary>Gets when the attempt ended; 0 while it runs (or if its process was killed).</summary>
    public long EndTicks { get; set; }

    /// <summary>Gets whether the attempt succeeded: the handler's effect happened.</summary>
    public bool Succeeded { get; set; }
}

/// <summary>
/// Every handler execution of a run. A member in this process writes to it directly; a member in a child process appends
/// lines to a file (each line one <c>write</c>, so a SIGKILL loses nothing written), which the run reads back at the end.
/// </summary>
public sealed class Journal : IDisposable
{
    private readonly ConcurrentQueue<Execution> _executions = new();
    private readonly StreamWriter? _file;
    private readonly Lock _fileLock = new();

    public Journal(string? path = null)
    {
        if (path is not null)
        {
            _file = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite), Encoding.UTF8) { AutoFlush = true };
        }
    }

    public IReadOnlyCollection<Execution> Executions => _executions;

    public Execution Start(int member, long epoch, int partition, long offset, string key, int attempt, int tier = 0)
    {
        var execution = new Execution(member, epoch, partition, offset, key, attempt, DateTime.UtcNow.Ticks, tier);
        _executions.Enqueue(execution);
        if (_file is not null)
        {
            // The tier last: a start line has 9 fields, an end line 8.
            Write(string.Create(CultureInfo.InvariantCulture, $"S|{member}|{epoch}|{partition}|{offset}|{key}|{attempt}|{execution.StartTicks}|{tier}"));
        }

        return execution;
    }

    /// <summary>Ends an execution, now or (for a handler whose deferred effect was dropped) when its handler returned.</summary>
    public void End(Execution execution, bool succeeded, long? atTicks = null)
    {
        execution.Succeeded = succeeded;
        execution.EndTicks = atTicks ?? DateTime.UtcNow.Ticks;
        if (_file is not null)
        {
            Write(string.Create(CultureInfo.InvariantCulture, $"E|{execution.Member}|{execution.Epoch}|{execution.Partition}|{execution.Offset}|{execution.Attempt}|{(succeeded ? 1 : 0)}|{execution.EndTicks}"));
        }
    }

    /// <summary>Reads what a child process wrote, into this journal.</summary>
    public void Load(string path)
    {
        if (!File.Exists(path))
        {
            return;
        }

        var open = new Dictionary<(int, long, int, long, int), Execution>();
        using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
        while (reader.ReadLine() is { } line)
        {
            var f = line.Split('|');
            if (f.Length != (f[0] == "S" ? 9 : 8))
            {
                continue; // a line cut by the kill
            }

            // A line can be cut by a kill, or read while it is being written: skip what does not parse.
            if (!int.TryParse(f[1], CultureInfo.InvariantCulture, out var member)
                || !long.TryParse(f[2], CultureInfo.InvariantCulture, out var epoch)
                || !int.TryParse(f[3], CultureInfo.InvariantCulture, out var partition)
                || !long.TryParse(f[4], CultureInfo.InvariantCulture, out var offset)
                || !long.TryParse(f[7], CultureInfo.InvariantCulture, out var ticks))
            {
                continue;
            }

            if (f[0] == "S" && int.TryParse(f[6], CultureInfo.InvariantCulture, out var attempt) && int.TryParse(f[8], CultureInfo.InvariantCulture, out var tier))
            {
                var execution = new Execution(member, epoch, partition, offset, f[5], attempt, ticks, tier);
                open[(member, epoch, partition, offset, attempt)] = execution;
                _executions.Enqueue(execution);
            }
            else if (f[0] == "E" && int.TryParse(f[5], CultureInfo.InvariantCulture, out var ended) && open.Remove((member, epoch, partition, offset, ended), out var started))
            {
                started.Succeeded = f[6] == "1";
                started.EndTicks = ticks;
            }
        }
    }

    public void Dispose() => _file?.Dispose();

    private void Write(string line)
    {
        lock (_fileLock)
        {
            _file!.WriteLine(line);
        }
    }
}
