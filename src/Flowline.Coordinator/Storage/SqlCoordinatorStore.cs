using System.Data.Common;
using Dapper;

namespace Flowline.Coordinator.Storage;

/// <summary>
/// The store on a relational database: the same statements for SQLite and PostgreSQL (both have
/// <c>INSERT … ON CONFLICT DO NOTHING RETURNING</c>); the providers differ only in how they connect,
/// their clock expression, their DDL and how migrations are serialised.
/// </summary>
public abstract partial class SqlCoordinatorStore : ICoordinatorStore
{
    private const string ReleaseColumns =
        "id AS Id, tenant_id AS TenantId, pipeline_id AS PipelineId, release_version AS ReleaseVersion, contract_version AS ContractVersion, " +
        "content_digest AS ContentDigest, descriptor_json AS DescriptorJson, artifacts_json AS ArtifactsJson, registered_by AS RegisteredBy, registered_at AS RegisteredAt";

    private const string EventColumns =
        "id AS Id, tenant_id AS TenantId, pipeline_id AS PipelineId, release_version AS ReleaseVersion, previous_event_id AS PreviousEventId, " +
        "previous_release_version AS PreviousReleaseVersion, actor AS Actor, reason AS Reason, activated_at AS ActivatedAt";

    /// <inheritdoc/>
    public abstract string Provider { get; }

    /// <inheritdoc/>
    public abstract string Description { get; }

    /// <summary>An SQL expression of the database's current time in Unix milliseconds.</summary>
    protected abstract string NowMs { get; }

    /// <summary>Opens a connection (with the provider's per-connection settings applied).</summary>
    protected abstract Task<DbConnection> OpenAsync(CancellationToken cancellationToken);

    /// <summary>The DDL of a migration for this provider.</summary>
    internal abstract string Ddl(Migration migration);

    /// <summary>Serialises migrations across processes inside <paramref name="transaction"/> (PostgreSQL: an advisory lock; SQLite: its write lock is enough).</summary>
    protected virtual Task LockForMigrationAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc/>
    public async Task MigrateAsync(CancellationToken cancellationToken = default)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (tx.ConfigureAwait(false))
            {
                await LockForMigrationAsync(connection, tx, cancellationToken).ConfigureAwait(false);
                await connection.ExecuteAsync(new CommandDefinition(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
                    transaction: tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
                var applied = (await connection.QueryAsync<long>(new CommandDefinition(
                    "SELECT version FROM schema_migrations", transaction: tx, cancellationToken: cancellationToken)).ConfigureAwait(false)).ToHashSet();
                var known = Migrations.All.Max(m => m.Version);
                if (applied.Count > 0 && applied.Max() > known)
                {
                    throw new InvalidOperationException($"the database ({Description}) has schema version {applied.Max()}, newer than this coordinator knows ({known}); upgrade the coordinator");
                }

                foreach (var migration in Migrations.All.Where(m => !applied.Contains(m.Version)).OrderBy(m => m.Version))
                {
                    await connection.ExecuteAsync(new CommandDefinition(Ddl(migration), transaction: tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
                    await connection.ExecuteAsync(new CommandDefinition(
                        $"INSERT INTO schema_migrations (version, name, applied_at) VALUES (@Version, @Name, {NowMs})",
                        new { migration.Version, migration.Name }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
                }

                await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <inheritdoc/>
    public async Task<int> SchemaVersionAsync(CancellationToken cancellationToken = default)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            return (int)await connection.ExecuteScalarAsync<long>(new CommandDefinition(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", cancellationToken: cancellationToken)).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public async Task<(ReleaseRecord Release, bool Created)> RegisterReleaseAsync(NewRelease release, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(release);
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (tx.ConfigureAwait(false))
            {
                // A concurrent registration of the same version makes this insert do nothing: the winner's row is read below.
                var inserted = await connection.QuerySingleOrDefaultAsync<ReleaseRecord>(new CommandDefinition(
                    $"""
                    INSERT INTO releases (tenant_id, pipeline_id, release_version, contract_version, content_digest, descriptor_json, artifacts_json, registered_by, registered_at)
                    VALUES (@TenantId, @PipelineId, @ReleaseVersion, @ContractVersion, @ContentDigest, @DescriptorJson, @ArtifactsJson, @RegisteredBy, {NowMs})
                    ON CONFLICT DO NOTHING
                    RETURNING {ReleaseColumns}
                    """, release, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
                if (inserted is not null)
                {
                    await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
                    return (inserted, true);
                }

                var existing = await GetReleaseAsync(connection, tx, release.TenantId, release.PipelineId, release.ReleaseVersion, cancellationToken).ConfigureAwait(false)
                    ?? throw new InvalidOperationException("a release conflicted on insert but cannot be read");
                await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
                return existing.ContentDigest == release.ContentDigest ? (existing, false) : throw new ReleaseImmutableException(existing);
            }
        }
    }

    /// <inheritdoc/>
    public async Task<ReleaseRecord?> GetReleaseAsync(string tenantId, string pipelineId, string releaseVersion, CancellationToken cancellationToken = default)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            return await GetReleaseAsync(connection, null, tenantId, pipelineId, releaseVersion, cancellationToken).ConfigureAwait(false);
        }
    }

    private static Task<ReleaseRecord?> GetReleaseAsync(DbConnection connection, DbTransaction? tx, string tenantId, string pipelineId, string releaseVersion, CancellationToken cancellationToken) =>
        connection.QuerySingleOrDefaultAsync<ReleaseRecord>(new CommandDefinition(
            $"SELECT {ReleaseColumns} FROM releases WHERE tenant_id = @tenantId AND pipeline_id = @pipelineId AND release_version = @releaseVersion",
            new { tenantId, pipelineId, releaseVersion }, tx, cancellationToken: cancellationToken));

    /// <inheritdoc/>
    public async Task<Page<ReleaseRecord>> ListReleasesAsync(string tenantId, string pipelineId, long after, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var rows = (await connection.QueryAsync<ReleaseRecord>(new CommandDefinition(
                $"SELECT {ReleaseColumns} FROM releases WHERE tenant_id = @tenantId AND pipeline_id = @pipelineId AND id > @after ORDER BY id LIMIT @take",
                new { tenantId, pipelineId, after, take = limit + 1 }, cancellationToken: cancellationToken)).ConfigureAwait(false)).ToList();
            return Paged(rows, limit, r => r.Id);
        }
    }

    /// <inheritdoc/>
    public async Task<ActivationEvent?> GetActiveAsync(string tenantId, string pipelineId, CancellationToken cancellationToken = default)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            return await connection.QuerySingleOrDefaultAsync<ActivationEvent>(new CommandDefinition(
                $"SELECT {EventColumns} FROM activation_events WHERE id = (SELECT event_id FROM active_releases WHERE tenant_id = @tenantId AND pipeline_id = @pipelineId)",
                new { tenantId, pipelineId }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public async Task<ActivationEvent?> ActivateAsync(string tenantId, string pipelineId, string releaseVersion, long? expectedEventId, string actor, string? reason, CancellationToken cancellationToken = default)
    {
        for (var attempt = 0; ; attempt++)
        {
            var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await using (tx.ConfigureAwait(false))
                {
                    if (await GetReleaseAsync(connection, tx, tenantId, pipelineId, releaseVersion, cancellationToken).ConfigureAwait(false) is null)
                    {
                        return null;
                    }

                    var head = await connection.QuerySingleOrDefaultAsync<Head>(new CommandDefinition(
                        "SELECT event_id AS EventId, release_version AS ReleaseVersion FROM active_releases WHERE tenant_id = @tenantId AND pipeline_id = @pipelineId",
                        new { tenantId, pipelineId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
                    if (expectedEventId is { } expected && expected != (head?.EventId ?? 0))
                    {
                        throw new ActivationConflictException(head?.EventId);
                    }

                    var activation = await connection.QuerySingleAsync<ActivationEvent>(new CommandDefinition(
                        $"""
                        INSERT INTO activation_events (tenant_id, pipeline_id, release_version, previous_event_id, previous_release_version, actor, reason, activated_at)
                        VALUES (@tenantId, @pipelineId, @releaseVersion, @previous, @previousVersion, @actor, @reason, {NowMs})
                        RETURNING {EventColumns}
                        """,
                        new { tenantId, pipelineId, releaseVersion, previous = head?.EventId, previousVersion = head?.ReleaseVersion, actor, reason }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);

                    // The head moves by compare-and-set: a concurrent activation that committed first makes this change nothing.
                    var moved = head is null
                        ? await connection.ExecuteAsync(new CommandDefinition(
                            "INSERT INTO active_releases (tenant_id, pipeline_id, event_id, release_version) VALUES (@tenantId, @pipelineId, @id, @releaseVersion) ON CONFLICT DO NOTHING",
                            new { tenantId, pipelineId, id = activation.Id, releaseVersion }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false)
                        : await connection.ExecuteAsync(new CommandDefinition(
                            "UPDATE active_releases SET event_id = @id, release_version = @releaseVersion WHERE tenant_id = @tenantId AND pipeline_id = @pipelineId AND event_id = @current",
                            new { tenantId, pipelineId, id = activation.Id, releaseVersion, current = head.EventId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
                    if (moved == 1)
                    {
                        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
                        return activation;
                    }

                    await tx.RollbackAsync(cancellationToken).ConfigureAwait(false);
                }
            }

            if (expectedEventId is not null || attempt >= 20)
            {
                throw new ActivationConflictException((await GetActiveAsync(tenantId, pipelineId, cancellationToken).ConfigureAwait(false))?.Id);
            }
        }
    }

    /// <inheritdoc/>
    public async Task<Page<ActivationEvent>> ListActivationsAsync(string tenantId, string pipelineId, long after, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var rows = (await connection.QueryAsync<ActivationEvent>(new CommandDefinition(
                $"SELECT {EventColumns} FROM activation_events WHERE tenant_id = @tenantId AND pipeline_id = @pipelineId AND id > @after ORDER BY id LIMIT @take",
                new { tenantId, pipelineId, after, take = limit + 1 }, cancellationToken: cancellationToken)).ConfigureAwait(false)).ToList();
            return Paged(rows, limit, e => e.Id);
        }
    }

    private const string ExecutionColumns =
        "execution_id AS ExecutionId, tenant_id AS TenantId, pipeline_id AS PipelineId, release_version AS ReleaseVersion, contract_version AS ContractVersion, " +
        "status AS Status, request_json AS RequestJson, idempotency_key AS IdempotencyKey, submitted_by AS SubmittedBy, submitted_at AS SubmittedAt, " +
        "updated_at AS UpdatedAt, result_json AS ResultJson, error_code AS ErrorCode, error_message AS ErrorMessage, lease_epoch AS LeaseEpoch, " +
        "lease_owner AS LeaseOwner, attempts AS Attempts, cancel_requested_at AS CancelRequestedAt, started_at AS StartedAt, ended_at AS EndedAt";

    /// <inheritdoc/>
    public async Task<(ExecutionRecord Execution, bool Duplicate)> SubmitExecutionAsync(NewExecution execution, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(execution);
        for (var attempt = 0; ; attempt++)
        {
            var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await using (tx.ConfigureAwait(false))
                {
                    var created = await connection.QuerySingleAsync<ExecutionRecord>(new CommandDefinition(
                        $"""
                        INSERT INTO executions (execution_id, tenant_id, pipeline_id, release_version, contract_version, status, request_json, idempotency_key, submitted_by, submitted_at, updated_at)
                        VALUES (@ExecutionId, @TenantId, @PipelineId, @ReleaseVersion, @ContractVersion, 'QUEUED', @RequestJson, @IdempotencyKey, @SubmittedBy, {NowMs}, {NowMs})
                        RETURNING {ExecutionColumns}
                        """, execution, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
                    var keyed = execution.IdempotencyKey is null || await connection.ExecuteAsync(new CommandDefinition(
                        $"""
                        INSERT INTO idempotency_keys (tenant_id, pipeline_id, idempotency_key, fingerprint, execution_id, created_at)
                        VALUES (@TenantId, @PipelineId, @IdempotencyKey, @Fingerprint, @ExecutionId, {NowMs})
                        ON CONFLICT DO NOTHING
                        """, execution, tx, cancellationToken: cancellationToken)).ConfigureAwait(false) == 1;
                    if (keyed)
                    {
                        await connection.ExecuteAsync(new CommandDefinition(
                            $"INSERT INTO dispatch_queue (execution_id, due_at) VALUES (@ExecutionId, {NowMs})", execution, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
                        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
                        return (created, false);
                    }

                    // The key is taken (perhaps by a submission that committed meanwhile): nothing of this one is kept.
                    await tx.RollbackAsync(cancellationToken).ConfigureAwait(false);
                }

                var owner = await connection.QuerySingleOrDefaultAsync<KeyOwner>(new CommandDefinition(
                    "SELECT fingerprint AS Fingerprint, execution_id AS ExecutionId FROM idempotency_keys WHERE tenant_id = @TenantId AND pipeline_id = @PipelineId AND idempotency_key = @IdempotencyKey",
                    execution, cancellationToken: cancellationToken)).ConfigureAwait(false);
                if (owner is not null)
                {
                    if (owner.Fingerprint != execution.Fingerprint)
                    {
                        throw new IdempotencyConflictException(execution.IdempotencyKey!, owner.ExecutionId);
                    }

                    var first = await connection.QuerySingleAsync<ExecutionRecord>(new CommandDefinition(
                        $"SELECT {ExecutionColumns} FROM executions WHERE execution_id = @ExecutionId", new { owner.ExecutionId }, cancellationToken: cancellationToken)).ConfigureAwait(false);
                    return (first, true);
                }
            }

            if (attempt >= 5)
            {
                throw new InvalidOperationException($"idempotency key '{execution.IdempotencyKey}' conflicted but its owner cannot be read");
            }
        }
    }

    /// <inheritdoc/>
    public async Task<ExecutionRecord?> GetExecutionAsync(string tenantId, string executionId, CancellationToken cancellationToken = default)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            return await connection.QuerySingleOrDefaultAsync<ExecutionRecord>(new CommandDefinition(
                $"SELECT {ExecutionColumns} FROM executions WHERE tenant_id = @tenantId AND execution_id = @executionId",
                new { tenantId, executionId }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public async Task<long> DispatchEntryCountAsync(CancellationToken cancellationToken = default)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            return await connection.ExecuteScalarAsync<long>(new CommandDefinition("SELECT COUNT(*) FROM dispatch_queue", cancellationToken: cancellationToken)).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public async Task<long> PendingDispatchCountAsync(CancellationToken cancellationToken = default)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            return await connection.ExecuteScalarAsync<long>(new CommandDefinition(
                "SELECT COUNT(*) FROM dispatch_queue WHERE claimed_by IS NULL", cancellationToken: cancellationToken)).ConfigureAwait(false);
        }
    }

    private const string WorkerSelect =
        "SELECT tenant_id AS TenantId, pipeline_id AS PipelineId, worker_id AS WorkerId, protocol AS Protocol, endpoint AS Endpoint, contract_version AS ContractVersion, " +
        "release_version AS ReleaseVersion, artifact_id AS ArtifactId, artifact_digest AS ArtifactDigest, registered_at AS RegisteredAt, last_heartbeat_at AS LastHeartbeatAt, " +
        "draining_since AS DrainingSince, unavailable_reason AS UnavailableReason, max_executions AS MaxExecutions FROM workers WHERE tenant_id = @TenantId AND pipeline_id = @PipelineId";

    private sealed record WorkerRow(string TenantId, string PipelineId, string WorkerId, string Protocol, string? Endpoint, string ContractVersion,
        string ReleaseVersion, string? ArtifactId, string? ArtifactDigest, long RegisteredAt, long LastHeartbeatAt, long? DrainingSince, string? UnavailableReason, long MaxExecutions);

    /// <summary>The rows with their state, computed with the database's clock (read in the same connection).</summary>
    private async Task<List<WorkerRecord>> WithStateAsync(DbConnection connection, IEnumerable<WorkerRow> rows, TimeSpan staleAfter, CancellationToken cancellationToken)
    {
        var now = await connection.ExecuteScalarAsync<long>(new CommandDefinition($"SELECT {NowMs}", cancellationToken: cancellationToken)).ConfigureAwait(false);
        var stale = (long)staleAfter.TotalMilliseconds;
        return [.. rows.Select(r => new WorkerRecord(r.TenantId, r.PipelineId, r.WorkerId, r.Protocol, r.Endpoint, r.ContractVersion, r.ReleaseVersion,
            r.ArtifactId, r.ArtifactDigest, r.RegisteredAt, r.LastHeartbeatAt, r.DrainingSince,
            r.DrainingSince is not null ? "DRAINING" : r.UnavailableReason is not null ? "UNAVAILABLE" : stale > 0 && now - r.LastHeartbeatAt > stale ? "STALE" : "HEALTHY",
            r.UnavailableReason, (int)r.MaxExecutions))];
    }

    /// <inheritdoc/>
    public async Task<WorkerRecord> RegisterWorkerAsync(WorkerRegistration registration, TimeSpan staleAfter, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(registration);
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            await connection.ExecuteAsync(new CommandDefinition(
                $"""
                INSERT INTO workers (tenant_id, pipeline_id, worker_id, protocol, endpoint, contract_version, release_version, artifact_id, artifact_digest, registered_at, last_heartbeat_at, max_executions)
                VALUES (@TenantId, @PipelineId, @WorkerId, @Protocol, @Endpoint, @ContractVersion, @ReleaseVersion, @ArtifactId, @ArtifactDigest, {NowMs}, {NowMs}, @MaxExecutions)
                ON CONFLICT (tenant_id, pipeline_id, worker_id) DO UPDATE SET protocol = excluded.protocol, endpoint = excluded.endpoint,
                    contract_version = excluded.contract_version, release_version = excluded.release_version, artifact_id = excluded.artifact_id,
                    artifact_digest = excluded.artifact_digest, registered_at = excluded.registered_at, last_heartbeat_at = excluded.last_heartbeat_at,
                    max_executions = excluded.max_executions, unavailable_reason = NULL
                """, registration, cancellationToken: cancellationToken)).ConfigureAwait(false);
            return (await ReadWorkerAsync(connection, registration.TenantId, registration.PipelineId, registration.WorkerId, staleAfter, cancellationToken).ConfigureAwait(false))!;
        }
    }

    /// <inheritdoc/>
    public Task<WorkerRecord?> HeartbeatAsync(string tenantId, string pipelineId, string workerId, TimeSpan staleAfter, CancellationToken cancellationToken = default) =>
        UpdateWorkerAsync($"last_heartbeat_at = {NowMs}", tenantId, pipelineId, workerId, staleAfter, cancellationToken);

    /// <inheritdoc/>
    public Task<WorkerRecord?> SetDrainingAsync(string tenantId, string pipelineId, string workerId, bool draining, TimeSpan staleAfter, CancellationToken cancellationToken = default) =>
        UpdateWorkerAsync(draining ? $"draining_since = COALESCE(draining_since, {NowMs})" : "draining_since = NULL", tenantId, pipelineId, workerId, staleAfter, cancellationToken);

    /// <inheritdoc/>
    public async Task<WorkerRecord?> SetUnavailableAsync(string tenantId, string pipelineId, string workerId, string reason, TimeSpan staleAfter, CancellationToken cancellationToken = default)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var changed = await connection.ExecuteAsync(new CommandDefinition(
                $"UPDATE workers SET unavailable_reason = @reason, last_heartbeat_at = {NowMs} WHERE tenant_id = @tenantId AND pipeline_id = @pipelineId AND worker_id = @workerId",
                new { tenantId, pipelineId, workerId, reason }, cancellationToken: cancellationToken)).ConfigureAwait(false);
            return changed == 0 ? null : await ReadWorkerAsync(connection, tenantId, pipelineId, workerId, staleAfter, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<WorkerRecord?> UpdateWorkerAsync(string set, string tenantId, string pipelineId, string workerId, TimeSpan staleAfter, CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var changed = await connection.ExecuteAsync(new CommandDefinition(
                $"UPDATE workers SET {set} WHERE tenant_id = @tenantId AND pipeline_id = @pipelineId AND worker_id = @workerId",
                new { tenantId, pipelineId, workerId }, cancellationToken: cancellationToken)).ConfigureAwait(false);
            return changed == 0 ? null : await ReadWorkerAsync(connection, tenantId, pipelineId, workerId, staleAfter, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<WorkerRecord?> ReadWorkerAsync(DbConnection connection, string tenantId, string pipelineId, string workerId, TimeSpan staleAfter, CancellationToken cancellationToken)
    {
        var rows = await connection.QueryAsync<WorkerRow>(new CommandDefinition(
            WorkerSelect + " AND worker_id = @WorkerId",
            new { TenantId = tenantId, PipelineId = pipelineId, WorkerId = workerId }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return (await WithStateAsync(connection, rows, staleAfter, cancellationToken).ConfigureAwait(false)).SingleOrDefault();
    }

    /// <inheritdoc/>
    public async Task<(IReadOnlyList<WorkerRecord> Items, string? NextAfter)> ListWorkersAsync(string tenantId, string pipelineId, string afterWorkerId, int limit, TimeSpan staleAfter, string? contractVersion = null, string? releaseVersion = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var found = await connection.QueryAsync<WorkerRow>(new CommandDefinition(
                WorkerSelect + " AND worker_id > @after AND (@contract IS NULL OR contract_version = @contract) AND (@release IS NULL OR release_version = @release) ORDER BY worker_id LIMIT @take",
                new { TenantId = tenantId, PipelineId = pipelineId, after = afterWorkerId, take = limit + 1, contract = contractVersion, release = releaseVersion }, cancellationToken: cancellationToken)).ConfigureAwait(false);
            var rows = await WithStateAsync(connection, found, staleAfter, cancellationToken).ConfigureAwait(false);
            return rows.Count > limit ? (rows.GetRange(0, limit), rows[limit - 1].WorkerId) : (rows, null);
        }
    }

    private sealed record KeyOwner(string Fingerprint, string ExecutionId);

    private sealed record Head(long EventId, string ReleaseVersion);

    private static Page<T> Paged<T>(List<T> rows, int limit, Func<T, long> id) =>
        rows.Count > limit ? new Page<T>(rows.GetRange(0, limit), id(rows[limit - 1])) : new Page<T>(rows, null);

    /// <inheritdoc/>
    public virtual ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }
}
