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
        RetryTierHeaders.History, RetryTierHeaders.ParkedBy,
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

    /// <summary>Reads a record of a retry topic.</summary>
    /// <param name="record">The record.</param>
    /// <param name="copy">The parked copy it is, when it is one.</param>
    /// <param name="command">The command it is (<see cref="RetryTierHeaders.Command"/>), when it is one.</param>
    /// <param name="problem">Why it is neither, when it is neither.</param>
    /// <returns><see langword="true"/> when it is a copy or a command.</returns>
    public static bool TryRead(ConsumeResult<byte[]?, byte[]?> record, out ParkedCopy? copy, out string? command, out string? problem)
    {
        copy = null;
        command = null;
        problem = null;
        var headers = record.Message.Headers;
        if (Last(headers, RetryTierHeaders.Command) is { } commandText)
        {
            command = commandText;
            return true;
        }

        if (Last(headers, RetryTierHeaders.OriginalTopic) is not { } topic
            || !TryLong(headers, RetryTierHeaders.OriginalPartition, out var partition)
            || !TryLong(headers, RetryTierHeaders.OriginalOffset, out var offset)
            || !TryLong(headers, RetryTierHeaders.Tier, out var tier))
        {
            problem = "it lacks the retry-original-topic, retry-original-partition, retry-original-offset or retry-tier header";
            return false;
        }

        TryLong(headers, RetryTierHeaders.OriginalTimestamp, out var timestamp);
        TryLong(headers, RetryTierHeaders.Due, out var due);
        TryLong(headers, RetryTierHeaders.ParkedAt, out var parkedAt);
        TryLong(headers, RetryTierHeaders.Attempts, out var attempts);
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

        copy = new ParkedCopy
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
        return true;
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
