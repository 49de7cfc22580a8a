using System.Globalization;
using System.Text;
using Confluent.Kafka;

namespace Kafka.Reliable.RetryTiers;

/// <summary>Writes and reads the records of a retry topic (<see cref="RetryTierHeaders"/>).</summary>
internal static class RetryRecords
{
    /// <summary>The headers a copy carries besides the original record's own: stripped when the original is rebuilt.</summary>
    private static readonly HashSet<string> Own =
    [
        RetryTierHeaders.OriginalTopic, RetryTierHeaders.OriginalPartition, RetryTierHeaders.OriginalOffset, RetryTierHeaders.OriginalTimestamp,
        RetryTierHeaders.ConsumerGroup, RetryTierHeaders.Tier, RetryTierHeaders.Due, RetryTierHeaders.ParkedAt, RetryTierHeaders.Attempts,
        RetryTierHeaders.History, RetryTierHeaders.ParkedBy, RetryTierHeaders.Done,
    ];

    /// <summary>The retry topic of a topic.</summary>
    public static string TopicFor(RetryTierOptions options, string topic) =>
        options.Topic.Replace(DeadLetter.DeadLetterConstants.TopicPlaceholder, topic, StringComparison.Ordinal);

    /// <summary>A parked copy of an original record: its key, value and own headers, and where it stands.</summary>
    public static Message<byte[]?, byte[]?> Copy(
        ConsumeResult<byte[]?, byte[]?> original, string group, int tier, long dueMs, long parkedAtMs, int attempts, IReadOnlyList<string> history, string? parkedBy)
    {
        var headers = new Headers();
        if (original.Message.Headers is { } own)
        {
            foreach (var header in own)
            {
                headers.Add(header.Key, header.GetValueBytes());
            }
        }

        Add(headers, RetryTierHeaders.OriginalTopic, original.Topic);
        Add(headers, RetryTierHeaders.OriginalPartition, Text(original.Partition.Value));
        Add(headers, RetryTierHeaders.OriginalOffset, Text(original.Offset.Value));
        Add(headers, RetryTierHeaders.OriginalTimestamp, Text(original.Message.Timestamp.UnixTimestampMs));
        Add(headers, RetryTierHeaders.ConsumerGroup, group);
        Add(headers, RetryTierHeaders.Tier, Text(tier));
        if (tier > 0)
        {
            Add(headers, RetryTierHeaders.Due, Text(dueMs));
        }

        Add(headers, RetryTierHeaders.ParkedAt, Text(parkedAtMs));
        Add(headers, RetryTierHeaders.Attempts, Text(attempts));
        foreach (var line in history)
        {
            Add(headers, RetryTierHeaders.History, line);
        }

        if (parkedBy is not null)
        {
            Add(headers, RetryTierHeaders.ParkedBy, parkedBy);
        }

        return new Message<byte[]?, byte[]?>
        {
            Key = original.Message.Key,
            Value = original.Message.Value,
            Headers = headers,
            Timestamp = Timestamp.Default,
        };
    }

    /// <summary>One line of <see cref="RetryTierHeaders.History"/>.</summary>
    public static string HistoryLine(int tier, DateTimeOffset at, int attempts, Exception exception) =>
        string.Create(
            CultureInfo.InvariantCulture,
            $"tier={tier}; at={at.UtcDateTime:O}; attempts={attempts}; exception={exception.GetType().FullName}: {Truncate(exception.Message)}");

    /// <summary>
    /// The marker written to the retry partition once a parked record is done (handled or dead-lettered): a record after a
    /// restart or a rebalance rebuilds its lot without the records done above the committed offset, instead of running them again.
    /// </summary>
    public static Message<byte[]?, byte[]?> DoneMarker(ConsumeResult<byte[]?, byte[]?> original, string group, int tier)
    {
        var headers = new Headers();
        Add(headers, RetryTierHeaders.OriginalTopic, original.Topic);
        Add(headers, RetryTierHeaders.OriginalPartition, Text(original.Partition.Value));
        Add(headers, RetryTierHeaders.OriginalOffset, Text(original.Offset.Value));
        Add(headers, RetryTierHeaders.ConsumerGroup, group);
        Add(headers, RetryTierHeaders.Tier, Text(tier));
        Add(headers, RetryTierHeaders.Done, "true");
        return new Message<byte[]?, byte[]?> { Key = original.Message.Key, Value = null, Headers = headers };
    }

    /// <summary>Keeps a parked record's history bounded: its first line and the latest ones, up to <see cref="RetryTierConstants.MaxHistoryLines"/>.</summary>
    public static List<string> Bounded(List<string> history)
    {
        if (history.Count <= RetryTierConstants.MaxHistoryLines)
        {
            return history;
        }

        return [history[0], .. history[^(RetryTierConstants.MaxHistoryLines - 1)..]];
    }

    /// <summary>Reads a record of a retry topic.</summary>
    /// <param name="record">The record.</param>
    /// <returns>What it is: a parked copy (with <see cref="RetryRecord.Copy"/>), a done marker, an operator's command, or neither (with <see cref="RetryRecord.Problem"/>).</returns>
    public static RetryRecord Read(ConsumeResult<byte[]?, byte[]?> record)
    {
        var headers = record.Message.Headers;
        if (Last(headers, RetryTierHeaders.OriginalTopic) is not { } topic)
        {
            return Last(headers, RetryTierHeaders.Command) is { } command
                ? new RetryRecord(RetryRecordKind.Command, null, null, command, null)
                : new RetryRecord(RetryRecordKind.Invalid, null, null, null, "it has neither the retry-original-topic header of a parked record nor the retry-command header of a command");
        }

        var group = Last(headers, RetryTierHeaders.ConsumerGroup);
        if (!TryLong(headers, RetryTierHeaders.OriginalPartition, out var partition)
            || !TryLong(headers, RetryTierHeaders.OriginalOffset, out var offset)
            || !TryLong(headers, RetryTierHeaders.Tier, out var tier))
        {
            return new RetryRecord(RetryRecordKind.Invalid, group, null, null, "it lacks the retry-original-partition, retry-original-offset or retry-tier header");
        }

        TryLong(headers, RetryTierHeaders.OriginalTimestamp, out var timestamp);
        TryLong(headers, RetryTierHeaders.Due, out var due);
        TryLong(headers, RetryTierHeaders.ParkedAt, out var parkedAt);
        TryLong(headers, RetryTierHeaders.Attempts, out var attempts);
        var done = Last(headers, RetryTierHeaders.Done) is not null;
        var history = new List<string>();
        var own = new Headers();
        string? parkedBy = null;
        foreach (var header in headers)
        {
            if (header.Key == RetryTierHeaders.History)
            {
                history.Add(Encoding.UTF8.GetString(header.GetValueBytes()));
            }
            else if (header.Key == RetryTierHeaders.ParkedBy)
            {
                parkedBy = Encoding.UTF8.GetString(header.GetValueBytes());
            }
            else if (!Own.Contains(header.Key))
            {
                own.Add(header.Key, header.GetValueBytes());
            }
        }

        var copy = new ParkedCopy
        {
            RetryOffset = record.Offset.Value,
            OriginalOffset = offset,
            Tier = (int)tier,
            DueMs = due,
            ParkedAtMs = parkedAt > 0 ? parkedAt : record.Message.Timestamp.UnixTimestampMs,
            Attempts = (int)attempts,
            History = history,
            ParkedBy = parkedBy,
            Record = new ConsumeResult<byte[]?, byte[]?>
            {
                Topic = topic,
                Partition = new Partition((int)partition),
                Offset = new Offset(offset),
                Message = new Message<byte[]?, byte[]?>
                {
                    Key = record.Message.Key,
                    Value = record.Message.Value,
                    Headers = own,
                    Timestamp = new Timestamp(timestamp, TimestampType.CreateTime),
                },
            },
        };
        return new RetryRecord(done ? RetryRecordKind.Done : RetryRecordKind.Copy, group, copy, null, null);
    }

    /// <summary>The last value of a header as text; null when absent.</summary>
    public static string? Last(Headers? headers, string key) =>
        headers is not null && headers.TryGetLastBytes(key, out var bytes) && bytes is not null ? Encoding.UTF8.GetString(bytes) : null;

    private static bool TryLong(Headers headers, string key, out long value)
    {
        value = 0;
        return Last(headers, key) is { } text && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out value);
    }

    private static void Add(Headers headers, string key, string value) => headers.Add(key, Encoding.UTF8.GetBytes(value));

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Truncate(string text) =>
        text.Length <= DeadLetter.DeadLetterConstants.MaxMessageLength ? text : text[..DeadLetter.DeadLetterConstants.MaxMessageLength];
}

/// <summary>What a record of a retry topic is.</summary>
internal enum RetryRecordKind
{
    Copy,
    Done,
    Command,
    Invalid,
}

/// <summary>A record of a retry topic, read: its kind, the group that wrote it, and its content.</summary>
internal readonly record struct RetryRecord(RetryRecordKind Kind, string? Group, ParkedCopy? Copy, string? Command, string? Problem);
