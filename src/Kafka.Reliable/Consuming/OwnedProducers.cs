namespace Kafka.Reliable.Consuming;

/// <summary>The producers a consumer owns: its dead-letter producer and, with Kafka transactions, its transactional ones.</summary>
internal static class OwnedProducers
{
    /// <summary>librdkafka settings the consumer's own producers take over from its settings: how to reach and authenticate to the cluster.</summary>
    public static readonly string[] SharedSettingPrefixes = ["security.", "sasl.", "ssl.", "client.dns.lookup", "socket.", "broker.address.family"];

    /// <summary>
    /// The settings of the producers a consumer owns (dead letters, Kafka transactions): idempotent, acks=all, reaching the
    /// cluster as the consumer does (its <see cref="SharedSettingPrefixes"/> settings).
    /// </summary>
    public static Confluent.Kafka.ProducerConfig Config(ReliableConsumerOptions options)
    {
        var config = new Confluent.Kafka.ProducerConfig
        {
            BootstrapServers = options.BootstrapServers,
            EnableIdempotence = true,
            Acks = Confluent.Kafka.Acks.All,
            LingerMs = 5,
        };
        foreach (var (key, value) in options.KafkaSettings)
        {
            if (Array.Exists(SharedSettingPrefixes, prefix => key.StartsWith(prefix, StringComparison.Ordinal)))
            {
                config.Set(key, value);
            }
        }

        return config;
    }
}
