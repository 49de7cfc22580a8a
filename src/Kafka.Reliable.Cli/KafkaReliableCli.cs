using System.CommandLine;
using System.Text;
using Confluent.Kafka;

namespace Kafka.Reliable.Cli;

/// <summary>The <c>kafka-reliable</c> commands. Output goes to the given writers, so that tests can read it.</summary>
internal static class KafkaReliableCli
{
    /// <summary>The group of the tool's own readers (they assign partitions and never commit), which the brokers ask for.</summary>
    internal const string ReaderGroup = "kafka-reliable-cli";

    internal static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    /// <param name="args">The command line.</param>
    /// <param name="output">Where results go.</param>
    /// <param name="error">Where errors and warnings go.</param>
    /// <param name="cancellationToken">Cancelled on Ctrl+C.</param>
    /// <param name="interactive">Whether <paramref name="output"/> is a terminal (tables with borders, progress redrawn in place).</param>
    /// <returns>The exit code (<see cref="ExitCodes"/>).</returns>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken, bool interactive = false)
    {
        var cli = new CliContext(
            new Option<string>("--bootstrap-servers", "-b")
            {
                Description = "Kafka brokers, host:port[,host:port]",
                DefaultValueFactory = _ => "localhost:9092",
            },
            new Option<bool>("--json") { Description = "Print JSON instead of tables and progress", Recursive = true },
            output,
            error,
            new CliConsole(output, interactive));
        var root = new RootCommand("kafka-reliable: consumer lag, consumer groups, offset resets, dead-letter topics, retry tiers and an embedded Kafka broker.") { cli.Json };
        root.Subcommands.Add(LagCommand.Create(cli));
        root.Subcommands.Add(GroupCommands.Create(cli));
        root.Subcommands.Add(OffsetsResetCommand.Create(cli));
        root.Subcommands.Add(DeadLetterCommands.Create(cli));
        root.Subcommands.Add(RetryCommands.Create(cli));
        root.Subcommands.Add(EmbeddedCommand.Create(cli));

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var parseError in parse.Errors)
            {
                await error.WriteLineAsync(parseError.Message).ConfigureAwait(false);
            }

            await error.WriteLineAsync("Run kafka-reliable --help for the commands and their options.").ConfigureAwait(false);
            return ExitCodes.BadArguments;
        }

        try
        {
            // Hosts are resolved before a command builds a Kafka client (not for --help, nor for commands without brokers).
            if (parse.Action is not null && parse.Action == parse.CommandResult.Command.Action && parse.CommandResult.Command.Options.Contains(cli.Bootstrap))
            {
                await BootstrapServers.CheckAsync(parse.GetValue(cli.Bootstrap)!, error, cancellationToken).ConfigureAwait(false);
            }

            return await parse.InvokeAsync(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false }, cancellationToken).ConfigureAwait(false);
        }
        catch (CliException ex)
        {
            await error.WriteLineAsync(ex.Message).ConfigureAwait(false);
            return ex.ExitCode;
        }
        catch (KafkaException ex)
        {
            var unreachable = ex.Error.Code is ErrorCode.Local_Transport or ErrorCode.Local_AllBrokersDown or ErrorCode.Local_TimedOut or ErrorCode.Local_Resolve;
            await error.WriteLineAsync(unreachable
                ? $"Could not reach Kafka at {parse.GetValue(cli.Bootstrap)}: {ex.Error.Reason}. Check --bootstrap-servers."
                : $"Kafka error {ex.Error.Code}: {ex.Error.Reason}").ConfigureAwait(false);
            return unreachable ? ExitCodes.Unreachable : ExitCodes.KafkaError;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync("Cancelled.").ConfigureAwait(false);
            return ExitCodes.Cancelled;
        }
#pragma warning disable CA1031 // The tool's last line of defence: a message and an exit code, never a stack trace.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            await error.WriteLineAsync($"kafka-reliable failed unexpectedly ({ex.GetType().Name}: {ex.Message}). This is a defect of the tool: please report it with the command line.").ConfigureAwait(false);
            return ExitCodes.InternalError;
        }
    }

    /// <summary>A consumer that keeps librdkafka's own log lines (connection failures, retries) off the console: the tool reports errors itself.</summary>
    internal static IConsumer<TKey, TValue> Consumer<TKey, TValue>(ConsumerConfig config) =>
        new ConsumerBuilder<TKey, TValue>(config).SetLogHandler(static (_, _) => { }).Build();

    /// <summary>An admin client that keeps librdkafka's own log lines off the console.</summary>
    internal static IAdminClient Admin(string servers) =>
        new AdminClientBuilder(new AdminClientConfig { BootstrapServers = servers }).SetLogHandler(static (_, _) => { }).Build();

    /// <summary>A group's committed offset per partition; null where it has committed none.</summary>
    internal static Dictionary<TopicPartition, long?> CommittedOffsets(IConsumer<Ignore, Ignore> consumer, IEnumerable<TopicPartition> partitions) =>
        consumer.Committed(partitions, RequestTimeout).ToDictionary(c => c.TopicPartition, c => c.Offset.Value >= 0 ? c.Offset.Value : (long?)null);

    /// <summary>Every topic but Kafka's internal ones (<c>__consumer_offsets</c>, ...), with its partitions.</summary>
    internal static List<(string Topic, List<TopicPartition> Partitions)> AllTopics(string servers)
    {
        using var admin = Admin(servers);
        return admin.GetMetadata(RequestTimeout).Topics
            .Where(t => !t.Error.IsError && !t.Topic.StartsWith("__", StringComparison.Ordinal))
            .OrderBy(t => t.Topic, StringComparer.Ordinal)
            .Select(t => (t.Topic, t.Partitions.Select(p => new TopicPartition(t.Topic, p.PartitionId)).OrderBy(p => p.Partition.Value).ToList()))
            .ToList();
    }

    /// <summary>The topic's partitions; a <see cref="CliException"/> (exit code 4) when the topic does not exist.</summary>
    internal static List<TopicPartition> PartitionsOf(string servers, string topic)
    {
        using var admin = Admin(servers);
        // All topics' metadata, not the one topic's: asking for one topic can create it on a broker that auto-creates topics.
        var metadata = admin.GetMetadata(RequestTimeout).Topics.FirstOrDefault(t => t.Topic == topic);
        if (metadata is null || metadata.Error.IsError || metadata.Partitions.Count == 0)
        {
            throw new CliException(ExitCodes.NotFound, $"Topic '{topic}' was not found on {servers}.");
        }

        return metadata.Partitions.Select(p => new TopicPartition(topic, p.PartitionId)).OrderBy(p => p.Partition.Value).ToList();
    }

    /// <summary>The partition of the topic; a <see cref="CliException"/> (exit code 4) when the topic or the partition does not exist.</summary>
    internal static TopicPartition PartitionOf(string servers, string topic, int partition)
    {
        var all = PartitionsOf(servers, topic);
        return all.FirstOrDefault(p => p.Partition.Value == partition)
            ?? throw new CliException(ExitCodes.NotFound, $"Topic '{topic}' has no partition {partition} (it has {all.Count}: 0-{all.Count - 1}).");
    }

    /// <summary>Shows bytes as text when they are valid UTF-8, else as <c>base64:</c> and the base64 text.</summary>
    internal static string Text(byte[]? bytes)
    {
        if (bytes is null)
        {
            return "(null)";
        }

        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (ArgumentException)
        {
            return "base64:" + Convert.ToBase64String(bytes);
        }
    }
}

/// <summary>What every command shares: the global options and where output goes.</summary>
internal sealed record CliContext(Option<string> Bootstrap, Option<bool> Json, TextWriter Output, TextWriter Error, CliConsole Console)
{
    /// <summary>Adds <c>--bootstrap-servers</c> to a command that talks to Kafka (the tool resolves its hosts first).</summary>
    public Command WithBrokers(Command command)
    {
        command.Options.Add(Bootstrap);
        return command;
    }
}

/// <summary>A failure the tool reports with a message and an exit code, without a stack trace.</summary>
internal sealed class CliException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
