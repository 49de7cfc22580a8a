using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;

namespace Kafka.Reliable.Cli;

/// <summary><c>lag</c>: per partition, a group's committed offset, the high watermark and the lag.</summary>
internal static class LagCommand
{
    public static Command Create(CliContext cli)
    {
        var group = CliOptions.Text("--group", "Consumer group", required: true, "-g");
        var topics = new Option<string[]>("--topic", "-t") { Description = "Topic (repeat for several); by default every topic the group has committed offsets on", AllowMultipleArgumentsPerToken = true };
        var command = cli.WithBrokers(new Command("lag", "Per partition: the group's committed offset, the high watermark and the lag.") { group, topics });
        command.SetAction(async (parse, cancellationToken) =>
        {
            var servers = parse.GetValue(cli.Bootstrap)!;
            var named = parse.GetValue(topics) is { Length: > 0 } given ? given : null;
            var rows = new List<LagRow>();
            using var consumer = KafkaReliableCli.Consumer<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = servers, GroupId = parse.GetValue(group), EnableAutoCommit = false });

            // Without --topic, every topic's committed offsets are asked for (the embedded broker cannot list a group's
            // offsets), and the topics where the group has committed nothing are left out.
            var partitionsByTopic = named is null
                ? KafkaReliableCli.AllTopics(servers)
                : named.Select(topic => (Topic: topic, Partitions: KafkaReliableCli.PartitionsOf(servers, topic))).ToList();
            var committed = KafkaReliableCli.CommittedOffsets(consumer, partitionsByTopic.SelectMany(t => t.Partitions));
            foreach (var (topic, partitions) in partitionsByTopic)
            {
                if (named is null && partitions.All(p => committed[p] is null))
                {
                    continue;
                }

                foreach (var partition in partitions)
                {
                    var high = consumer.QueryWatermarkOffsets(partition, KafkaReliableCli.RequestTimeout).High.Value;
                    var offset = committed[partition];
                    rows.Add(new LagRow(topic, partition.Partition.Value, offset, high, offset is { } at ? Math.Max(0, high - at) : null));
                }
            }

            if (rows.All(r => r.Committed is null))
            {
                throw new CliException(ExitCodes.NotFound,
                    $"Group '{parse.GetValue(group)}' has no committed offset on {(named is null ? "any topic" : string.Join(", ", named.Select(t => $"'{t}'")))}: check --group (a group has lag only once it has committed).");
            }

            if (parse.GetValue(cli.Json))
            {
                await cli.Output.WriteLineAsync(JsonSerializer.Serialize(rows, CliJsonContext.Default.ListLagRow)).ConfigureAwait(false);
                return ExitCodes.Success;
            }

            await cli.Console.TableAsync(
                ["TOPIC", ">PARTITION", ">COMMITTED", ">HIGH", ">LAG"],
                rows.Select(r => new[] { r.Topic, Number(r.Partition), Number(r.Committed), Number(r.HighWatermark), Number(r.Lag) })).ConfigureAwait(false);
            await cli.Console.LineAsync($"total lag: {Number(rows.Sum(r => r.Lag ?? 0))}").ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    internal static string? Number(long? value) => value?.ToString(CultureInfo.InvariantCulture);
}

internal sealed record LagRow(string Topic, int Partition, long? Committed, long HighWatermark, long? Lag);
