namespace Flowline.SharedMemory.Tests.Infrastructure;

/// <summary>
/// Base of every test that touches shared memory: a namespace of its own, peers it starts, and a
/// teardown that kills the peers, removes the namespace and fails the test if anything stays behind.
/// </summary>
public abstract class ShmTest : IDisposable
{
    private readonly List<Peer> peers = [];
    private readonly List<IDisposable> owned = [];

    protected ShmTest()
    {
        Ns = TestNamespaces.New();
    }

    /// <summary>This test's namespace.</summary>
    protected string Ns { get; }

    protected static TimeSpan Bound => TimeSpan.FromSeconds(30);

    /// <summary>Starts a peer that is killed at teardown.</summary>
    protected Peer StartPeer(string role, params string[] arguments)
    {
        var peer = Peer.Start(role, ["--ns", Ns, .. arguments]);
        peers.Add(peer);
        return peer;
    }

    /// <summary>Disposes <paramref name="resource"/> at teardown (before the leak check).</summary>
    protected T Own<T>(T resource)
        where T : IDisposable
    {
        owned.Add(resource);
        return resource;
    }

    public void Dispose()
    {
        GC.SuppressFinalize(this);
        foreach (var resource in Enumerable.Reverse(owned))
        {
            resource.Dispose();
        }

        foreach (var peer in peers)
        {
            peer.Dispose();
        }

        // Temporary files of half-made regions are never the test's own doing: they are leaks.
        var dir = SharedMemoryNamespace.DirectoryOf(Ns);
        var temporaries = Directory.Exists(dir) ? Directory.GetFiles(dir, ".*").Select(Path.GetFileName).ToList() : [];
        SharedMemoryNamespace.UnlinkAll(Ns);
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }

        Assert.Empty(temporaries);
        Assert.All(peers, p => Assert.True(p.HasExited, $"peer {p.Pid} survived teardown"));
    }
}

/// <summary>Unique namespaces for tests, all with one prefix so the assembly check can find leftovers.</summary>
public static class TestNamespaces
{
    public const string Prefix = "fltest-";

    public static string New() => Prefix + Guid.NewGuid().ToString("N")[..12];
}
