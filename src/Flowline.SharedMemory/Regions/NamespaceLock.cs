using Flowline.SharedMemory.Interop;

namespace Flowline.SharedMemory.Regions;

/// <summary>
/// An exclusive <c>flock</c> on a namespace directory, held while a name that may be in use changes
/// (replace, recreate a stale region, unlink). Locks on directories work like locks on files and are
/// released by the kernel if the holder dies.
/// </summary>
internal readonly struct NamespaceLock : IDisposable
{
    private readonly int fd;

    private NamespaceLock(int fd) => this.fd = fd;

    /// <summary>Takes the lock; a namespace that does not exist has nothing to lock (the lock is then empty).</summary>
    public static NamespaceLock Acquire(string @namespace)
    {
        var fd = LibC.Open(SharedMemoryNamespace.DirectoryOf(@namespace), LibC.ORdOnly | LibC.OCloExec | LibC.ODirectory | LibC.ONoFollow, 0);
        if (fd < 0)
        {
            return new NamespaceLock(-1);
        }

        while (LibC.Flock(fd, LibC.LockEx) != 0)
        {
            if (LibC.Errno != LibC.EIntr)
            {
                var errno = LibC.Errno;
                LibC.Close(fd);
                throw new SharedMemoryException($"cannot lock namespace '{@namespace}': {LibC.Describe(errno)}.");
            }
        }

        return new NamespaceLock(fd);
    }

    /// <summary>Releases the lock.</summary>
    public void Dispose()
    {
        if (fd >= 0)
        {
            LibC.Close(fd);
        }
    }
}
