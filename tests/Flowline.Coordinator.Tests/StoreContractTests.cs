using Flowline.Coordinator.Storage;

namespace Flowline.Coordinator.Tests;

/// <summary>
/// The storage contract: one suite, run against SQLite (<see cref="SqliteStoreContractTests"/>) and a real
/// PostgreSQL server (<see cref="PostgresStoreContractTests"/>). Each test has a fresh, migrated store.
/// </summary>
public abstract partial class StoreContractTests : IAsyncLifetime
{
    private readonly List<ICoordinatorStore> opened = [];

    /// <summary>The store under test.</summary>
    protected ICoordinatorStore Store { get; private set; } = null!;

    /// <summary>Another store on the same database (a second coordinator).</summary>
    protected abstract Task<ICoordinatorStore> OpenAsync();

    /// <summary>Prepares an empty database.</summary>
    protected abstract Task CreateAsync();

    /// <summary>The PostgreSQL database's connection string; null on SQLite.</summary>
    protected virtual string? PostgresConnection => null;

    public async ValueTask InitializeAsync()
    {
        await CreateAsync();
        Store = await TrackAsync();
        await Store.MigrateAsync(Ct);
    }

    public virtual async ValueTask DisposeAsync()
    {
        foreach (var store in opened)
        {
            await store.DisposeAsync();
        }
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private async Task<ICoordinatorStore> TrackAsync()
    {
        var store = await OpenAsync();
        opened.Add(store);
        return store;
    }

    private static NewRelease Release(string version, string digest = "sha256:aa", string tenant = "acme", string pipeline = "ao") =>
        new(tenant, pipeline, version, "1", digest, "{\"releaseVersion\":\"" + version + "\"}", "[]", "admin/test");

    [Fact]
    public async Task Migrations_are_applied_once_even_by_coordinators_starting_together()
    {
        var others = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => TrackAsync()));
        await Task.WhenAll(others.Select(s => s.MigrateAsync(Ct)));
        await Store.MigrateAsync(Ct);
        Assert.Equal(Migrations.All.Max(m => m.Version), await Store.SchemaVersionAsync(Ct));
        foreach (var other in others)
        {
            Assert.Equal(Migrations.All.Max(m => m.Version), await other.SchemaVersionAsync(Ct));
        }
    }

    [Fact]
    public async Task Register_creates_then_is_idempotent_for_the_same_content_and_refuses_other_content()
    {
        var (first, created) = await Store.RegisterReleaseAsync(Release("1.0.0"), Ct);
        Assert.True(created);
        Assert.Equal("1.0.0", first.ReleaseVersion);
        Assert.True(first.RegisteredAt > 0);

        var (again, createdAgain) = await Store.RegisterReleaseAsync(Release("1.0.0"), Ct);
        Assert.False(createdAgain);
        Assert.Equal(first, again);

        var conflict = await Assert.ThrowsAsync<ReleaseImmutableException>(() => Store.RegisterReleaseAsync(Release("1.0.0", "sha256:bb"), Ct));
        Assert.Equal(first, conflict.Existing);
        Assert.Equal("sha256:aa", (await Store.GetReleaseAsync("acme", "ao", "1.0.0", Ct))!.ContentDigest);
    }

    [Fact]
    public async Task Concurrent_registrations_of_one_version_create_it_once()
    {
        var stores = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => TrackAsync()));
        var results = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => stores[i % stores.Length].RegisterReleaseAsync(Release("2.0.0"), Ct)));
        Assert.Single(results, r => r.Created);
        Assert.Single(results.Select(r => r.Release.Id).Distinct());
    }

    [Fact]
    public async Task Tenants_and_pipelines_do_not_see_each_others_releases()
    {
        await Store.RegisterReleaseAsync(Release("1.0.0", tenant: "acme"), Ct);
        await Store.ActivateAsync("acme", "ao", "1.0.0", null, "a", null, Ct);
        Assert.Null(await Store.GetReleaseAsync("globex", "ao", "1.0.0", Ct));
        Assert.Null(await Store.GetReleaseAsync("acme", "other", "1.0.0", Ct));
        Assert.Empty((await Store.ListReleasesAsync("globex", "ao", 0, 10, Ct)).Items);
        Assert.Null(await Store.GetActiveAsync("globex", "ao", Ct));
        Assert.Null(await Store.ActivateAsync("globex", "ao", "1.0.0", null, "a", null, Ct));

        // The same version in another tenant is a release of its own, with its own content.
        var (other, created) = await Store.RegisterReleaseAsync(Release("1.0.0", "sha256:cc", tenant: "globex"), Ct);
        Assert.True(created);
        Assert.Equal("sha256:aa", (await Store.GetReleaseAsync("acme", "ao", "1.0.0", Ct))!.ContentDigest);
        Assert.Equal("sha256:cc", other.ContentDigest);
    }

    [Fact]
    public async Task Listing_pages_in_registration_order()
    {
        var versions = Enumerable.Range(1, 5).Select(i => $"0.{i}.0").ToList();
        foreach (var v in versions)
        {
            await Store.RegisterReleaseAsync(Release(v), Ct);
        }

        var seen = new List<string>();
        long after = 0;
        var pages = 0;
        while (true)
        {
            var page = await Store.ListReleasesAsync("acme", "ao", after, 2, Ct);
            pages++;
            Assert.True(page.Items.Count <= 2);
            seen.AddRange(page.Items.Select(r => r.ReleaseVersion));
            if (page.NextAfter is not { } next)
            {
                break;
            }

            after = next;
        }

        Assert.Equal(versions, seen);
        Assert.Equal(3, pages);
    }

    [Fact]
    public async Task Activation_appends_to_the_log_and_moves_the_head()
    {
        await Store.RegisterReleaseAsync(Release("1.0.0"), Ct);
        await Store.RegisterReleaseAsync(Release("1.1.0", "sha256:bb"), Ct);
        Assert.Null(await Store.GetActiveAsync("acme", "ao", Ct));
        Assert.Null(await Store.ActivateAsync("acme", "ao", "9.9.9", null, "a", null, Ct));

        var first = (await Store.ActivateAsync("acme", "ao", "1.0.0", 0, "alice", "first", Ct))!;
        Assert.Null(first.PreviousEventId);
        Assert.Equal("alice", first.Actor);
        Assert.Equal("first", first.Reason);

        var second = (await Store.ActivateAsync("acme", "ao", "1.1.0", first.Id, "bob", null, Ct))!;
        Assert.Equal(first.Id, second.PreviousEventId);
        Assert.Equal("1.0.0", second.PreviousReleaseVersion);
        Assert.True(second.ActivatedAt >= first.ActivatedAt);

        // A stale expectation is refused and changes nothing; rollback is a new activation.
        var stale = await Assert.ThrowsAsync<ActivationConflictException>(() => Store.ActivateAsync("acme", "ao", "1.0.0", first.Id, "carol", null, Ct));
        Assert.Equal(second.Id, stale.Current);
        Assert.Equal(second, await Store.GetActiveAsync("acme", "ao", Ct));
        var rollback = (await Store.ActivateAsync("acme", "ao", "1.0.0", second.Id, "carol", "rollback", Ct))!;
        Assert.Equal("1.0.0", (await Store.GetActiveAsync("acme", "ao", Ct))!.ReleaseVersion);

        var log = await Store.ListActivationsAsync("acme", "ao", 0, 10, Ct);
        Assert.Equal([first.Id, second.Id, rollback.Id], log.Items.Select(e => e.Id));
        Assert.Null(log.NextAfter);
    }

    [Fact]
    public async Task Racing_activations_with_one_expectation_have_one_winner()
    {
        await Store.RegisterReleaseAsync(Release("1.0.0"), Ct);
        await Store.RegisterReleaseAsync(Release("2.0.0", "sha256:bb"), Ct);
        var head = (await Store.ActivateAsync("acme", "ao", "1.0.0", null, "a", null, Ct))!;
        var stores = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => TrackAsync()));
        var attempts = Enumerable.Range(0, 12).Select(async i =>
        {
            try
            {
                return await stores[i % stores.Length].ActivateAsync("acme", "ao", i % 2 == 0 ? "2.0.0" : "1.0.0", head.Id, $"racer{i}", null, Ct);
            }
            catch (ActivationConflictException)
            {
                return null;
            }
        });
        var winners = (await Task.WhenAll(attempts)).Where(w => w is not null).ToList();
        var winner = Assert.Single(winners);
        Assert.Equal(head.Id, winner!.PreviousEventId);
        Assert.Equal(winner, await Store.GetActiveAsync("acme", "ao", Ct));
        Assert.Equal(2, (await Store.ListActivationsAsync("acme", "ao", 0, 100, Ct)).Items.Count);
    }

    [Fact]
    public async Task Racing_activations_without_expectation_all_land_in_one_chain()
    {
        await Store.RegisterReleaseAsync(Release("1.0.0"), Ct);
        var stores = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => TrackAsync()));
        var done = await Task.WhenAll(Enumerable.Range(0, 12).Select(i => stores[i % stores.Length].ActivateAsync("acme", "ao", "1.0.0", null, $"racer{i}", null, Ct)));
        Assert.All(done, Assert.NotNull);
        var log = (await Store.ListActivationsAsync("acme", "ao", 0, 100, Ct)).Items;
        Assert.Equal(12, log.Count);

        // Every event names the one before it: the head moved by compare-and-set, no activation was lost or forked.
        Assert.Null(log[0].PreviousEventId);
        for (var i = 1; i < log.Count; i++)
        {
            Assert.Equal(log[i - 1].Id, log[i].PreviousEventId);
        }

        Assert.Equal(log[^1].Id, (await Store.GetActiveAsync("acme", "ao", Ct))!.Id);
    }
}

/// <summary>The execution part of the storage contract (in the same suite, on both providers).</summary>
public abstract partial class StoreContractTests
{
    private static NewExecution Execution(string? key, string fingerprint = "sha256:f1", string tenant = "acme") =>
        new(Guid.NewGuid().ToString(), tenant, "ao", "1.0.0", "1", "{\"pipelineId\":\"ao\"}", key, fingerprint, "control-plane/test");

    private async Task RegisterForExecutionsAsync(string tenant = "acme") => await Store.RegisterReleaseAsync(Release("1.0.0", tenant: tenant), Ct);

    [Fact]
    public async Task A_submission_is_queued_with_its_dispatch_entry()
    {
        await RegisterForExecutionsAsync();
        var submitted = Execution(null);
        var (execution, duplicate) = await Store.SubmitExecutionAsync(submitted, Ct);
        Assert.False(duplicate);
        Assert.Equal("QUEUED", execution.Status);
        Assert.Equal(submitted.ExecutionId, execution.ExecutionId);
        Assert.Equal(execution, await Store.GetExecutionAsync("acme", execution.ExecutionId, Ct));
        Assert.Null(await Store.GetExecutionAsync("globex", execution.ExecutionId, Ct));
        Assert.Equal(1, await Store.PendingDispatchCountAsync(Ct));

        // Without a key, the same request twice is two executions (keys are never derived from payloads).
        var (other, _) = await Store.SubmitExecutionAsync(Execution(null), Ct);
        Assert.NotEqual(execution.ExecutionId, other.ExecutionId);
        Assert.Equal(2, await Store.PendingDispatchCountAsync(Ct));
    }

    [Fact]
    public async Task A_reused_key_returns_the_first_execution_or_conflicts_on_another_request()
    {
        await RegisterForExecutionsAsync();
        await RegisterForExecutionsAsync("globex");
        var (first, _) = await Store.SubmitExecutionAsync(Execution("k1"), Ct);
        var (again, duplicate) = await Store.SubmitExecutionAsync(Execution("k1"), Ct);
        Assert.True(duplicate);
        Assert.Equal(first, again);

        var conflict = await Assert.ThrowsAsync<IdempotencyConflictException>(() => Store.SubmitExecutionAsync(Execution("k1", "sha256:f2"), Ct));
        Assert.Equal(first.ExecutionId, conflict.ExecutionId);
        Assert.Equal(1, await Store.PendingDispatchCountAsync(Ct));

        // Keys are the tenant's own.
        var (theirs, theirDuplicate) = await Store.SubmitExecutionAsync(Execution("k1", "sha256:f2", tenant: "globex"), Ct);
        Assert.False(theirDuplicate);
        Assert.NotEqual(first.ExecutionId, theirs.ExecutionId);
    }

    [Fact]
    public async Task Concurrent_submissions_of_one_key_make_one_execution()
    {
        await RegisterForExecutionsAsync();
        var stores = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => TrackAsync()));
        var results = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => stores[i % stores.Length].SubmitExecutionAsync(Execution("race"), Ct)));
        Assert.Single(results.Select(r => r.Execution.ExecutionId).Distinct());
        Assert.Single(results, r => !r.Duplicate);
        Assert.Equal(1, await Store.PendingDispatchCountAsync(Ct));
    }
}

/// <summary>The contract on SQLite, in a temporary directory.</summary>
public sealed class SqliteStoreContractTests : StoreContractTests
{
    private readonly string directory = Path.Combine(Path.GetTempPath(), "flowline-coord-" + Guid.NewGuid().ToString("N")[..10]);

    protected override Task CreateAsync() => Task.CompletedTask;

    protected override Task<ICoordinatorStore> OpenAsync() => Task.FromResult<ICoordinatorStore>(new SqliteCoordinatorStore(Path.Combine(directory, "coordinator.db")));

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        Directory.Delete(directory, recursive: true);
    }
}

/// <summary>The contract on the real PostgreSQL server of the test run, in a database of its own.</summary>
public sealed class PostgresStoreContractTests(PostgresServer server) : StoreContractTests
{
    private string connection = "";

    protected override async Task CreateAsync() => connection = await server.CreateDatabaseAsync();

    protected override Task<ICoordinatorStore> OpenAsync() => Task.FromResult<ICoordinatorStore>(new PostgresCoordinatorStore(connection));

    protected override string? PostgresConnection => connection;
}
