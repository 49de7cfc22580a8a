namespace Kafka.Reliable.RetryTiers;

internal static class RetryTierConstants
{
    public const string DefaultTopic = "{topic}.retry";

    public const int DefaultMaxParkedRecords = 10_000;

    public const int MaxMaxParkedRecords = 1_000_000;

    public const int MaxTiers = 100;

    /// <summary>The most records of one partition's retry tiers handled at once (each of another key).</summary>
    public const int MaxConcurrentKeys = 16;

    /// <summary>The most retry records the poll thread takes from the retry consumer in one turn.</summary>
    public const int IngestBurst = 1024;

    /// <summary>The most <see cref="RetryTierHeaders.History"/> lines a parked copy carries: its first failure and the latest ones.</summary>
    public const int MaxHistoryLines = 20;

    /// <summary>The most finished original offsets a lot remembers, to recognize copies written twice.</summary>
    public const int MaxFinished = 100_000;

    public const string ReleaseCommand = "release";

    public const string RetryNowCommand = "retry-now";

    public static readonly TimeSpan MinDelay = TimeSpan.FromMilliseconds(1);

    public static readonly TimeSpan MaxDelay = TimeSpan.FromDays(7);

    public static readonly IReadOnlyList<TimeSpan> DefaultDelays = [TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(10)];
}
