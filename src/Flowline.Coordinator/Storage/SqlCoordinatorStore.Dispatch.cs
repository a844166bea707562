using System.Data.Common;
using Dapper;

namespace Flowline.Coordinator.Storage;

/// <summary>Claims, reports, cancellation, the sweeper and interactions, in SQL both providers run.</summary>
public abstract partial class SqlCoordinatorStore
{
    private const string InteractionColumns =
        "interaction_id AS InteractionId, tenant_id AS TenantId, execution_id AS ExecutionId, gate_id AS GateId, status AS Status, request_json AS RequestJson, " +
        "response_json AS ResponseJson, actor AS Actor, created_at AS CreatedAt, completed_at AS CompletedAt";

    /// <summary>Appended to a SELECT that reads a row it will change: <c>FOR UPDATE</c> on PostgreSQL; nothing on SQLite, whose write transaction is already exclusive.</summary>
    protected virtual string ForUpdate => "";

    /// <summary>Appended to a SELECT of rows to claim: on PostgreSQL <c>FOR UPDATE OF alias SKIP LOCKED</c>; nothing on SQLite.</summary>
    protected virtual string SkipLocked(string alias) => "";

    private async Task<T> InTransactionAsync<T>(Func<DbConnection, DbTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (tx.ConfigureAwait(false))
            {
                var result = await work(connection, tx).ConfigureAwait(false);
                await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
                return result;
            }
        }
    }

    private sealed record ClaimWorker(string ContractVersion, string ReleaseVersion, long LastHeartbeatAt, long? DrainingSince, string? UnavailableReason, long MaxExecutions, long Now);

    private sealed record Candidate(long DispatchId, string ExecutionId);

    /// <summary>
    /// The oldest claimable dispatch entry for a worker (parameters <c>tenantId</c>, <c>pipelineId</c>,
    /// <c>ReleaseVersion</c>, <c>ContractVersion</c>). The execution is matched by a correlated scalar
    /// subquery, which the planner cannot turn into a join: the entries are walked in <c>id</c> order on
    /// the unclaimed index and each is checked by the executions' primary key, stopping at the first
    /// match, whatever the tables' statistics say. As a join, PostgreSQL planned it on never-analysed
    /// tables as a nested loop rescanning every unclaimed entry for every queued execution (quadratic:
    /// half a second a claim at a thousand queued), until autovacuum's first ANALYZE (decision 86).
    /// </summary>
    internal string ClaimCandidateSql => $"""
        SELECT d.id AS DispatchId, d.execution_id AS ExecutionId FROM dispatch_queue d
        WHERE d.claimed_by IS NULL AND d.due_at <= {NowMs}
          AND (SELECT e.status FROM executions e WHERE e.execution_id = d.execution_id AND e.tenant_id = @tenantId AND e.pipeline_id = @pipelineId
               AND e.release_version = @ReleaseVersion AND e.contract_version = @ContractVersion) = 'QUEUED'
        ORDER BY d.id LIMIT 1{SkipLocked("d")}
        """;

    /// <inheritdoc/>
    public Task<ExecutionRecord?> ClaimAsync(string tenantId, string pipelineId, string workerId, TimeSpan staleAfter, CancellationToken cancellationToken = default) =>
        InTransactionAsync<ExecutionRecord?>(async (connection, tx) =>
        {
            var worker = await connection.QuerySingleOrDefaultAsync<ClaimWorker>(new CommandDefinition(
                $"SELECT contract_version AS ContractVersion, release_version AS ReleaseVersion, last_heartbeat_at AS LastHeartbeatAt, draining_since AS DrainingSince, unavailable_reason AS UnavailableReason, max_executions AS MaxExecutions, {NowMs} AS Now " +
                $"FROM workers WHERE tenant_id = @tenantId AND pipeline_id = @pipelineId AND worker_id = @workerId{ForUpdate}",
                new { tenantId, pipelineId, workerId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false)
                ?? throw new WorkerNotAdmittedException(workerId, null);
            var stale = (long)staleAfter.TotalMilliseconds;
            if (worker.DrainingSince is not null || worker.UnavailableReason is not null || (stale > 0 && worker.Now - worker.LastHeartbeatAt > stale))
            {
                throw new WorkerNotAdmittedException(workerId, worker.DrainingSince is not null ? "DRAINING" : worker.UnavailableReason is not null ? "UNAVAILABLE" : "STALE");
            }

            // Its capacity: the worker's row is locked (PostgreSQL) or the transaction is the only writer (SQLite), so two claims of one worker cannot both pass.
            var held = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
                "SELECT COUNT(*) FROM executions WHERE tenant_id = @tenantId AND pipeline_id = @pipelineId AND lease_owner = @workerId AND status IN ('DISPATCHED', 'RUNNING', 'AWAITING_INTERACTION')",
                new { tenantId, pipelineId, workerId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
            if (held >= worker.MaxExecutions)
            {
                throw new WorkerAtCapacityException(workerId, held, (int)worker.MaxExecutions);
            }

            for (var attempt = 0; attempt < 16; attempt++)
            {
                var candidate = await connection.QuerySingleOrDefaultAsync<Candidate>(new CommandDefinition(
                    ClaimCandidateSql, new { tenantId, pipelineId, worker.ReleaseVersion, worker.ContractVersion }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
                if (candidate is null)
                {
                    return null;
                }

                await connection.ExecuteAsync(new CommandDefinition(
                    $"UPDATE dispatch_queue SET claimed_by = @workerId, claimed_at = {NowMs} WHERE id = @DispatchId",
                    new { workerId, candidate.DispatchId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
                var claimed = await connection.QuerySingleOrDefaultAsync<ExecutionRecord>(new CommandDefinition(
                    $"""
                    UPDATE executions SET status = 'DISPATCHED', lease_owner = @workerId, lease_epoch = lease_epoch + 1, attempts = attempts + 1, updated_at = {NowMs}
                    WHERE execution_id = @ExecutionId AND status = 'QUEUED'
                    RETURNING {ExecutionColumns}
                    """, new { workerId, candidate.ExecutionId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
                if (claimed is not null)
                {
                    return claimed;
                }

                // The entry's execution is no longer QUEUED (a stray entry): it stays consumed, try the next.
            }

            return null;
        }, cancellationToken);

    private Task<ExecutionRecord?> LockExecutionAsync(DbConnection connection, DbTransaction tx, string tenantId, string executionId, CancellationToken cancellationToken) =>
        connection.QuerySingleOrDefaultAsync<ExecutionRecord>(new CommandDefinition(
            $"SELECT {ExecutionColumns} FROM executions WHERE tenant_id = @tenantId AND execution_id = @executionId{ForUpdate}",
            new { tenantId, executionId }, tx, cancellationToken: cancellationToken));

    /// <inheritdoc/>
    public Task<ExecutionRecord?> ReportAsync(ExecutionReport report, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(report);
        return InTransactionAsync<ExecutionRecord?>(async (connection, tx) =>
        {
            var e = await LockExecutionAsync(connection, tx, report.TenantId, report.ExecutionId, cancellationToken).ConfigureAwait(false);
            if (e is null)
            {
                return null;
            }

            if (e.LeaseEpoch != report.Epoch || e.LeaseOwner != report.WorkerId)
            {
                throw new StaleEpochException(e.ExecutionId, report.Epoch, e.LeaseEpoch, e.LeaseOwner);
            }

            if (ExecutionStatus.IsTerminal(e.Status))
            {
                return e.Status == report.Status ? e : throw new ExecutionStateException(e.ExecutionId, e.Status, report.Status);
            }

            if (report.Status == ExecutionStatus.Running && e.Status is ExecutionStatus.Running or ExecutionStatus.AwaitingInteraction)
            {
                return e; // a renewal: the agent still runs it (the answer tells it whether a cancel was asked for)
            }

            if (report.Status is ExecutionStatus.Queued or ExecutionStatus.AwaitingInteraction || !ExecutionStatus.CanMove(e.Status, report.Status))
            {
                throw new ExecutionStateException(e.ExecutionId, e.Status, report.Status);
            }

            return await MoveAsync(connection, tx, e, report.Status, report.ResultJson, report.ErrorCode, report.ErrorMessage, bumpEpoch: false, cancellationToken).ConfigureAwait(false);
        }, cancellationToken);
    }

    /// <summary>Moves a locked execution to <paramref name="status"/>; an ended one's waiting interactions are cancelled with it.</summary>
    private async Task<ExecutionRecord> MoveAsync(DbConnection connection, DbTransaction tx, ExecutionRecord e, string status, string? resultJson, string? errorCode, string? errorMessage, bool bumpEpoch, CancellationToken cancellationToken)
    {
        var terminal = ExecutionStatus.IsTerminal(status);
        var moved = await connection.QuerySingleAsync<ExecutionRecord>(new CommandDefinition(
            $"""
            UPDATE executions SET status = @status, updated_at = {NowMs},
                result_json = COALESCE(@resultJson, result_json), error_code = @errorCode, error_message = @errorMessage,
                started_at = CASE WHEN @status = 'RUNNING' AND started_at IS NULL THEN {NowMs} ELSE started_at END,
                ended_at = CASE WHEN @terminal THEN {NowMs} ELSE ended_at END,
                lease_epoch = CASE WHEN @bumpEpoch THEN lease_epoch + 1 ELSE lease_epoch END,
                lease_owner = CASE WHEN @status = 'QUEUED' THEN NULL ELSE lease_owner END
            WHERE execution_id = @ExecutionId
            RETURNING {ExecutionColumns}
            """, new { status, resultJson, errorCode, errorMessage, terminal, bumpEpoch, e.ExecutionId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
        if (terminal)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                $"UPDATE interactions SET status = 'CANCELLED', completed_at = {NowMs} WHERE execution_id = @ExecutionId AND status = 'WAITING'",
                new { e.ExecutionId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
            // Its dispatch entries (claimed or not) are of no more use: the queue holds live executions only.
            await connection.ExecuteAsync(new CommandDefinition(
                "DELETE FROM dispatch_queue WHERE execution_id = @ExecutionId",
                new { e.ExecutionId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
        }
        else if (status == ExecutionStatus.Queued)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                $"INSERT INTO dispatch_queue (execution_id, due_at) VALUES (@ExecutionId, {NowMs})", new { e.ExecutionId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
        }

        return moved;
    }

    /// <inheritdoc/>
    public Task<ExecutionRecord?> CancelAsync(string tenantId, string executionId, CancellationToken cancellationToken = default) =>
        InTransactionAsync<ExecutionRecord?>(async (connection, tx) =>
        {
            var e = await LockExecutionAsync(connection, tx, tenantId, executionId, cancellationToken).ConfigureAwait(false);
            if (e is null || e.Status == ExecutionStatus.Cancelled)
            {
                return e;
            }

            if (ExecutionStatus.IsTerminal(e.Status))
            {
                throw new ExecutionStateException(e.ExecutionId, e.Status, ExecutionStatus.Cancelled);
            }

            if (e.Status == ExecutionStatus.Queued)
            {
                return await MoveAsync(connection, tx, e, ExecutionStatus.Cancelled, null, null, "cancelled before an agent claimed it", bumpEpoch: true, cancellationToken).ConfigureAwait(false);
            }

            return await connection.QuerySingleAsync<ExecutionRecord>(new CommandDefinition(
                $"UPDATE executions SET cancel_requested_at = COALESCE(cancel_requested_at, {NowMs}), updated_at = {NowMs} WHERE execution_id = @executionId RETURNING {ExecutionColumns}",
                new { executionId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
        }, cancellationToken);

    private sealed record Lost(string ExecutionId, string TenantId);

    /// <inheritdoc/>
    public async Task<SweepResult> SweepAsync(TimeSpan staleAfter, int maxAttempts, TimeSpan keyRetention, CancellationToken cancellationToken = default)
    {
        var stale = (long)staleAfter.TotalMilliseconds;
        var (requeued, failed, cancelled) = stale <= 0 ? (0, 0, 0) : await InTransactionAsync(async (connection, tx) =>
        {
            int r = 0, f = 0, c = 0;
            var lost = await connection.QueryAsync<Lost>(new CommandDefinition(
                $"""
                SELECT e.execution_id AS ExecutionId, e.tenant_id AS TenantId FROM executions e
                LEFT JOIN workers w ON w.tenant_id = e.tenant_id AND w.pipeline_id = e.pipeline_id AND w.worker_id = e.lease_owner
                WHERE e.status IN ('DISPATCHED', 'RUNNING', 'AWAITING_INTERACTION') AND (w.worker_id IS NULL OR w.last_heartbeat_at < {NowMs} - @stale)
                ORDER BY e.execution_id LIMIT 100{SkipLocked("e")}
                """, new { stale }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
            foreach (var l in lost)
            {
                var e = (await LockExecutionAsync(connection, tx, l.TenantId, l.ExecutionId, cancellationToken).ConfigureAwait(false))!;
                if (!ExecutionStatus.IsLeased(e.Status))
                {
                    continue;
                }

                var why = $"agent '{e.LeaseOwner}' sent no heartbeat for more than {staleAfter.TotalSeconds:0.###} s while the execution was {e.Status}";
                if (e.CancelRequestedAt is not null)
                {
                    await MoveAsync(connection, tx, e, ExecutionStatus.Cancelled, null, null, "cancelled; " + why, bumpEpoch: true, cancellationToken).ConfigureAwait(false);
                    c++;
                }
                else if (e.Attempts < maxAttempts)
                {
                    await MoveAsync(connection, tx, e, ExecutionStatus.Queued, null, null, $"queued again (attempt {e.Attempts + 1} of {maxAttempts}): " + why, bumpEpoch: true, cancellationToken).ConfigureAwait(false);
                    r++;
                }
                else
                {
                    await MoveAsync(connection, tx, e, ExecutionStatus.Failed, null, "AGENT_LOST", why, bumpEpoch: true, cancellationToken).ConfigureAwait(false);
                    f++;
                }
            }

            return (r, f, c);
        }, cancellationToken).ConfigureAwait(false);

        var expired = 0;
        if (keyRetention > TimeSpan.Zero)
        {
            expired = await InTransactionAsync((connection, tx) => connection.ExecuteAsync(new CommandDefinition(
                $"DELETE FROM idempotency_keys WHERE created_at < {NowMs} - @retention",
                new { retention = (long)keyRetention.TotalMilliseconds }, tx, cancellationToken: cancellationToken)), cancellationToken).ConfigureAwait(false);
        }

        return new SweepResult(requeued, failed, cancelled, expired);
    }

    /// <inheritdoc/>
    public Task<InteractionRecord?> OpenInteractionAsync(string tenantId, string executionId, string workerId, long epoch, string gateId, string requestJson, CancellationToken cancellationToken = default) =>
        InTransactionAsync<InteractionRecord?>(async (connection, tx) =>
        {
            var e = await LockExecutionAsync(connection, tx, tenantId, executionId, cancellationToken).ConfigureAwait(false);
            if (e is null)
            {
                return null;
            }

            if (e.LeaseEpoch != epoch || e.LeaseOwner != workerId)
            {
                throw new StaleEpochException(e.ExecutionId, epoch, e.LeaseEpoch, e.LeaseOwner);
            }

            if (e.Status is not (ExecutionStatus.Running or ExecutionStatus.AwaitingInteraction))
            {
                throw new ExecutionStateException(e.ExecutionId, e.Status, ExecutionStatus.AwaitingInteraction);
            }

            await connection.ExecuteAsync(new CommandDefinition(
                $"""
                INSERT INTO interactions (interaction_id, tenant_id, execution_id, gate_id, status, request_json, created_at)
                VALUES (@id, @tenantId, @executionId, @gateId, 'WAITING', @requestJson, {NowMs})
                ON CONFLICT DO NOTHING
                """, new { id = Guid.NewGuid().ToString(), tenantId, executionId, gateId, requestJson }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
            var interaction = await connection.QuerySingleAsync<InteractionRecord>(new CommandDefinition(
                $"SELECT {InteractionColumns} FROM interactions WHERE execution_id = @executionId AND gate_id = @gateId",
                new { executionId, gateId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
            if (interaction.Status == "WAITING" && e.Status == ExecutionStatus.Running)
            {
                await MoveAsync(connection, tx, e, ExecutionStatus.AwaitingInteraction, null, null, null, bumpEpoch: false, cancellationToken).ConfigureAwait(false);
            }

            return interaction;
        }, cancellationToken);

    /// <inheritdoc/>
    public async Task<InteractionRecord?> GetInteractionAsync(string tenantId, string interactionId, CancellationToken cancellationToken = default)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            return await connection.QuerySingleOrDefaultAsync<InteractionRecord>(new CommandDefinition(
                $"SELECT {InteractionColumns} FROM interactions WHERE tenant_id = @tenantId AND interaction_id = @interactionId",
                new { tenantId, interactionId }, cancellationToken: cancellationToken)).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public async Task<IReadOnlyList<InteractionRecord>> ListPendingInteractionsAsync(string tenantId, string? executionId, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            return [.. await connection.QueryAsync<InteractionRecord>(new CommandDefinition(
                $"SELECT {InteractionColumns} FROM interactions WHERE tenant_id = @tenantId AND status = 'WAITING' AND (@executionId IS NULL OR execution_id = @executionId) ORDER BY created_at, interaction_id LIMIT @limit",
                new { tenantId, executionId, limit }, cancellationToken: cancellationToken)).ConfigureAwait(false)];
        }
    }

    /// <inheritdoc/>
    public async Task<(InteractionRecord Interaction, bool Duplicate)?> CompleteInteractionAsync(string tenantId, string interactionId, string responseJson, string actor, CancellationToken cancellationToken = default)
    {
        // Locks in the order every writer uses: the execution, then its interactions.
        var found = await GetInteractionAsync(tenantId, interactionId, cancellationToken).ConfigureAwait(false);
        if (found is null)
        {
            return null;
        }

        return await InTransactionAsync<(InteractionRecord, bool)?>(async (connection, tx) =>
        {
            var e = (await LockExecutionAsync(connection, tx, tenantId, found.ExecutionId, cancellationToken).ConfigureAwait(false))!;
            var i = await connection.QuerySingleAsync<InteractionRecord>(new CommandDefinition(
                $"SELECT {InteractionColumns} FROM interactions WHERE interaction_id = @interactionId", new { interactionId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
            if (i.Status == "COMPLETED")
            {
                return i.ResponseJson == responseJson ? (i, true) : throw new InteractionTerminalException(interactionId, "it was already completed with another answer");
            }

            if (i.Status != "WAITING" || ExecutionStatus.IsTerminal(e.Status))
            {
                throw new InteractionTerminalException(interactionId, $"its execution {e.ExecutionId} ended ({e.Status}) before it was answered");
            }

            var completed = await connection.QuerySingleAsync<InteractionRecord>(new CommandDefinition(
                $"UPDATE interactions SET status = 'COMPLETED', response_json = @responseJson, actor = @actor, completed_at = {NowMs} WHERE interaction_id = @interactionId RETURNING {InteractionColumns}",
                new { responseJson, actor, interactionId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
            var waiting = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
                "SELECT COUNT(*) FROM interactions WHERE execution_id = @ExecutionId AND status = 'WAITING'", new { e.ExecutionId }, tx, cancellationToken: cancellationToken)).ConfigureAwait(false);
            if (waiting == 0 && e.Status == ExecutionStatus.AwaitingInteraction)
            {
                await MoveAsync(connection, tx, e, ExecutionStatus.Running, null, null, null, bumpEpoch: false, cancellationToken).ConfigureAwait(false);
            }

            return (completed, false);
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async Task<(IReadOnlyList<ExecutionRecord> Items, ExecutionKey? Next)> ListExecutionsAsync(string tenantId, string? pipelineId, string? status, ExecutionKey? after, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            // Keyset: newest first, ties by id; the next page starts strictly after the last row's key, so rows
            // submitted meanwhile (newer, on no later page) are neither repeated nor make a row be skipped.
            var rows = (await connection.QueryAsync<ExecutionRecord>(new CommandDefinition(
                $"""
                SELECT {ExecutionColumns} FROM executions
                WHERE tenant_id = @tenantId AND (@pipelineId IS NULL OR pipeline_id = @pipelineId) AND (@status IS NULL OR status = @status)
                  AND (@afterAt IS NULL OR submitted_at < @afterAt OR (submitted_at = @afterAt AND execution_id > @afterId))
                ORDER BY submitted_at DESC, execution_id LIMIT @take
                """,
                new { tenantId, pipelineId, status, afterAt = after?.SubmittedAt, afterId = after?.ExecutionId ?? "", take = limit + 1 }, cancellationToken: cancellationToken)).ConfigureAwait(false)).ToList();
            if (rows.Count <= limit)
            {
                return (rows, null);
            }

            rows.RemoveAt(limit);
            return (rows, new ExecutionKey(rows[^1].SubmittedAt, rows[^1].ExecutionId));
        }
    }
}
