namespace Kafka.Reliable.Cli.Tests;

/// <summary>Runs the tool in-process and keeps what it printed.</summary>
internal static class Cli
{
    public static async Task<(int Code, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await KafkaReliableCli.RunAsync(args, output, error, TestContext.Current.CancellationToken);
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>Fails when the text holds a .NET stack trace (lines starting with "   at ").</summary>
    public static void AssertNoStackTrace(string text) =>
        Assert.False(text.Contains("   at ", StringComparison.Ordinal), $"expected a message without a stack trace, got:{Environment.NewLine}{text}");
}
