namespace Flowline.Coordinator.Storage;

/// <summary>The statuses of an execution and which moves between them are legal.</summary>
public static class ExecutionStatus
{
    /// <summary>Submitted, waiting for an agent to claim it.</summary>
    public const string Queued = "QUEUED";

    /// <summary>Claimed by an agent (which holds the lease and its epoch), not yet running.</summary>
    public const string Dispatched = "DISPATCHED";

    /// <summary>The agent reported its pipeline running.</summary>
    public const string Running = "RUNNING";

    /// <summary>The pipeline waits at a gate for a person's answer.</summary>
    public const string AwaitingInteraction = "AWAITING_INTERACTION";

    /// <summary>Ended well.</summary>
    public const string Succeeded = "SUCCEEDED";

    /// <summary>Ended badly (the pipeline failed, or its agent was lost).</summary>
    public const string Failed = "FAILED";

    /// <summary>Cancelled by a request.</summary>
    public const string Cancelled = "CANCELLED";

    /// <summary>True for SUCCEEDED, FAILED and CANCELLED: nothing moves it any more.</summary>
    public static bool IsTerminal(string status) => status is Succeeded or Failed or Cancelled;

    /// <summary>True while an agent holds the execution's lease.</summary>
    public static bool IsLeased(string status) => status is Dispatched or Running or AwaitingInteraction;

    /// <summary>
    /// True when <paramref name="from"/> may become <paramref name="to"/>: QUEUED → DISPATCHED (a claim) or
    /// CANCELLED; DISPATCHED → RUNNING; RUNNING ⇄ AWAITING_INTERACTION; any leased status → SUCCEEDED,
    /// FAILED, CANCELLED, or QUEUED again (its agent was lost and the policy retries it). Terminal statuses
    /// move nowhere.
    /// </summary>
    public static bool CanMove(string from, string to) => (from, to) switch
    {
        (Queued, Dispatched or Cancelled) => true,
        (Dispatched, Running) => true,
        (Running, AwaitingInteraction) => true,
        (AwaitingInteraction, Running) => true,
        (Dispatched or Running or AwaitingInteraction, Succeeded or Failed or Cancelled or Queued) => true,
        _ => false,
    };
}

/// <summary>What an agent reports about the execution it holds.</summary>
/// <param name="TenantId">The tenant.</param>
/// <param name="ExecutionId">The execution.</param>
/// <param name="WorkerId">The reporting agent.</param>
/// <param name="Epoch">The lease epoch it was given at the claim.</param>
/// <param name="Status">RUNNING (also a lease renewal while running or awaiting), SUCCEEDED, FAILED or CANCELLED.</param>
/// <param name="ResultJson">The run's summary (terminal reports), or null.</param>
/// <param name="ErrorCode">Why it failed, or null.</param>
/// <param name="ErrorMessage">The failure's detail, or null.</param>
public sealed record ExecutionReport(
    string TenantId,
    string ExecutionId,
    string WorkerId,
    long Epoch,
    string Status,
    string? ResultJson,
    string? ErrorCode,
    string? ErrorMessage);

/// <summary>A question a pipeline asks a person, and the answer once given.</summary>
/// <param name="InteractionId">Its id (a UUID).</param>
/// <param name="TenantId">The tenant.</param>
/// <param name="ExecutionId">The execution that waits.</param>
/// <param name="GateId">The gate that asks (unique per execution).</param>
/// <param name="Status">WAITING, COMPLETED or CANCELLED (the execution ended first).</param>
/// <param name="RequestJson">The question (JSON).</param>
/// <param name="ResponseJson">The answer (canonical JSON), or null.</param>
/// <param name="Actor">Who answered, or null.</param>
/// <param name="CreatedAt">When it was asked (database clock, Unix ms).</param>
/// <param name="CompletedAt">When it was answered or cancelled, or null.</param>
public sealed record InteractionRecord(
    string InteractionId,
    string TenantId,
    string ExecutionId,
    string GateId,
    string Status,
    string RequestJson,
    string? ResponseJson,
    string? Actor,
    long CreatedAt,
    long? CompletedAt);

/// <summary>What one sweep did.</summary>
/// <param name="Requeued">Executions of lost agents queued again (retry policy).</param>
/// <param name="Failed">Executions of lost agents failed (<c>AGENT_LOST</c>).</param>
/// <param name="Cancelled">Executions of lost agents whose cancel had been asked for.</param>
/// <param name="ExpiredKeys">Idempotency keys past their retention, deleted.</param>
public sealed record SweepResult(int Requeued, int Failed, int Cancelled, int ExpiredKeys);

/// <summary>A report or request that carries a lease epoch (or agent) that no longer holds the execution.</summary>
public sealed class StaleEpochException(string executionId, long presented, long current, string? owner)
    : Exception($"execution {executionId}: epoch {presented} is stale (the lease is at epoch {current}, held by {owner ?? "no agent"}); this agent lost the execution and must stop running it")
{
    /// <summary>The current epoch.</summary>
    public long Current { get; } = current;
}

/// <summary>A status change the execution's state machine does not allow (e.g. anything after a terminal status).</summary>
public sealed class ExecutionStateException(string executionId, string from, string to)
    : Exception(ExecutionStatus.IsTerminal(from)
        ? $"execution {executionId} already ended ({from}); it cannot become {to}"
        : $"execution {executionId} is {from}; it cannot become {to}")
{
    /// <summary>The status it has.</summary>
    public string From { get; } = from;

    /// <summary>True when it had already ended.</summary>
    public bool Terminal { get; } = ExecutionStatus.IsTerminal(from);
}

/// <summary>An agent that is not registered, or not HEALTHY, asked for work.</summary>
public sealed class WorkerNotAdmittedException(string workerId, string? state)
    : Exception(state is null ? $"worker '{workerId}' is not registered; register it first" : $"worker '{workerId}' is {state}: only HEALTHY workers take executions")
{
    /// <summary>Its state, or null when it is not registered.</summary>
    public string? State { get; } = state;
}

/// <summary>A worker that already holds as many executions as it registered it runs at once asked for another.</summary>
public sealed class WorkerAtCapacityException(string workerId, long held, int maxExecutions)
    : Exception($"worker '{workerId}' holds {held} execution(s) and runs at most {maxExecutions} at once (its maxExecutions): it takes another once one ends")
{
    /// <summary>How many it holds.</summary>
    public long Held { get; } = held;

    /// <summary>Its capacity.</summary>
    public int MaxExecutions { get; } = maxExecutions;
}

/// <summary>Where a page of the executions listing ends: the last row's submission time and id (newest first, ties by id).</summary>
/// <param name="SubmittedAt">Its submission time (database clock, Unix ms).</param>
/// <param name="ExecutionId">Its id.</param>
public sealed record ExecutionKey(long SubmittedAt, string ExecutionId);

/// <summary>An interaction completed with another answer, or whose execution ended.</summary>
public sealed class InteractionTerminalException(string interactionId, string reason)
    : Exception($"interaction {interactionId}: {reason}")
{
    /// <summary>The interaction.</summary>
    public string InteractionId { get; } = interactionId;
}

/// <summary>Claims, reports, cancellation, the sweeper and interactions.</summary>
public partial interface ICoordinatorStore
{
    /// <summary>
    /// Claims the oldest QUEUED execution of the worker's pipeline, release and contract for
    /// <paramref name="workerId"/>, which must be registered and HEALTHY (else
    /// <see cref="WorkerNotAdmittedException"/>). The execution becomes DISPATCHED with a new lease epoch.
    /// Exactly one agent gets each execution, across coordinators (PostgreSQL: <c>FOR UPDATE SKIP
    /// LOCKED</c>; SQLite: one writer at a time). Null when nothing is waiting.
    /// </summary>
    Task<ExecutionRecord?> ClaimAsync(string tenantId, string pipelineId, string workerId, TimeSpan staleAfter, CancellationToken cancellationToken = default);

    /// <summary>
    /// Applies an agent's report. Throws <see cref="StaleEpochException"/> when the epoch or agent does
    /// not hold the lease, <see cref="ExecutionStateException"/> for an illegal move. A repeated terminal
    /// report with the same status is idempotent. Null when the execution does not exist.
    /// </summary>
    Task<ExecutionRecord?> ReportAsync(ExecutionReport report, CancellationToken cancellationToken = default);

    /// <summary>
    /// Cancels: a QUEUED execution at once; a leased one is marked (its agent stops it and reports
    /// CANCELLED; the sweeper ends it if the agent is lost). Cancelling a cancelled execution is idempotent;
    /// an ended one throws <see cref="ExecutionStateException"/>. Null when it does not exist.
    /// </summary>
    Task<ExecutionRecord?> CancelAsync(string tenantId, string executionId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Ends or requeues the executions whose agent has had no heartbeat for <paramref name="staleAfter"/>
    /// (a claim that was made at most <paramref name="maxAttempts"/> times is queued again; otherwise it
    /// FAILS with <c>AGENT_LOST</c>), and deletes idempotency keys older than <paramref name="keyRetention"/>
    /// (zero: keep). Safe with several coordinators sweeping at once.
    /// </summary>
    Task<SweepResult> SweepAsync(TimeSpan staleAfter, int maxAttempts, TimeSpan keyRetention, CancellationToken cancellationToken = default);

    /// <summary>
    /// Asks a question at <paramref name="gateId"/> for the execution the agent holds (epoch-checked): the
    /// execution becomes AWAITING_INTERACTION. Asking again at the same gate returns the same interaction.
    /// </summary>
    Task<InteractionRecord?> OpenInteractionAsync(string tenantId, string executionId, string workerId, long epoch, string gateId, string requestJson, CancellationToken cancellationToken = default);

    /// <summary>An interaction of the tenant, or null.</summary>
    Task<InteractionRecord?> GetInteractionAsync(string tenantId, string interactionId, CancellationToken cancellationToken = default);

    /// <summary>The tenant's WAITING interactions (of one execution when given), oldest first, at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<InteractionRecord>> ListPendingInteractionsAsync(string tenantId, string? executionId, int limit, CancellationToken cancellationToken = default);

    /// <summary>
    /// Answers an interaction; when none of its execution's interactions waits any more, the execution is
    /// RUNNING again. The same answer again is idempotent (true); another answer, or an execution that ended,
    /// throws <see cref="InteractionTerminalException"/>. Null when it does not exist.
    /// </summary>
    Task<(InteractionRecord Interaction, bool Duplicate)?> CompleteInteractionAsync(string tenantId, string interactionId, string responseJson, string actor, CancellationToken cancellationToken = default);

    /// <summary>
    /// The tenant's executions (of one pipeline and status when given), newest first (ties by id), at most
    /// <paramref name="limit"/>, after <paramref name="after"/> (null: from the newest); the key to continue after, or null at the end.
    /// </summary>
    Task<(IReadOnlyList<ExecutionRecord> Items, ExecutionKey? Next)> ListExecutionsAsync(string tenantId, string? pipelineId, string? status, ExecutionKey? after, int limit, CancellationToken cancellationToken = default);
}
