using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace Kafka.Reliable.Diagnostics;

/// <summary>
/// Every log message of the library, source-generated. Event ids are stable and grouped: 1xx lifecycle, 2xx records,
/// 3xx offsets and commits, 4xx rebalances, 5xx client errors, 6xx dead letters (60x replay, 61x writing). Payloads and
/// secrets are never logged.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(100, LogLevel.Information, "Consumer {Consumer} starting: group {GroupId}, topics {Topics}, commit strategy {Strategy}")]
    public static partial void ConsumerStarting(ILogger logger, string consumer, string groupId, string topics, CommitStrategy strategy);

    [LoggerMessage(101, LogLevel.Information, "Consumer {Consumer} stopping: draining {InFlight} partition worker(s) for up to {Timeout}")]
    public static partial void ConsumerStopping(ILogger logger, string consumer, int inFlight, TimeSpan timeout);

    [LoggerMessage(102, LogLevel.Information, "Consumer {Consumer} stopped and left its group")]
    public static partial void ConsumerStopped(ILogger logger, string consumer);

    [LoggerMessage(103, LogLevel.Warning, "Consumer {Consumer}: records still being handled after the drain timeout {Timeout}; their handlers are cancelled and their offsets are not committed")]
    public static partial void DrainTimedOut(ILogger logger, string consumer, TimeSpan timeout);

    [LoggerMessage(104, LogLevel.Critical, "Consumer {Consumer} hit a fatal Kafka error and stops: {Reason}")]
    public static partial void FatalError(ILogger logger, string consumer, string reason, Exception? exception);

    [LoggerMessage(105, LogLevel.Critical, "Consumer {Consumer} poll loop failed unexpectedly and stops")]
    public static partial void PollLoopFailed(ILogger logger, string consumer, Exception exception);

    [LoggerMessage(106, LogLevel.Critical, "Consumer {Consumer}: the worker of {Topic} [{Partition}] failed unexpectedly and stopped; the partition holds (nothing after its watermark is committed) until it is reassigned")]
    public static partial void WorkerFailed(ILogger logger, string consumer, string topic, int partition, Exception exception);

    [LoggerMessage(107, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] has records pending from offset {Offset} and finished none for {StalledFor} (Watchdog:StuckAfter is {StuckAfter}); the watchdog restarts the consumer: records being handled get up to {ShutdownTimeout} to finish, then are cancelled, what is done is committed, and the rest is read again")]
    public static partial void ConsumerStuckRestarting(ILogger logger, string consumer, string topic, int partition, long offset, TimeSpan stalledFor, TimeSpan stuckAfter, TimeSpan shutdownTimeout);

    [LoggerMessage(108, LogLevel.Information, "Consumer {Consumer} restarted by its watchdog; it reads again from the committed offsets")]
    public static partial void ConsumerRestarted(ILogger logger, string consumer);

    [LoggerMessage(109, LogLevel.Critical, "Consumer {Consumer} was stopped to start again (by its watchdog, or after its static id was refused) but could not start again; the host is asked to stop")]
    public static partial void ConsumerRestartFailed(ILogger logger, string consumer, Exception exception);

    [LoggerMessage(110, LogLevel.Warning, "Consumer {Consumer}: group {Group} refused GroupInstanceId {InstanceId} because another member holds it (a member that stopped without leaving, killed, holds its id until the broker expires its session); joining again in {Delay} (attempt {Attempt})")]
    public static partial void InstanceIdHeld(ILogger logger, string consumer, string group, string? instanceId, TimeSpan delay, int attempt);

    [LoggerMessage(111, LogLevel.Warning, "Consumer {Consumer}: group {Group} has refused every commit for {RefusedFor} as from a member it does not know, while the client still counts itself a member (Commit:RejoinWhenRefusedFor is {Limit}); the consumer gives its partitions up uncommitted and joins again with a new client")]
    public static partial void MembershipRefused(ILogger logger, string consumer, string group, TimeSpan refusedFor, TimeSpan limit);

    [LoggerMessage(112, LogLevel.Error, "Consumer {Consumer} did not finish stopping within {Limit} (ShutdownTimeout + RevokeTimeout + 10 s) while {Stage}; its client is abandoned: what was committed stays committed, the rest is read again by the partitions' next owner, and the group sees this member leave when its session expires")]
    public static partial void StopAbandoned(ILogger logger, string consumer, TimeSpan limit, string stage);

    [LoggerMessage(200, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} failed in stage {Stage} on attempt {Attempt} ({ExceptionType}: {Reason}); the failure is {Kind}")]
    public static partial void RecordFailed(ILogger logger, string consumer, string topic, int partition, long offset, string stage, int attempt, string exceptionType, string reason, FailureKind kind);

    [LoggerMessage(205, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} failed in stage {Stage} after {Attempts} attempt(s) ({ExceptionType}: {Reason}); dead-lettered to {DeadLetterTopic}")]
    public static partial void RecordDeadLettered(ILogger logger, string consumer, string topic, int partition, long offset, string stage, int attempts, string exceptionType, string reason, string deadLetterTopic);

    [LoggerMessage(206, LogLevel.Error, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} could not be written to dead-letter topic {DeadLetterTopic} ({Reason}); the partition holds at this record, retrying in {Delay}")]
    public static partial void DeadLetterFailed(ILogger logger, string consumer, string topic, int partition, long offset, string deadLetterTopic, string reason, TimeSpan delay);

    [LoggerMessage(207, LogLevel.Error, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} failed for good in stage {Stage} but DeadLetter:Enabled is false; the partition holds at this record, trying again in {Delay}")]
    public static partial void RecordHeld(ILogger logger, string consumer, string topic, int partition, long offset, string stage, TimeSpan delay);

    [LoggerMessage(208, LogLevel.Debug, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} is a tombstone (null value), skipped as the Tombstones policy says")]
    public static partial void TombstoneSkipped(ILogger logger, string consumer, string topic, int partition, long offset);

    [LoggerMessage(223, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} used its retries and {Trials} trial(s) of the circuit, and failed each time while the circuit kept opening again; it is dead-lettered so that it does not hold its partition for ever (if its dependency is down for longer, raise CircuitBreaker:BreakDuration or Retry:MaxAttempts, and replay it later)")]
    public static partial void CircuitTrialsExhausted(ILogger logger, string consumer, string topic, int partition, long offset, int trials);

    [LoggerMessage(224, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} cannot take its idempotency key: the store could not be reached ({Reason}); try {Round}, the record waits {Delay} and tries again, holding its partition (a store outage spends no attempts and dead-letters nothing)")]
    public static partial void IdempotencyStoreUnavailable(ILogger logger, string consumer, string topic, int partition, long offset, int round, TimeSpan delay, string reason);

    [LoggerMessage(234, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} waits for a dependency of its deserializer ({Reason}); try {Round}, the record waits {Delay} and tries again, holding its partition (a dependency outage dead-letters nothing)")]
    public static partial void DependencyUnavailable(ILogger logger, string consumer, string topic, int partition, long offset, int round, TimeSpan delay, string reason);

    [LoggerMessage(240, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} could not be written to retry topic {RetryTopic} ({Reason}); it is tried again in {Delay}, and the record is not done until the retry topic has it")]
    public static partial void RetryTierWriteFailed(ILogger logger, string consumer, string topic, int partition, long offset, string retryTopic, string reason, TimeSpan delay);

    [LoggerMessage(241, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} parked in retry tier {Tier} of {RetryTopic} for {Delay} after {Attempts} attempt(s): {ExceptionType}: {ExceptionMessage}")]
    public static partial void RecordParked(ILogger logger, string consumer, string topic, int partition, long offset, int tier, TimeSpan delay, string retryTopic, int attempts, string exceptionType, string exceptionMessage);

    [LoggerMessage(242, LogLevel.Debug, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} parked in {RetryTopic} behind an earlier record of its key")]
    public static partial void RecordParkedBehindKey(ILogger logger, string consumer, string topic, int partition, long offset, string retryTopic);

    [LoggerMessage(243, LogLevel.Information, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} is parked in {RetryTopic} already (read again before its offset was committed); skipped here")]
    public static partial void RecordAlreadyParked(ILogger logger, string consumer, string topic, int partition, long offset, string retryTopic);

    [LoggerMessage(244, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} waits {Delay}: the partition has RetryTiers:MaxParkedRecords ({Max}) records parked already")]
    public static partial void ParkingLotFull(ILogger logger, string consumer, string topic, int partition, long offset, int max, TimeSpan delay);

    [LoggerMessage(245, LogLevel.Information, "Consumer {Consumer}: {Topic} [{Partition}] knows its parked records: {Records} record(s) of {Keys} key(s) in {RetryTopic}")]
    public static partial void RetryPartitionRead(ILogger logger, string consumer, string topic, int partition, string retryTopic, int records, int keys);

    [LoggerMessage(246, LogLevel.Error, "Consumer {Consumer}: {Topic} [{Partition}] waits: its retry topic {RetryTopic} cannot be read ({Reason}). Create the retry topic with at least as many partitions as {Topic}")]
    public static partial void RetryPartitionUnavailable(ILogger logger, string consumer, string topic, int partition, string retryTopic, string reason);

    [LoggerMessage(247, LogLevel.Warning, "Consumer {Consumer}: record {RetryTopic} [{Partition}] @{Offset} is not a parked record and is ignored: {Problem}")]
    public static partial void RetryRecordIgnored(ILogger logger, string consumer, string retryTopic, int partition, long offset, string problem);

    [LoggerMessage(248, LogLevel.Warning, "Consumer {Consumer}: command '{Command}' read from {RetryTopic} [{Partition}] applied to {Matched} parked key(s)")]
    public static partial void RetryCommandApplied(ILogger logger, string consumer, string retryTopic, int partition, string command, int matched);

    [LoggerMessage(249, LogLevel.Error, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} cannot be parked: retry topic {RetryTopic} refuses its copy ({Reason}); it is dead-lettered instead")]
    public static partial void RetryTierWriteRefused(ILogger logger, string consumer, string topic, int partition, long offset, string retryTopic, string reason);

    [LoggerMessage(239, LogLevel.Warning, "Consumer {Consumer}: the done marker of a parked record could not be written to {RetryTopic} [{Partition}] ({Reason}); after a restart the record may run again (an idempotency store skips it)")]
    public static partial void RetryDoneMarkerFailed(ILogger logger, string consumer, string retryTopic, int partition, string reason);

    [LoggerMessage(412, LogLevel.Warning, "Consumer {Consumer}: the committed offsets of {Partitions} could not be read ({Reason}); their parked records run at once, and a record read again there is skipped as parked or done")]
    public static partial void RetryStartUnknown(ILogger logger, string consumer, string partitions, string reason);

    [LoggerMessage(209, LogLevel.Warning, "Consumer {Consumer}: circuit opened after repeated transient handler failures; partitions with records waiting pause, the records wait {BreakDuration} for a trial, and no record is dead-lettered while it is open")]
    public static partial void CircuitOpened(ILogger logger, string consumer, TimeSpan breakDuration);

    [LoggerMessage(210, LogLevel.Information, "Consumer {Consumer}: circuit half-open; the next attempt is a trial")]
    public static partial void CircuitHalfOpened(ILogger logger, string consumer);

    [LoggerMessage(211, LogLevel.Information, "Consumer {Consumer}: circuit closed; partitions resume")]
    public static partial void CircuitClosed(ILogger logger, string consumer);

    [LoggerMessage(230, LogLevel.Warning, "Consumer {Consumer}: a batch of {Count} record(s) from {Topic} [{Partition}] @{Offset} failed on attempt {Attempt} ({ExceptionType}: {Reason}); the failure is {Kind}")]
    public static partial void BatchFailed(ILogger logger, string consumer, string topic, int partition, long offset, int count, int attempt, string exceptionType, string reason, FailureKind kind);

    [LoggerMessage(231, LogLevel.Warning, "Consumer {Consumer}: a batch of {Count} record(s) from {Topic} [{Partition}] @{Offset} failed for good after {Attempts} attempt(s) ({ExceptionType}: {Reason}); isolating the failing records by handling each half of it on its own")]
    public static partial void BatchIsolating(ILogger logger, string consumer, string topic, int partition, long offset, int count, int attempts, string exceptionType, string reason);

    [LoggerMessage(232, LogLevel.Warning, "Consumer {Consumer}: the batch handler reported {Topic} [{Partition}] @{Offset} failed ({ExceptionType}: {Reason}); it is handled alone once the rest of its batch is done")]
    public static partial void BatchRecordReportedFailed(ILogger logger, string consumer, string topic, int partition, long offset, string exceptionType, string reason);

    [LoggerMessage(233, LogLevel.Information, "Consumer {Consumer}: {Count} record(s) of a batch from {Topic} [{Partition}] @{FirstOffset}..{LastOffset} were handled before (their idempotency keys are completed); left out of the batch as duplicates")]
    public static partial void BatchDuplicatesSkipped(ILogger logger, string consumer, string topic, int partition, long firstOffset, long lastOffset, int count);

    [LoggerMessage(212, LogLevel.Information, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} was handled before (its idempotency key is completed); skipped as a duplicate")]
    public static partial void DuplicateSkipped(ILogger logger, string consumer, string topic, int partition, long offset);

    [LoggerMessage(213, LogLevel.Warning, "Consumer {Consumer}: idempotency store cleanup failed ({Reason}); it is tried again in {Interval}")]
    public static partial void IdempotencyCleanupFailed(ILogger logger, string consumer, string reason, TimeSpan interval);

    [LoggerMessage(214, LogLevel.Debug, "Consumer {Consumer}: idempotency store cleanup removed {Removed} key(s)")]
    public static partial void IdempotencyCleanedUp(ILogger logger, string consumer, long removed);

    [LoggerMessage(215, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} failed and its idempotency key could not be released ({Reason}); it is free again when its lease expires")]
    public static partial void IdempotencyReleaseFailed(ILogger logger, string consumer, string topic, int partition, long offset, string reason);

    [LoggerMessage(216, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} lost the lease on its idempotency key {Key} while it was handled or awaited its acknowledgement (it expired and was removed, or another consumer took it); another run of the message may happen or have happened. Make Idempotency:LeaseDuration longer than the slowest handler, and check that the store is reachable")]
    public static partial void IdempotencyLeaseLost(ILogger logger, string consumer, string topic, int partition, long offset, string key);

    [LoggerMessage(217, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} was handled, but its idempotency key {Key} was no longer held by this consumer when it was completed; {Outcome}. The record counts as done; another run of the message may have happened")]
    public static partial void IdempotencyCompletedAfterLeaseLost(ILogger logger, string consumer, string topic, int partition, long offset, string key, string outcome);

    [LoggerMessage(218, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} was handled, but its idempotency key could not be completed ({Reason}); the record is not done until it is: {Next}")]
    public static partial void IdempotencyCompleteFailed(ILogger logger, string consumer, string topic, int partition, long offset, string reason, string next);

    [LoggerMessage(219, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} is still being handled (or awaits its acknowledgement), and the lease on its idempotency key could not be renewed ({Reason}); trying again in {Delay}")]
    public static partial void IdempotencyRenewFailed(ILogger logger, string consumer, string topic, int partition, long offset, string reason, TimeSpan delay);

    [LoggerMessage(405, LogLevel.Warning, "Consumer {Consumer}: rebalance hook {Hook} did not finish within {Timeout}; its cancellation token is signalled and the rebalance goes on")]
    public static partial void RebalanceHookTimedOut(ILogger logger, string consumer, string hook, TimeSpan timeout);

    [LoggerMessage(406, LogLevel.Error, "Consumer {Consumer}: rebalance hook {Hook} failed; the rebalance goes on")]
    public static partial void RebalanceHookFailed(ILogger logger, string consumer, string hook, Exception exception);

    [LoggerMessage(407, LogLevel.Debug, "Consumer {Consumer}: partitions revoked: {Partitions}; draining their in-flight records for up to {Timeout}")]
    public static partial void PartitionsRevoking(ILogger logger, string consumer, string partitions, TimeSpan timeout);

    [LoggerMessage(408, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] is assigned again while a handler of its previous assignment still runs (it ignored cancellation); its records wait until that handler returns")]
    public static partial void WaitingForPreviousAssignment(ILogger logger, string consumer, string topic, int partition);

    [LoggerMessage(409, LogLevel.Warning, "Consumer {Consumer}: the offsets kept by the idempotency store could not be read for {Partitions} ({Reason}); they start from the group's committed offsets, and records applied already are skipped as duplicates")]
    public static partial void StoredOffsetsUnavailable(ILogger logger, string consumer, string partitions, string reason);

    [LoggerMessage(410, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] has a group offset ({GroupOffset}) behind the offset this consumer last committed ({LastCommitted}): the offsets were reset, or the topic was created again; it starts from the group's offset, and the offset the idempotency store kept ({StoredOffset}) is forgotten")]
    public static partial void GroupOffsetMovedBack(ILogger logger, string consumer, string topic, int partition, long groupOffset, long lastCommitted, long storedOffset);

    [LoggerMessage(411, LogLevel.Debug, "Consumer {Consumer}: the offsets to commit could not be recorded in the idempotency store ({Reason}); they are committed to the group once the store has them")]
    public static partial void CommitRecordFailed(ILogger logger, string consumer, string reason);

    [LoggerMessage(404, LogLevel.Information, "Consumer {Consumer}: {Topic} [{Partition}] starts at offset {Offset} kept by the idempotency store, ahead of the group's committed offset")]
    public static partial void StartingFromStoredOffset(ILogger logger, string consumer, string topic, int partition, long offset);

    [LoggerMessage(201, LogLevel.Debug, "Consumer {Consumer}: {Topic} [{Partition}] paused, {Buffered} records buffered")]
    public static partial void PartitionPaused(ILogger logger, string consumer, string topic, int partition, int buffered);

    [LoggerMessage(202, LogLevel.Debug, "Consumer {Consumer}: {Topic} [{Partition}] resumed, {Buffered} records buffered")]
    public static partial void PartitionResumed(ILogger logger, string consumer, string topic, int partition, int buffered);

    [LoggerMessage(204, LogLevel.Debug, "Consumer {Consumer}: record {Topic} [{Partition}] @{Offset} of a partition not assigned here is ignored")]
    public static partial void RecordOfUnassignedPartition(ILogger logger, string consumer, string topic, int partition, long offset);

    [LoggerMessage(300, LogLevel.Debug, "Consumer {Consumer} committed {Count} partition(s)")]
    public static partial void Committed(ILogger logger, string consumer, int count);

    [LoggerMessage(301, LogLevel.Warning, "Consumer {Consumer}: commit failed ({Reason}); the offsets stay pending and are committed on the next try")]
    public static partial void CommitFailed(ILogger logger, string consumer, string reason);

    [LoggerMessage(400, LogLevel.Information, "Consumer {Consumer}: partitions assigned: {Partitions}")]
    public static partial void PartitionsAssigned(ILogger logger, string consumer, string partitions);

    [LoggerMessage(401, LogLevel.Information, "Consumer {Consumer}: partitions revoked: {Partitions}; in-flight records drained")]
    public static partial void PartitionsRevoked(ILogger logger, string consumer, string partitions);

    [LoggerMessage(403, LogLevel.Warning, "Consumer {Consumer}: the final commit of revoked partitions {Partitions} was refused; their next owner starts from the last committed offsets and some records are delivered again (nothing is lost)")]
    public static partial void RevokeCommitFailed(ILogger logger, string consumer, string partitions);

    [LoggerMessage(402, LogLevel.Warning, "Consumer {Consumer}: partitions lost: {Partitions}; in-flight records cancelled, nothing committed")]
    public static partial void PartitionsLost(ILogger logger, string consumer, string partitions);

    [LoggerMessage(600, LogLevel.Information, "Dead-letter replay from {Topic} as group {GroupId}: starting, {Pending} record(s) up to the end offsets taken at start")]
    public static partial void ReplayStarting(ILogger logger, string topic, string groupId, long pending);

    [LoggerMessage(601, LogLevel.Information, "Dead-letter replay from {Topic}: {Replayed} replayed, {Skipped} skipped by the filter, done")]
    public static partial void ReplayFinished(ILogger logger, string topic, long replayed, long skipped);

    [LoggerMessage(602, LogLevel.Warning, "Dead-letter replay from {Topic}: {Topic2} [{Partition}] @{Offset} has no {Header} header and no target topic was given; skipped")]
    public static partial void ReplayNoOriginalTopic(ILogger logger, string topic, string topic2, int partition, long offset, string header);

    [LoggerMessage(603, LogLevel.Warning, "Dead-letter replay from {Topic}: {Topic2} [{Partition}] @{Offset} is a bounded copy (its value was cut from {OriginalValueBytes} bytes); skipped: replay the whole record from {OriginalTopic} [{OriginalPartition}] @{OriginalOffset}")]
    public static partial void ReplayBoundedCopySkipped(ILogger logger, string topic, string topic2, int partition, long offset, string originalValueBytes, string originalTopic, string originalPartition, string originalOffset);

    [LoggerMessage(610, LogLevel.Warning, "Consumer {Consumer}: {Topic} [{Partition}] @{Offset} was too large for dead-letter topic {DeadLetterTopic} ({Reason}; value {ValueBytes} bytes, key {KeyBytes} bytes, headers {HeaderBytes} bytes, dead-letter producer message.max.bytes {MaxMessageBytes}); dead-lettered as a bounded copy with the first {WrittenValueBytes} bytes of the value and header dlq-value-truncated. The whole record stays at its offset in the source topic")]
    public static partial void DeadLetteredBoundedCopy(ILogger logger, string consumer, string topic, int partition, long offset, string deadLetterTopic, string reason, int valueBytes, int keyBytes, int headerBytes, int maxMessageBytes, int writtenValueBytes);

    [LoggerMessage(611, LogLevel.Error, "Consumer {Consumer}: the dead-letter producer hit a fatal error ({Code}: {Reason}); it is closed and the next dead-letter write creates a new one")]
    public static partial void DeadLetterProducerFatal(ILogger logger, string consumer, ErrorCode code, string reason);

    [LoggerMessage(612, LogLevel.Warning, "Consumer {Consumer}: dead-letter producer error {Code}: {Reason}")]
    public static partial void DeadLetterProducerError(ILogger logger, string consumer, ErrorCode code, string reason);

    [LoggerMessage(500, LogLevel.Warning, "Consumer {Consumer}: Kafka client error {Code}: {Reason}")]
    public static partial void ClientError(ILogger logger, string consumer, ErrorCode code, string reason);

    [LoggerMessage(501, LogLevel.Warning, "Consumer {Consumer}: consume error {Code}: {Reason}")]
    public static partial void ConsumeError(ILogger logger, string consumer, ErrorCode code, string reason);

    [LoggerMessage(503, LogLevel.Warning, "Consumer {Consumer}: {Operation} of {Topic} [{Partition}] failed ({Code}: {Reason}); it is tried again at the next poll")]
    public static partial void PartitionOperationFailed(ILogger logger, string consumer, string operation, string topic, int partition, ErrorCode code, string reason);

    [LoggerMessage(504, LogLevel.Error, "Consumer {Consumer}: a poll loop iteration failed ({Count} in a row); the loop goes on after {Delay}")]
    public static partial void PollIterationFailed(ILogger logger, string consumer, int count, TimeSpan delay, Exception exception);

    [LoggerMessage(EventId = 502, Message = "Consumer {Consumer} librdkafka {Client} [{Facility}] {Message}")]
    public static partial void ClientLog(ILogger logger, LogLevel level, string consumer, string client, string facility, string message);
}
