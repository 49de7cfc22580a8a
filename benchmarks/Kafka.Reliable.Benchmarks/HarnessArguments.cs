using System.Globalization;

namespace Kafka.Reliable.Benchmarks;

/// <summary>Reads the harnesses' <c>--name value</c> arguments.</summary>
internal static class HarnessArguments
{
    public static int Option(string[] args, string name, int fallback)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? int.Parse(args[index + 1], CultureInfo.InvariantCulture) : fallback;
    }

    public static string? Text(string[] args, string name)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
    }

    public static bool Has(string[] args, string name) => Array.IndexOf(args, name) >= 0;
}
