using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Kafka.Reliable.Testing;

namespace Kafka.Reliable.Cli;

/// <summary><c>embedded</c>: an in-process Kafka broker (librdkafka's mock cluster) until Ctrl+C.</summary>
internal static class EmbeddedCommand
{
    /// <summary>The most partitions <c>--topic name:partitions</c> creates.</summary>
    internal const int MaxPartitions = 1000;

    /// <summary>Kafka's longest topic name.</summary>
    private const int MaxTopicLength = 249;

    public static Command Create(CliContext cli)
    {
        var brokers = CliOptions.Int("--brokers", "Number of brokers", 1, EmbeddedKafkaClusterOptions.MaxBrokerCount, defaultValue: 1);
        var topics = new Option<TopicSpec[]>("--topic", "-t")
        {
            Description = $"Topics to create, as name or name:partitions (1 to {MaxPartitions}); repeat for several",
            AllowMultipleArgumentsPerToken = true,
            CustomParser = result =>
            {
                var specs = new List<TopicSpec>();
                foreach (var token in result.Tokens)
                {
                    if (Parse(token.Value, out var spec, out var problem))
                    {
                        if (specs.Any(s => s.Name == spec.Name))
                        {
                            result.AddError($"--topic names '{spec.Name}' more than once.");
                        }

                        specs.Add(spec);
                    }
                    else
                    {
                        result.AddError(problem);
                    }
                }

                return [.. specs];
            },
        };
        var command = new Command("embedded", "Starts an in-process Kafka broker (librdkafka's mock cluster) until Ctrl+C, for trying things locally.") { brokers, topics };
        command.SetAction(async (parse, cancellationToken) =>
        {
            EmbeddedKafkaCluster cluster;
            var created = parse.GetValue(topics) ?? [];
            try
            {
                cluster = EmbeddedKafkaCluster.Start(parse.GetValue(brokers));
            }
            catch (InvalidOperationException ex)
            {
                throw new CliException(ExitCodes.KafkaError, $"The embedded broker could not start: {ex.Message}");
            }

            using (cluster)
            {
                foreach (var spec in created)
                {
                    try
                    {
                        cluster.CreateTopic(spec.Name, spec.Partitions);
                    }
                    catch (InvalidOperationException ex)
                    {
                        throw new CliException(ExitCodes.KafkaError, $"The embedded broker could not create topic '{spec.Name}': {ex.Message}");
                    }
                }

                await cli.Output.WriteLineAsync(parse.GetValue(cli.Json)
                    ? JsonSerializer.Serialize(new EmbeddedReport(cluster.BootstrapServers, [.. created]), CliJsonContext.Default.EmbeddedReport)
                    : cluster.BootstrapServers).ConfigureAwait(false);
                await cli.Output.FlushAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // Ctrl+C: stop the broker.
                }
            }

            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>Reads <c>name</c> or <c>name:partitions</c>.</summary>
    internal static bool Parse(string text, out TopicSpec spec, out string problem)
    {
        spec = default!;
        var colon = text.LastIndexOf(':');
        var name = colon < 0 ? text : text[..colon];
        var partitions = 1;
        if (colon >= 0 && !(int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out partitions) && partitions is >= 1 and <= MaxPartitions))
        {
            problem = $"--topic '{text}': the partition count after ':' must be a whole number from 1 to {MaxPartitions}, not '{text[(colon + 1)..]}'.";
            return false;
        }

        if (name.Length is 0 or > MaxTopicLength || name is "." or ".." || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
        {
            problem = $"--topic '{text}': a topic name is 1 to {MaxTopicLength} of the characters a-z, A-Z, 0-9, '.', '_' and '-' (and not '.' or '..').";
            return false;
        }

        problem = string.Empty;
        spec = new TopicSpec(name, partitions);
        return true;
    }
}

internal sealed record TopicSpec(string Name, int Partitions);

internal sealed record EmbeddedReport(string BootstrapServers, List<TopicSpec> Topics);
