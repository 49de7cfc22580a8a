using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;
using Confluent.Kafka.Admin;

namespace Kafka.Reliable.Cli;

/// <summary>
/// <c>offsets reset</c>: moves a consumer group's committed offsets on one topic. It shows the plan unless
/// <c>--execute</c> is given, and it applies a plan only to a group without active members.
/// </summary>
/// <remarks>
/// The group is checked with DescribeGroups where the broker supports it, and the offsets are written with
/// AlterConsumerGroupOffsets, which a broker refuses for a group with members (so a member that joins in between is
/// caught too). A broker without DescribeGroups (the embedded broker) that also refuses an admin commit to a group
/// that once had members is handled by joining the group (with the cooperative-sticky assignor of the library's
/// consumers): the tool commits as a member only when its first assignment is every partition of the topic, i.e. no
/// other member consumes the topic.
/// </remarks>
internal static class OffsetsResetCommand
{
    private const string TargetOptions = "--to-earliest, --to-latest, --to-offset, --to-datetime or --shift-by";

    public static Command Create(CliContext cli)
    {
        var (output, error, bootstrap, json) = (cli.Console, cli.Error, cli.Bootstrap, cli.Json);
        var group = CliOptions.Text("--group", "The consumer group whose offsets move", required: true, "-g");
        var topic = CliOptions.Text("--topic", "The topic", required: true, "-t");
        var partitions = CliOptions.Ints("--partition", "Only this partition (repeat for several); all by default", 0, int.MaxValue, "-p");
        var earliest = new Option<bool>("--to-earliest") { Description = "To the first record still in the partition" };
        var latest = new Option<bool>("--to-latest") { Description = "To the end: skip everything not yet consumed" };
        var offset = CliOptions.Long("--to-offset", "To this offset (kept within the partition's first and end offsets)", 0, long.MaxValue);
        var datetime = CliOptions.Time("--to-datetime", $"To the first record at or after this time ({CliOptions.TimeFormat})");
        var shift = CliOptions.Long("--shift-by", "By this many records from the committed offset (negative re-reads)", long.MinValue, long.MaxValue);
        var execute = new Option<bool>("--execute") { Description = "Apply the plan; without it the command only shows it" };
        var joinTimeout = CliOptions.Int("--join-timeout", "Seconds to wait for the group when the broker cannot describe it (the embedded broker)", 1, 3600, defaultValue: 30);
        var sessionTimeout = CliOptions.Int("--session-timeout-ms", "session.timeout.ms to join with when the broker cannot describe the group; use your consumers' value", 1, 3_600_000, defaultValue: 10_000);
        var reset = new Command("reset", "Moves a group's committed offsets on a topic: shows the plan, applies it with --execute, refuses while the group has active members.")
        {
            group, topic, partitions, earliest, latest, offset, datetime, shift, execute, joinTimeout, sessionTimeout,
        };
        cli.WithBrokers(reset);
        reset.SetAction(async (parse, cancellationToken) =>
        {
            var target = Target.From(parse.GetValue(earliest), parse.GetValue(latest), parse.GetValue(offset), parse.GetValue(datetime), parse.GetValue(shift));
            var servers = parse.GetValue(bootstrap)!;
            var request = new Request(servers, parse.GetValue(group)!, parse.GetValue(topic)!, KafkaReliableCli.PartitionsOf(servers, parse.GetValue(topic)!), parse.GetValue(partitions) ?? [], target);

            // Described before the committed offsets are read, so that a member that commits and stops meanwhile is either
            // seen as active or has its last commit in the plan.
            var activity = await DescribeAsync(request).ConfigureAwait(false);
            var plan = Plan(request);
            if (!parse.GetValue(execute))
            {
                await Print(output, parse.GetValue(json), request, plan, executed: false).ConfigureAwait(false);
                await error.WriteLineAsync(activity.Members > 0
                    ? $"warning: {activity.Describe(request.Group)}; --execute would be refused until they stop."
                    : activity.Supported ? $"Dry run: nothing changed. Add --execute to apply."
                    : $"Dry run: nothing changed. Add --execute to apply. (This broker cannot describe groups: --execute checks that no other member consumes '{request.Topic}' by joining the group.)").ConfigureAwait(false);
                return ExitCodes.Success;
            }

            if (activity.Members > 0)
            {
                throw new CliException(ExitCodes.GroupActive, $"Refused: {activity.Describe(request.Group)}. Stop every member of the group, then run the command again.");
            }

            await ApplyAsync(request, plan, activity.Supported, new JoinSettings(TimeSpan.FromSeconds(parse.GetValue(joinTimeout)), parse.GetValue(sessionTimeout)), cancellationToken).ConfigureAwait(false);
            var after = Committed(request.Servers, request.Group, plan.Select(p => p.TopicPartition).ToList());
            if (plan.FirstOrDefault(p => after[p.TopicPartition] != p.Target) is { } wrong)
            {
                throw new CliException(ExitCodes.KafkaError, $"The reset was sent but {Name(wrong.TopicPartition)} is committed at {after[wrong.TopicPartition]?.ToString(CultureInfo.InvariantCulture) ?? "nothing"}, not {wrong.Target}.");
            }

            await Print(output, parse.GetValue(json), request, plan, executed: true).ConfigureAwait(false);
            return ExitCodes.Success;
        });

        return new Command("offsets", "A consumer group's committed offsets.") { reset };
    }

    private static List<PlannedOffset> Plan(Request request)
    {
        var all = request.TopicPartitions;
        foreach (var wanted in request.Partitions.Where(p => all.All(a => a.Partition.Value != p)))
        {
            throw new CliException(ExitCodes.NotFound, $"Topic '{request.Topic}' has no partition {wanted} (it has {all.Count}: 0-{all.Count - 1}).");
        }

        var chosen = request.Partitions.Length == 0 ? all : all.Where(a => request.Partitions.Contains(a.Partition.Value)).ToList();
        var committed = Committed(request.Servers, request.Group, chosen);
        using var consumer = KafkaReliableCli.Consumer<byte[]?, byte[]?>(new ConsumerConfig
        {
            BootstrapServers = request.Servers,
            GroupId = KafkaReliableCli.ReaderGroup,
            EnableAutoCommit = false,
            EnablePartitionEof = true,
        });
        var plan = new List<PlannedOffset>();
        foreach (var partition in chosen)
        {
            var watermarks = consumer.QueryWatermarkOffsets(partition, KafkaReliableCli.RequestTimeout);
            var (low, high) = (watermarks.Low.Value, watermarks.High.Value);
            var current = committed[partition];
            var wanted = request.Target.Kind switch
            {
                TargetKind.Earliest => low,
                TargetKind.Latest => high,
                TargetKind.Offset => request.Target.Offset,
                TargetKind.Shift => (current ?? throw new CliException(ExitCodes.BadArguments,
                    $"Group '{request.Group}' has no committed offset on {Name(partition)} to shift from; choose --to-offset, --to-earliest, --to-latest or --to-datetime.")).SaturatingAdd(request.Target.Offset),
                _ => OffsetAtTime(consumer, partition, low, high, request.Target.Time),
            };
            var target = Math.Clamp(wanted, low, high);
            plan.Add(new PlannedOffset(partition, current, target, low, high, target != wanted ? $"kept within {low}-{high} (asked {wanted})" : null));
        }

        return plan;
    }

    /// <summary>The first offset whose record's timestamp is at or after <paramref name="time"/>, or the end offset when none is.</summary>
    private static long OffsetAtTime(IConsumer<byte[]?, byte[]?> consumer, TopicPartition partition, long low, long high, DateTimeOffset time)
    {
        var answer = consumer.OffsetsForTimes([new TopicPartitionTimestamp(partition, new Timestamp(time))], KafkaReliableCli.RequestTimeout)[0].Offset;
        if (answer.Value >= 0 || high == low || TimestampAt(consumer, partition, high - 1) < time)
        {
            return answer.Value >= 0 ? answer.Value : high;
        }

        // The broker found no record at or after the time, yet the last record is: it does not look offsets up by time
        // (the embedded broker). Search the records instead; Kafka's own lookup also assumes timestamps grow with offsets.
        var (first, last) = (low, high - 1);
        while (first < last)
        {
            var middle = first + ((last - first) / 2);
            if (TimestampAt(consumer, partition, middle) >= time)
            {
                last = middle;
            }
            else
            {
                first = middle + 1;
            }
        }

        return first;
    }

    private static string Name(TopicPartition partition) => $"{partition.Topic}[{partition.Partition.Value}]";

    /// <summary>The timestamp of the first record at or after <paramref name="offset"/>; <see cref="DateTimeOffset.MinValue"/> when there is none.</summary>
    private static DateTimeOffset TimestampAt(IConsumer<byte[]?, byte[]?> consumer, TopicPartition partition, long offset)
    {
        consumer.Assign(new TopicPartitionOffset(partition, offset));
        var deadline = DateTime.UtcNow + KafkaReliableCli.RequestTimeout;
        while (DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { } record)
            {
                // No record from the offset on (only transaction markers): nothing there is at or after any time.
                return record.IsPartitionEOF ? DateTimeOffset.MinValue : DateTimeOffset.FromUnixTimeMilliseconds(record.Message.Timestamp.UnixTimestampMs);
            }
        }

        throw new CliException(ExitCodes.KafkaError, $"Could not read {Name(partition)} at offset {offset} within {KafkaReliableCli.RequestTimeout} to find the offset for the time.");
    }

    private static Dictionary<TopicPartition, long?> Committed(string servers, string group, List<TopicPartition> partitions)
    {
        using var consumer = KafkaReliableCli.Consumer<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = servers, GroupId = group, EnableAutoCommit = false });
        return KafkaReliableCli.CommittedOffsets(consumer, partitions);
    }

    private static async Task<GroupActivity> DescribeAsync(Request request)
    {
        using var admin = KafkaReliableCli.Admin(request.Servers);
        try
        {
            var result = await admin.DescribeConsumerGroupsAsync([request.Group], new DescribeConsumerGroupsOptions { RequestTimeout = KafkaReliableCli.RequestTimeout }).ConfigureAwait(false);
            var group = result.ConsumerGroupDescriptions[0];
            return new GroupActivity(true, group.Members.Count, group.State.ToString(), string.Join(", ", group.Members.Take(5).Select(m => $"{m.ClientId}@{m.Host}")));
        }
        catch (DescribeConsumerGroupsException ex)
        {
            var failure = ex.Results.ConsumerGroupDescriptions.Select(d => d.Error).FirstOrDefault(e => e.IsError) ?? ex.Error;
            return failure.Code == ErrorCode.Local_UnsupportedFeature ? new GroupActivity(false, 0, null, null) : throw new KafkaException(failure);
        }
    }

    private static async Task ApplyAsync(Request request, List<PlannedOffset> plan, bool brokerDescribesGroups, JoinSettings join, CancellationToken cancellationToken)
    {
        var offsets = plan.Select(p => new TopicPartitionOffset(p.TopicPartition, p.Target)).ToList();
        using (var admin = KafkaReliableCli.Admin(request.Servers))
        {
            try
            {
                await admin.AlterConsumerGroupOffsetsAsync([new ConsumerGroupTopicPartitionOffsets(request.Group, offsets)]).ConfigureAwait(false);
                return;
            }
            catch (AlterConsumerGroupOffsetsException ex)
            {
                var failure = ex.Results.SelectMany(r => r.Partitions).Select(p => p.Error).FirstOrDefault(e => e.IsError) ?? ex.Error;
                if (failure.Code is not (ErrorCode.UnknownMemberId or ErrorCode.IllegalGeneration or ErrorCode.RebalanceInProgress))
                {
                    throw new KafkaException(failure);
                }

                if (brokerDescribesGroups)
                {
                    // The group was empty when described: a member joined since. Never join a live group to find out.
                    throw new CliException(ExitCodes.GroupActive,
                        $"Refused: a member joined group '{request.Group}' after it was found empty (Kafka answered {failure.Code}). Stop every member of the group, then run the command again.");
                }

                // A broker without DescribeGroups (the embedded broker) refuses because the group has, or once had,
                // members: find out by joining it.
            }
        }

        CommitAsOnlyMember(request, offsets, join, cancellationToken);
    }

    /// <summary>Joins the group, and commits only when the assignment shows that no other member consumes the topic.</summary>
    private static void CommitAsOnlyMember(Request request, List<TopicPartitionOffset> offsets, JoinSettings join, CancellationToken cancellationToken)
    {
        var partitionCount = request.TopicPartitions.Count;
        Error? joinError = null;
        int? firstAssignment = null;
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig
        {
            BootstrapServers = request.Servers,
            GroupId = request.Group,
            ClientId = "kafka-reliable-offsets-reset",
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,

            // The embedded broker lets a member join a group only with a session timeout at least as long as the
            // previous member's, and the next member only with one at least as long as this one's.
            SessionTimeoutMs = join.SessionTimeoutMs,

            // The library's consumers' assignor: a group's members must agree on one.
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky,
        })
            .SetLogHandler(static (_, _) => { })
            .SetErrorHandler((_, e) => joinError = e.IsFatal || e.Code is ErrorCode.InconsistentGroupProtocol ? e : joinError)

            // The first assignment after joining shows whether another member holds partitions of the topic.
            .SetPartitionsAssignedHandler((_, assigned) => firstAssignment ??= assigned.Count)
            .Build();
        consumer.Subscribe(request.Topic);
        try
        {
            var deadline = DateTime.UtcNow + join.Timeout;
            while (firstAssignment is null && joinError is null && DateTime.UtcNow < deadline && !cancellationToken.IsCancellationRequested)
            {
                try
                {
                    consumer.Consume(TimeSpan.FromMilliseconds(100));
                }
                catch (ConsumeException ex)
                {
                    // Join errors the client cannot retry (another assignor, a session timeout the broker refuses) come this way.
                    joinError = ex.Error;
                }
            }

            cancellationToken.ThrowIfCancellationRequested();
            if (firstAssignment is null)
            {
                throw new CliException(ExitCodes.GroupActive,
                    $"Refused: could not confirm that group '{request.Group}' is idle ({joinError?.Reason ?? $"no assignment within {join.Timeout.TotalSeconds:0} s"}). Stop every member of the group, then run the command again. On the embedded broker, also pass --session-timeout-ms with your consumers' session.timeout.ms.");
            }

            if (firstAssignment < partitionCount)
            {
                throw new CliException(ExitCodes.GroupActive,
                    $"Refused: group '{request.Group}' has other active members (joining it gave this tool {firstAssignment} of the {partitionCount} partitions of '{request.Topic}'). Stop every member of the group, then run the command again.");
            }

            consumer.Commit(offsets);
        }
        finally
        {
            consumer.Close();
        }
    }

    private static async Task Print(CliConsole output, bool json, Request request, List<PlannedOffset> plan, bool executed)
    {
        if (json)
        {
            var rows = plan.Select(p => new OffsetResetRow(p.TopicPartition.Topic, p.TopicPartition.Partition.Value, p.Current, p.Target, p.Low, p.High, p.Note)).ToList();
            await output.LineAsync(JsonSerializer.Serialize(new OffsetResetReport(request.Group, request.Topic, executed, rows), CliJsonContext.Default.OffsetResetReport)).ConfigureAwait(false);
            return;
        }

        await output.LineAsync(executed
            ? $"Reset group '{request.Group}' on '{request.Topic}' ({request.Target}):"
            : $"Plan for group '{request.Group}' on '{request.Topic}' ({request.Target}):").ConfigureAwait(false);
        await output.TableAsync(
            [">PARTITION", executed ? ">WAS" : ">CURRENT", executed ? ">NOW" : ">TARGET", ">CHANGE", ">FIRST", ">END", "NOTE"],
            plan.Select(p => new[]
            {
                LagCommand.Number(p.TopicPartition.Partition.Value),
                LagCommand.Number(p.Current),
                LagCommand.Number(p.Target),
                p.Current is { } current ? (p.Target - current).ToString("+0;-0;0", CultureInfo.InvariantCulture) : null,
                LagCommand.Number(p.Low),
                LagCommand.Number(p.High),
                p.Note ?? string.Empty,
            })).ConfigureAwait(false);
    }

    private enum TargetKind
    {
        Earliest,
        Latest,
        Offset,
        Time,
        Shift,
    }

    private sealed record Target(TargetKind Kind, long Offset, DateTimeOffset Time)
    {
        public static Target From(bool earliest, bool latest, long? offset, DateTimeOffset? time, long? shift)
        {
            var chosen = new List<Target>();
            if (earliest)
            {
                chosen.Add(new Target(TargetKind.Earliest, 0, default));
            }

            if (latest)
            {
                chosen.Add(new Target(TargetKind.Latest, 0, default));
            }

            if (offset is { } o)
            {
                chosen.Add(new Target(TargetKind.Offset, o, default));
            }

            if (time is { } t)
            {
                chosen.Add(new Target(TargetKind.Time, 0, t));
            }

            if (shift is { } s)
            {
                chosen.Add(new Target(TargetKind.Shift, s, default));
            }

            return chosen.Count == 1 ? chosen[0] : throw new CliException(ExitCodes.BadArguments,
                $"Choose exactly one of {TargetOptions} ({(chosen.Count == 0 ? "none was given" : $"{chosen.Count} were given")}).");
        }

        public override string ToString() => Kind switch
        {
            TargetKind.Earliest => "to earliest",
            TargetKind.Latest => "to latest",
            TargetKind.Offset => $"to offset {Offset.ToString(CultureInfo.InvariantCulture)}",
            TargetKind.Shift => $"shift by {Offset.ToString("+0;-0;0", CultureInfo.InvariantCulture)}",
            _ => $"to {Time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)}",
        };
    }

    private sealed record JoinSettings(TimeSpan Timeout, int SessionTimeoutMs);

    /// <summary>What to reset: <c>TopicPartitions</c> is every partition of the topic, <c>Partitions</c> the ones asked for (all when empty).</summary>
    private sealed record Request(string Servers, string Group, string Topic, List<TopicPartition> TopicPartitions, int[] Partitions, Target Target);

    private sealed record PlannedOffset(TopicPartition TopicPartition, long? Current, long Target, long Low, long High, string? Note);

    private sealed record GroupActivity(bool Supported, int Members, string? State, string? MemberList)
    {
        public string Describe(string group) => $"group '{group}' has {Members} active member(s) (state {State}: {MemberList})";
    }
}

internal sealed record OffsetResetRow(string Topic, int Partition, long? Current, long Target, long First, long End, string? Note);

internal sealed record OffsetResetReport(string Group, string Topic, bool Executed, List<OffsetResetRow> Partitions);

internal static class OffsetArithmetic
{
    /// <summary>Adds a shift to an offset without wrapping: a shift past either end stops at <see cref="long.MaxValue"/> or <see cref="long.MinValue"/>, which the partition's bounds then clamp.</summary>
    public static long SaturatingAdd(this long offset, long shift) =>
        shift > 0 && offset > long.MaxValue - shift ? long.MaxValue
        : shift < 0 && offset < long.MinValue - shift ? long.MinValue
        : offset + shift;
}
