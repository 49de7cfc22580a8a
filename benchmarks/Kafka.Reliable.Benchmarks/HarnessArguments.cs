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
}
