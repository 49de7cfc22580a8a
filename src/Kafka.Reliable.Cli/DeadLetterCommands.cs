using Kafka.Reliable.DeadLetter;
using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;

namespace Kafka.Reliable.Cli;

/// <summary><c>dlq list</c>, <c>dlq show</c>, <c>dlq replay</c>: dead-letter topics.</summary>
internal static class DeadLetterCommands
{
    public static Command Create(CliContext cli)
    {
        var topic = CliOptions.Text("--topic", "The dead-letter topic, for example orders.dlq", required: true, "-t");
        var originalTopic = new Option<string?>("--original-topic") { Description = "Only records that came from this topic" };
        var exceptionType = new Option<string?>("--exception-type") { Description = "Only records that failed with this exception type (full name)" };
        var key = new Option<string?>("--key") { Description = "Only records with this key (UTF-8)" };
        var from = CliOptions.Time("--from", $"Only records dead-lettered at or after this time ({CliOptions.TimeFormat})");
        var to = CliOptions.Time("--to", "Only records dead-lettered before this time (ISO 8601)");
        var filter = new DeadLetterFilter(originalTopic, exceptionType, key, from, to);

        var limit = CliOptions.Int("--limit", "The most records to list", 1, int.MaxValue, defaultValue: 100);
        var list = cli.WithBrokers(new Command("list", "Lists dead-lettered records with their provenance.") { topic, originalTopic, exceptionType, key, from, to, limit });
        list.SetAction(async (parse, cancellationToken) =>
        {
            var selected = filter.Predicate(parse);
            var records = ReadDeadLetters(parse.GetValue(cli.Bootstrap)!, parse.GetValue(topic)!, cancellationToken)
                .Where(selected).Take(parse.GetValue(limit)).Select(Describe).ToList();
            if (parse.GetValue(cli.Json))
            {
                await cli.Output.WriteLineAsync(JsonSerializer.Serialize(records, CliJsonContext.Default.ListDeadLetterRow)).ConfigureAwait(false);
                return ExitCodes.Success;
            }

            await cli.Console.TableAsync(
                ["PARTITION@OFFSET", "FROM", "STAGE", "EXCEPTION", "MESSAGE"],
                records.Select(r => new[]
                {
                    $"{r.Partition}@{r.Offset}",
                    r.OriginalTopic is null ? null : $"{r.OriginalTopic}[{LagCommand.Number(r.OriginalPartition) ?? "?"}]@{LagCommand.Number(r.OriginalOffset) ?? "?"}",
                    r.Stage,
                    r.ExceptionType,
                    Shorten(r.ExceptionMessage, 80),
                })).ConfigureAwait(false);
            await cli.Console.LineAsync($"{records.Count} record(s)").ConfigureAwait(false);
            return ExitCodes.Success;
        });

        var partition = CliOptions.Int("--partition", "The dead-letter record's partition", 0, int.MaxValue, required: true, aliases: "-p");
        var offset = CliOptions.Long("--offset", "The dead-letter record's offset", 0, long.MaxValue, required: true, "-o");
        var show = cli.WithBrokers(new Command("show", "Shows one dead-lettered record: every header, the key and the value.") { topic, partition, offset });
        show.SetAction(async (parse, cancellationToken) =>
        {
            var record = ReadOne(parse.GetValue(cli.Bootstrap)!, parse.GetValue(topic)!, parse.GetValue(partition), parse.GetValue(offset)!.Value);
            var shown = new DeadLetterRecord(
                record.Topic,
                record.Partition.Value,
                record.Offset.Value,
                record.Message.Timestamp.UtcDateTime,
                [.. (record.Message.Headers ?? []).Select(h => new DeadLetterHeader(h.Key, KafkaReliableCli.Text(h.GetValueBytes())))],
                record.Message.Key is null ? null : KafkaReliableCli.Text(record.Message.Key),
                record.Message.Value is null ? null : KafkaReliableCli.Text(record.Message.Value));
            if (parse.GetValue(cli.Json))
            {
                await cli.Output.WriteLineAsync(JsonSerializer.Serialize(shown, CliJsonContext.Default.DeadLetterRecord)).ConfigureAwait(false);
                return ExitCodes.Success;
            }

            await cli.Console.LineAsync($"{shown.Topic}[{shown.Partition}]@{shown.Offset}  {shown.Timestamp.ToString("O", CultureInfo.InvariantCulture)}").ConfigureAwait(false);
            await cli.Console.TableAsync(["HEADER", "VALUE"], shown.Headers.Select(h => new[] { h.Key, h.Value })).ConfigureAwait(false);
            await cli.Console.LineAsync($"key:   {shown.Key ?? "(null)"}").ConfigureAwait(false);
            await cli.Console.LineAsync($"value: {shown.Value ?? "(null)"}").ConfigureAwait(false);
            return ExitCodes.Success;
        });

        var target = new Option<string?>("--target-topic") { Description = "Republish here instead of each record's original topic" };
        var rate = CliOptions.Int("--rate", "The most records republished per second", 1, 1_000_000, defaultValue: 100);
        var max = CliOptions.Long("--max", "Stop after this many records; run again to resume", 1, long.MaxValue);
        var group = CliOptions.Text("--group", "The replay's consumer group (its progress); by default derived from the request", aliases: "-g");
        var replay = cli.WithBrokers(new Command("replay", "Republishes dead-lettered records to their original topic, resumably.") { topic, originalTopic, exceptionType, key, from, to, target, rate, max, group });
        replay.SetAction(async (parse, cancellationToken) =>
        {
            filter.Check(parse);
            var servers = parse.GetValue(cli.Bootstrap)!;
            var options = new DeadLetterReplayOptions
            {
                BootstrapServers = servers,
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
            KafkaReliableCli.PartitionsOf(servers, options.DeadLetterTopic);
            if (options.TargetTopic is { } targetTopic)
            {
                KafkaReliableCli.PartitionsOf(servers, targetTopic);
            }

            DeadLetterReplayer replayer;
            try
            {
                replayer = new DeadLetterReplayer(options);
            }
            catch (ArgumentException ex)
            {
                throw new CliException(ExitCodes.BadArguments, ex.Message);
            }

            var json = parse.GetValue(cli.Json);
            var result = await ReplayProgress.RunAsync(cli.Console, json, progress => replayer.ReplayAsync(progress, cancellationToken)).ConfigureAwait(false);
            if (json)
            {
                var report = new DeadLetterReplayReport(result.Replayed, result.Skipped, result.Pending, result.Completed, replayer.GroupId);
                await cli.Output.WriteLineAsync(JsonSerializer.Serialize(report, CliJsonContext.Default.DeadLetterReplayReport)).ConfigureAwait(false);
            }
            else
            {
                await cli.Console.LineAsync(result.Completed
                    ? $"done: {result.Replayed} replayed, {result.Skipped} skipped (group {replayer.GroupId})"
                    : $"stopped: {result.Replayed} replayed, {result.Skipped} skipped; run again to resume (group {replayer.GroupId})").ConfigureAwait(false);
            }

            return ExitCodes.Success;
        });

        return new Command("dlq", "Dead-letter topics: list, show, replay.") { list, show, replay };
    }

    /// <summary>Reads a dead-letter topic from its beginning up to the end offsets found at start, without a consumer group.</summary>
    private static IEnumerable<ConsumeResult<byte[]?, byte[]?>> ReadDeadLetters(string servers, string topic, CancellationToken cancellationToken)
    {
        var partitions = KafkaReliableCli.PartitionsOf(servers, topic);
        using var consumer = KafkaReliableCli.Consumer<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = servers,
            GroupId = KafkaReliableCli.ReaderGroup,
            EnableAutoCommit = false,
            EnablePartitionEof = true,
        });
        var ends = partitions.ToDictionary(p => p.Partition.Value, p => consumer.QueryWatermarkOffsets(p, KafkaReliableCli.RequestTimeout).High.Value);
        var remaining = ends.Count(e => e.Value > 0);
        var finished = new HashSet<int>();
        consumer.Assign(partitions.Where(p => ends[p.Partition.Value] > 0).Select(p => new TopicPartitionOffset(p, Offset.Beginning)));
        while (remaining > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
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
        var topicPartition = KafkaReliableCli.PartitionOf(servers, topic, partition);
        using var consumer = KafkaReliableCli.Consumer<byte[]?, byte[]?>(new ConsumerConfig { BootstrapServers = servers, GroupId = KafkaReliableCli.ReaderGroup, EnableAutoCommit = false });
        var watermarks = consumer.QueryWatermarkOffsets(topicPartition, KafkaReliableCli.RequestTimeout);
        if (offset >= watermarks.High.Value || offset < watermarks.Low.Value)
        {
            var holds = watermarks.High.Value > watermarks.Low.Value ? $"it holds offsets {watermarks.Low.Value} to {watermarks.High.Value - 1}" : "it is empty";
            throw new CliException(ExitCodes.NotFound, $"{topic}[{partition}] has no record at offset {offset} ({holds}; its high watermark is {watermarks.High.Value}).");
        }

        consumer.Assign(new TopicPartitionOffset(topicPartition, offset));
        return consumer.Consume(KafkaReliableCli.RequestTimeout) ?? throw new CliException(ExitCodes.NotFound, $"{topic}[{partition}]@{offset} could not be read within {KafkaReliableCli.RequestTimeout}.");
    }

    private static DeadLetterRow Describe(ConsumeResult<byte[]?, byte[]?> record) => new(
        record.Partition.Value,
        record.Offset.Value,
        Header(record, DeadLetterHeaders.OriginalTopic),
        int.TryParse(Header(record, DeadLetterHeaders.OriginalPartition), NumberStyles.None, CultureInfo.InvariantCulture, out var partition) ? partition : null,
        long.TryParse(Header(record, DeadLetterHeaders.OriginalOffset), NumberStyles.None, CultureInfo.InvariantCulture, out var offset) ? offset : null,
        Header(record, DeadLetterHeaders.FailureStage),
        Header(record, DeadLetterHeaders.ExceptionType),
        Header(record, DeadLetterHeaders.ExceptionMessage),
        int.TryParse(Header(record, DeadLetterHeaders.Attempts), NumberStyles.None, CultureInfo.InvariantCulture, out var attempts) ? attempts : null,
        record.Message.Key is { } key ? KafkaReliableCli.Text(key) : null,
        record.Message.Timestamp.UtcDateTime);

    internal static string? Header(ConsumeResult<byte[]?, byte[]?> record, string name) =>
        record.Message.Headers is { } headers && headers.TryGetLastBytes(name, out var value) ? Encoding.UTF8.GetString(value) : null;

    private static string? Shorten(string? text, int length) => text is null || text.Length <= length ? text : text[..(length - 3)] + "...";

    /// <summary>The filters <c>dlq list</c> and <c>dlq replay</c> share.</summary>
    private sealed record DeadLetterFilter(Option<string?> OriginalTopic, Option<string?> ExceptionType, Option<string?> Key, Option<DateTimeOffset?> From, Option<DateTimeOffset?> To)
    {
        /// <summary>Checks what the options cannot check one by one; a <see cref="CliException"/> (exit code 1) when they contradict each other.</summary>
        public void Check(ParseResult parse)
        {
            if (parse.GetValue(From) is { } from && parse.GetValue(To) is { } to && from >= to)
            {
                throw new CliException(ExitCodes.BadArguments, $"--from ({from:O}) must be before --to ({to:O}): no record is dead-lettered at or after the one and before the other.");
            }
        }

        public Func<ConsumeResult<byte[]?, byte[]?>, bool> Predicate(ParseResult parse)
        {
            Check(parse);
            var (topic, type, wantedKey, since, until) = (parse.GetValue(OriginalTopic), parse.GetValue(ExceptionType), parse.GetValue(Key), parse.GetValue(From), parse.GetValue(To));
            return record =>
                (topic is null || Header(record, DeadLetterHeaders.OriginalTopic) == topic)
                && (type is null || Header(record, DeadLetterHeaders.ExceptionType) == type)
                && (wantedKey is null || (record.Message.Key is { } k && Encoding.UTF8.GetString(k) == wantedKey))
                && (since is null || record.Message.Timestamp.UnixTimestampMs >= since.Value.ToUnixTimeMilliseconds())
                && (until is null || record.Message.Timestamp.UnixTimestampMs < until.Value.ToUnixTimeMilliseconds());
        }
    }
}

/// <summary>One dead-lettered record's provenance, as <c>dlq list</c> shows it: numbers are numbers, absent headers null.</summary>
internal sealed record DeadLetterRow(
    int Partition, long Offset, string? OriginalTopic, int? OriginalPartition, long? OriginalOffset, string? Stage,
    string? ExceptionType, string? ExceptionMessage, int? Attempts, string? Key, DateTime Timestamp);

/// <summary>One dead-lettered record whole, as <c>dlq show</c> shows it; bytes that are not UTF-8 are <c>base64:</c> and their base64.</summary>
internal sealed record DeadLetterRecord(string Topic, int Partition, long Offset, DateTime Timestamp, List<DeadLetterHeader> Headers, string? Key, string? Value);

internal sealed record DeadLetterHeader(string Key, string Value);

/// <summary>How far <c>dlq replay</c> got, and the group that holds its progress.</summary>
internal sealed record DeadLetterReplayReport(long Replayed, long Skipped, long Pending, bool Completed, string Group);
