namespace Flowline.SharedMemory;

/// <summary>A shared-memory operation failed; the message says what was found and what was expected.</summary>
public class SharedMemoryException : Exception
{
    /// <summary>Creates an exception with a message.</summary>
    public SharedMemoryException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a message and the exception that caused it.</summary>
    public SharedMemoryException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>A region to attach to does not exist.</summary>
public sealed class RegionNotFoundException(string message) : SharedMemoryException(message);

/// <summary>A region to create exists already.</summary>
public sealed class RegionExistsException(string message) : SharedMemoryException(message);

/// <summary>
/// A region exists but does not match: another layout version, another kind, or another stream format.
/// </summary>
public sealed class RegionLayoutException(string message) : SharedMemoryException(message);

/// <summary>A region exists but the process that created it has died, and the mode does not allow recreating it.</summary>
public sealed class StaleRegionException(string message) : SharedMemoryException(message);

/// <summary>
/// A directory of Flowline's shared memory may not be trusted: a symbolic link, another user's, or open to
/// other users. The message says how to fix it.
/// </summary>
public sealed class UntrustedDirectoryException(string message) : SharedMemoryException(message);

/// <summary>A namespace is in use by the pipeline manager of another live process (or another manager of this one).</summary>
public sealed class NamespaceInUseException(string message, NamespaceHolder holder) : SharedMemoryException(message)
{
    /// <summary>The manager that holds the namespace, as its lease records it.</summary>
    public NamespaceHolder Holder { get; } = holder;
}
