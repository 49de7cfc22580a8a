using System.Reflection;
using System.Runtime.InteropServices;

namespace Kafka.Reliable.Benchmarks;

/// <summary>What the harnesses share to prepare a run and to report it.</summary>
internal static class HarnessReport
{
    /// <summary>Gets the median of the values, or null when there are none.</summary>
    public static double? Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? null
            : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    /// <summary>Joins two notes of one run.</summary>
    public static string Join(string? first, string second) => first is null ? second : $"{first}; {second}";

    /// <summary>Gets an assembly's package version (its informational version without the commit), for the headers.</summary>
    public static string? VersionOf(Type type)
    {
        var version = type.Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? type.Assembly.GetName().Version?.ToString();
        return version?.Split('+')[0];
    }

    /// <summary>Collects the previous run's garbage before the next one starts (the runs share the process), not during it.</summary>
    public static void CollectGarbage()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    /// <summary>Prints the header lines every harness starts with: its title, the command to run it again, the process and the machine.</summary>
    public static void PrintCommand(string title, string mode, string[] args, string machineNote = "")
    {
        Console.WriteLine(title);
        Console.WriteLine($"  command:   dotnet run -c Release --project benchmarks/Kafka.Reliable.Benchmarks -- {mode} {string.Join(' ', args)}");
        Console.WriteLine($"  process:   {Environment.CommandLine}");
        Console.WriteLine($"  machine:   {Environment.ProcessorCount} logical processors, {RuntimeInformation.OSDescription} {RuntimeInformation.OSArchitecture}{machineNote}");
    }
}
