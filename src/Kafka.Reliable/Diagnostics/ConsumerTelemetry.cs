using System.Globalization;
using Confluent.Kafka;
using static Kafka.Reliable.Diagnostics.SemanticConventions;

namespace Kafka.Reliable.Diagnostics;

/// <summary>
/// What a consumer's spans and measurements say about the consumer itself, worked out once: its name, group, client id and
/// the broker it contacts first; and the tags of its commits, built once per topic instead of at each commit.
/// </summary>
internal sealed class ConsumerTelemetry
{
    private readonly Dictionary<string, KeyValuePair<string, object?>[]> _commitTags = new(StringComparer.Ordinal);
    private KeyValuePair<string, object?>[]? _commitTagsWithoutTopic;

    public ConsumerTelemetry(string name, ReliableConsumerOptions options)
    {
        Name = name;
        GroupId = options.GroupId;

        // The consumer's client.id: the one its settings give, or its name (see ConsumerRunner.BuildConfig).
        ClientId = options.KafkaSettings.TryGetValue("client.id", out var clientId) && !string.IsNullOrEmpty(clientId) ? clientId : name;
        Server = BootstrapServer.Parse(options.BootstrapServers);
    }

    public string Name { get; }

    public string GroupId { get; }

    public string ClientId { get; }

    public BootstrapServer? Server { get; }

    /// <summary>
    /// Gets the tags of a commit's <c>messaging.client.operation.duration</c>: the topic's when every committed partition is
    /// of one topic (<paramref name="topic"/>), none otherwise. Built once per topic (poll thread only).
    /// </summary>
    public KeyValuePair<string, object?>[] CommitTags(string? topic)
    {
        if (topic is null)
        {
            return _commitTagsWithoutTopic ??= [.. Common(Commit, Settle), new(ConsumerGroupName, GroupId)];
        }

        if (!_commitTags.TryGetValue(topic, out var tags))
        {
            tags = [.. Common(Commit, Settle), new(ConsumerGroupName, GroupId), new(DestinationName, topic)];
            _commitTags.Add(topic, tags);
        }

        return tags;
    }

    /// <summary>
    /// The tags every instrument following the conventions carries: the system, the operation and the broker. The consumer's
    /// name is left to the spans and the library's own instruments: with the partition's tags, a conventions' measurement
    /// has 8 tags, the most the OpenTelemetry SDK records without allocating.
    /// </summary>
    public List<KeyValuePair<string, object?>> Common(string operationName, string operationType)
    {
        var tags = new List<KeyValuePair<string, object?>>(12)
        {
            new(MessagingSystem, MessagingSystemKafka),
            new(OperationName, operationName),
            new(OperationType, operationType),
        };
        AddServer(tags, Server);
        return tags;
    }

    /// <summary>Adds <c>server.address</c> and <c>server.port</c> when the server is known.</summary>
    public static void AddServer(ICollection<KeyValuePair<string, object?>> tags, BootstrapServer? server)
    {
        if (server is { } known)
        {
            tags.Add(new(ServerAddress, known.Address));
            if (known.Port is { } port)
            {
                tags.Add(new(ServerPort, port));
            }
        }
    }
}

/// <summary>
/// The tags of one partition's spans and measurements, built once per assignment so that recording costs no allocation per
/// record: the array is handed to the instruments as it is.
/// </summary>
internal sealed class PartitionTelemetry
{
    public PartitionTelemetry(ConsumerTelemetry consumer, TopicPartition partition)
        : this(consumer, partition.Topic, partition.Partition.Value)
    {
    }

    /// <summary>The tags of a batch across partitions: of its topic, or of no topic when it holds records of several.</summary>
    public PartitionTelemetry(ConsumerTelemetry consumer, string? topic)
        : this(consumer, topic, partition: null)
    {
    }

    private PartitionTelemetry(ConsumerTelemetry consumer, string? topic, int? partition)
    {
        ProcessSpanName = topic is null ? Process : Process + " " + topic;
        var tags = consumer.Common(Process, Process);
        if (topic is not null)
        {
            tags.Add(new(DestinationName, topic));
        }

        if (partition is { } id)
        {
            tags.Add(new(PartitionId, id.ToString(CultureInfo.InvariantCulture)));
        }

        tags.Add(new(ConsumerGroupName, consumer.GroupId));
        ProcessTags = [.. tags];
        tags.Add(new(ClientId, consumer.ClientId));
        tags.Add(new(KafkaReliableDiagnostics.ConsumerTag, consumer.Name));
        SpanTags = [.. tags];
    }

    /// <summary>Gets the name of the span of a record's processing: <c>process {topic}</c>.</summary>
    public string ProcessSpanName { get; }

    /// <summary>Gets the tags of <c>messaging.process.duration</c> and <c>messaging.client.consumed.messages</c> for this partition.</summary>
    public KeyValuePair<string, object?>[] ProcessTags { get; }

    /// <summary>Gets the attributes a processing span starts with (given at its creation, for samplers): the process tags, the client id and the consumer's name.</summary>
    public KeyValuePair<string, object?>[] SpanTags { get; }

    /// <summary>The process tags and <c>error.type</c>: for a record that failed (rare, so built when needed).</summary>
    public KeyValuePair<string, object?>[] ProcessTagsWithError(string errorType) => [.. ProcessTags, new(ErrorType, errorType)];
}
