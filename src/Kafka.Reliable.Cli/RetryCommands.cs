using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Kafka.Reliable.RetryTiers;

namespace Kafka.Reliable.Cli;

/// <summary>
/// <c>retry list</c>, <c>retry show</c>, <c>retry release</c>: the records a consumer group has parked in a topic's retry
/// topic (<see cref="RetryTierOptions"/>). What is parked is read as the consumer reads it when it is assigned a partition:
/// the retry partition from the group's committed offset to its end, one entry per original offset (its newest copy, the
/// highest tier). Records done since the group's last commit cannot be told apart from pending ones, and are included.
/// </summary>
internal static class RetryCommands
{
    internal const string MayIncludeDone = "may include records done since the group's last commit";

    public static Command Create(CliContext cli)
    {
        var topic = CliOptions.Text("--topic", "The consumer's topic (not its retry topic), for example orders", required: true, "-t");
        var group = CliOptions.Text("--group", "The consumer group that parked the records (its committed offsets on the retry topic say what is done)", required: true, "-g");
        var retryTopic = CliOptions.Text("--retry-topic", "The retry topic, when the consumer's RetryTiers:Topic is not the default {topic}.retry ({topic} stands for --topic)");
        var key = CliOptions.Text("--key", "The parked key as 'retry list' prints it: its text, or base64: and the base64 of a key that is not UTF-8", required: true);
        var partition = CliOptions.Long("--partition", "Only this partition of the retry topic (the same as the topic's partition the records come from)", 0, int.MaxValue, aliases: "-p");
        var source = new RetrySource(topic, group, retryTopic);

        var list = cli.WithBrokers(new Command("list", "Lists the keys a group has parked in a topic's retry tiers, per partition: records, the first record's tier, due time, attempts and age.") { topic, group, retryTopic });
        list.SetAction(async (parse, cancellationToken) =>
        {
            var read = source.Read(parse, parse.GetValue(cli.Bootstrap)!, only: null, keepValues: false, cancellationToken);
            await WarnAsync(cli, read).ConfigureAwait(false);
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var report = new RetryListReport(
                read.Topic,
                read.RetryTopic,
                read.Group,
                [.. read.Partitions.Select(p => new RetryPartitionRow(
                    p.Partition,
                    p.Committed,
                    p.End,
                    p.Keys.Sum(k => k.Records.Count),
                    [.. p.Keys.Select(k => new RetryKeyRow(
                        k.Key is null ? null : KafkaReliableCli.Text(k.Key),
                        k.Records.Count,
                        k.First.OriginalOffset,
                        k.First.Tier,
                        Time(k.First.DueMs, k.First.Tier),
                        k.First.Attempts,
                        DateTimeOffset.FromUnixTimeMilliseconds(k.First.ParkedAtMs).UtcDateTime,
                        Math.Max(0, now - k.First.ParkedAtMs) / 1000))]))],
                read.Partitions.Sum(p => p.Keys.Count),
                read.Partitions.Sum(p => p.Keys.Sum(k => (long)k.Records.Count)),
                MayIncludeDone);
            if (parse.GetValue(cli.Json))
            {
                await cli.Output.WriteLineAsync(JsonSerializer.Serialize(report, CliJsonContext.Default.RetryListReport)).ConfigureAwait(false);
                return ExitCodes.Success;
            }

            await cli.Console.LineAsync($"Retry topic '{report.RetryTopic}' of '{report.Topic}', group '{report.Group}' (from its committed offsets to the end):").ConfigureAwait(false);
            await cli.Console.TableAsync(
                [">PARTITION", ">COMMITTED", ">END", ">PARKED", ">KEYS"],
                report.Partitions.Select(p => new[] { LagCommand.Number(p.Partition), LagCommand.Number(p.Committed), LagCommand.Number(p.End), LagCommand.Number(p.Records), LagCommand.Number(p.Keys.Count) })).ConfigureAwait(false);
            if (report.Keys > 0)
            {
                await cli.Console.LineAsync(string.Empty).ConfigureAwait(false);
                await cli.Console.TableAsync(
                    [">PARTITION", "KEY", ">RECORDS", "FIRST", ">TIER", "DUE", ">ATTEMPTS", "AGE"],
                    report.Partitions.SelectMany(p => p.Keys.Select(k => new[]
                    {
                        LagCommand.Number(p.Partition),
                        k.Key ?? "(null)",
                        LagCommand.Number(k.Records),
                        $"{report.Topic}[{p.Partition}]@{k.FirstOriginalOffset}",
                        LagCommand.Number(k.Tier),
                        Due(k.Due, now),
                        LagCommand.Number(k.Attempts),
                        Duration(k.AgeSeconds * 1000),
                    }))).ConfigureAwait(false);
            }

            await cli.Console.LineAsync(report.Keys == 0
                ? "Nothing parked."
                : $"{report.Keys} key(s), {report.Records} parked record(s) on {report.Partitions.Count(p => p.Keys.Count > 0)} partition(s); {MayIncludeDone}.").ConfigureAwait(false);
            return ExitCodes.Success;
        });

        var showValues = new Option<bool>("--show-values") { Description = "Print each record's value (as text, or base64: and the base64), not only its size" };
        var show = cli.WithBrokers(new Command("show", "Shows a parked key's records in the order they are handled: original offset, tier, due time, attempts, history, headers, value size.") { topic, group, key, partition, retryTopic, showValues });
        show.SetAction(async (parse, cancellationToken) =>
        {
            var values = parse.GetValue(showValues);
            var read = source.Read(parse, parse.GetValue(cli.Bootstrap)!, parse.GetValue(partition), values, cancellationToken);
            await WarnAsync(cli, read).ConfigureAwait(false);
            var wanted = parse.GetValue(key)!;
            var found = Find(read, wanted);
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var report = new RetryShowReport(
                read.Topic,
                read.RetryTopic,
                read.Group,
                wanted,
                [.. found.Select(f => new RetryShowPartition(
                    f.Partition.Partition,
                    f.Partition.Committed,
                    f.Partition.End,
                    [.. f.Key.Records.Select(r => new RetryRecordRow(
                        r.OriginalOffset,
                        r.RetryOffset,
                        r.Tier,
                        Time(r.DueMs, r.Tier),
                        r.Attempts,
                        DateTimeOffset.FromUnixTimeMilliseconds(r.ParkedAtMs).UtcDateTime,
                        Math.Max(0, now - r.ParkedAtMs) / 1000,
                        r.History,
                        r.HeaderNames,
                        r.ValueSize,
                        values && r.Value is not null ? KafkaReliableCli.Text(r.Value) : null))]))],
                MayIncludeDone);
            if (parse.GetValue(cli.Json))
            {
                await cli.Output.WriteLineAsync(JsonSerializer.Serialize(report, CliJsonContext.Default.RetryShowReport)).ConfigureAwait(false);
                return ExitCodes.Success;
            }

            foreach (var shown in report.Partitions)
            {
                await cli.Console.LineAsync(
                    $"Key '{report.Key}' in {report.RetryTopic}[{shown.Partition}] (committed {LagCommand.Number(shown.Committed) ?? "-"}, end {shown.End}): {shown.Records.Count} parked record(s), in the order they are handled; {MayIncludeDone}.").ConfigureAwait(false);
                string? first = null;
                foreach (var r in shown.Records)
                {
                    var at = $"{report.Topic}[{shown.Partition}]@{r.OriginalOffset}";
                    var state = r.Tier == 0 ? (first is null ? "not failed, next to run" : $"waiting behind {first}") : $"due {Due(r.Due, now)}";
                    await cli.Console.LineAsync($"{at}  tier {r.Tier}, {state}, {r.Attempts} attempt(s), parked {Stamp(r.ParkedAt)} ({Duration(r.AgeSeconds * 1000)} ago), retry offset {r.RetryOffset}").ConfigureAwait(false);
                    foreach (var line in r.History)
                    {
                        await cli.Console.LineAsync($"  history  {line}").ConfigureAwait(false);
                    }

                    await cli.Console.LineAsync($"  headers  {(r.Headers.Count == 0 ? "(none)" : string.Join(", ", r.Headers))}").ConfigureAwait(false);
                    var size = r.ValueSize is { } bytes ? $"{bytes} byte(s)" : "(null)";
                    await cli.Console.LineAsync(values && r.Value is not null ? $"  value    {size}: {r.Value}" : $"  value    {size}").ConfigureAwait(false);
                    first ??= at;
                }
            }

            return ExitCodes.Success;
        });

        var retryNow = new Option<bool>("--retry-now") { Description = "Try the key's failed record now instead of at its due time, rather than dead-lettering it" };
        var release = cli.WithBrokers(new Command("release", "Releases a parked key: its consumer dead-letters the key's failed record without another attempt and handles the records behind it (with --retry-now: tries it now).") { topic, group, key, partition, retryTopic, retryNow });
        release.SetAction(async (parse, cancellationToken) =>
        {
            var servers = parse.GetValue(cli.Bootstrap)!;
            var read = source.Read(parse, servers, parse.GetValue(partition), keepValues: false, cancellationToken);
            await WarnAsync(cli, read).ConfigureAwait(false);
            var wanted = parse.GetValue(key)!;
            var found = Find(read, wanted);
            var command = parse.GetValue(retryNow) ? RetryTierConstants.RetryNowCommand : RetryTierConstants.ReleaseCommand;
            var rows = new List<RetryCommandRow>();
            using (var producer = new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig
                {
                    BootstrapServers = servers,
                    EnableIdempotence = true,
                    Acks = Acks.All,
                    MessageTimeoutMs = (int)(KafkaReliableCli.RequestTimeout.TotalMilliseconds * 3),
                })
                .SetLogHandler(static (_, _) => { })
                .Build())
            {
                foreach (var (at, parked) in found)
                {
                    var delivered = await producer.ProduceAsync(
                        new TopicPartition(read.RetryTopic, at.Partition),
                        new Message<byte[]?, byte[]?>
                        {
                            Key = parked.Key,
                            Value = null,
                            Headers = new Headers { { RetryTierHeaders.Command, Encoding.UTF8.GetBytes(command) } },
                        },
                        cancellationToken).ConfigureAwait(false);
                    rows.Add(new RetryCommandRow(
                        command, wanted, read.Group, read.RetryTopic, at.Partition, delivered.Offset.Value,
                        read.Topic, parked.First.OriginalOffset, parked.First.Tier, parked.First.Attempts, parked.Records.Count - 1));
                }
            }

            foreach (var row in rows.Where(r => r.Tier == 0 && r.Command == RetryTierConstants.ReleaseCommand))
            {
                await cli.Error.WriteLineAsync(
                    $"Warning: the first parked record of key '{wanted}' in {row.RetryTopic}[{row.Partition}] ({row.Topic}[{row.Partition}]@{row.FirstOriginalOffset}) is of tier 0: it has not failed, it waited only behind records that are done now. The consumer dead-letters whichever record is first for the key when it reads the command.").ConfigureAwait(false);
            }

            if (parse.GetValue(cli.Json))
            {
                await cli.Output.WriteLineAsync(JsonSerializer.Serialize(rows, CliJsonContext.Default.ListRetryCommandRow)).ConfigureAwait(false);
                return ExitCodes.Success;
            }

            foreach (var row in rows)
            {
                var first = $"{row.Topic}[{row.Partition}]@{row.FirstOriginalOffset} (tier {row.Tier}, {row.Attempts} attempt(s))";
                var effect = row.Command == RetryTierConstants.RetryNowCommand
                    ? $"it tries {first} now; the {row.Behind} record(s) behind it wait for it as before"
                    : $"it dead-letters {first} without another attempt, then handles the {row.Behind} record(s) behind it";
                await cli.Console.LineAsync(
                    $"Wrote '{row.Command}' for key '{row.Key}' to {row.RetryTopic}[{row.Partition}]@{row.Offset}: when the consumer of group '{row.Group}' that owns {row.Topic}[{row.Partition}] reads it, {effect}.").ConfigureAwait(false);
            }

            return ExitCodes.Success;
        });

        return new Command("retry", "Retry tiers: the records a group has parked in a topic's retry topic; list, show, release.") { list, show, release };
    }

    /// <summary>The key's records per partition; a <see cref="CliException"/> (exit code 4) when it is parked nowhere.</summary>
    private static List<(RetryPartitionRead Partition, ParkedKey Key)> Find(RetryTopicRead read, string wanted)
    {
        var found = read.Partitions
            .SelectMany(p => p.Keys.Where(k => k.Key is not null && KafkaReliableCli.Text(k.Key) == wanted).Select(k => (p, k)))
            .ToList();
        if (found.Count == 0)
        {
            var where = read.Partitions.Count == 1 ? $"{read.RetryTopic}[{read.Partitions[0].Partition}]" : $"'{read.RetryTopic}'";
            throw new CliException(ExitCodes.NotFound,
                $"Key '{wanted}' is not parked in {where} for group '{read.Group}' (read from the group's committed offsets to the end). 'kafka-reliable retry list' lists the parked keys; a key that is not UTF-8 is named base64: and its base64.");
        }

        return found;
    }

    private static async Task WarnAsync(CliContext cli, RetryTopicRead read)
    {
        foreach (var warning in read.Warnings)
        {
            await cli.Error.WriteLineAsync($"Warning: {warning}").ConfigureAwait(false);
        }
    }

    private static DateTime? Time(long unixMs, int tier) => tier == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(unixMs).UtcDateTime;

    internal static string Stamp(DateTime time) => time.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    /// <summary>A due time and how far it is from now: <c>2026-11-23T08:10:00.000Z (in 4m 12s)</c>, <c>(3s ago)</c>; null for tier 0.</summary>
    private static string? Due(DateTime? due, long nowMs)
    {
        if (due is not { } time)
        {
            return null;
        }

        var left = new DateTimeOffset(time, TimeSpan.Zero).ToUnixTimeMilliseconds() - nowMs;
        return left > 0 ? $"{Stamp(time)} (in {Duration(left)})" : $"{Stamp(time)} ({Duration(-left)} ago)";
    }

    /// <summary>A duration in its two largest units: <c>45s</c>, <c>12m 31s</c>, <c>3h 02m</c>, <c>2d 04h</c>.</summary>
    internal static string Duration(long milliseconds)
    {
        var span = TimeSpan.FromMilliseconds(Math.Max(0, milliseconds));
        return span switch
        {
            { TotalMinutes: < 1 } => string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalSeconds}s"),
            { TotalHours: < 1 } => string.Create(CultureInfo.InvariantCulture, $"{span.Minutes}m {span.Seconds:00}s"),
            { TotalDays: < 1 } => string.Create(CultureInfo.InvariantCulture, $"{span.Hours}h {span.Minutes:00}m"),
            _ => string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalDays}d {span.Hours:00}h"),
        };
    }

    /// <summary>The options that name what to read, shared by the three commands.</summary>
    private sealed record RetrySource(Option<string> Topic, Option<string> Group, Option<string> RetryTopic)
    {
        /// <summary>
        /// Reads the retry topic's partitions (or the one given) from the group's committed offsets to their ends, as the
        /// consumer does: the copies of the topic's partition only, the newest copy of each original offset, the keys in
        /// the order of their first records and each key's records in original-offset order.
        /// </summary>
        public RetryTopicRead Read(ParseResult parse, string servers, long? only, bool keepValues, CancellationToken cancellationToken)
        {
            var topic = parse.GetValue(Topic)!;
            var group = parse.GetValue(Group)!;
            var template = parse.GetValue(RetryTopic);
            var retryTopic = RetryRecords.TopicFor(new RetryTierOptions { Topic = template ?? RetryTierConstants.DefaultTopic }, topic);
            List<TopicPartition> partitions;
            try
            {
                partitions = KafkaReliableCli.PartitionsOf(servers, retryTopic);
            }
            catch (CliException ex) when (ex.ExitCode == ExitCodes.NotFound)
            {
                throw new CliException(ExitCodes.NotFound, template is null
                    ? $"Retry topic '{retryTopic}' was not found on {servers}: it is the retry topic of '{topic}' under the default RetryTiers:Topic ({RetryTierConstants.DefaultTopic}). Check --topic, and pass --retry-topic when the consumer's RetryTiers:Topic is another."
                    : $"Retry topic '{retryTopic}' was not found on {servers}: check --retry-topic ('{template}'; {{topic}} stands for --topic).");
            }

            if (only is { } wanted)
            {
                partitions = partitions.Where(p => p.Partition.Value == wanted).ToList() is { Count: 1 } one
                    ? one
                    : throw new CliException(ExitCodes.NotFound, $"Retry topic '{retryTopic}' has no partition {wanted} (it has {partitions.Count}: 0-{partitions.Count - 1}).");
            }

            Dictionary<TopicPartition, long?> committed;
            using (var groupClient = KafkaReliableCli.Consumer<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = servers, GroupId = group, EnableAutoCommit = false }))
            {
                // Committed() asks the group's coordinator for its offsets; the client never joins the group.
                committed = KafkaReliableCli.CommittedOffsets(groupClient, partitions);
            }

            var warnings = new List<string>();
            var reads = new List<RetryPartitionRead>();
            using var reader = KafkaReliableCli.Consumer<byte[]?, byte[]?>(new ConsumerConfig
            {
                BootstrapServers = servers,
                GroupId = KafkaReliableCli.ReaderGroup,
                EnableAutoCommit = false,
                EnablePartitionEof = true,
            });
            var ranges = new Dictionary<int, (long From, long End)>();
            foreach (var partition in partitions)
            {
                var watermarks = reader.QueryWatermarkOffsets(partition, KafkaReliableCli.RequestTimeout);
                ranges[partition.Partition.Value] = (Math.Max(committed[partition] ?? watermarks.Low.Value, watermarks.Low.Value), watermarks.High.Value);
            }

            var collectors = partitions.ToDictionary(p => p.Partition.Value, p => new Collector(topic, group, p.Partition.Value, keepValues));
            var pending = ranges.Where(r => r.Value.From < r.Value.End).ToList();
            var remaining = pending.Count;
            var finished = new HashSet<int>();
            if (remaining > 0)
            {
                reader.Assign(pending.Select(r => new TopicPartitionOffset(retryTopic, r.Key, r.Value.From)));
            }

            while (remaining > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var record = reader.Consume(TimeSpan.FromMilliseconds(500));
                if (record is null)
                {
                    continue;
                }

                var end = ranges[record.Partition.Value].End;
                if (!record.IsPartitionEOF && record.Offset.Value < end)
                {
                    collectors[record.Partition.Value].Take(record);
                }

                // The last record and the end-of-partition event after it both say a partition is done: count it once.
                if ((record.IsPartitionEOF || record.Offset.Value >= end - 1) && finished.Add(record.Partition.Value))
                {
                    remaining--;
                }
            }

            var read = 0L;
            foreach (var partition in partitions)
            {
                var collector = collectors[partition.Partition.Value];
                read += collector.Read;
                reads.Add(new RetryPartitionRead(partition.Partition.Value, committed[partition], ranges[partition.Partition.Value].End, collector.Keys()));
                warnings.AddRange(collector.Warnings(retryTopic));
            }

            if (read > 0 && committed.Values.All(c => c is null))
            {
                warnings.Insert(0, $"group '{group}' has committed no offset on '{retryTopic}'{(only is null ? string.Empty : $" partition {only}")}: it was read from the beginning, as the group's consumer reads it; check --group if the group should have committed there.");
            }

            return new RetryTopicRead(topic, retryTopic, group, reads, warnings);
        }
    }

    /// <summary>The records of one retry partition, reduced to the newest copy of each original offset.</summary>
    private sealed class Collector(string topic, string group, int partition, bool keepValues)
    {
        private readonly Dictionary<long, ParkedRecord> _byOriginalOffset = [];
        private readonly SortedSet<string> _otherGroups = new(StringComparer.Ordinal);
        private int _unreadable;
        private int _foreign;

        public long Read { get; private set; }

        public void Take(ConsumeResult<byte[]?, byte[]?> record)
        {
            Read++;
            var read = RetryRecords.Read(record);
            if (read.Kind == RetryRecordKind.Invalid)
            {
                _unreadable++;
                return;
            }

            if (read.Kind == RetryRecordKind.Command)
            {
                return;
            }

            var copy = read.Copy!;
            if (copy.Record.Topic != topic || copy.Record.Partition.Value != partition)
            {
                _foreign++;
                return;
            }

            if (read.Group is { } parkedBy && parkedBy != group)
            {
                _otherGroups.Add(parkedBy);
                return;
            }

            if (read.Kind == RetryRecordKind.Done)
            {
                // A done marker: the record it names was handled or dead-lettered after the copies before it.
                if (_byOriginalOffset.TryGetValue(copy.OriginalOffset, out var done) && done.RetryOffset < copy.RetryOffset)
                {
                    _byOriginalOffset.Remove(copy.OriginalOffset);
                }

                return;
            }

            // The newest copy of an original offset (the highest tier) supersedes the older ones; of two copies of the same
            // tier (written twice around a crash) the first counts, as for the consumer.
            if (!_byOriginalOffset.TryGetValue(copy.OriginalOffset, out var seen) || copy.Tier > seen.Tier)
            {
                var message = copy.Record.Message;
                _byOriginalOffset[copy.OriginalOffset] = new ParkedRecord(
                    copy.RetryOffset,
                    copy.OriginalOffset,
                    copy.Tier,
                    copy.DueMs,
                    copy.ParkedAtMs,
                    copy.Attempts,
                    copy.History,
                    [.. message.Headers.Select(h => h.Key)],
                    message.Key,
                    message.Value?.Length,
                    keepValues ? message.Value : null);
            }
        }

        /// <summary>The keys, each with its records in original-offset order, in the order of their first records; a record without a key stands alone.</summary>
        public List<ParkedKey> Keys()
        {
            var keys = new List<ParkedKey>();
            var byKey = new Dictionary<string, ParkedKey>(StringComparer.Ordinal);
            foreach (var parked in _byOriginalOffset.Values.OrderBy(r => r.OriginalOffset))
            {
                if (parked.Key is null)
                {
                    keys.Add(new ParkedKey(null, [parked]));
                }
                else if (byKey.TryGetValue(Convert.ToBase64String(parked.Key), out var same))
                {
                    same.Records.Add(parked);
                }
                else
                {
                    var key = new ParkedKey(parked.Key, [parked]);
                    byKey.Add(Convert.ToBase64String(parked.Key), key);
                    keys.Add(key);
                }
            }

            return keys;
        }

        public IEnumerable<string> Warnings(string retryTopic)
        {
            if (_unreadable > 0)
            {
                yield return $"{_unreadable} record(s) of {retryTopic}[{partition}] are neither parked copies nor commands (they lack the {RetryTierHeaders.OriginalTopic}, {RetryTierHeaders.OriginalPartition}, {RetryTierHeaders.OriginalOffset} or {RetryTierHeaders.Tier} header): left out, as the consumer skips them.";
            }

            if (_foreign > 0)
            {
                yield return $"{_foreign} record(s) of {retryTopic}[{partition}] were parked from another topic or partition than {topic}[{partition}]: left out, as the consumer of {topic}[{partition}] skips them.";
            }

            if (_otherGroups.Count > 0)
            {
                yield return $"records of {retryTopic}[{partition}] were parked by group(s) {string.Join(", ", _otherGroups.Select(g => $"'{g}'"))}, not '{group}': left out, as the consumer of group '{group}' skips them.";
            }
        }
    }
}

/// <summary>One parked record as the tool keeps it: what its newest copy says, its original headers' names and its value's size.</summary>
internal sealed record ParkedRecord(
    long RetryOffset, long OriginalOffset, int Tier, long DueMs, long ParkedAtMs, int Attempts, List<string> History, List<string> HeaderNames, byte[]? Key, int? ValueSize, byte[]? Value);

/// <summary>A parked key's records in original-offset order (the order they are handled in).</summary>
internal sealed record ParkedKey(byte[]? Key, List<ParkedRecord> Records)
{
    public ParkedRecord First => Records[0];
}

internal sealed record RetryPartitionRead(int Partition, long? Committed, long End, List<ParkedKey> Keys);

internal sealed record RetryTopicRead(string Topic, string RetryTopic, string Group, List<RetryPartitionRead> Partitions, List<string> Warnings);

/// <summary><c>retry list</c>: per partition of the retry topic, the parked keys.</summary>
internal sealed record RetryListReport(string Topic, string RetryTopic, string Group, List<RetryPartitionRow> Partitions, int Keys, long Records, string Note);

/// <summary>One partition of the retry topic: the group's committed offset (null: none, read from the beginning), its end, and its parked keys.</summary>
internal sealed record RetryPartitionRow(int Partition, long? Committed, long End, long Records, List<RetryKeyRow> Keys);

/// <summary>One parked key: how many records it has parked and its first record (the one that holds the others back); <see cref="Due"/> is null for tier 0.</summary>
internal sealed record RetryKeyRow(string? Key, int Records, long FirstOriginalOffset, int Tier, DateTime? Due, int Attempts, DateTime ParkedAt, long AgeSeconds);

/// <summary><c>retry show</c>: a key's parked records per partition, in the order they are handled.</summary>
internal sealed record RetryShowReport(string Topic, string RetryTopic, string Group, string Key, List<RetryShowPartition> Partitions, string Note);

internal sealed record RetryShowPartition(int Partition, long? Committed, long End, List<RetryRecordRow> Records);

/// <summary>One parked record: <see cref="Headers"/> are the original record's header names, <see cref="Value"/> is null unless asked for.</summary>
internal sealed record RetryRecordRow(
    long OriginalOffset, long RetryOffset, int Tier, DateTime? Due, int Attempts, DateTime ParkedAt, long AgeSeconds, List<string> History, List<string> Headers, int? ValueSize, string? Value);

/// <summary>A command record <c>retry release</c> wrote, and the key's first parked record it is about.</summary>
internal sealed record RetryCommandRow(
    string Command, string Key, string Group, string RetryTopic, int Partition, long Offset, string Topic, long FirstOriginalOffset, int Tier, int Attempts, int Behind);
