using System.Text.Json.Serialization;

namespace Kafka.Reliable.Cli;

/// <summary>The tool's <c>--json</c> output, source-generated: numbers are JSON numbers, absent values <c>null</c>.</summary>
[JsonSerializable(typeof(List<LagRow>))]
[JsonSerializable(typeof(List<DeadLetterRow>))]
[JsonSerializable(typeof(DeadLetterRecord))]
[JsonSerializable(typeof(DeadLetterReplayReport))]
[JsonSerializable(typeof(OffsetResetReport))]
[JsonSerializable(typeof(List<GroupListRow>))]
[JsonSerializable(typeof(GroupReport))]
[JsonSerializable(typeof(EmbeddedReport))]
[JsonSerializable(typeof(RetryListReport))]
[JsonSerializable(typeof(RetryShowReport))]
[JsonSerializable(typeof(List<RetryCommandRow>))]
internal sealed partial class CliJsonContext : JsonSerializerContext;
