namespace Flowline.Coordinator.Storage;

/// <summary>A registered release as stored: immutable once written.</summary>
/// <param name="Id">The store's sequence number (the cursor of listings).</param>
/// <param name="TenantId">The tenant.</param>
/// <param name="PipelineId">The pipeline.</param>
/// <param name="ReleaseVersion">The release's version, unique per tenant and pipeline.</param>
/// <param name="ContractVersion">The contract version the descriptor names.</param>
/// <param name="ContentDigest">SHA-256 of the descriptor's canonical form: equal digests mean the same release.</param>
/// <param name="DescriptorJson">The descriptor as registered (canonical JSON).</param>
/// <param name="ArtifactsJson">The stored artifacts (JSON array of <see cref="StoredArtifact"/>).</param>
/// <param name="RegisteredBy">Who registered it (the token's name).</param>
/// <param name="RegisteredAt">When, in Unix milliseconds of the database's clock.</param>
public sealed record ReleaseRecord(
    long Id,
    string TenantId,
    string PipelineId,
    string ReleaseVersion,
    string ContractVersion,
    string ContentDigest,
    string DescriptorJson,
    string ArtifactsJson,
    string RegisteredBy,
    long RegisteredAt);

/// <summary>A release to register.</summary>
/// <param name="TenantId">The tenant.</param>
/// <param name="PipelineId">The pipeline.</param>
/// <param name="ReleaseVersion">The release's version.</param>
/// <param name="ContractVersion">The contract version.</param>
/// <param name="ContentDigest">SHA-256 of the canonical descriptor.</param>
/// <param name="DescriptorJson">The canonical descriptor.</param>
/// <param name="ArtifactsJson">The stored artifacts.</param>
/// <param name="RegisteredBy">Who registers it.</param>
public sealed record NewRelease(
    string TenantId,
    string PipelineId,
    string ReleaseVersion,
    string ContractVersion,
    string ContentDigest,
    string DescriptorJson,
    string ArtifactsJson,
    string RegisteredBy);

/// <summary>One entry of the append-only activation log of a tenant's pipeline.</summary>
/// <param name="Id">The event's sequence number (the active head's ETag).</param>
/// <param name="TenantId">The tenant.</param>
/// <param name="PipelineId">The pipeline.</param>
/// <param name="ReleaseVersion">The release activated.</param>
/// <param name="PreviousEventId">The activation it replaced, null for the first.</param>
/// <param name="PreviousReleaseVersion">The release that was active before, null for the first.</param>
/// <param name="Actor">Who activated it.</param>
/// <param name="Reason">Why (free text, may be null).</param>
/// <param name="ActivatedAt">When, in Unix milliseconds of the database's clock.</param>
public sealed record ActivationEvent(
    long Id,
    string TenantId,
    string PipelineId,
    string ReleaseVersion,
    long? PreviousEventId,
    string? PreviousReleaseVersion,
    string Actor,
    string? Reason,
    long ActivatedAt);

/// <summary>An execution as stored.</summary>
/// <param name="ExecutionId">Its id (a UUID).</param>
/// <param name="TenantId">The tenant.</param>
/// <param name="PipelineId">The pipeline.</param>
/// <param name="ReleaseVersion">The release it is pinned to.</param>
/// <param name="ContractVersion">That release's contract version.</param>
/// <param name="Status">QUEUED, DISPATCHED, RUNNING, AWAITING_INTERACTION, SUCCEEDED, FAILED or CANCELLED.</param>
/// <param name="RequestJson">The submitted request (canonical JSON).</param>
/// <param name="IdempotencyKey">The client's key, or null.</param>
/// <param name="SubmittedBy">Who submitted it.</param>
/// <param name="SubmittedAt">When, in Unix milliseconds of the database's clock.</param>
/// <param name="UpdatedAt">When its status last changed.</param>
/// <param name="ResultJson">The result once terminal, else null.</param>
/// <param name="ErrorCode">Why it failed, or null.</param>
/// <param name="ErrorMessage">The failure's detail, or null.</param>
/// <param name="LeaseEpoch">The fencing epoch of the current (or last) claim: every agent report must carry it.</param>
/// <param name="LeaseOwner">The agent (worker id) holding the claim, or null.</param>
/// <param name="Attempts">How many times it was claimed.</param>
/// <param name="CancelRequestedAt">When a cancel was asked for while an agent held it, or null.</param>
/// <param name="StartedAt">When an agent first reported it RUNNING, or null.</param>
/// <param name="EndedAt">When it reached a terminal status, or null.</param>
public sealed record ExecutionRecord(
    string ExecutionId,
    string TenantId,
    string PipelineId,
    string ReleaseVersion,
    string ContractVersion,
    string Status,
    string RequestJson,
    string? IdempotencyKey,
    string SubmittedBy,
    long SubmittedAt,
    long UpdatedAt,
    string? ResultJson,
    string? ErrorCode,
    string? ErrorMessage,
    long LeaseEpoch = 0,
    string? LeaseOwner = null,
    long Attempts = 0,
    long? CancelRequestedAt = null,
    long? StartedAt = null,
    long? EndedAt = null);

/// <summary>An execution to submit.</summary>
/// <param name="ExecutionId">Its new id.</param>
/// <param name="TenantId">The tenant.</param>
/// <param name="PipelineId">The pipeline.</param>
/// <param name="ReleaseVersion">The release it is pinned to (already resolved).</param>
/// <param name="ContractVersion">That release's contract version.</param>
/// <param name="RequestJson">The request (canonical JSON).</param>
/// <param name="IdempotencyKey">The client's key, or null.</param>
/// <param name="Fingerprint">SHA-256 of the canonical request: a reused key must come with the same.</param>
/// <param name="SubmittedBy">Who submits it.</param>
public sealed record NewExecution(
    string ExecutionId,
    string TenantId,
    string PipelineId,
    string ReleaseVersion,
    string ContractVersion,
    string RequestJson,
    string? IdempotencyKey,
    string Fingerprint,
    string SubmittedBy);

/// <summary>An idempotency key reused with a different request.</summary>
public sealed class IdempotencyConflictException(string key, string executionId)
    : Exception($"idempotency key '{key}' was used for execution {executionId} with a different request; use a new key for a new request")
{
    /// <summary>The execution the key belongs to.</summary>
    public string ExecutionId { get; } = executionId;
}

/// <summary>A worker (host agent) of a tenant's pipeline, with its state computed at read time.</summary>
/// <param name="TenantId">The tenant.</param>
/// <param name="PipelineId">The pipeline.</param>
/// <param name="WorkerId">Its id, unique per tenant and pipeline.</param>
/// <param name="Protocol">How it is reached (lower case).</param>
/// <param name="Endpoint">Where, or null.</param>
/// <param name="ContractVersion">The contract version it runs.</param>
/// <param name="ReleaseVersion">The release it runs.</param>
/// <param name="ArtifactId">The artifact it runs, or null.</param>
/// <param name="ArtifactDigest">That artifact's digest, or null.</param>
/// <param name="RegisteredAt">When it last registered (database clock, Unix ms).</param>
/// <param name="LastHeartbeatAt">Its last heartbeat (or registration).</param>
/// <param name="DrainingSince">When it was drained, null when not draining.</param>
/// <param name="State">DRAINING, else UNAVAILABLE, else STALE, else HEALTHY (computed with the database's clock).</param>
/// <param name="UnavailableReason">Why the agent said it cannot run the release (UNAVAILABLE), or null.</param>
/// <param name="MaxExecutions">How many executions it runs at once at most (its claims beyond are refused).</param>
public sealed record WorkerRecord(
    string TenantId,
    string PipelineId,
    string WorkerId,
    string Protocol,
    string? Endpoint,
    string ContractVersion,
    string ReleaseVersion,
    string? ArtifactId,
    string? ArtifactDigest,
    long RegisteredAt,
    long LastHeartbeatAt,
    long? DrainingSince,
    string State,
    string? UnavailableReason = null,
    int MaxExecutions = 1);

/// <summary>A worker's registration.</summary>
/// <param name="TenantId">The tenant.</param>
/// <param name="PipelineId">The pipeline.</param>
/// <param name="WorkerId">Its id.</param>
/// <param name="Protocol">How it is reached.</param>
/// <param name="Endpoint">Where, or null.</param>
/// <param name="ContractVersion">The contract version it runs.</param>
/// <param name="ReleaseVersion">The release it runs.</param>
/// <param name="ArtifactId">The artifact it runs, or null.</param>
/// <param name="ArtifactDigest">That artifact's digest, or null.</param>
/// <param name="MaxExecutions">How many executions it runs at once at most (1 and up).</param>
public sealed record WorkerRegistration(
    string TenantId,
    string PipelineId,
    string WorkerId,
    string Protocol,
    string? Endpoint,
    string ContractVersion,
    string ReleaseVersion,
    string? ArtifactId,
    string? ArtifactDigest,
    int MaxExecutions = 1);

/// <summary>One page of a listing, in store order.</summary>
/// <typeparam name="T">The item type.</typeparam>
/// <param name="Items">The items.</param>
/// <param name="NextAfter">The sequence number to continue after, or null at the end.</param>
public sealed record Page<T>(IReadOnlyList<T> Items, long? NextAfter);

/// <summary>Registering an existing version with different content.</summary>
public sealed class ReleaseImmutableException(ReleaseRecord existing)
    : Exception($"release '{existing.ReleaseVersion}' of pipeline '{existing.PipelineId}' is already registered with different content (digest {existing.ContentDigest}); releases are immutable: register a new version")
{
    /// <summary>The release already stored.</summary>
    public ReleaseRecord Existing { get; } = existing;
}

/// <summary>An activation whose expected head (If-Match) is not the current one.</summary>
public sealed class ActivationConflictException(long? current)
    : Exception(current is null
        ? "the pipeline has no active release, but the request expected one (If-Match)"
        : $"the active release changed: the current activation is {current} (send it as If-Match, or omit If-Match)")
{
    /// <summary>The current head's event id, null when nothing is active.</summary>
    public long? Current { get; } = current;
}

/// <summary>
/// The coordinator's state: one interface, implemented for SQLite and PostgreSQL by
/// <see cref="SqlCoordinatorStore"/>. Every operation is one transaction; timestamps come from the
/// database's clock, never the coordinator's.
/// </summary>
public partial interface ICoordinatorStore : IAsyncDisposable
{
    /// <summary>"sqlite" or "postgresql".</summary>
    string Provider { get; }

    /// <summary>A description safe to print (no password).</summary>
    string Description { get; }

    /// <summary>Applies the migrations not yet applied (safe with several coordinators starting at once).</summary>
    Task MigrateAsync(CancellationToken cancellationToken = default);

    /// <summary>The highest migration applied.</summary>
    Task<int> SchemaVersionAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Registers a release. Returns the stored record and true when it was created, or the existing
    /// record and false when the same version was registered with the same content. Throws
    /// <see cref="ReleaseImmutableException"/> when that version exists with other content.
    /// </summary>
    Task<(ReleaseRecord Release, bool Created)> RegisterReleaseAsync(NewRelease release, CancellationToken cancellationToken = default);

    /// <summary>A release by version, or null.</summary>
    Task<ReleaseRecord?> GetReleaseAsync(string tenantId, string pipelineId, string releaseVersion, CancellationToken cancellationToken = default);

    /// <summary>The releases of a pipeline in registration order, after sequence number <paramref name="after"/>.</summary>
    Task<Page<ReleaseRecord>> ListReleasesAsync(string tenantId, string pipelineId, long after, int limit, CancellationToken cancellationToken = default);

    /// <summary>The activation that is the pipeline's active head, or null when none.</summary>
    Task<ActivationEvent?> GetActiveAsync(string tenantId, string pipelineId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Activates a registered release: appends an activation event and moves the active head to it by
    /// compare-and-set. With <paramref name="expectedEventId"/> the head must be that event (0: nothing
    /// active yet), else <see cref="ActivationConflictException"/>; without it, a concurrent activation
    /// is retried. Returns null when the release is not registered.
    /// </summary>
    Task<ActivationEvent?> ActivateAsync(string tenantId, string pipelineId, string releaseVersion, long? expectedEventId, string actor, string? reason, CancellationToken cancellationToken = default);

    /// <summary>The activation log of a pipeline, oldest first, after <paramref name="after"/>.</summary>
    Task<Page<ActivationEvent>> ListActivationsAsync(string tenantId, string pipelineId, long after, int limit, CancellationToken cancellationToken = default);

    /// <summary>
    /// Submits an execution: the execution (QUEUED), its idempotency key and its dispatch entry in one
    /// transaction. A key already used with the same fingerprint returns the first execution and true;
    /// with another fingerprint throws <see cref="IdempotencyConflictException"/>. Keys are scoped to the
    /// tenant and pipeline.
    /// </summary>
    Task<(ExecutionRecord Execution, bool Duplicate)> SubmitExecutionAsync(NewExecution execution, CancellationToken cancellationToken = default);

    /// <summary>An execution of the tenant, or null.</summary>
    Task<ExecutionRecord?> GetExecutionAsync(string tenantId, string executionId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Registers a worker, or registers it again (its details replaced and its heartbeat renewed). A
    /// drained worker stays drained until <see cref="SetDrainingAsync"/> undrains it.
    /// </summary>
    Task<WorkerRecord> RegisterWorkerAsync(WorkerRegistration registration, TimeSpan staleAfter, CancellationToken cancellationToken = default);

    /// <summary>Renews a worker's heartbeat; null when it is not registered.</summary>
    Task<WorkerRecord?> HeartbeatAsync(string tenantId, string pipelineId, string workerId, TimeSpan staleAfter, CancellationToken cancellationToken = default);

    /// <summary>Marks a worker UNAVAILABLE with <paramref name="reason"/> (it cannot run its release) until it registers again; null when it is not registered.</summary>
    Task<WorkerRecord?> SetUnavailableAsync(string tenantId, string pipelineId, string workerId, string reason, TimeSpan staleAfter, CancellationToken cancellationToken = default);

    /// <summary>Drains (true) or undrains (false) a worker; null when it is not registered. Draining again keeps the first time.</summary>
    Task<WorkerRecord?> SetDrainingAsync(string tenantId, string pipelineId, string workerId, bool draining, TimeSpan staleAfter, CancellationToken cancellationToken = default);

    /// <summary>
    /// The workers of a pipeline by id, after <paramref name="afterWorkerId"/> (empty: from the start), of
    /// <paramref name="contractVersion"/> and <paramref name="releaseVersion"/> when given.
    /// </summary>
    Task<(IReadOnlyList<WorkerRecord> Items, string? NextAfter)> ListWorkersAsync(string tenantId, string pipelineId, string afterWorkerId, int limit, TimeSpan staleAfter, string? contractVersion = null, string? releaseVersion = null, CancellationToken cancellationToken = default);

    /// <summary>How many dispatch entries there are, claimed or not (only executions that have not ended have any).</summary>
    Task<long> DispatchEntryCountAsync(CancellationToken cancellationToken = default);

    /// <summary>How many dispatch entries are waiting for an agent to claim them.</summary>
    Task<long> PendingDispatchCountAsync(CancellationToken cancellationToken = default);
}
