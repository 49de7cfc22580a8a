using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Kafka.Reliable.Cli;

/// <summary>
/// Options whose values are checked while the command line is parsed: a bad value ends the tool with exit code 1 and a
/// message that names the option, the value and what it expects (never a CLR type name or an exception).
/// </summary>
internal static class CliOptions
{
    public const string TimeFormat = "an ISO 8601 time such as 2026-11-23T08:00:00Z (UTC) or 2026-11-23T09:00:00+01:00";

    /// <summary>A whole number from <paramref name="min"/> to <paramref name="max"/>.</summary>
    public static Option<int> Int(string name, string description, int min, int max, int? defaultValue = null, bool required = false, params string[] aliases)
    {
        var option = new Option<int>(name, aliases)
        {
            Description = description,
            Required = required,
            CustomParser = result => (int)ParseLong(result, name, min, max),
        };
        if (defaultValue is { } value)
        {
            option.DefaultValueFactory = _ => value;
        }

        return option;
    }

    /// <summary>A whole number from <paramref name="min"/> to <paramref name="max"/>, or nothing when the option is not given.</summary>
    public static Option<long?> Long(string name, string description, long min, long max, bool required = false, params string[] aliases) => new(name, aliases)
    {
        Description = description,
        Required = required,
        CustomParser = result => ParseLong(result, name, min, max),
    };

    /// <summary>Whole numbers from <paramref name="min"/> to <paramref name="max"/>; the option may be repeated.</summary>
    public static Option<int[]> Ints(string name, string description, int min, int max, params string[] aliases) => new(name, aliases)
    {
        Description = description,
        AllowMultipleArgumentsPerToken = true,
        CustomParser = result => [.. result.Tokens.Select(token => (int)ParseLong(result, name, token.Value, min, max))],
    };

    /// <summary>A time (<see cref="TimeFormat"/>); without an offset it is UTC.</summary>
    public static Option<DateTimeOffset?> Time(string name, string description) => new(name)
    {
        Description = description,
        CustomParser = result =>
        {
            var text = result.Tokens.Single().Value;
            if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AllowWhiteSpaces, out var time))
            {
                return time;
            }

            result.AddError($"{name} expects {TimeFormat}, not '{text}'.");
            return null;
        },
    };

    /// <summary>Text that is not empty.</summary>
    public static Option<string> Text(string name, string description, bool required = false, params string[] aliases) => new(name, aliases)
    {
        Description = description,
        Required = required,
        CustomParser = result =>
        {
            var text = result.Tokens.Single().Value;
            if (string.IsNullOrWhiteSpace(text))
            {
                result.AddError($"{name} expects a value, not an empty one.");
            }

            return text;
        },
    };

    private static long ParseLong(ArgumentResult result, string name, long min, long max) => ParseLong(result, name, result.Tokens.Single().Value, min, max);

    private static long ParseLong(ArgumentResult result, string name, string text, long min, long max)
    {
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
        {
            return value;
        }

        result.AddError($"{name} expects a whole number{Range(min, max)}, not '{text}'.");
        return 0;
    }

    private static string Range(long min, long max) => (min, max) switch
    {
        (long.MinValue, long.MaxValue) => string.Empty,
        (_, long.MaxValue or int.MaxValue) => string.Create(CultureInfo.InvariantCulture, $" of at least {min}"),
        _ => string.Create(CultureInfo.InvariantCulture, $" from {min} to {max}"),
    };
}
