using System.Runtime.InteropServices;
using System.Text;
using Confluent.Kafka;
using Kafka.Reliable.Testing.Native;

namespace Kafka.Reliable.Testing;

/// <summary>
/// An in-process Kafka broker for tests: librdkafka's mock cluster, speaking the real Kafka protocol on 127.0.0.1 ports,
/// so that any Kafka client can use it, in this process or in another one (pass <see cref="BootstrapServers"/> along).
/// No Docker, no JVM, starts in milliseconds.
/// </summary>
/// <remarks>
/// <para>
/// Topics must be created with <see cref="CreateTopic"/>: the mock does not implement CreateTopics. It does not implement
/// ListGroups, DescribeGroups, DeleteGroups, OffsetDelete, DeleteRecords, SSL or SASL, or offsets-for-times (it answers -1),
/// and transactions only pretend (offsets sent in a transaction are not stored; aborted records are visible). Never call
/// <c>AdminClient.ListConsumerGroupsAsync</c> against it: it crashes the process. Test those features against a real broker.
/// </para>
/// <para>Dispose the clients connected to the cluster before the cluster.</para>
/// </remarks>
public sealed class EmbeddedKafkaCluster : IDisposable, IAsyncDisposable
{
    private readonly Lock _gate = new();
    private IntPtr _handle;
    private IntPtr _cluster;
    private IProducer<byte[]?, byte[]?>? _producer;

    private EmbeddedKafkaCluster(IntPtr handle, IntPtr cluster, int brokerCount)
    {
        _handle = handle;
        _cluster = cluster;
        BrokerCount = brokerCount;
        BootstrapServers = Marshal.PtrToStringUTF8(LibRdKafka.rd_kafka_mock_cluster_bootstraps(cluster)) ?? string.Empty;
    }

    /// <summary>Gets the brokers' addresses, <c>127.0.0.1:port</c> separated by commas, for <c>bootstrap.servers</c>.</summary>
    public string BootstrapServers { get; }

    /// <summary>Gets the number of brokers; they are numbered 1 to <see cref="BrokerCount"/>.</summary>
    public int BrokerCount { get; }

    /// <summary>Starts a cluster of one broker.</summary>
    /// <returns>The running cluster.</returns>
    public static EmbeddedKafkaCluster Start() => Start(1);

    /// <summary>Starts a cluster.</summary>
    /// <param name="brokerCount">The number of brokers, 1 to 16.</param>
    /// <returns>The running cluster.</returns>
    public static EmbeddedKafkaCluster Start(int brokerCount) => Start(new EmbeddedKafkaClusterOptions { BrokerCount = brokerCount });

    /// <summary>Starts a cluster.</summary>
    /// <param name="options">The settings.</param>
    /// <returns>The running cluster.</returns>
    public static EmbeddedKafkaCluster Start(EmbeddedKafkaClusterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BrokerCount, 1, nameof(options.BrokerCount));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.BrokerCount, EmbeddedKafkaClusterOptions.MaxBrokerCount, nameof(options.BrokerCount));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.InitialRebalanceDelay, TimeSpan.Zero, nameof(options.InitialRebalanceDelay));

        LibRdKafka.EnsureLoaded();
        var error = new byte[512];
        var conf = LibRdKafka.rd_kafka_conf_new();
        // The host handle is only a carrier for the cluster: keep it quiet.
        if (LibRdKafka.rd_kafka_conf_set(conf, "log_level", "0", error, (nuint)error.Length) != LibRdKafka.ConfOk)
        {
            LibRdKafka.rd_kafka_conf_destroy(conf);
            throw new InvalidOperationException("librdkafka rejected the embedded broker's configuration: " + LibRdKafka.ErrorBuffer(error));
        }

        var handle = LibRdKafka.rd_kafka_new(LibRdKafka.ProducerType, conf, error, (nuint)error.Length);
        if (handle == IntPtr.Zero)
        {
            LibRdKafka.rd_kafka_conf_destroy(conf);
            throw new InvalidOperationException("librdkafka could not create the embedded broker's host handle: " + LibRdKafka.ErrorBuffer(error));
        }

        var cluster = LibRdKafka.rd_kafka_mock_cluster_new(handle, options.BrokerCount);
        if (cluster == IntPtr.Zero)
        {
            LibRdKafka.rd_kafka_destroy(handle);
            throw new InvalidOperationException("librdkafka could not create the embedded broker (rd_kafka_mock_cluster_new failed).");
        }

        LibRdKafka.rd_kafka_mock_set_controller_id(cluster, 1);
        LibRdKafka.rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, (int)options.InitialRebalanceDelay.TotalMilliseconds);
        return new EmbeddedKafkaCluster(handle, cluster, options.BrokerCount);
    }

    /// <summary>Creates a topic.</summary>
    /// <param name="topic">The topic name.</param>
    /// <param name="partitions">The number of partitions (at least 1).</param>
    /// <param name="replicationFactor">The replication factor, at most <see cref="BrokerCount"/>.</param>
    /// <exception cref="InvalidOperationException">The broker refused, with its reason.</exception>
    public void CreateTopic(string topic, int partitions = 1, int replicationFactor = 1)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(topic);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(replicationFactor, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(replicationFactor, BrokerCount);
        Check(LibRdKafka.rd_kafka_mock_topic_create(Cluster, topic, partitions, replicationFactor), $"create topic '{topic}'");
    }

    /// <summary>Produces one record and waits for its acknowledgement.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="message">The record.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>Where the record was written.</returns>
    /// <remarks>The partition is chosen from the key by the default partitioner.</remarks>
    public Task<DeliveryResult<byte[]?, byte[]?>> ProduceAsync(string topic, Message<byte[]?, byte[]?> message, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(topic);
        ArgumentNullException.ThrowIfNull(message);
        return Producer.ProduceAsync(topic, message, cancellationToken);
    }

    /// <summary>Produces records in order (partitioned by key) and waits until every one is acknowledged.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="messages">The records.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>Where each record was written, in the order given.</returns>
    public async Task<IReadOnlyList<TopicPartitionOffset>> ProduceAllAsync(string topic, IEnumerable<Message<byte[]?, byte[]?>> messages, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(topic);
        ArgumentNullException.ThrowIfNull(messages);
        var producer = Producer;
        var pending = new List<Task<DeliveryResult<byte[]?, byte[]?>>>();
        foreach (var message in messages)
        {
            pending.Add(producer.ProduceAsync(topic, message, cancellationToken));
        }

        var results = await Task.WhenAll(pending).ConfigureAwait(false);
        return Array.ConvertAll(results, r => r.TopicPartitionOffset);
    }

    /// <summary>Produces UTF-8 keyed records (partitioned by key) and waits until every one is acknowledged.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="messages">Keys and values; either may be null.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>Where each record was written, in the order given.</returns>
    public Task<IReadOnlyList<TopicPartitionOffset>> ProduceStringsAsync(string topic, IEnumerable<KeyValuePair<string?, string?>> messages, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return ProduceAllAsync(
            topic,
            messages.Select(m => new Message<byte[]?, byte[]?>
            {
                Key = m.Key is null ? null : Encoding.UTF8.GetBytes(m.Key),
                Value = m.Value is null ? null : Encoding.UTF8.GetBytes(m.Value),
            }),
            cancellationToken);
    }

    /// <summary>Gets a group's committed offset per partition of a topic, without joining the group.</summary>
    /// <param name="groupId">The consumer group.</param>
    /// <param name="topic">The topic.</param>
    /// <param name="timeout">How long to wait for the broker; 10 seconds by default.</param>
    /// <returns>Partition to committed offset; <see cref="Offset.Unset"/> (-1001) where the group committed nothing.</returns>
    public IReadOnlyDictionary<int, long> GetCommittedOffsets(string groupId, string topic, TimeSpan? timeout = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(groupId);
        var partitions = PartitionsOf(topic, timeout);
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
        {
            BootstrapServers = BootstrapServers,
            GroupId = groupId,
            EnableAutoCommit = false,
        }).Build();
        return consumer.Committed(partitions.Select(p => new TopicPartition(topic, p)), timeout ?? DefaultTimeout)
            .ToDictionary(c => c.Partition.Value, c => c.Offset.Value);
    }

    /// <summary>Gets the high watermark (the offset the next record will get) of each partition of a topic.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="timeout">How long to wait for the broker; 10 seconds by default.</param>
    /// <returns>Partition to high watermark.</returns>
    public IReadOnlyDictionary<int, long> GetHighWatermarks(string topic, TimeSpan? timeout = null)
    {
        var partitions = PartitionsOf(topic, timeout);
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
        {
            BootstrapServers = BootstrapServers,
            GroupId = "kafka-reliable-watermarks",
        }).Build();
        return partitions.ToDictionary(
            p => p,
            p => consumer.QueryWatermarkOffsets(new TopicPartition(topic, p), timeout ?? DefaultTimeout).High.Value);
    }

    /// <summary>Makes the next requests of one kind fail: each error answers one request, in order, on whichever broker gets it.</summary>
    /// <param name="apiKey">The kind of request.</param>
    /// <param name="errors">The errors to answer with.</param>
    public void PushRequestErrors(KafkaApiKey apiKey, params ErrorCode[] errors)
    {
        ArgumentNullException.ThrowIfNull(errors);
        if (errors.Length == 0)
        {
            return;
        }

        LibRdKafka.rd_kafka_mock_push_request_errors_array(Cluster, (short)apiKey, (nuint)errors.Length, Array.ConvertAll(errors, e => (int)e));
    }

    /// <summary>Forgets the errors pushed for one kind of request that were not used yet.</summary>
    /// <param name="apiKey">The kind of request.</param>
    public void ClearRequestErrors(KafkaApiKey apiKey) => LibRdKafka.rd_kafka_mock_clear_request_errors(Cluster, (short)apiKey);

    /// <summary>
    /// Starts recording every request the brokers receive (which broker, which kind, when), forgetting what was recorded
    /// before. A test can then assert what a client sent: that a consumer committed, or never did.
    /// </summary>
    /// <remarks>
    /// The record holds every request until <see cref="StopRequestTracking"/> or <see cref="ClearTrackedRequests"/>, about
    /// 40 bytes each: a busy consumer sends hundreds of fetches a second. The requests of every client of the cluster are
    /// recorded alike (the broker does not say which client sent one), including the helper producer's.
    /// </remarks>
    public void StartRequestTracking() => LibRdKafka.rd_kafka_mock_start_request_tracking(Cluster);

    /// <summary>Stops recording requests and forgets what was recorded.</summary>
    public void StopRequestTracking() => LibRdKafka.rd_kafka_mock_stop_request_tracking(Cluster);

    /// <summary>Forgets the requests recorded so far; recording goes on if it was started.</summary>
    public void ClearTrackedRequests() => LibRdKafka.rd_kafka_mock_clear_requests(Cluster);

    /// <summary>Gets the requests recorded since <see cref="StartRequestTracking"/> (or the last clear), in the order received.</summary>
    /// <returns>The requests; empty when tracking was not started.</returns>
    public IReadOnlyList<KafkaBrokerRequest> GetTrackedRequests()
    {
        var array = LibRdKafka.rd_kafka_mock_get_requests(Cluster, out var count);
        if (array == IntPtr.Zero)
        {
            return [];
        }

        try
        {
            var requests = new KafkaBrokerRequest[checked((int)count)];
            for (var i = 0; i < requests.Length; i++)
            {
                var request = Marshal.ReadIntPtr(array, i * IntPtr.Size);
                requests[i] = new KafkaBrokerRequest(
                    LibRdKafka.rd_kafka_mock_request_id(request),
                    (KafkaApiKey)LibRdKafka.rd_kafka_mock_request_api_key(request),
                    LibRdKafka.rd_kafka_mock_request_timestamp(request));
            }

            return requests;
        }
        finally
        {
            LibRdKafka.rd_kafka_mock_request_destroy_array(array, count);
        }
    }

    /// <summary>Takes a broker down: its connections are closed and new ones refused until <see cref="SetBrokerUp"/>.</summary>
    /// <param name="brokerId">The broker, 1 to <see cref="BrokerCount"/>.</param>
    public void SetBrokerDown(int brokerId) => Check(LibRdKafka.rd_kafka_mock_broker_set_down(Cluster, CheckBroker(brokerId)), $"take broker {brokerId} down");

    /// <summary>Brings a broker back up.</summary>
    /// <param name="brokerId">The broker, 1 to <see cref="BrokerCount"/>.</param>
    public void SetBrokerUp(int brokerId) => Check(LibRdKafka.rd_kafka_mock_broker_set_up(Cluster, CheckBroker(brokerId)), $"bring broker {brokerId} up");

    /// <summary>Delays every response of a broker by the given round-trip time.</summary>
    /// <param name="brokerId">The broker, 1 to <see cref="BrokerCount"/>.</param>
    /// <param name="roundTripTime">The delay; zero removes it.</param>
    public void SetBrokerRoundTripTime(int brokerId, TimeSpan roundTripTime)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(roundTripTime, TimeSpan.Zero);
        Check(LibRdKafka.rd_kafka_mock_broker_set_rtt(Cluster, CheckBroker(brokerId), (int)roundTripTime.TotalMilliseconds), $"set the round-trip time of broker {brokerId}");
    }

    /// <summary>
    /// Sets the session timeout of consumer groups that speak the consumer protocol (KIP-848's broker-side
    /// <c>group.consumer.session.timeout.ms</c>; 45 s by default): a member that sends no heartbeat for that long is fenced
    /// and its partitions are given to the others. Keep it short in tests. Groups of the classic protocol keep their
    /// members' own <c>session.timeout.ms</c>.
    /// </summary>
    /// <param name="sessionTimeout">The timeout, at least 1 ms.</param>
    public void SetConsumerGroupSessionTimeout(TimeSpan sessionTimeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sessionTimeout, TimeSpan.FromMilliseconds(1));
        LibRdKafka.rd_kafka_mock_set_group_consumer_session_timeout_ms(Cluster, (int)sessionTimeout.TotalMilliseconds);
    }

    /// <summary>
    /// Sets the heartbeat interval the brokers give members of consumer-protocol groups (KIP-848's
    /// <c>group.consumer.heartbeat.interval.ms</c>; 3 s by default): how often each member reports, and so how quickly it
    /// learns of a new assignment.
    /// </summary>
    /// <param name="heartbeatInterval">The interval, at least 1 ms.</param>
    public void SetConsumerGroupHeartbeatInterval(TimeSpan heartbeatInterval)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(heartbeatInterval, TimeSpan.FromMilliseconds(1));
        LibRdKafka.rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(Cluster, (int)heartbeatInterval.TotalMilliseconds);
    }

    /// <summary>
    /// Scripts the target assignment of a consumer-protocol group (KIP-848): from now on the brokers move the group's
    /// members towards it, incrementally (a partition is revoked from its owner before it is assigned to its next one),
    /// instead of computing one. Members not named get nothing. The group must exist (a member joined it). Members are
    /// named by their member ids (<c>IConsumer.MemberId</c>; a reliable consumer's health check reports its own as
    /// <c>member_id</c>).
    /// </summary>
    /// <param name="groupId">The group.</param>
    /// <param name="assignment">Each member's partitions.</param>
    public void SetConsumerGroupAssignment(string groupId, IReadOnlyDictionary<string, IReadOnlyList<TopicPartition>> assignment)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(groupId);
        ArgumentNullException.ThrowIfNull(assignment);
        var members = assignment.ToList();
        var ids = new IntPtr[members.Count];
        var lists = new IntPtr[members.Count];
        var target = IntPtr.Zero;
        try
        {
            for (var i = 0; i < members.Count; i++)
            {
                ids[i] = Marshal.StringToCoTaskMemUTF8(members[i].Key);
                lists[i] = LibRdKafka.rd_kafka_topic_partition_list_new(Math.Max(1, members[i].Value.Count));
                foreach (var partition in members[i].Value)
                {
                    LibRdKafka.rd_kafka_topic_partition_list_add(lists[i], partition.Topic, partition.Partition.Value);
                }
            }

            // The target assignment copies the ids and lists; they are freed below.
            target = LibRdKafka.rd_kafka_mock_cgrp_consumer_target_assignment_new(ids, members.Count, lists);
            LibRdKafka.rd_kafka_mock_cgrp_consumer_target_assignment(Cluster, groupId, target);
        }
        finally
        {
            if (target != IntPtr.Zero)
            {
                LibRdKafka.rd_kafka_mock_cgrp_consumer_target_assignment_destroy(target);
            }

            for (var i = 0; i < members.Count; i++)
            {
                if (lists[i] != IntPtr.Zero)
                {
                    LibRdKafka.rd_kafka_topic_partition_list_destroy(lists[i]);
                }

                Marshal.FreeCoTaskMem(ids[i]);
            }
        }
    }

    /// <summary>Gives a consumer-protocol group back to the brokers' own assignment (a range assignment over its members), after <see cref="SetConsumerGroupAssignment"/>.</summary>
    /// <param name="groupId">The group.</param>
    public void ClearConsumerGroupAssignment(string groupId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(groupId);
        LibRdKafka.rd_kafka_mock_cgrp_consumer_target_assignment(Cluster, groupId, IntPtr.Zero);
    }

    /// <summary>Moves the coordinator of a consumer group or a transactional id to a broker.</summary>
    /// <param name="type">Group or transaction coordinator.</param>
    /// <param name="key">The group id or transactional id.</param>
    /// <param name="brokerId">The broker, 1 to <see cref="BrokerCount"/>.</param>
    public void SetCoordinator(KafkaCoordinatorType type, string key, int brokerId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        var keyType = type == KafkaCoordinatorType.Transaction ? "transaction" : "group";
        Check(LibRdKafka.rd_kafka_mock_coordinator_set(Cluster, keyType, key, CheckBroker(brokerId)), $"move the {keyType} coordinator of '{key}' to broker {brokerId}");
    }

    /// <summary>Moves the leadership of a partition to a broker.</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="partition">The partition.</param>
    /// <param name="brokerId">The broker, 1 to <see cref="BrokerCount"/>.</param>
    public void SetPartitionLeader(string topic, int partition, int brokerId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(topic);
        ArgumentOutOfRangeException.ThrowIfNegative(partition);
        Check(LibRdKafka.rd_kafka_mock_partition_set_leader(Cluster, topic, partition, CheckBroker(brokerId)), $"move the leader of {topic} [{partition}] to broker {brokerId}");
    }

    /// <summary>Stops the cluster: the helper producer, then the brokers, then the host handle. Dispose connected clients first.</summary>
    public void Dispose()
    {
        IProducer<byte[]?, byte[]?>? producer;
        IntPtr cluster;
        IntPtr handle;
        lock (_gate)
        {
            producer = _producer;
            cluster = _cluster;
            handle = _handle;
            _producer = null;
            _cluster = IntPtr.Zero;
            _handle = IntPtr.Zero;
        }

        producer?.Dispose();
        if (cluster != IntPtr.Zero)
        {
            LibRdKafka.rd_kafka_mock_cluster_destroy(cluster);
        }

        if (handle != IntPtr.Zero)
        {
            LibRdKafka.rd_kafka_destroy(handle);
        }
    }

    /// <inheritdoc cref="Dispose"/>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private IntPtr Cluster
    {
        get
        {
            var cluster = _cluster;
            ObjectDisposedException.ThrowIf(cluster == IntPtr.Zero, this);
            return cluster;
        }
    }

    private IProducer<byte[]?, byte[]?> Producer
    {
        get
        {
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
                return _producer ??= new ProducerBuilder<byte[]?, byte[]?>(new ProducerConfig
                {
                    BootstrapServers = BootstrapServers,
                    Acks = Acks.All,
                    LingerMs = 2,
                }).Build();
            }
        }
    }

    private List<int> PartitionsOf(string topic, TimeSpan? timeout)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(topic);
        _ = Cluster;
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = BootstrapServers }).Build();
        var metadata = admin.GetMetadata(topic, timeout ?? DefaultTimeout).Topics.Single();
        if (metadata.Error.IsError)
        {
            throw new InvalidOperationException($"Topic '{topic}' is not available on the embedded broker: {metadata.Error.Reason}.");
        }

        return metadata.Partitions.Select(p => p.PartitionId).Order().ToList();
    }

    private int CheckBroker(int brokerId)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(brokerId, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(brokerId, BrokerCount);
        return brokerId;
    }

    private static void Check(int error, string action)
    {
        if (error != 0)
        {
            throw new InvalidOperationException($"The embedded broker could not {action}: {LibRdKafka.ErrorText(error)}.");
        }
    }
}
