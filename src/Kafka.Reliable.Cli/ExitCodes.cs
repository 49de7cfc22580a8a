namespace Kafka.Reliable.Cli;

/// <summary>The tool's exit codes (documented in docs/operations.md).</summary>
internal static class ExitCodes
{
    /// <summary>Done.</summary>
    public const int Success = 0;

    /// <summary>The command line is invalid (unknown command, missing or malformed option).</summary>
    public const int BadArguments = 1;

    /// <summary>The brokers could not be reached.</summary>
    public const int Unreachable = 3;

    /// <summary>A topic (or a record) named on the command line does not exist.</summary>
    public const int NotFound = 4;

    /// <summary>Kafka refused or failed an operation.</summary>
    public const int KafkaError = 5;

    /// <summary>Refused: the consumer group has active members (an offset reset needs every member stopped).</summary>
    public const int GroupActive = 6;
}
