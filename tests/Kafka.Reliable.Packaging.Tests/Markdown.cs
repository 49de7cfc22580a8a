namespace Kafka.Reliable.Packaging.Tests;

/// <summary>
/// Reads the code blocks that the docs mark with <c>&lt;!-- snippet: name --&gt;</c> on the line before them, so that the tests
/// build exactly what the docs show.
/// </summary>
internal sealed class Markdown(string path, string text)
{
    public string Path { get; } = path;

    public string Text { get; } = text;

    public static Markdown Read(string path) => new(path, File.ReadAllText(path));

    /// <summary>Gets the content of the fenced code block right after the marker.</summary>
    public string Snippet(string name)
    {
        var marker = $"<!-- snippet: {name} -->";
        var at = Text.IndexOf(marker, StringComparison.Ordinal);
        Assert.True(at >= 0, $"{Path} has no '{marker}' before a code block: the test builds that snippet.");
        Assert.True(Text.IndexOf(marker, at + marker.Length, StringComparison.Ordinal) < 0, $"{Path} has '{marker}' twice.");

        var lines = Text[(at + marker.Length)..].ReplaceLineEndings("\n").Split('\n');
        var first = Array.FindIndex(lines, static l => l.Length > 0);
        Assert.True(first >= 0 && lines[first].StartsWith("```", StringComparison.Ordinal), $"{Path}: '{marker}' must be followed by a fenced code block.");
        var end = Array.FindIndex(lines, first + 1, static l => l.StartsWith("```", StringComparison.Ordinal));
        Assert.True(end > first, $"{Path}: the code block after '{marker}' is not closed.");
        return string.Join('\n', lines[(first + 1)..end]) + "\n";
    }

    /// <summary>Gets the commands of a shell snippet: one a line, comments and blank lines left out.</summary>
    public IReadOnlyList<string> Commands(string name) =>
        Snippet(name).Split('\n')
            .Select(static line => (line.IndexOf('#', StringComparison.Ordinal) is var hash and >= 0 ? line[..hash] : line).Trim())
            .Where(static line => line.Length > 0)
            .ToList();
}
