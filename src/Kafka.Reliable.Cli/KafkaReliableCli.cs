using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Kafka.Reliable.Testing;

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
    /// <param name="interactive">Whether <paramref name="output"/> is a terminal (progress bars are redrawn in place).</param>
    /// <returns>The exit code (<see cref="ExitCodes"/>).</returns>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken, bool interactive = false)
    {
        var bootstrap = new Option<string>("--bootstrap-servers", "-b")
        {
            Description = "Kafka brokers, host:port[,host:port]",
            DefaultValueFactory = _ => "localhost:9092",
            Recursive = true,
        };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table", Recursive = true };
        var root = new RootCommand("kafka-reliable: consumer lag, offset resets, dead-letter topics and an embedded Kafka broker.") { bootstrap, json };
        root.Subcommands.Add(LagCommand(bootstrap, json, output));
        root.Subcommands.Add(OffsetsResetCommand.Create(bootstrap, json, output, error));
        root.Subcommands.Add(DeadLetterCommand(bootstrap, json, output, interactive));
        root.Subcommands.Add(EmbeddedCommand(output));

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
                ? $"Could not reach Kafka at {parse.GetValue(bootstrap)}: {ex.Error.Reason}. Check --bootstrap-servers."
                : $"Kafka error {ex.Error.Code}: {ex.Error.Reason}").ConfigureAwait(false);
            return unreachable ? ExitCodes.Unreachable : ExitCodes.KafkaError;
        }
    }

    private static Command LagCommand(Option<string> bootstrap, Option<bool> json, TextWriter output)
    {
        var group = new Option<string>("--group", "-g") { Description = "Consumer group", Required = true };
        var topics = new Option<string[]>("--topic", "-t") { Description = "Topic (repeat for several); by default every topic the group has committed offsets on", AllowMultipleArgumentsPerToken = true };
        var command = new Command("lag", "Per partition: the group's committed offset, the high watermark and the lag.") { group, topics };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var servers = parse.GetValue(bootstrap)!;
            var named = parse.GetValue(topics) is { Length: > 0 } given ? given : null;
            var rows = new List<LagRow>();
            using var consumer = Consumer<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = servers, GroupId = parse.GetValue(group), EnableAutoCommit = false });

            // Without --topic, every topic's committed offsets are asked for (the embedded broker cannot list a group's
            // offsets), and the topics where the group has committed nothing are left out.
            var partitionsByTopic = named is null
                ? AllTopics(servers)
                : named.Select(topic => (Topic: topic, Partitions: PartitionsOf(servers, topic))).ToList();
            var committed = CommittedOffsets(consumer, partitionsByTopic.SelectMany(t => t.Partitions));
            foreach (var (topic, partitions) in partitionsByTopic)
            {
                if (named is null && partitions.All(p => committed[p] is null))
                {
                    continue;
                }

                foreach (var partition in partitions)
                {
                    var high = consumer.QueryWatermarkOffsets(partition, RequestTimeout).High.Value;
                    var offset = committed[partition];
                    rows.Add(new LagRow(topic, partition.Partition.Value, offset, high, offset is { } at ? Math.Max(0, high - at) : null));
                }
            }

            if (rows.All(r => r.Committed is null))
            {
                throw new CliException(ExitCodes.NotFound,
                    $"Group '{parse.GetValue(group)}' has no committed offset on {(named is null ? "any topic" : string.Join(", ", named.Select(t => $"'{t}'")))}: check --group (a group has lag only once it has committed).");
            }

            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(rows, CliJsonContext.Default.ListLagRow)).ConfigureAwait(false);
            }
            else
            {
                await output.WriteLineAsync($"{"TOPIC",-40} {"PARTITION",9} {"COMMITTED",12} {"HIGH",12} {"LAG",10}").ConfigureAwait(false);
                foreach (var row in rows)
                {
                    await output.WriteLineAsync($"{row.Topic,-40} {row.Partition,9} {row.Committed?.ToString(CultureInfo.InvariantCulture) ?? "-",12} {row.HighWatermark,12} {row.Lag?.ToString(CultureInfo.InvariantCulture) ?? "-",10}").ConfigureAwait(false);
                }

                await output.WriteLineAsync($"total lag: {rows.Sum(r => r.Lag ?? 0)}").ConfigureAwait(false);
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command DeadLetterCommand(Option<string> bootstrap, Option<bool> json, TextWriter output, bool interactive)
    {
        var topic = new Option<string>("--topic", "-t") { Description = "The dead-letter topic, for example orders.dlq", Required = true };
        var originalTopic = new Option<string?>("--original-topic") { Description = "Only records that came from this topic" };
        var exceptionType = new Option<string?>("--exception-type") { Description = "Only records that failed with this exception type (full name)" };
        var key = new Option<string?>("--key") { Description = "Only records with this key (UTF-8)" };
        var from = new Option<DateTimeOffset?>("--from") { Description = "Only records dead-lettered at or after this time (ISO 8601)" };
        var to = new Option<DateTimeOffset?>("--to") { Description = "Only records dead-lettered before this time (ISO 8601)" };

        var limit = new Option<int>("--limit") { Description = "The most records to list", DefaultValueFactory = _ => 100 };
        var list = new Command("list", "Lists dead-lettered records with their provenance.") { topic, originalTopic, exceptionType, key, from, to, limit };
        list.SetAction(async (parse, cancellationToken) =>
        {
            var filter = Filter(parse, originalTopic, exceptionType, key, from, to);
            var records = ReadDeadLetters(parse.GetValue(bootstrap)!, parse.GetValue(topic)!, cancellationToken)
                .Where(r => filter(r)).Take(parse.GetValue(limit)).Select(Describe).ToList();
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(records, CliJsonContext.Default.ListDeadLetterRow)).ConfigureAwait(false);
                return ExitCodes.Success;
            }

            await output.WriteLineAsync($"{"PARTITION@OFFSET",-18} {"FROM",-40} {"STAGE",-11} {"EXCEPTION",-40} MESSAGE").ConfigureAwait(false);
            foreach (var record in records)
            {
                await output.WriteLineAsync($"{$"{record.Partition}@{record.Offset}",-18} {$"{record.OriginalTopic}[{record.OriginalPartition}]@{record.OriginalOffset}",-40} {record.Stage,-11} {record.ExceptionType,-40} {Shorten(record.ExceptionMessage, 80)}").ConfigureAwait(false);
            }

            await output.WriteLineAsync($"{records.Count} record(s)").ConfigureAwait(false);
            return ExitCodes.Success;
        });

        var partition = new Option<int>("--partition", "-p") { Description = "The dead-letter record's partition", Required = true };
        var offset = new Option<long>("--offset", "-o") { Description = "The dead-letter record's offset", Required = true };
        var show = new Command("show", "Shows one dead-lettered record: every header, the key and the value.") { topic, partition, offset };
        show.SetAction(async (parse, cancellationToken) =>
        {
            var record = ReadOne(parse.GetValue(bootstrap)!, parse.GetValue(topic)!, parse.GetValue(partition), parse.GetValue(offset));
            await output.WriteLineAsync($"{record.Topic}[{record.Partition.Value}]@{record.Offset.Value}  {record.Message.Timestamp.UtcDateTime:O}").ConfigureAwait(false);
            foreach (var header in record.Message.Headers ?? [])
            {
                await output.WriteLineAsync($"  {header.Key}: {Text(header.GetValueBytes())}").ConfigureAwait(false);
            }

            await output.WriteLineAsync($"key:   {Text(record.Message.Key)}").ConfigureAwait(false);
            await output.WriteLineAsync($"value: {Text(record.Message.Value)}").ConfigureAwait(false);
            return ExitCodes.Success;
        });

        var target = new Option<string?>("--target-topic") { Description = "Republish here instead of each record's original topic" };
        var rate = new Option<int>("--rate") { Description = "The most records republished per second", DefaultValueFactory = _ => 100 };
        var max = new Option<long?>("--max") { Description = "Stop after this many records; run again to resume" };
        var group = new Option<string?>("--group", "-g") { Description = "The replay's consumer group (its progress); by default derived from the request" };
        var replay = new Command("replay", "Republishes dead-lettered records to their original topic, resumably.") { topic, originalTopic, exceptionType, key, from, to, target, rate, max, group };
        replay.SetAction(async (parse, cancellationToken) =>
        {
            var options = new DeadLetterReplayOptions
            {
                BootstrapServers = parse.GetValue(bootstrap)!,
                DeadLetterTopic = parse.GetValue(topic)!,
                OriginalTopic = parse.GetValue(originalTopic),
                ExceptionType = parse.GetValue(exceptionType),
                Key = parse.GetValue(key),
                From = parse.GetValue(from),
                To = parse.GetValue(to),
                TargetTopic = parse.GetValue(target),
                MaxRecordsPerSecond = parse.GetValue(rate),
                MaxRecords = parse.GetValue(max),
                GroupId = parse.GetValue(group),
            };
            DeadLetterReplayer replayer;
            try
            {
                replayer = new DeadLetterReplayer(options);
            }
            catch (ArgumentException ex)
            {
                throw new CliException(ExitCodes.BadArguments, ex.Message);
            }

            var progress = new ProgressBar(output, interactive);
            DeadLetterReplayProgress result;
            try
            {
                result = await replayer.ReplayAsync(progress, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                progress.Finish();
            }

            await output.WriteLineAsync(result.Completed
                ? $"done: {result.Replayed} replayed, {result.Skipped} skipped (group {replayer.GroupId})"
                : $"stopped: {result.Replayed} replayed, {result.Skipped} skipped; run again to resume (group {replayer.GroupId})").ConfigureAwait(false);
            return ExitCodes.Success;
        });

        return new Command("dlq", "Dead-letter topics: list, show, replay.") { list, show, replay };
    }

    private static Command EmbeddedCommand(TextWriter output)
    {
        var brokers = new Option<int>("--brokers") { Description = "Number of brokers", DefaultValueFactory = _ => 1 };
        var topics = new Option<string[]>("--topic", "-t") { Description = "Topics to create, as name or name:partitions", AllowMultipleArgumentsPerToken = true };
        var command = new Command("embedded", "Starts an in-process Kafka broker (librdkafka's mock cluster) until Ctrl+C, for trying things locally.") { brokers, topics };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var cluster = EmbeddedKafkaCluster.Start(parse.GetValue(brokers));
            foreach (var spec in parse.GetValue(topics) ?? [])
            {
                var parts = spec.Split(':');
                cluster.CreateTopic(parts[0], parts.Length > 1 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : 1);
            }

            await output.WriteLineAsync(cluster.BootstrapServers).ConfigureAwait(false);
            await output.FlushAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C: stop the broker.
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Func<ConsumeResult<byte[]?, byte[]?>, bool> Filter(
        ParseResult parse, Option<string?> originalTopic, Option<string?> exceptionType, Option<string?> key, Option<DateTimeOffset?> from, Option<DateTimeOffset?> to)
    {
        var (topic, type, wantedKey, since, until) = (parse.GetValue(originalTopic), parse.GetValue(exceptionType), parse.GetValue(key), parse.GetValue(from), parse.GetValue(to));
        return record =>
            (topic is null || Header(record, DeadLetterHeaders.OriginalTopic) == topic)
            && (type is null || Header(record, DeadLetterHeaders.ExceptionType) == type)
            && (wantedKey is null || (record.Message.Key is { } k && Encoding.UTF8.GetString(k) == wantedKey))
            && (since is null || record.Message.Timestamp.UnixTimestampMs >= since.Value.ToUnixTimeMilliseconds())
            && (until is null || record.Message.Timestamp.UnixTimestampMs < until.Value.ToUnixTimeMilliseconds());
    }

    /// <summary>Reads a dead-letter topic from its beginning up to the end offsets found at start, without a consumer group.</summary>
    private static IEnumerable<ConsumeResult<byte[]?, byte[]?>> ReadDeadLetters(string servers, string topic, CancellationToken cancellationToken)
    {
        var partitions = PartitionsOf(servers, topic);
        using var consumer = Consumer<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = servers,
            GroupId = ReaderGroup,
            EnableAutoCommit = false,
            EnablePartitionEof = true,
        });
        var ends = partitions.ToDictionary(p => p.Partition.Value, p => consumer.QueryWatermarkOffsets(p, RequestTimeout).High.Value);
        var remaining = ends.Count(e => e.Value > 0);
        var finished = new HashSet<int>();
        consumer.Assign(partitions.Where(p => ends[p.Partition.Value] > 0).Select(p => new TopicPartitionOffset(p, Offset.Beginning)));
        while (remaining > 0 && !cancellationToken.IsCancellationRequested)
        {
            var record = consumer.Consume(TimeSpan.FromMilliseconds(500));
            if (record is null)
            {
                continue;
            }

            // The last record and the end-of-partition event after it both say a partition is done: count it once.
            if ((record.IsPartitionEOF || record.Offset.Value >= ends[record.Partition.Value] - 1) && finished.Add(record.Partition.Value))
            {
                remaining--;
            }

            if (!record.IsPartitionEOF && record.Offset.Value < ends[record.Partition.Value])
            {
                yield return record;
            }
        }
    }

    private static ConsumeResult<byte[]?, byte[]?> ReadOne(string servers, string topic, int partition, long offset)
    {
        PartitionsOf(servers, topic);
        using var consumer = Consumer<byte[]?, byte[]?>(new ConsumerConfig { BootstrapServers = servers, GroupId = ReaderGroup, EnableAutoCommit = false });
        var high = consumer.QueryWatermarkOffsets(new TopicPartition(topic, partition), RequestTimeout).High.Value;
        if (offset >= high)
        {
            throw new CliException(ExitCodes.NotFound, $"{topic}[{partition}] has no record at offset {offset} (its high watermark is {high}).");
        }

        consumer.Assign(new TopicPartitionOffset(topic, partition, offset));
        return consumer.Consume(RequestTimeout) ?? throw new CliException(ExitCodes.NotFound, $"{topic}[{partition}]@{offset} could not be read within {RequestTimeout}.");
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
    private static List<(string Topic, List<TopicPartition> Partitions)> AllTopics(string servers)
    {
        using var admin = Admin(servers);
        return admin.GetMetadata(RequestTimeout).Topics
            .Where(t => !t.Error.IsError && !t.Topic.StartsWith("__", StringComparison.Ordinal))
            .OrderBy(t => t.Topic, StringComparer.Ordinal)
            .Select(t => (t.Topic, t.Partitions.Select(p => new TopicPartition(t.Topic, p.PartitionId)).OrderBy(p => p.Partition.Value).ToList()))
            .ToList();
    }

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

    private static DeadLetterRow Describe(ConsumeResult<byte[]?, byte[]?> record) => new(
        record.Partition.Value,
        record.Offset.Value,
        Header(record, DeadLetterHeaders.OriginalTopic),
        Header(record, DeadLetterHeaders.OriginalPartition),
        Header(record, DeadLetterHeaders.OriginalOffset),
        Header(record, DeadLetterHeaders.FailureStage),
        Header(record, DeadLetterHeaders.ExceptionType),
        Header(record, DeadLetterHeaders.ExceptionMessage),
        Header(record, DeadLetterHeaders.Attempts),
        record.Message.Key is { } key ? Text(key) : null,
        record.Message.Timestamp.UtcDateTime);

    private static string? Header(ConsumeResult<byte[]?, byte[]?> record, string name) =>
        record.Message.Headers is { } headers && headers.TryGetLastBytes(name, out var value) ? Encoding.UTF8.GetString(value) : null;

    /// <summary>Shows bytes as text when they are valid UTF-8, else as base64.</summary>
    private static string Text(byte[]? bytes)
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

    private static string? Shorten(string? text, int length) => text is null || text.Length <= length ? text : text[..(length - 3)] + "...";
}

/// <summary>A failure the tool reports with a message and an exit code, without a stack trace.</summary>
internal sealed class CliException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

internal sealed record LagRow(string Topic, int Partition, long? Committed, long HighWatermark, long? Lag);

internal sealed record DeadLetterRow(
    int Partition, long Offset, string? OriginalTopic, string? OriginalPartition, string? OriginalOffset, string? Stage,
    string? ExceptionType, string? ExceptionMessage, string? Attempts, string? Key, DateTime Timestamp);

[System.Text.Json.Serialization.JsonSerializable(typeof(List<LagRow>))]
[System.Text.Json.Serialization.JsonSerializable(typeof(List<DeadLetterRow>))]
[System.Text.Json.Serialization.JsonSerializable(typeof(OffsetResetReport))]
internal sealed partial class CliJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
