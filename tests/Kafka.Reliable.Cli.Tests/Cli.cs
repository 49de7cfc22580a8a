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
}
