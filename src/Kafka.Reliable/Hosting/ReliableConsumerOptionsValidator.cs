using Kafka.Reliable.DeadLetter;
using Kafka.Reliable.Idempotency;
using Kafka.Reliable.RetryTiers;
using System.Text.RegularExpressions;
using Confluent.Kafka;
using Kafka.Reliable.Consuming;
using Microsoft.Extensions.Options;

namespace Kafka.Reliable.Hosting;

/// <summary>
/// Checks a consumer's options when the host starts (G9), and says for each problem which setting to fix and how.
/// The Kafka settings are checked by librdkafka itself, so a misspelt or out-of-range property fails here, not at the first poll.
/// </summary>
internal sealed partial class ReliableConsumerOptionsValidator(ConsumerRegistry registry, IOptionsMonitor<IdempotencyStoreOptions> stores) : IValidateOptions<ReliableConsumerOptions>
{
    public ValidateOptionsResult Validate(string? name, ReliableConsumerOptions options)
    {
        if (name is null || !registry.TryGet(name, out var registration))
        {
            return ValidateOptionsResult.Skip;
        }

        var errors = new ValidateOptionsResultBuilder();
        string Setting(string property) => registration.SettingName(property);
        var store = stores.GetUnlessInvalid(name);

        if (string.IsNullOrWhiteSpace(options.BootstrapServers))
        {
            errors.AddError($"{Setting("BootstrapServers")} is required: set it to the Kafka brokers, for example 'localhost:9092'.");
        }

        if (string.IsNullOrWhiteSpace(options.GroupId))
        {
            errors.AddError($"{Setting("GroupId")} is required: set it to the consumer group, for example 'orders-loader'.");
        }

        if (options.Topics.Count == 0)
        {
            errors.AddError($"{Setting("Topics")} is empty: list at least one topic to consume.");
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.Topics.Count; i++)
        {
            var topic = options.Topics[i];
            if (string.IsNullOrEmpty(topic) || !TopicName().IsMatch(topic))
            {
                errors.AddError($"{Setting($"Topics:{i}")} ('{topic}') is not a valid topic name: use 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-'.");
            }
            else if (!seen.Add(topic))
            {
                errors.AddError($"{Setting($"Topics:{i}")} ('{topic}') is listed twice.");
            }
        }

        if (options.PartitionBufferSize is < 1 or > ReliableConsumerConstants.MaxPartitionBufferSize)
        {
            errors.AddError($"{Setting("PartitionBufferSize")} is {options.PartitionBufferSize}: use a value from 1 to {ReliableConsumerConstants.MaxPartitionBufferSize}.");
        }

        if (options.MaxBufferedBytes is < ReliableConsumerConstants.MinMaxBufferedBytes or > ReliableConsumerConstants.MaxMaxBufferedBytes)
        {
            errors.AddError(
                $"{Setting("MaxBufferedBytes")} is {options.MaxBufferedBytes}: use a number of bytes from {ReliableConsumerConstants.MinMaxBufferedBytes} (1 MiB) " +
                $"to {ReliableConsumerConstants.MaxMaxBufferedBytes} (64 GiB); the default is {ReliableConsumerConstants.DefaultMaxBufferedBytes} (64 MiB).");
        }

        if (options.Batch.MaxSize is < 1 or > ReliableConsumerConstants.MaxBatchMaxSize)
        {
            errors.AddError($"{Setting("Batch:MaxSize")} is {options.Batch.MaxSize}: use a number of messages from 1 to {ReliableConsumerConstants.MaxBatchMaxSize}.");
        }

        if (options.Batch.MaxBytes is < ReliableConsumerConstants.MinBatchMaxBytes or > ReliableConsumerConstants.MaxBatchMaxBytes)
        {
            errors.AddError(
                $"{Setting("Batch:MaxBytes")} is {options.Batch.MaxBytes}: use a number of bytes from {ReliableConsumerConstants.MinBatchMaxBytes} (1 KiB) to " +
                $"{ReliableConsumerConstants.MaxBatchMaxBytes} (1 GiB); the default is {ReliableConsumerConstants.DefaultBatchMaxBytes} (4 MiB).");
        }

        CheckDuration(errors, Setting("Batch:Linger"), options.Batch.Linger, TimeSpan.Zero, TimeSpan.FromMinutes(1));
        CheckDuration(errors, Setting("ShutdownTimeout"), options.ShutdownTimeout, TimeSpan.Zero, ReliableConsumerConstants.MaxDuration);
        CheckDuration(errors, Setting("RevokeTimeout"), options.RevokeTimeout, TimeSpan.Zero, ReliableConsumerConstants.MaxDuration);
        CheckDuration(errors, Setting("PollTimeout"), options.PollTimeout, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(10));
        CheckDuration(errors, Setting("Commit:Interval"), options.Commit.Interval, TimeSpan.FromMilliseconds(1), ReliableConsumerConstants.MaxDuration);
        CheckDuration(errors, Setting("Commit:RejoinWhenRefusedFor"), options.Commit.RejoinWhenRefusedFor, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1));
        if (!Enum.IsDefined(options.Commit.Strategy))
        {
            errors.AddError($"{Setting("Commit:Strategy")} is {options.Commit.Strategy}: use one of {string.Join(", ", Enum.GetNames<CommitStrategy>())}.");
        }

        if (!Enum.IsDefined(options.StartPosition))
        {
            errors.AddError($"{Setting("StartPosition")} is {options.StartPosition}: use one of {string.Join(", ", Enum.GetNames<StartPosition>())}.");
        }

        if (options.Commit.Count < 0)
        {
            errors.AddError($"{Setting("Commit:Count")} is {options.Commit.Count}: use 0 (commit on the interval only) or a positive number of records.");
        }

        if (options.DeadLetter.Enabled)
        {
            foreach (var topic in options.Topics)
            {
                var deadLetterTopic = options.DeadLetter.Topic?.Replace(DeadLetterConstants.TopicPlaceholder, topic, StringComparison.Ordinal);
                if (string.IsNullOrEmpty(deadLetterTopic) || !TopicName().IsMatch(deadLetterTopic))
                {
                    errors.AddError($"{Setting("DeadLetter:Topic")} ('{options.DeadLetter.Topic}') does not give a valid topic name for '{topic}': use letters, digits, '.', '_', '-' and the placeholder {{topic}}.");
                    break;
                }

                if (options.Topics.Contains(deadLetterTopic))
                {
                    errors.AddError($"{Setting("DeadLetter:Topic")} ('{options.DeadLetter.Topic}') names a topic this consumer reads ('{deadLetterTopic}'): rejected records would come back forever.");
                    break;
                }
            }
        }

        CheckRetryTiers(errors, options, Setting);
        CheckDuration(errors, Setting("Retry:Delay"), options.Retry.Delay, TimeSpan.Zero, ReliableConsumerConstants.MaxDuration);
        CheckDuration(errors, Setting("Retry:MaxDelay"), options.Retry.MaxDelay, options.Retry.Delay, ReliableConsumerConstants.MaxDuration);
        if (options.Retry.MaxAttempts is < 1 or > ReliableConsumerConstants.MaxRetryAttempts)
        {
            errors.AddError($"{Setting("Retry:MaxAttempts")} is {options.Retry.MaxAttempts}: use a value from 1 (no retry) to {ReliableConsumerConstants.MaxRetryAttempts}; it counts the first attempt.");
        }

        if (!Enum.IsDefined(options.Retry.BackoffType))
        {
            errors.AddError($"{Setting("Retry:BackoffType")} is {options.Retry.BackoffType}: use one of {string.Join(", ", Enum.GetNames<Polly.DelayBackoffType>())}.");
        }

        if (options.CircuitBreaker.Enabled)
        {
            var breaker = options.CircuitBreaker;
            if (!(breaker.FailureRatio > 0 && breaker.FailureRatio <= 1))
            {
                errors.AddError($"{Setting("CircuitBreaker:FailureRatio")} is {breaker.FailureRatio}: use a share greater than 0 and at most 1, for example 0.5.");
            }

            if (breaker.MinimumThroughput is < 2 or > 1_000_000)
            {
                errors.AddError($"{Setting("CircuitBreaker:MinimumThroughput")} is {breaker.MinimumThroughput}: use a number of attempts from 2 to 1000000.");
            }

            CheckDuration(errors, Setting("CircuitBreaker:SamplingDuration"), breaker.SamplingDuration, ReliableConsumerConstants.MinCircuitDuration, ReliableConsumerConstants.MaxCircuitDuration);
            CheckDuration(errors, Setting("CircuitBreaker:BreakDuration"), breaker.BreakDuration, ReliableConsumerConstants.MinCircuitDuration, ReliableConsumerConstants.MaxCircuitDuration);
        }

        // Checked even while RestartWhenStuck is off: turning the watchdog on later must not be what reveals a bad value.
        CheckDuration(errors, Setting("Watchdog:StuckAfter"), options.Watchdog.StuckAfter, ReliableConsumerConstants.MinStuckAfter, ReliableConsumerConstants.MaxStuckAfter);

        if (store.HasStore)
        {
            var idempotency = options.Idempotency;
            if (string.IsNullOrWhiteSpace(idempotency.KeyHeader))
            {
                errors.AddError($"{Setting("Idempotency:KeyHeader")} is empty: name the header that carries a message id, for example 'message-id'.");
            }

            CheckDuration(errors, Setting("Idempotency:LeaseDuration"), idempotency.LeaseDuration, TimeSpan.FromSeconds(1), TimeSpan.FromDays(1));
            CheckDuration(errors, Setting("Idempotency:Retention"), idempotency.Retention, TimeSpan.FromMinutes(1), TimeSpan.FromDays(3650));
            CheckDuration(errors, Setting("Idempotency:CleanupInterval"), idempotency.CleanupInterval, TimeSpan.FromSeconds(1), TimeSpan.FromDays(1));
        }

        if (options.Commit.Strategy == CommitStrategy.Manual && store.IsTransactional)
        {
            // See docs/idempotency.md, "Stores, dispatch modes and commit strategies".
            errors.AddError(
                $"{Setting("Commit:Strategy")} is Manual, which cannot be combined with a transactional idempotency store: the handler's writes and the message's key commit " +
                "together when the handler returns, so an acknowledgement deferred past the return cannot hold them back, and a deferred record that is never acknowledged " +
                "would be skipped as a duplicate when it is delivered again. Use Commit:Strategy PerMessage or Periodic with the transactional store (the transaction already " +
                "makes the effects durable before the record counts as done), or keep Manual with the store's lease mode (Transactional = false), where the acknowledgement completes the key.");
        }

        if (options.Commit.Strategy == CommitStrategy.Transactional)
        {
            if (options.Dispatch != DispatchMode.Sequential)
            {
                errors.AddError($"{Setting("Commit:Strategy")} is Transactional, which needs {Setting("Dispatch")} = Sequential (one record per partition in a transaction at a time); it is {options.Dispatch}.");
            }

            if (store.HasStore)
            {
                errors.AddError($"{Setting("Commit:Strategy")} is Transactional, which cannot be combined with an idempotency store: the Kafka transaction already makes the output and the offset atomic. Remove the Use...Idempotency call, or choose another strategy.");
            }

            if (options.Watchdog.RestartWhenStuck)
            {
                errors.AddError($"{Setting("Commit:Strategy")} is Transactional, which cannot be combined with {Setting("Watchdog:RestartWhenStuck")}: a handler that ignores its cancellation could still commit its transaction after the restart, and its output would be written twice. Turn the restart off (the health check still reports a stuck consumer), or choose another strategy.");
            }
        }

        if (!Enum.IsDefined(options.Dispatch))
        {
            errors.AddError($"{Setting("Dispatch")} is {options.Dispatch}: use one of {string.Join(", ", Enum.GetNames<DispatchMode>())}.");
        }

        if (options.MaxInFlight is < 1 or > ReliableConsumerConstants.MaxMaxInFlight)
        {
            errors.AddError($"{Setting("MaxInFlight")} is {options.MaxInFlight}: use a number of records from 1 to {ReliableConsumerConstants.MaxMaxInFlight}.");
        }

        if (!Enum.IsDefined(options.Tombstones))
        {
            errors.AddError($"{Setting("Tombstones")} is {options.Tombstones}: use one of {string.Join(", ", Enum.GetNames<TombstonePolicy>())}.");
        }

        if (options.MaxPayloadBytes < 1)
        {
            errors.AddError($"{Setting("MaxPayloadBytes")} is {options.MaxPayloadBytes}: use a size in bytes from 1 to {int.MaxValue}, for example 1048576 for 1 MiB.");
        }

        var managedOk = true;
        if (!Enum.IsDefined(options.GroupProtocol))
        {
            errors.AddError($"{Setting("GroupProtocol")} is {options.GroupProtocol}: use one of {string.Join(", ", Enum.GetNames<GroupProtocol>())}.");
        }
        else if (options.GroupProtocol == GroupProtocol.Consumer)
        {
            foreach (var (key, replacement) in ReliableConsumerConstants.ClassicOnlyKafkaSettings)
            {
                if (options.KafkaSettings.ContainsKey(key))
                {
                    managedOk = false;
                    errors.AddError($"{Setting($"KafkaSettings:{key}")} belongs to the classic group protocol, and {Setting("GroupProtocol")} is Consumer: {replacement}.");
                }
            }
        }
        else if (options.KafkaSettings.ContainsKey("group.remote.assignor"))
        {
            managedOk = false;
            errors.AddError($"{Setting("KafkaSettings:group.remote.assignor")} is for the consumer group protocol, and {Setting("GroupProtocol")} is Classic: set GroupProtocol to Consumer, or choose the client's assignor with KafkaSettings:partition.assignment.strategy.");
        }

        if (options.GroupInstanceId is { } instanceId && (instanceId.Length is 0 or > 249 || string.IsNullOrWhiteSpace(instanceId)))
        {
            errors.AddError($"{Setting("GroupInstanceId")} ('{instanceId}') is not a valid group instance id: use 1 to 249 characters unique to this member of the group (the pod's name, for example), or leave it unset for dynamic membership.");
        }

        foreach (var (key, value) in options.KafkaSettings)
        {
            if (ReliableConsumerConstants.ManagedKafkaSettings.TryGetValue(key, out var typed))
            {
                managedOk = false;
                errors.AddError($"{Setting($"KafkaSettings:{key}")} is managed by Kafka.Reliable: remove it and set {Setting(typed)} instead.");
            }
            else if (value is null)
            {
                managedOk = false;
                errors.AddError($"{Setting($"KafkaSettings:{key}")} has no value: give it one or remove it.");
            }
        }

        if (managedOk && !string.IsNullOrWhiteSpace(options.BootstrapServers) && !string.IsNullOrWhiteSpace(options.GroupId))
        {
            CheckWithLibrdkafka(errors, name, options, Setting("KafkaSettings"));
        }

        // Checked even while dead-lettering is off: turning it on later must not be what reveals a bad value.
        var producerOk = true;
        foreach (var (key, value) in options.DeadLetter.ProducerSettings)
        {
            var setting = Setting($"DeadLetter:ProducerSettings:{key}");
            if (DeadLetterConstants.ManagedProducerSettings.TryGetValue(key, out var reason))
            {
                producerOk = false;
                errors.AddError($"{setting} is managed by Kafka.Reliable ({reason}): remove it.");
            }
            else if (value is null)
            {
                producerOk = false;
                errors.AddError($"{setting} has no value: give it one or remove it.");
            }
            else if (key == "acks" && value is not ("all" or "-1"))
            {
                producerOk = false;
                errors.AddError($"{setting} is '{value}': a dead letter counts as written only once every in-sync replica has it; remove the setting or set it to 'all'.");
            }
        }

        if (producerOk && managedOk && options.DeadLetter.ProducerSettings.Count > 0 && !string.IsNullOrWhiteSpace(options.BootstrapServers))
        {
            CheckProducerWithLibrdkafka(errors, name, options, Setting("DeadLetter:ProducerSettings"));
        }

        return errors.Build();
    }

    /// <summary>Checks the retry tiers' settings, and the settings they cannot work with (see docs/failure-handling.md, "Retry tiers").</summary>
    private static void CheckRetryTiers(ValidateOptionsResultBuilder errors, ReliableConsumerOptions options, Func<string, string> setting)
    {
        var tiers = options.RetryTiers;
        if (!Enum.IsDefined(tiers.Ordering))
        {
            errors.AddError($"{setting("RetryTiers:Ordering")} is {tiers.Ordering}: use one of {string.Join(", ", Enum.GetNames<RetryTierOrdering>())}.");
        }

        if (tiers.Delays.Count > RetryTierConstants.MaxTiers)
        {
            errors.AddError($"{setting("RetryTiers:Delays")} has {tiers.Delays.Count} delays: use at most {RetryTierConstants.MaxTiers} (each is a tier a failing record goes through).");
        }

        for (var i = 0; i < tiers.Delays.Count; i++)
        {
            CheckDuration(errors, setting($"RetryTiers:Delays:{i}"), tiers.Delays[i], RetryTierConstants.MinDelay, RetryTierConstants.MaxDelay);
        }

        if (tiers.MaxParkedRecords is < 1 or > RetryTierConstants.MaxMaxParkedRecords)
        {
            errors.AddError($"{setting("RetryTiers:MaxParkedRecords")} is {tiers.MaxParkedRecords}: use a number of records from 1 to {RetryTierConstants.MaxMaxParkedRecords}.");
        }

        var tierCount = tiers.EffectiveDelays.Count;
        foreach (var (type, tier) in tiers.RouteTiers)
        {
            if (tier > tierCount)
            {
                errors.AddError($"RetryTiers.ParkAtOnce<{type.Name}>(tier: {tier}) names tier {tier}, but there are {tierCount} tiers ({setting("RetryTiers:Delays")}): use a tier from 1 to {tierCount}.");
            }
        }

        if (!tiers.Enabled)
        {
            return;
        }

        if (options.Topics.Count > 1 && tiers.Topic?.Contains(DeadLetterConstants.TopicPlaceholder, StringComparison.Ordinal) != true)
        {
            errors.AddError($"{setting("RetryTiers:Topic")} ('{tiers.Topic}') has no {{topic}} placeholder, and the consumer reads {options.Topics.Count} topics: each topic needs a retry topic of its own (partition P of it holds partition P's parked records). Use a name with {{topic}}, for example '{{topic}}.retry'.");
        }

        foreach (var topic in options.Topics)
        {
            var retryTopic = RetryRecords.TopicFor(tiers, topic);
            if (string.IsNullOrEmpty(retryTopic) || !TopicName().IsMatch(retryTopic) || retryTopic == topic)
            {
                errors.AddError($"{setting("RetryTiers:Topic")} ('{tiers.Topic}') does not give a valid retry topic for '{topic}': use letters, digits, '.', '_', '-' and the placeholder {{topic}}, for example '{{topic}}.retry'.");
                break;
            }

            if (options.Topics.Contains(retryTopic))
            {
                errors.AddError($"{setting("RetryTiers:Topic")} ('{tiers.Topic}') names a topic this consumer reads ('{retryTopic}'): the consumer reads its retry topics itself; remove it from {setting("Topics")}.");
                break;
            }

            if (options.DeadLetter.Topic?.Replace(DeadLetterConstants.TopicPlaceholder, topic, StringComparison.Ordinal) == retryTopic)
            {
                errors.AddError($"{setting("RetryTiers:Topic")} and {setting("DeadLetter:Topic")} name the same topic ('{retryTopic}'): give retry tiers a topic of their own.");
                break;
            }
        }

        if (!options.DeadLetter.Enabled)
        {
            errors.AddError($"{setting("RetryTiers:Enabled")} is true and {setting("DeadLetter:Enabled")} is false: a record that fails in its last tier is dead-lettered, and parked copies are written with the dead-letter producer. Turn dead-lettering on.");
        }

        if (options.Commit.Strategy is CommitStrategy.Manual or CommitStrategy.Transactional)
        {
            errors.AddError(
                $"{setting("RetryTiers:Enabled")} is true and {setting("Commit:Strategy")} is {options.Commit.Strategy}: a record is done when its copy in the retry topic is acknowledged, " +
                (options.Commit.Strategy == CommitStrategy.Manual
                    ? "which a handler's acknowledgement cannot hold back. Use Periodic or PerMessage with retry tiers."
                    : "outside any Kafka transaction, so a parked record's output could not be atomic with its offset. Use Periodic or PerMessage with retry tiers (and an idempotency store for effectively-once handling)."));
        }
    }

    private static void CheckDuration(ValidateOptionsResultBuilder errors, string setting, TimeSpan value, TimeSpan min, TimeSpan max)
    {
        if (value < min || value > max)
        {
            errors.AddError($"{setting} is {value}: use a duration from {min} to {max}, written like '00:00:05' for 5 seconds.");
        }
    }

    private static void CheckWithLibrdkafka(ValidateOptionsResultBuilder errors, string name, ReliableConsumerOptions options, string setting)
    {
        // Outside the try: failing to load librdkafka is the library's problem, not the settings', and is thrown as such.
        KafkaNativeLibrary.EnsureLoaded();
        try
        {
            // Creating a client makes librdkafka check every property and their combinations; it connects lazily, so nothing goes on the network.
            using var probe = new ConsumerBuilder<Ignore, Ignore>(ConsumerRunner.BuildConfig(name, options)).SetLogHandler(static (_, _) => { }).Build();
        }
        catch (Exception ex) when (ex is ArgumentException or KafkaException or InvalidOperationException)
        {
            errors.AddError($"{setting}: librdkafka rejected the consumer settings: {ex.Message}");
        }
    }

    private static void CheckProducerWithLibrdkafka(ValidateOptionsResultBuilder errors, string name, ReliableConsumerOptions options, string setting)
    {
        KafkaNativeLibrary.EnsureLoaded();
        try
        {
            // As for the consumer: librdkafka checks every property when the client is created, and connects lazily.
            using var probe = new ProducerBuilder<Null, Null>(DeadLetter.DeadLetterPublisher.BuildConfig(options, name)).SetLogHandler(static (_, _) => { }).Build();
        }
        catch (Exception ex) when (ex is ArgumentException or KafkaException or InvalidOperationException)
        {
            errors.AddError($"{setting}: librdkafka rejected the dead-letter producer settings: {ex.Message}");
        }
    }

    [GeneratedRegex("^[a-zA-Z0-9._-]{1,249}$")]
    private static partial Regex TopicName();
}
