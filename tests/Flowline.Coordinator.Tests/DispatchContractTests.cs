using System.Collections.Concurrent;
using System.Text.Json;
using Flowline.Coordinator.Storage;
using Npgsql;

namespace Flowline.Coordinator.Tests;

/// <summary>Claims, reports, cancellation, the sweeper and interactions: the storage contract on both providers.</summary>
public abstract partial class StoreContractTests
{
    private async Task<ExecutionRecord> ClaimedAsync(string worker = "w1")
    {
        await RegisterForExecutionsAsync();
        await Store.RegisterWorkerAsync(Worker(worker), TwoMinutes, Ct);
        await Store.SubmitExecutionAsync(Execution(null), Ct);
        return (await Store.ClaimAsync("acme", "ao", worker, TwoMinutes, Ct))!;
    }

    private ExecutionReport Report(ExecutionRecord e, string status, long? epoch = null, string? worker = null) =>
        new("acme", e.ExecutionId, worker ?? e.LeaseOwner!, epoch ?? e.LeaseEpoch, status, status == "SUCCEEDED" ? "{\"frames\":10}" : null, null, null);

    [Fact]
    public async Task Each_execution_is_claimed_by_exactly_one_agent_with_coordinators_racing()
    {
        await RegisterForExecutionsAsync();
        const int Executions = 24;
        for (var i = 0; i < Executions; i++)
        {
            await Store.SubmitExecutionAsync(Execution(null), Ct);
        }

        var stores = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => TrackAsync()));
        var workers = Enumerable.Range(0, 6).Select(i => $"w{i}").ToArray();
        foreach (var w in workers)
        {
            // Each agent may hold every execution: the race is over the queue, not over capacity.
            await Store.RegisterWorkerAsync(Worker(w) with { MaxExecutions = Executions + 1 }, TwoMinutes, Ct);
        }

        var claims = new ConcurrentBag<ExecutionRecord>();
        await Task.WhenAll(workers.Select((w, i) => Task.Run(async () =>
        {
            // Each agent claims until the queue is empty, through one of two coordinators' stores.
            while (await stores[i % 2].ClaimAsync("acme", "ao", w, TwoMinutes, Ct) is { } claimed)
            {
                claims.Add(claimed);
            }
        }, Ct)));

        Assert.Equal(Executions, claims.Count);
        Assert.Equal(Executions, claims.Select(c => c.ExecutionId).Distinct().Count());
        Assert.All(claims, c => Assert.Equal(("DISPATCHED", 1L, 1L), (c.Status, c.LeaseEpoch, c.Attempts)));
        foreach (var c in claims)
        {
            Assert.Equal(c.LeaseOwner, (await Store.GetExecutionAsync("acme", c.ExecutionId, Ct))!.LeaseOwner);
        }

        Assert.Equal(0, await Store.PendingDispatchCountAsync(Ct));
    }

    [Fact]
    public async Task A_claim_reads_the_queue_once_even_on_tables_never_analysed()
    {
        // Regression (decision 86): on PostgreSQL, with the tables' statistics unknown (a new database before
        // autovacuum's first ANALYZE), the claim was planned as a nested loop that rescanned every unclaimed
        // dispatch entry for every queued execution: quadratic, half a second a claim at a thousand queued.
        // Counted in rows the plan reads (not time), with autovacuum off so the statistics stay unknown.
        const int Queued = 300;
        if (PostgresConnection is { } cs)
        {
            await using var connection = new NpgsqlConnection(cs);
            await connection.OpenAsync(Ct);
            await using (var off = new NpgsqlCommand("ALTER TABLE executions SET (autovacuum_enabled = false); ALTER TABLE dispatch_queue SET (autovacuum_enabled = false)", connection))
            {
                await off.ExecuteNonQueryAsync(Ct);
            }
        }

        await RegisterForExecutionsAsync();
        await Store.RegisterWorkerAsync(Worker("w1") with { MaxExecutions = Queued + 1 }, TwoMinutes, Ct);
        var submitted = new List<string>();
        for (var i = 0; i < Queued; i++)
        {
            submitted.Add((await Store.SubmitExecutionAsync(Execution(null), Ct)).Execution.ExecutionId);
        }

        if (PostgresConnection is { } connectionString)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(Ct);
            await using var tx = await connection.BeginTransactionAsync(Ct);
            await using var explain = new NpgsqlCommand("EXPLAIN (ANALYZE, FORMAT JSON) " + ((SqlCoordinatorStore)Store).ClaimCandidateSql, connection, tx);
            explain.Parameters.AddWithValue("tenantId", "acme");
            explain.Parameters.AddWithValue("pipelineId", "ao");
            explain.Parameters.AddWithValue("ReleaseVersion", "1.0.0");
            explain.Parameters.AddWithValue("ContractVersion", "1");
            using var plan = JsonDocument.Parse((string)(await explain.ExecuteScalarAsync(Ct))!);
            var read = 0.0;
            void Walk(JsonElement node)
            {
                if (node.TryGetProperty("Relation Name", out var relation) && relation.GetString() == "dispatch_queue")
                {
                    var removed = node.TryGetProperty("Rows Removed by Filter", out var r) ? r.GetDouble() : 0;
                    read += node.GetProperty("Actual Loops").GetDouble() * (node.GetProperty("Actual Rows").GetDouble() + removed);
                }

                if (node.TryGetProperty("Plans", out var children))
                {
                    foreach (var child in children.EnumerateArray())
                    {
                        Walk(child);
                    }
                }

                if (node.TryGetProperty("Rows Removed by Join Filter", out var joinRemoved))
                {
                    read += joinRemoved.GetDouble();
                }
            }

            Walk(plan.RootElement[0].GetProperty("Plan"));
            Assert.InRange(read, 1, 2 * Queued); // once through the queue at most; the join read ~Queued² (90,000)
            await tx.RollbackAsync(Ct);
        }

        // On both providers: the oldest first, each once.
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(submitted[i], (await Store.ClaimAsync("acme", "ao", "w1", TwoMinutes, Ct))!.ExecutionId);
        }
    }

    [Fact]
    public async Task Reports_follow_the_state_machine_and_a_stale_epoch_or_other_agent_is_refused()
    {
        var claimed = await ClaimedAsync();
        Assert.Equal("DISPATCHED", claimed.Status);
        await Assert.ThrowsAsync<StaleEpochException>(() => Store.ReportAsync(Report(claimed, "RUNNING", epoch: claimed.LeaseEpoch + 1), Ct));
        await Assert.ThrowsAsync<StaleEpochException>(() => Store.ReportAsync(Report(claimed, "RUNNING", worker: "w2"), Ct));
        await Assert.ThrowsAsync<ExecutionStateException>(() => Store.ReportAsync(Report(claimed, "QUEUED"), Ct));

        var running = (await Store.ReportAsync(Report(claimed, "RUNNING"), Ct))!;
        Assert.Equal("RUNNING", running.Status);
        Assert.NotNull(running.StartedAt);
        Assert.Equal(running.StartedAt, (await Store.ReportAsync(Report(claimed, "RUNNING"), Ct))!.StartedAt); // a renewal

        var done = (await Store.ReportAsync(Report(claimed, "SUCCEEDED"), Ct))!;
        Assert.Equal(("SUCCEEDED", "{\"frames\":10}"), (done.Status, done.ResultJson));
        Assert.NotNull(done.EndedAt);
        Assert.Equal("SUCCEEDED", (await Store.ReportAsync(Report(claimed, "SUCCEEDED"), Ct))!.Status); // the same report again
        var late = await Assert.ThrowsAsync<ExecutionStateException>(() => Store.ReportAsync(Report(claimed, "FAILED"), Ct));
        Assert.True(late.Terminal);
        await Assert.ThrowsAsync<ExecutionStateException>(() => Store.CancelAsync("acme", claimed.ExecutionId, Ct));
        Assert.Null(await Store.ReportAsync(Report(claimed, "RUNNING") with { TenantId = "globex" }, Ct));
    }

    [Fact]
    public async Task Only_healthy_matching_agents_claim_and_drain_stops_claims_until_undrained()
    {
        await RegisterForExecutionsAsync();
        await Store.SubmitExecutionAsync(Execution(null), Ct);
        var none = await Assert.ThrowsAsync<WorkerNotAdmittedException>(() => Store.ClaimAsync("acme", "ao", "ghost", TwoMinutes, Ct));
        Assert.Null(none.State);

        await Store.RegisterWorkerAsync(Worker("old", release: "0.9.0"), TwoMinutes, Ct);
        Assert.Null(await Store.ClaimAsync("acme", "ao", "old", TwoMinutes, Ct)); // another release: nothing for it

        await Store.RegisterWorkerAsync(Worker("w1"), TwoMinutes, Ct);
        await Store.SetDrainingAsync("acme", "ao", "w1", true, TwoMinutes, Ct);
        Assert.Equal("DRAINING", (await Assert.ThrowsAsync<WorkerNotAdmittedException>(() => Store.ClaimAsync("acme", "ao", "w1", TwoMinutes, Ct))).State);
        await Task.Delay(50, Ct);
        await Store.SetDrainingAsync("acme", "ao", "w1", false, TwoMinutes, Ct);
        Assert.Equal("STALE", (await Assert.ThrowsAsync<WorkerNotAdmittedException>(() => Store.ClaimAsync("acme", "ao", "w1", TimeSpan.FromMilliseconds(1), Ct))).State);
        Assert.NotNull(await Store.ClaimAsync("acme", "ao", "w1", TwoMinutes, Ct));
    }

    [Fact]
    public async Task An_unavailable_agent_claims_nothing_until_it_registers_again()
    {
        await RegisterForExecutionsAsync();
        await Store.SubmitExecutionAsync(Execution(null), Ct);
        await Store.RegisterWorkerAsync(Worker("w1"), TwoMinutes, Ct);
        Assert.Null(await Store.SetUnavailableAsync("acme", "ao", "ghost", "x", TwoMinutes, Ct));
        var marked = (await Store.SetUnavailableAsync("acme", "ao", "w1", "the pipeline failed to start", TwoMinutes, Ct))!;
        Assert.Equal(("UNAVAILABLE", "the pipeline failed to start"), (marked.State, marked.UnavailableReason));
        Assert.Equal("UNAVAILABLE", (await Store.HeartbeatAsync("acme", "ao", "w1", TwoMinutes, Ct))!.State);
        Assert.Equal("UNAVAILABLE", (await Assert.ThrowsAsync<WorkerNotAdmittedException>(() => Store.ClaimAsync("acme", "ao", "w1", TwoMinutes, Ct))).State);

        var again = await Store.RegisterWorkerAsync(Worker("w1"), TwoMinutes, Ct);
        Assert.Equal(("HEALTHY", (string?)null), (again.State, again.UnavailableReason));
        Assert.NotNull(await Store.ClaimAsync("acme", "ao", "w1", TwoMinutes, Ct));
    }

    [Fact]
    public async Task The_sweeper_fails_or_requeues_the_execution_of_a_lost_agent_and_fences_it()
    {
        var claimed = await ClaimedAsync();
        await Store.ReportAsync(Report(claimed, "RUNNING"), Ct);
        var stale = TimeSpan.FromMilliseconds(20);

        // Heartbeating: nothing to sweep.
        await Store.HeartbeatAsync("acme", "ao", "w1", TwoMinutes, Ct);
        Assert.Equal(new SweepResult(0, 0, 0, 0), await Store.SweepAsync(TwoMinutes, 2, TimeSpan.Zero, Ct));

        // Lost (no heartbeat for longer than stale-after), with a retry left: queued again, the old epoch refused.
        await Task.Delay(100, Ct);
        Assert.Equal(1, (await Store.SweepAsync(stale, 2, TimeSpan.Zero, Ct)).Requeued);
        var requeued = (await Store.GetExecutionAsync("acme", claimed.ExecutionId, Ct))!;
        Assert.Equal(("QUEUED", (string?)null), (requeued.Status, requeued.LeaseOwner));
        await Assert.ThrowsAsync<StaleEpochException>(() => Store.ReportAsync(Report(claimed, "SUCCEEDED"), Ct));

        await Store.RegisterWorkerAsync(Worker("w2"), TwoMinutes, Ct);
        var again = (await Store.ClaimAsync("acme", "ao", "w2", TwoMinutes, Ct))!;
        Assert.Equal((claimed.ExecutionId, 2L), (again.ExecutionId, again.Attempts));
        Assert.True(again.LeaseEpoch > claimed.LeaseEpoch);

        // Lost again, no retry left: FAILED with AGENT_LOST, never RUNNING forever.
        await Task.Delay(100, Ct);
        Assert.Equal(1, (await Store.SweepAsync(stale, 2, TimeSpan.Zero, Ct)).Failed);
        var failed = (await Store.GetExecutionAsync("acme", claimed.ExecutionId, Ct))!;
        Assert.Equal(("FAILED", "AGENT_LOST"), (failed.Status, failed.ErrorCode));
        await Assert.ThrowsAsync<StaleEpochException>(() => Store.ReportAsync(Report(again, "SUCCEEDED"), Ct));
    }

    [Fact]
    public async Task Cancel_ends_a_queued_execution_and_asks_the_agent_to_stop_a_running_one()
    {
        await RegisterForExecutionsAsync();
        var (queued, _) = await Store.SubmitExecutionAsync(Execution(null), Ct);
        Assert.Equal("CANCELLED", (await Store.CancelAsync("acme", queued.ExecutionId, Ct))!.Status);
        Assert.Equal("CANCELLED", (await Store.CancelAsync("acme", queued.ExecutionId, Ct))!.Status);
        Assert.Equal(0, await Store.PendingDispatchCountAsync(Ct));
        Assert.Null(await Store.CancelAsync("globex", queued.ExecutionId, Ct));

        var claimed = await ClaimedAsync();
        await Store.ReportAsync(Report(claimed, "RUNNING"), Ct);
        var asked = (await Store.CancelAsync("acme", claimed.ExecutionId, Ct))!;
        Assert.Equal("RUNNING", asked.Status);
        Assert.NotNull(asked.CancelRequestedAt);
        Assert.NotNull((await Store.ReportAsync(Report(claimed, "RUNNING"), Ct))!.CancelRequestedAt); // the agent learns it
        Assert.Equal("CANCELLED", (await Store.ReportAsync(Report(claimed, "CANCELLED"), Ct))!.Status);
    }

    [Fact]
    public async Task An_interaction_pauses_the_execution_until_answered_once()
    {
        var claimed = await ClaimedAsync();
        await Store.ReportAsync(Report(claimed, "RUNNING"), Ct);
        await Assert.ThrowsAsync<StaleEpochException>(() => Store.OpenInteractionAsync("acme", claimed.ExecutionId, "w1", claimed.LeaseEpoch + 1, "approve", "{}", Ct));
        var asked = (await Store.OpenInteractionAsync("acme", claimed.ExecutionId, "w1", claimed.LeaseEpoch, "approve", "{\"question\":\"close the loop?\"}", Ct))!;
        Assert.Equal("WAITING", asked.Status);
        Assert.Equal(asked.InteractionId, (await Store.OpenInteractionAsync("acme", claimed.ExecutionId, "w1", claimed.LeaseEpoch, "approve", "{}", Ct))!.InteractionId);
        Assert.Equal("AWAITING_INTERACTION", (await Store.GetExecutionAsync("acme", claimed.ExecutionId, Ct))!.Status);
        Assert.Equal(asked.InteractionId, Assert.Single(await Store.ListPendingInteractionsAsync("acme", null, 100, Ct)).InteractionId);
        Assert.Empty(await Store.ListPendingInteractionsAsync("globex", null, 100, Ct));
        Assert.Null(await Store.CompleteInteractionAsync("globex", asked.InteractionId, "{}", "x", Ct));

        var (done, duplicate) = (await Store.CompleteInteractionAsync("acme", asked.InteractionId, "{\"approved\":true}", "control-plane/test", Ct))!.Value;
        Assert.Equal(("COMPLETED", false, "{\"approved\":true}"), (done.Status, duplicate, done.ResponseJson));
        Assert.Equal("RUNNING", (await Store.GetExecutionAsync("acme", claimed.ExecutionId, Ct))!.Status);
        Assert.True((await Store.CompleteInteractionAsync("acme", asked.InteractionId, "{\"approved\":true}", "control-plane/test", Ct))!.Value.Duplicate);
        await Assert.ThrowsAsync<InteractionTerminalException>(() => Store.CompleteInteractionAsync("acme", asked.InteractionId, "{\"approved\":false}", "x", Ct));
        Assert.Empty(await Store.ListPendingInteractionsAsync("acme", null, 100, Ct));

        // A question left open when the execution ends is cancelled; answering it then is refused.
        var second = (await Store.OpenInteractionAsync("acme", claimed.ExecutionId, "w1", claimed.LeaseEpoch, "second", "{}", Ct))!;
        await Store.ReportAsync(Report(claimed, "FAILED"), Ct);
        Assert.Equal("CANCELLED", (await Store.GetInteractionAsync("acme", second.InteractionId, Ct))!.Status);
        await Assert.ThrowsAsync<InteractionTerminalException>(() => Store.CompleteInteractionAsync("acme", second.InteractionId, "{}", "x", Ct));
    }

    [Fact]
    public async Task Idempotency_keys_expire_after_their_retention()
    {
        await RegisterForExecutionsAsync();
        var (first, _) = await Store.SubmitExecutionAsync(Execution("k"), Ct);
        Assert.Equal(0, (await Store.SweepAsync(TimeSpan.Zero, 1, TimeSpan.FromDays(1), Ct)).ExpiredKeys);
        await Task.Delay(50, Ct);
        Assert.Equal(1, (await Store.SweepAsync(TimeSpan.Zero, 1, TimeSpan.FromMilliseconds(1), Ct)).ExpiredKeys);
        var (second, duplicate) = await Store.SubmitExecutionAsync(Execution("k"), Ct);
        Assert.False(duplicate);
        Assert.NotEqual(first.ExecutionId, second.ExecutionId);
    }
}

/// <summary>Capacity (several executions per agent) and the dispatch queue's bound, on both providers.</summary>
public abstract partial class StoreContractTests
{
    [Fact]
    public async Task A_worker_claims_up_to_its_max_executions_and_ended_executions_leave_the_dispatch_queue()
    {
        await RegisterForExecutionsAsync();
        var worker = await Store.RegisterWorkerAsync(new WorkerRegistration("acme", "ao", "w1", "flowline", null, "1", "1.0.0", null, null, MaxExecutions: 2), TwoMinutes, Ct);
        Assert.Equal(2, worker.MaxExecutions);
        for (var i = 0; i < 3; i++)
        {
            await Store.SubmitExecutionAsync(Execution(null), Ct);
        }

        var a = (await Store.ClaimAsync("acme", "ao", "w1", TwoMinutes, Ct))!;
        var b = (await Store.ClaimAsync("acme", "ao", "w1", TwoMinutes, Ct))!;
        Assert.NotEqual(a.ExecutionId, b.ExecutionId);
        var full = await Assert.ThrowsAsync<WorkerAtCapacityException>(() => Store.ClaimAsync("acme", "ao", "w1", TwoMinutes, Ct));
        Assert.Equal((2L, 2), (full.Held, full.MaxExecutions));
        Assert.Equal((3L, 1L), (await Store.DispatchEntryCountAsync(Ct), await Store.PendingDispatchCountAsync(Ct)));

        // One ends: its entry is deleted and the worker has room for the third.
        await Store.ReportAsync(Report(a, "RUNNING"), Ct);
        await Store.ReportAsync(Report(a, "SUCCEEDED"), Ct);
        Assert.Equal(2L, await Store.DispatchEntryCountAsync(Ct));
        var c = (await Store.ClaimAsync("acme", "ao", "w1", TwoMinutes, Ct))!;
        Assert.DoesNotContain(c.ExecutionId, new[] { a.ExecutionId, b.ExecutionId });

        await Store.ReportAsync(Report(b, "FAILED"), Ct);
        await Store.CancelAsync("acme", c.ExecutionId, Ct);
        await Store.ReportAsync(Report(c, "CANCELLED"), Ct);
        Assert.Equal(0L, await Store.DispatchEntryCountAsync(Ct)); // nothing of ended executions is kept

        // Registering again with the default capacity: one at a time.
        Assert.Equal(1, (await Store.RegisterWorkerAsync(Worker("w1"), TwoMinutes, Ct)).MaxExecutions);
    }

    [Fact]
    public async Task Claims_of_one_worker_racing_through_two_coordinators_never_exceed_its_capacity()
    {
        await RegisterForExecutionsAsync();
        await Store.RegisterWorkerAsync(new WorkerRegistration("acme", "ao", "w1", "flowline", null, "1", "1.0.0", null, null, MaxExecutions: 3), TwoMinutes, Ct);
        for (var i = 0; i < 10; i++)
        {
            await Store.SubmitExecutionAsync(Execution(null), Ct);
        }

        var stores = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => TrackAsync()));
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
        {
            try
            {
                return (await stores[i % 2].ClaimAsync("acme", "ao", "w1", TwoMinutes, Ct))?.ExecutionId;
            }
            catch (WorkerAtCapacityException)
            {
                return "(full)";
            }
        }, Ct)));

        Assert.Equal(3, outcomes.Count(o => o is not null and not "(full)"));
        Assert.Equal(5, outcomes.Count(o => o == "(full)"));
        Assert.Equal(7L, await Store.PendingDispatchCountAsync(Ct));
    }

    [Fact]
    public async Task The_executions_listing_pages_newest_first_with_a_keyset_that_skips_and_repeats_nothing()
    {
        await RegisterForExecutionsAsync();
        var submitted = new List<string>();
        for (var i = 0; i < 7; i++)
        {
            submitted.Add((await Store.SubmitExecutionAsync(Execution(null), Ct)).Execution.ExecutionId);
        }

        var seen = new List<ExecutionRecord>();
        ExecutionKey? after = null;
        var pages = 0;
        do
        {
            var (items, next) = await Store.ListExecutionsAsync("acme", "ao", null, after, 3, Ct);
            seen.AddRange(items);
            after = next;
            pages++;
            if (pages == 1)
            {
                // Submitted while paging: newer than the first page, so on no later page; nothing is skipped for it.
                await Store.SubmitExecutionAsync(Execution(null), Ct);
            }
        }
        while (after is not null && pages < 10);

        Assert.Equal(3, pages);
        Assert.Equal(submitted.Order(), seen.Select(e => e.ExecutionId).Order());
        Assert.Equal(seen.OrderByDescending(e => e.SubmittedAt).ThenBy(e => e.ExecutionId, StringComparer.Ordinal).Select(e => e.ExecutionId), seen.Select(e => e.ExecutionId));
        Assert.Empty((await Store.ListExecutionsAsync("globex", null, null, null, 50, Ct)).Items);
        Assert.Single((await Store.ListExecutionsAsync("acme", null, null, null, 1, Ct)).Items);
    }
}
