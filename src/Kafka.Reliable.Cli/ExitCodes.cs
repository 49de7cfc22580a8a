namespace Kafka.Reliable.Cli;

/// <summary>The tool's exit codes: the table in docs/operations.md lists exactly these.</summary>
internal static class ExitCodes
{
    /// <summary>Done.</summary>
    public const int Success = 0;

    /// <summary>The command line is invalid (unknown command, missing or malformed option or value).</summary>
    public const int BadArguments = 1;

    /// <summary>The tool failed unexpectedly (a defect of the tool: the message says what failed).</summary>
    public const int InternalError = 2;

    /// <summary>The brokers could not be reached: a host name that does not resolve, or no broker answering.</summary>
    public const int Unreachable = 3;

    /// <summary>A topic, partition, record or group named on the command line does not exist.</summary>
    public const int NotFound = 4;

    /// <summary>Kafka refused or failed an operation.</summary>
    public const int KafkaError = 5;

    /// <summary>Refused: the consumer group has active members (an offset reset needs every member stopped).</summary>
    public const int GroupActive = 6;

    /// <summary>The broker does not support an operation the command needs (the embedded broker lacks some admin APIs).</summary>
    public const int Unsupported = 7;

    /// <summary>Stopped by Ctrl+C before the command finished.</summary>
    public const int Cancelled = 130;
}
