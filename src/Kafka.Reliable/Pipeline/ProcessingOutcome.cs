namespace Kafka.Reliable.Pipeline;

/// <summary>The stage of the pipeline a record failed in.</summary>
internal enum ProcessingStage
{
    None = 0,
    Deserialize,
    Translate,
    Handle,
}

/// <summary>The result of one attempt at a record, passed between stages instead of an exception.</summary>
internal readonly struct ProcessingOutcome
{
    private ProcessingOutcome(ProcessingStage failedStage, Exception? exception, bool canceled, bool duplicate = false)
    {
        FailedStage = failedStage;
        Exception = exception;
        Canceled = canceled;
        Duplicate = duplicate;
    }

    public static ProcessingOutcome Success => default;

    /// <summary>Gets the outcome of a message the idempotency store says was handled already: done, without calling the handler.</summary>
    public static ProcessingOutcome SkippedDuplicate => new(ProcessingStage.None, null, canceled: false, duplicate: true);

    /// <summary>Gets a value indicating whether the record was skipped as a duplicate.</summary>
    public bool Duplicate { get; }

    /// <summary>Gets the stage that failed, or <see cref="ProcessingStage.None"/> on success.</summary>
    public ProcessingStage FailedStage { get; }

    public Exception? Exception { get; }

    /// <summary>Gets a value indicating whether the handler gave up because its cancellation token was signalled.</summary>
    public bool Canceled { get; }

    public bool IsSuccess => FailedStage == ProcessingStage.None;

    public static ProcessingOutcome Failed(ProcessingStage stage, Exception exception) => new(stage, exception, canceled: false);

    public static ProcessingOutcome Cancel(Exception exception) => new(ProcessingStage.Handle, exception, canceled: true);
}
