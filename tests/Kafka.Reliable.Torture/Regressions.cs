using System.Text.Json;

namespace Kafka.Reliable.Torture;

/// <summary>
/// A configuration that once broke an invariant, kept with what it found. Seeds name configurations only as long as
/// <see cref="TortureConfig.Draw"/> stays the same, and every new axis changes it; a regression case keeps the drawn
/// configuration itself (its records follow from it), so CI replays exactly the run that failed, whatever Draw becomes.
/// The files live in <c>tests/Kafka.Reliable.Torture/Regressions</c>.
/// </summary>
public sealed record RegressionCase(string Found, TortureConfig Config)
{
    private static readonly JsonSerializerOptions Json = new(TortureConfig.Json) { WriteIndented = true };

    /// <summary>Gets the name of the case: its file name without the extension.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string Name { get; init; } = string.Empty;

    /// <summary>Where the cases are copied next to the harness's assembly.</summary>
    public static string Folder => Path.Combine(AppContext.BaseDirectory, "Regressions");

    /// <summary>The names of the cases in <see cref="Folder"/>, in order.</summary>
    public static IReadOnlyList<string> Names() =>
        [.. Directory.EnumerateFiles(Folder, "*.json").Select(Path.GetFileNameWithoutExtension).OfType<string>().Order(StringComparer.Ordinal)];

    /// <summary>Reads a case from a file path, or by name from <see cref="Folder"/>.</summary>
    public static RegressionCase Load(string pathOrName)
    {
        var path = File.Exists(pathOrName) ? pathOrName : Path.Combine(Folder, pathOrName + ".json");
        var found = JsonSerializer.Deserialize<RegressionCase>(File.ReadAllText(path), Json)
            ?? throw new InvalidDataException($"{path} is not a regression case");
        return found with { Name = Path.GetFileNameWithoutExtension(path) };
    }

    /// <summary>The text of a case file for a configuration, to save a failure found by the soak.</summary>
    public static string ToFile(string found, TortureConfig config) => JsonSerializer.Serialize(new RegressionCase(found, config), Json);
}
