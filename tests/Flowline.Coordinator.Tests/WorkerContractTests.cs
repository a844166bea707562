using Flowline.Coordinator.Storage;

namespace Flowline.Coordinator.Tests;

/// <summary>The worker part of the storage contract (in the same suite, on both providers).</summary>
public abstract partial class StoreContractTests
{
    private static readonly TimeSpan TwoMinutes = TimeSpan.FromMinutes(2);

    private static WorkerRegistration Worker(string id, string tenant = "acme", string release = "1.0.0") =>
        new(tenant, "ao", id, "flowline", "http://host-1:9000", "1", release, "document", "sha256:aa");

    [Fact]
    public async Task Workers_register_heartbeat_drain_sticky_and_undrain()
    {
        var registered = await Store.RegisterWorkerAsync(Worker("w1"), TwoMinutes, Ct);
        Assert.Equal("HEALTHY", registered.State);
        Assert.Null(registered.DrainingSince);
        Assert.Null(await Store.HeartbeatAsync("acme", "ao", "nobody", TwoMinutes, Ct));
        Assert.Null(await Store.HeartbeatAsync("globex", "ao", "w1", TwoMinutes, Ct));

        var beat = (await Store.HeartbeatAsync("acme", "ao", "w1", TwoMinutes, Ct))!;
        Assert.True(beat.LastHeartbeatAt >= registered.LastHeartbeatAt);

        var drained = (await Store.SetDrainingAsync("acme", "ao", "w1", true, TwoMinutes, Ct))!;
        Assert.Equal("DRAINING", drained.State);
        Assert.NotNull(drained.DrainingSince);

        // Draining is sticky: a heartbeat, a second drain and a new registration all keep it.
        Assert.Equal("DRAINING", (await Store.HeartbeatAsync("acme", "ao", "w1", TwoMinutes, Ct))!.State);
        Assert.Equal(drained.DrainingSince, (await Store.SetDrainingAsync("acme", "ao", "w1", true, TwoMinutes, Ct))!.DrainingSince);
        var again = await Store.RegisterWorkerAsync(Worker("w1", release: "1.1.0"), TwoMinutes, Ct);
        Assert.Equal("DRAINING", again.State);
        Assert.Equal("1.1.0", again.ReleaseVersion);

        Assert.Equal("HEALTHY", (await Store.SetDrainingAsync("acme", "ao", "w1", false, TwoMinutes, Ct))!.State);
    }

    [Fact]
    public async Task A_worker_without_heartbeat_for_stale_after_is_stale_by_the_database_clock()
    {
        var registered = await Store.RegisterWorkerAsync(Worker("w1"), TimeSpan.FromMilliseconds(1), Ct);
        await Task.Delay(50, Ct); // the database's clock moves on by more than 1 ms
        var listed = (await Store.ListWorkersAsync("acme", "ao", "", 10, TimeSpan.FromMilliseconds(1), cancellationToken: Ct)).Items;
        Assert.Equal("STALE", Assert.Single(listed).State);
        Assert.Equal("HEALTHY", Assert.Single((await Store.ListWorkersAsync("acme", "ao", "", 10, TimeSpan.Zero, cancellationToken: Ct)).Items).State);
        Assert.Equal("HEALTHY", Assert.Single((await Store.ListWorkersAsync("acme", "ao", "", 10, TwoMinutes, cancellationToken: Ct)).Items).State);
        Assert.NotNull(registered);
    }

    [Fact]
    public async Task Worker_listings_page_by_id_and_stay_in_their_tenant()
    {
        foreach (var id in new[] { "w3", "w1", "w2" })
        {
            await Store.RegisterWorkerAsync(Worker(id), TwoMinutes, Ct);
        }

        await Store.RegisterWorkerAsync(Worker("w9", tenant: "globex"), TwoMinutes, Ct);
        var first = await Store.ListWorkersAsync("acme", "ao", "", 2, TwoMinutes, cancellationToken: Ct);
        Assert.Equal(["w1", "w2"], first.Items.Select(w => w.WorkerId));
        var second = await Store.ListWorkersAsync("acme", "ao", first.NextAfter!, 2, TwoMinutes, cancellationToken: Ct);
        Assert.Equal(["w3"], second.Items.Select(w => w.WorkerId));
        Assert.Null(second.NextAfter);
        Assert.Equal(["w9"], (await Store.ListWorkersAsync("globex", "ao", "", 10, TwoMinutes, cancellationToken: Ct)).Items.Select(w => w.WorkerId));

        // Filters apply before paging: a page is full when enough workers match.
        await Store.RegisterWorkerAsync(Worker("w0", release: "2.0.0"), TwoMinutes, Ct);
        await Store.RegisterWorkerAsync(Worker("w4", release: "2.0.0"), TwoMinutes, Ct);
        Assert.Equal(["w0", "w4"], (await Store.ListWorkersAsync("acme", "ao", "", 2, TwoMinutes, "1", "2.0.0", Ct)).Items.Select(w => w.WorkerId));
        Assert.Empty((await Store.ListWorkersAsync("acme", "ao", "", 2, TwoMinutes, "2", null, Ct)).Items);
    }
}
