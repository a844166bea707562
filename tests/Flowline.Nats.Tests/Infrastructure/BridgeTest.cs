using Flowline.Nats.Tests.Infrastructure;
using Flowline.SharedMemory;

[assembly: AssemblyFixture(typeof(LeakGuard))]

namespace Flowline.Nats.Tests.Infrastructure;

/// <summary>
/// Base of the bridge tests: two namespaces standing for two hosts, a server, and a teardown that
/// disposes the bridges, kills the server and removes both namespaces, failing if a region was half-made.
/// </summary>
public abstract class BridgeTest : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> asyncOwned = [];
    private readonly List<IDisposable> owned = [];

    /// <summary>The first host's namespace (where the frames are written).</summary>
    protected string HostA { get; } = LeakGuard.Prefix + Guid.NewGuid().ToString("N")[..10];

    /// <summary>The second host's namespace (where the bridge writes them again).</summary>
    protected string HostB { get; } = LeakGuard.Prefix + Guid.NewGuid().ToString("N")[..10];

    /// <summary>The bound of every wait in these tests.</summary>
    protected static TimeSpan Bound => TimeSpan.FromSeconds(30);

    /// <summary>A subject of this test's own.</summary>
    protected static string NewSubject() => "flowline.test." + Guid.NewGuid().ToString("N")[..12];

    /// <summary>
    /// Disposes <paramref name="resource"/> at teardown, in reverse order. Streams, writers and readers are owned this
    /// way, never with <c>using</c>: when a test fails, a background writer or a bridge may still use them, and teardown
    /// stops those (<see cref="OwnAsync{T}"/>) before it unmaps anything (a write to an unmapped ring aborts the test host).
    /// </summary>
    protected T Own<T>(T resource)
        where T : IDisposable
    {
        owned.Add(resource);
        return resource;
    }

    /// <summary>Disposes <paramref name="resource"/> at teardown, before the synchronous resources.</summary>
    protected T OwnAsync<T>(T resource)
        where T : IAsyncDisposable
    {
        asyncOwned.Add(resource);
        return resource;
    }

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        foreach (var resource in Enumerable.Reverse(asyncOwned))
        {
            await resource.DisposeAsync();
        }

        foreach (var resource in Enumerable.Reverse(owned))
        {
            resource.Dispose();
        }

        var temporaries = new List<string>();
        foreach (var ns in new[] { HostA, HostB })
        {
            var dir = SharedMemoryNamespace.DirectoryOf(ns);
            if (Directory.Exists(dir))
            {
                temporaries.AddRange(Directory.GetFiles(dir, ".*").Select(f => Path.GetFileName(f)));
            }

            SharedMemoryNamespace.UnlinkAll(ns);
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }

        Assert.Empty(temporaries);
    }
}

/// <summary>After the last test: no namespace of these tests under /dev/shm/flowline and no nats-server left.</summary>
public sealed class LeakGuard : IDisposable
{
    public const string Prefix = "flnats-";

    public void Dispose()
    {
        var namespaces = SharedMemoryNamespace.ListNamespaces().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)).ToList();
        foreach (var ns in namespaces)
        {
            SharedMemoryNamespace.UnlinkAll(ns);
        }

        if (namespaces.Count > 0 || NatsServer.Alive > 0)
        {
            throw new InvalidOperationException($"tests left shared memory or servers behind: namespaces [{string.Join(", ", namespaces)}], {NatsServer.Alive} nats-server processes");
        }
    }
}

/// <summary>Work on a task of its own that teardown cancels and waits for, so that nothing touches a stream after it is disposed.</summary>
public sealed class Background : IAsyncDisposable
{
    private readonly CancellationTokenSource cancel = new();
    private Task task = Task.CompletedTask;

    /// <summary>Starts <paramref name="work"/>; the token is cancelled at teardown.</summary>
    public Task Run(Action<CancellationToken> work)
    {
        task = Task.Run(() => work(cancel.Token));
        return task;
    }

    public async ValueTask DisposeAsync()
    {
        await cancel.CancelAsync();
        try
        {
            await task;
        }
        catch (Exception)
        {
            // The test has seen (or will report) the failure; teardown only waits.
        }

        cancel.Dispose();
    }
}
