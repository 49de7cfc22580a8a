using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Kafka.Reliable.Diagnostics;

namespace Kafka.Reliable.RetryTiers;

/// <summary>
/// Reads the retry topics' partitions of a consumer's assigned partitions into their <see cref="ParkingLot"/>s: a second
/// Kafka client that never joins the group (it is assigned partitions directly, from the group's committed offsets), driven
/// by the consumer's poll thread, which also commits the retry partitions' watermarks with the group's own client, so that a
/// member that lost its partitions can commit neither.
/// </summary>
internal sealed class RetryTierConsumer : IDisposable
{
    private readonly ConsumerContext _context;
    private readonly Dictionary<TopicPartition, ParkingLot> _lots = [];
    private IConsumer<byte[]?, byte[]?>? _client;

    public RetryTierConsumer(ConsumerContext context) => _context = context;

    /// <summary>Gets the lots of the partitions assigned now (poll thread).</summary>
    public IEnumerable<ParkingLot> Lots => _lots.Values;

    /// <summary>The retry consumer's settings: the group's id (to read its committed offsets; it never joins), no commits of its own, end-of-partition events.</summary>
    internal static ConsumerConfig BuildConfig(string name, ReliableConsumerOptions options)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = options.BootstrapServers,
            GroupId = options.GroupId,
            ClientId = name + "-retry",
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnablePartitionEof = true,
        };
        foreach (var (key, value) in options.KafkaSettings)
        {
            if (Array.Exists(OwnedProducers.SharedSettingPrefixes, prefix => key.StartsWith(prefix, StringComparison.Ordinal)) || key == "isolation.level")
            {
                config.Set(key, value);
            }
        }

        return config;
    }

    /// <summary>Starts reading a newly assigned partition's retry partition, from the group's committed offset (poll thread).</summary>
    public void Attach(ParkingLot lot)
    {
        _client ??= new ConsumerBuilder<byte[]?, byte[]?>(BuildConfig(_context.Name, _context.Options))
            .SetErrorHandler((_, error) => Log.ClientError(_context.Logger, _context.Name, error.Code, error.Reason))
            .SetLogHandler((_, message) => ClientLogs.Forward(_context.Logger, _context.Name, message))
            .Build();
        _lots[lot.RetryPartition] = lot;
        _client.IncrementalAssign([new TopicPartitionOffset(lot.RetryPartition, Offset.Stored)]);
    }

    /// <summary>Stops reading the retry partitions of released partitions (poll thread).</summary>
    public void Detach(IEnumerable<ParkingLot> lots)
    {
        var released = new List<TopicPartition>();
        foreach (var lot in lots)
        {
            if (_lots.Remove(lot.RetryPartition))
            {
                released.Add(lot.RetryPartition);
            }
        }

        if (released.Count > 0 && _client is { } client)
        {
            client.IncrementalUnassign(released);
        }
    }

    /// <summary>Takes what the retry consumer has fetched, without waiting, into the lots (poll thread).</summary>
    public void Poll()
    {
        if (_client is not { } client || _lots.Count == 0)
        {
            return;
        }

        for (var i = 0; i < RetryTierConstants.IngestBurst; i++)
        {
            ConsumeResult<byte[]?, byte[]?>? record;
            try
            {
                record = client.Consume(TimeSpan.Zero);
            }
            catch (ConsumeException ex) when (!ex.Error.IsFatal)
            {
                // A retry partition that does not exist (or may not be read) holds its partition until it does: the health
                // check says so. Anything else librdkafka retries by itself; it is logged.
                if (ex.Error.Code is ErrorCode.UnknownTopicOrPart or ErrorCode.Local_UnknownPartition or ErrorCode.Local_UnknownTopic or ErrorCode.TopicAuthorizationFailed
                    && ex.ConsumerRecord is { } at && _lots.TryGetValue(new TopicPartition(at.Topic, at.Partition), out var failed))
                {
                    failed.Failed($"{ex.Error.Code}: {ex.Error.Reason}");
                }
                else
                {
                    Log.ConsumeError(_context.Logger, _context.Name, ex.Error.Code, ex.Error.Reason);
                }

                return;
            }

            if (record is null)
            {
                return;
            }

            if (!_lots.TryGetValue(record.TopicPartition, out var owner))
            {
                continue;
            }

            owner.Recovered();
            if (record.IsPartitionEOF)
            {
                owner.ReachedEnd(record.Offset.Value);
            }
            else
            {
                owner.Ingest(record);
            }
        }
    }

    /// <summary>Gets the lot reading a retry partition, for a commit's result (poll thread).</summary>
    public bool TryGet(TopicPartition retryPartition, out ParkingLot lot) => _lots.TryGetValue(retryPartition, out lot!);

    public void Dispose()
    {
        _lots.Clear();
        if (_client is { } client)
        {
            try
            {
                client.Close();
            }
            catch (KafkaException)
            {
                // Closed all the same.
            }

            client.Dispose();
            _client = null;
        }
    }
}
