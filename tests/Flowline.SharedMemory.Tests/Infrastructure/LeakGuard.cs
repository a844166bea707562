using Flowline.SharedMemory.Tests.Infrastructure;

[assembly: AssemblyFixture(typeof(LeakGuard))]

namespace Flowline.SharedMemory.Tests.Infrastructure;

/// <summary>After the last test: no test namespace under /dev/shm/flowline and no peer process may remain.</summary>
public sealed class LeakGuard : IDisposable
{
    public void Dispose()
    {
        var namespaces = SharedMemoryNamespace.ListNamespaces().Where(n => n.StartsWith(TestNamespaces.Prefix, StringComparison.Ordinal)).ToList();
        foreach (var ns in namespaces)
        {
            SharedMemoryNamespace.UnlinkAll(ns);
        }

        var peers = Peer.Alive;
        if (namespaces.Count > 0 || peers.Count > 0)
        {
            throw new InvalidOperationException(
                $"tests left shared memory or processes behind: namespaces [{string.Join(", ", namespaces)}], peer pids [{string.Join(", ", peers)}]");
        }
    }
}
