using Spectre.Console;
using Spectre.Console.Rendering;

namespace Kafka.Reliable.Cli;

/// <summary>
/// Where a command's results go. On a terminal, tables have borders and fit the window (long names wrap inside their
/// cell); redirected (a file, a pipe, the tests), the same tables are plain aligned columns without borders, colours or
/// trailing spaces, as wide as their content, so that a long topic name never breaks a row.
/// </summary>
internal sealed class CliConsole
{
    private readonly TextWriter _writer;

    public CliConsole(TextWriter writer, bool interactive)
    {
        _writer = writer;
        Interactive = interactive;
        Console = Create(writer, interactive);
    }

    /// <summary>Gets a value indicating whether the output is a terminal.</summary>
    public bool Interactive { get; }

    /// <summary>Gets the Spectre console writing to the output.</summary>
    public IAnsiConsole Console { get; }

    /// <summary>Writes a table: <paramref name="columns"/> are the headers, a header starting with '>' is right-aligned (numbers).</summary>
    public async Task TableAsync(IReadOnlyList<string> columns, IEnumerable<IReadOnlyList<string?>> rows)
    {
        var table = new Table();
        foreach (var column in columns)
        {
            var right = column.StartsWith('>');
            var name = right ? column[1..] : column;
            table.AddColumn(new TableColumn(Interactive ? new Text(name, new Style(decoration: Decoration.Bold)) : new Text(name)) { Alignment = right ? Justify.Right : Justify.Left });
        }

        foreach (var row in rows)
        {
            table.AddRow(row.Select(cell => (IRenderable)new Text(cell ?? "-")));
        }

        if (Interactive)
        {
            table.Border(TableBorder.Rounded);
            Console.Write(table);
            return;
        }

        // Two spaces between columns, none before the first or after the last.
        table.Border(TableBorder.None);
        foreach (var column in table.Columns)
        {
            column.Padding = new Padding(0, 0, column == table.Columns[^1] ? 0 : 2, 0);
        }

        await PlainAsync(table).ConfigureAwait(false);
    }

    /// <summary>Writes one line of text as it is.</summary>
    public Task LineAsync(string text) => _writer.WriteLineAsync(text);

    /// <summary>Renders without borders to a wide, colourless console and writes the lines without their trailing spaces.</summary>
    private async Task PlainAsync(IRenderable renderable)
    {
        using var buffer = new StringWriter();
        Create(buffer, interactive: false).Write(renderable);
        foreach (var line in buffer.ToString().Split('\n'))
        {
            var trimmed = line.TrimEnd();
            if (trimmed.Length > 0)
            {
                await _writer.WriteLineAsync(trimmed).ConfigureAwait(false);
            }
        }
    }

    private static IAnsiConsole Create(TextWriter writer, bool interactive)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        if (!interactive)
        {
            // Not the 80 columns Spectre assumes without a terminal: a table is as wide as its content, never wrapped.
            console.Profile.Width = 4096;
        }

        return console;
    }
}
