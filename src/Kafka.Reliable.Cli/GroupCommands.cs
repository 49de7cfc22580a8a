using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;
using Confluent.Kafka.Admin;

namespace Kafka.Reliable.Cli;

/// <summary>
/// <c>group list</c> and <c>group describe</c>: the consumer groups of a cluster, and one group's state, members and lag,
/// like <c>kafka-consumer-groups.sh --describe</c> and <c>rpk group describe</c>.
/// </summary>
/// <remarks>
/// The embedded broker (librdkafka's mock cluster) implements neither ListGroups nor DescribeGroups: there, <c>group list</c>
/// says so and <c>group describe</c> shows the committed offsets and lag without state and members, both with exit code 7.
/// librdkafka's ListConsumerGroups crashes the process against a broker without ListGroups, so the list asks with the
/// older ListGroups call first, which reports the missing API as an error.
/// </remarks>
internal static class GroupCommands
{
    internal const string ListUnsupported =
        "This broker does not support listing consumer groups (the ListGroups API; the embedded broker, librdkafka's mock cluster, lacks it). Use a Kafka broker, or 'kafka-reliable lag --group <group>' for a group you know.";

    internal const string DescribeUnsupported =
        "This broker does not support describing consumer groups (the DescribeGroups API; the embedded broker, librdkafka's mock cluster, lacks it): the group's state and members are unknown. The committed offsets and lag above are complete.";

    public static Command Create(CliContext cli)
    {
        var list = cli.WithBrokers(new Command("list", "Lists the cluster's consumer groups: type, state and members."));
        list.SetAction(async (parse, cancellationToken) =>
        {
            var rows = await ListAsync(parse.GetValue(cli.Bootstrap)!).ConfigureAwait(false);
            if (parse.GetValue(cli.Json))
            {
                await cli.Output.WriteLineAsync(JsonSerializer.Serialize(rows, CliJsonContext.Default.ListGroupListRow)).ConfigureAwait(false);
                return ExitCodes.Success;
            }

            await cli.Console.TableAsync(["GROUP", "TYPE", "STATE", ">MEMBERS"], rows.Select(r => new[] { r.Group, r.Type, r.State, LagCommand.Number(r.Members) })).ConfigureAwait(false);
            await cli.Console.LineAsync($"{rows.Count} group(s)").ConfigureAwait(false);
            return ExitCodes.Success;
        });

        var group = new Argument<string>("group") { Description = "The consumer group" };
        group.Validators.Add(result =>
        {
            if (string.IsNullOrWhiteSpace(result.GetValueOrDefault<string>()))
            {
                result.AddError("The group name is empty.");
            }
        });
        var describe = cli.WithBrokers(new Command("describe", "Shows a consumer group: state, members (client id, host, partitions), and per partition the committed offset, end offset and lag.") { group });
        describe.SetAction(async (parse, cancellationToken) =>
        {
            var (report, unsupported) = await DescribeAsync(parse.GetValue(cli.Bootstrap)!, parse.GetValue(group)!).ConfigureAwait(false);
            if (parse.GetValue(cli.Json))
            {
                await cli.Output.WriteLineAsync(JsonSerializer.Serialize(report, CliJsonContext.Default.GroupReport)).ConfigureAwait(false);
            }
            else
            {
                await PrintAsync(cli.Console, report).ConfigureAwait(false);
            }

            if (unsupported)
            {
                await cli.Error.WriteLineAsync(DescribeUnsupported).ConfigureAwait(false);
                return ExitCodes.Unsupported;
            }

            return ExitCodes.Success;
        });

        return new Command("group", "Consumer groups: list, describe.") { list, describe };
    }

    private static async Task<List<GroupListRow>> ListAsync(string servers)
    {
        using var admin = KafkaReliableCli.Admin(servers);
        Dictionary<string, GroupInfo> members;
        try
        {
            members = admin.ListGroups(KafkaReliableCli.RequestTimeout).GroupBy(g => g.Group, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        }
        catch (KafkaException ex) when (ex.Error.Code == ErrorCode.Local_UnsupportedFeature)
        {
            throw new CliException(ExitCodes.Unsupported, ListUnsupported);
        }

        var listed = await admin.ListConsumerGroupsAsync(new ListConsumerGroupsOptions { RequestTimeout = KafkaReliableCli.RequestTimeout }).ConfigureAwait(false);
        return [.. listed.Valid
            .OrderBy(g => g.GroupId, StringComparer.Ordinal)
            .Select(g => new GroupListRow(g.GroupId, Name(g.Type), Name(g.State), members.TryGetValue(g.GroupId, out var info) ? info.Members.Count : null))];
    }

    private static async Task<(GroupReport Report, bool Unsupported)> DescribeAsync(string servers, string group)
    {
        using var admin = KafkaReliableCli.Admin(servers);
        ConsumerGroupDescription? description = null;
        var unsupported = false;
        try
        {
            var described = await admin.DescribeConsumerGroupsAsync([group], new DescribeConsumerGroupsOptions { RequestTimeout = KafkaReliableCli.RequestTimeout }).ConfigureAwait(false);
            description = described.ConsumerGroupDescriptions[0];
        }
        catch (DescribeConsumerGroupsException ex)
        {
            var failure = ex.Results.ConsumerGroupDescriptions.Select(d => d.Error).FirstOrDefault(e => e.IsError) ?? ex.Error;
            if (failure.Code == ErrorCode.Local_UnsupportedFeature)
            {
                unsupported = true;
            }
            else if (failure.Code != ErrorCode.GroupIdNotFound)
            {
                throw new KafkaException(failure);
            }
        }

        var committed = await CommittedAsync(admin, servers, group).ConfigureAwait(false);
        if (committed.Count == 0 && (description is null || description.Members.Count == 0) && !unsupported)
        {
            throw new CliException(ExitCodes.NotFound, $"Group '{group}' was not found on {servers}: it has no members and no committed offsets (check the name; 'kafka-reliable group list' lists the groups).");
        }

        if (committed.Count == 0 && unsupported)
        {
            throw new CliException(ExitCodes.Unsupported,
                $"Group '{group}' has no committed offsets on {servers}, and this broker does not support describing consumer groups (the DescribeGroups API; the embedded broker lacks it), so nothing is known about it.");
        }

        var partitions = committed.Keys.Union(description?.Members.SelectMany(m => m.Assignment?.TopicPartitions ?? []) ?? []).Distinct().ToList();
        var ends = new Dictionary<TopicPartition, long>();
        using (var consumer = KafkaReliableCli.Consumer<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = servers, GroupId = KafkaReliableCli.ReaderGroup, EnableAutoCommit = false }))
        {
            foreach (var partition in partitions)
            {
                ends[partition] = consumer.QueryWatermarkOffsets(partition, KafkaReliableCli.RequestTimeout).High.Value;
            }
        }

        return (GroupReport.Build(group, unsupported ? null : description, committed, ends), unsupported);
    }

    /// <summary>The group's committed offsets; by topic where the broker does not list a group's offsets (the embedded broker answers with none).</summary>
    private static async Task<Dictionary<TopicPartition, long>> CommittedAsync(IAdminClient admin, string servers, string group)
    {
        var listed = await admin.ListConsumerGroupOffsetsAsync([new ConsumerGroupTopicPartitions(group, null)], new ListConsumerGroupOffsetsOptions { RequestTimeout = KafkaReliableCli.RequestTimeout }).ConfigureAwait(false);
        var committed = listed.SelectMany(r => r.Partitions).Where(p => p.Offset.Value >= 0).ToDictionary(p => p.TopicPartition, p => p.Offset.Value);
        if (committed.Count > 0)
        {
            return committed;
        }

        using var consumer = KafkaReliableCli.Consumer<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = servers, GroupId = group, EnableAutoCommit = false });
        return KafkaReliableCli.CommittedOffsets(consumer, KafkaReliableCli.AllTopics(servers).SelectMany(t => t.Partitions))
            .Where(c => c.Value is not null)
            .ToDictionary(c => c.Key, c => c.Value!.Value);
    }

    internal static async Task PrintAsync(CliConsole console, GroupReport report)
    {
        var state = report.State is null
            ? "state and members unknown"
            : $"state {report.State}, {report.Members!.Count} member(s){(report.Assignor is { Length: > 0 } assignor ? $", assignor {assignor}" : string.Empty)}{(report.Coordinator is { } coordinator ? $", coordinator {coordinator}" : string.Empty)}";
        await console.LineAsync($"Group '{report.Group}': {state}, total lag {report.TotalLag.ToString(CultureInfo.InvariantCulture)}").ConfigureAwait(false);
        await console.TableAsync(
            ["TOPIC", ">PARTITION", ">COMMITTED", ">END", ">LAG", "CLIENT-ID", "HOST", "MEMBER-ID"],
            report.Partitions.Select(p => new[] { p.Topic, LagCommand.Number(p.Partition), LagCommand.Number(p.Committed), LagCommand.Number(p.End), LagCommand.Number(p.Lag), p.ClientId, p.Host, p.MemberId })).ConfigureAwait(false);
        if (report.Members is { Count: > 0 } members)
        {
            await console.LineAsync(string.Empty).ConfigureAwait(false);
            await console.TableAsync(
                ["MEMBER-ID", "INSTANCE-ID", "CLIENT-ID", "HOST", ">PARTITIONS", "ASSIGNMENT"],
                members.Select(m => new[] { m.MemberId, m.InstanceId, m.ClientId, m.Host, LagCommand.Number(m.Assignment.Count), string.Join(", ", m.Assignment) })).ConfigureAwait(false);
        }
    }

    internal static string Name<T>(T value)
        where T : struct, Enum => value.ToString();
}

internal sealed record GroupListRow(string Group, string Type, string State, int? Members);

/// <summary>One consumer group as <c>group describe</c> shows it; <see cref="State"/> and <see cref="Members"/> are null where the broker cannot describe groups.</summary>
internal sealed record GroupReport(string Group, string? State, string? Type, string? Assignor, string? Coordinator, List<GroupMemberRow>? Members, List<GroupPartitionRow> Partitions, long TotalLag)
{
    public static GroupReport Build(string group, ConsumerGroupDescription? description, IReadOnlyDictionary<TopicPartition, long> committed, IReadOnlyDictionary<TopicPartition, long> ends)
    {
        var owners = new Dictionary<TopicPartition, MemberDescription>();
        foreach (var member in description?.Members ?? [])
        {
            foreach (var partition in member.Assignment?.TopicPartitions ?? [])
            {
                owners[partition] = member;
            }
        }

        var partitions = ends.Keys
            .OrderBy(p => p.Topic, StringComparer.Ordinal).ThenBy(p => p.Partition.Value)
            .Select(p =>
            {
                long? offset = committed.TryGetValue(p, out var at) ? at : null;
                var owner = owners.GetValueOrDefault(p);
                return new GroupPartitionRow(p.Topic, p.Partition.Value, offset, ends[p], offset is { } o ? Math.Max(0, ends[p] - o) : null, owner?.ConsumerId, owner?.ClientId, owner?.Host);
            })
            .ToList();
        var members = description?.Members
            .OrderBy(m => m.ClientId, StringComparer.Ordinal).ThenBy(m => m.ConsumerId, StringComparer.Ordinal)
            .Select(m => new GroupMemberRow(
                m.ConsumerId,
                m.GroupInstanceId,
                m.ClientId,
                m.Host,
                [.. (m.Assignment?.TopicPartitions ?? []).OrderBy(p => p.Topic, StringComparer.Ordinal).ThenBy(p => p.Partition.Value).Select(p => $"{p.Topic}[{p.Partition.Value}]")]))
            .ToList();
        return new GroupReport(
            group,
            description is null ? null : GroupCommands.Name(description.State),
            description is null ? null : GroupCommands.Name(description.GroupType),
            description?.PartitionAssignor,
            description?.Coordinator is { } node ? $"{node.Id} ({node.Host}:{node.Port})" : null,
            members,
            partitions,
            partitions.Sum(p => p.Lag ?? 0));
    }
}

internal sealed record GroupMemberRow(string MemberId, string? InstanceId, string ClientId, string Host, List<string> Assignment);

internal sealed record GroupPartitionRow(string Topic, int Partition, long? Committed, long End, long? Lag, string? MemberId, string? ClientId, string? Host);
