using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Liveness;

namespace Flowline.SharedMemory;

/// <summary>The pipeline manager that holds a namespace, as its lease file records it.</summary>
/// <param name="Pid">Its process id.</param>
/// <param name="Program">Its program (the process's command name).</param>
/// <param name="ServerUrl">The URL of the control server that serves it, if any.</param>
/// <param name="Since">When it took the namespace.</param>
/// <param name="StartTicks">Its process's start time (<see cref="ProcessIdentity.StartTicks"/>), so that a reused pid is not taken for it.</param>
public sealed record NamespaceHolder(int Pid, string Program, string? ServerUrl, DateTimeOffset Since, ulong StartTicks = 0)
{
    /// <summary>True while the recorded process lives.</summary>
    public bool IsAlive => Pid > 0 && (StartTicks == 0 ? ProcessIdentity.Of(Pid) is not null : new ProcessIdentity(Pid, StartTicks).IsAlive());

    /// <summary>"the pipeline manager of process 1234 (flowline), served at http://..., since ...".</summary>
    public override string ToString()
    {
        var who = Pid == Environment.ProcessId ? $"another pipeline manager of this process ({Pid})" : $"the pipeline manager of process {Pid} ({Program})";
        var url = ServerUrl is null ? "" : $", served at {ServerUrl}";
        return $"{who}{url}, since {Since.ToUniversalTime():yyyy-MM-dd HH:mm:ss} UTC";
    }
}

/// <summary>
/// The claim of one pipeline manager on a namespace: an exclusive <c>flock</c> on
/// <c>/dev/shm/flowline/&lt;namespace&gt;/.manager</c>, held while the manager has streams there, with a
/// record of who holds it. Two managers on one namespace would overwrite each other's streams and
/// control blocks; the second is refused before it writes anything, with an error naming the first.
/// </summary>
/// <remarks>
/// The kernel releases the lock when its holder dies, so the namespace of a killed manager is taken over
/// by the next one (<see cref="Previous"/> then names the dead holder, and its leftovers can be collected).
/// The lock file is created with <c>O_NOFOLLOW</c> and mode 0600; after locking, the holder checks that the
/// name still refers to the file it locked, so a lease released (and its file removed) meanwhile is
/// never held by two processes.
/// </remarks>
public sealed unsafe class NamespaceLease : IDisposable
{
    /// <summary>The lease file's name in the namespace directory (a dot name: never taken for a region).</summary>
    public const string FileName = ".manager";

    private const int MaxAttempts = 64;
    private const int MaxRecordBytes = 4096;
    private const int MaxTransientWaits = 250;
    private readonly string path;
    private readonly ulong inode;
    private readonly DateTimeOffset since = DateTimeOffset.UtcNow;
    private readonly Lock gate = new();
    private int fd;
    private string? serverUrl;

    private NamespaceLease(string @namespace, string path, int fd, ulong inode, NamespaceHolder? previous, string? serverUrl)
    {
        Namespace = @namespace;
        this.path = path;
        this.fd = fd;
        this.inode = inode;
        Previous = previous;
        this.serverUrl = serverUrl;
        WriteRecord();
    }

    /// <summary>The namespace held.</summary>
    public string Namespace { get; }

    /// <summary>The holder recorded before this lease: a manager that died holding the namespace, or null.</summary>
    public NamespaceHolder? Previous { get; }

    /// <summary>The URL of the control server serving the manager, recorded for the error of a refused manager.</summary>
    public string? ServerUrl
    {
        get => serverUrl;
        set
        {
            lock (gate)
            {
                serverUrl = value;
                if (fd >= 0)
                {
                    WriteRecord();
                }
            }
        }
    }

    /// <summary>
    /// Takes the namespace for this process's manager; throws <see cref="NamespaceInUseException"/> naming
    /// the holder if a live manager (in this process or another) has it, and
    /// <see cref="UntrustedDirectoryException"/> if its directory may not be trusted.
    /// </summary>
    public static NamespaceLease Acquire(string @namespace, string? serverUrl = null)
    {
        Syscalls.EnsureSupported();
        SharedMemoryNamespace.Validate(@namespace, "namespace");
        var transient = 0;
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var dir = SharedMemoryNamespace.EnsureDirectory(@namespace);
            var file = Path.Combine(dir, FileName);
            var fd = OpenLeaseFile(file, LibC.ORdWr | LibC.OCreat);
            if (fd < 0)
            {
                var errno = -fd;
                if (errno == LibC.ENoEnt)
                {
                    continue; // The directory was removed (it was empty): make it again.
                }

                SharedMemoryNamespace.RemoveDirectoryIfEmpty(@namespace);
                throw new SharedMemoryException($"cannot open the lease of namespace '{@namespace}' ({file}): {LibC.Describe(errno)}.");
            }

            var keep = false;
            try
            {
                if (!TryLock(fd, @namespace))
                {
                    var holder = ReadRecord(fd);
                    if ((holder is null || !holder.IsAlive) && transient++ < MaxTransientWaits)
                    {
                        // Not a live manager: `flowline gc` looking at the lease, or a new holder that has not
                        // written its record yet. Either lets go or names itself in a moment.
                        attempt--;
                        Thread.Sleep(2);
                        continue;
                    }

                    holder ??= new NamespaceHolder(0, "unknown", null, DateTimeOffset.UtcNow);
                    throw new NamespaceInUseException(
                        $"namespace '{@namespace}' is in use by {holder}: two managers on one namespace would overwrite each other's streams. " +
                        "Stop that pipeline first, or give this one another namespace (the document's `namespace`, or --namespace).",
                        holder);
                }

                // The name must still be the file locked: a holder that let go removes it.
                if (!SameFile(fd, file, out var inode))
                {
                    continue;
                }

                var previous = ReadRecord(fd);
                keep = true;
                return new NamespaceLease(@namespace, file, fd, inode, previous, serverUrl);
            }
            finally
            {
                if (!keep)
                {
                    LibC.Close(fd);
                }
            }
        }

        SharedMemoryNamespace.RemoveDirectoryIfEmpty(@namespace);
        throw new SharedMemoryException($"namespace '{@namespace}': gave up taking its lease after {MaxAttempts} attempts while other processes kept taking and releasing it.");
    }

    /// <summary>
    /// Opens a lease file without following a link or blocking (a FIFO planted there must not hang a
    /// manager), and only if it is a regular file; returns the descriptor, or minus the errno.
    /// </summary>
    private static int OpenLeaseFile(string file, int flags)
    {
        var fd = LibC.Open(file, flags | LibC.OCloExec | LibC.ONoFollow | LibC.ONonBlock, 0b110_000_000);
        if (fd < 0)
        {
            return -LibC.Errno;
        }

        LibC.StatxBuffer stat;
        if (LibC.Statx(fd, "", LibC.AtEmptyPath, LibC.StatxBasicStats, &stat) != 0 || (stat.Mode & LibC.SIfMt) != LibC.SIfReg)
        {
            LibC.Close(fd);
            return -LibC.EInval;
        }

        return fd;
    }

    /// <summary>The live manager holding <paramref name="namespace"/>, or null if none does.</summary>
    public static NamespaceHolder? HolderOf(string @namespace)
    {
        var file = Path.Combine(SharedMemoryNamespace.DirectoryOf(@namespace), FileName);
        var fd = OpenLeaseFile(file, LibC.ORdOnly);
        if (fd < 0)
        {
            return null;
        }

        try
        {
            return TryLock(fd, @namespace) ? null : ReadRecord(fd) ?? new NamespaceHolder(0, "unknown", null, DateTimeOffset.UtcNow);
        }
        finally
        {
            LibC.Close(fd);
        }
    }

    /// <summary>
    /// Removes the lease file of <paramref name="namespace"/> if no live manager holds it (its holder died);
    /// returns true if one was removed.
    /// </summary>
    internal static bool RemoveIfAbandoned(string @namespace)
    {
        var file = Path.Combine(SharedMemoryNamespace.DirectoryOf(@namespace), FileName);
        var fd = OpenLeaseFile(file, LibC.ORdOnly);
        if (fd < 0)
        {
            return false;
        }

        try
        {
            // Holding the lock, the file is ours to remove: a manager taking it meanwhile checks the name after locking.
            return TryLock(fd, @namespace) && SameFile(fd, file, out _) && LibC.Unlink(file) == 0;
        }
        finally
        {
            LibC.Close(fd);
        }
    }

    /// <summary>Lets go of the namespace: removes the lease file, unlocks, and removes the directory if it is empty.</summary>
    public void Dispose()
    {
        lock (gate)
        {
            if (fd < 0)
            {
                return;
            }

            if (SameFile(fd, path, out var now) && now == inode)
            {
                _ = LibC.Unlink(path);
            }

            LibC.Close(fd);
            fd = -1;
        }

        SharedMemoryNamespace.RemoveDirectoryIfEmpty(Namespace);
    }

    private static bool TryLock(int fd, string @namespace)
    {
        while (LibC.Flock(fd, LibC.LockEx | LibC.LockNb) != 0)
        {
            var errno = LibC.Errno;
            if (errno == LibC.EWouldBlock)
            {
                return false;
            }

            if (errno != LibC.EIntr)
            {
                throw new SharedMemoryException($"cannot lock the lease of namespace '{@namespace}': {LibC.Describe(errno)}.");
            }
        }

        return true;
    }

    private static bool SameFile(int fd, string file, out ulong inode)
    {
        LibC.StatxBuffer opened;
        LibC.StatxBuffer named;
        inode = 0;
        if (LibC.Statx(fd, "", LibC.AtEmptyPath, LibC.StatxBasicStats, &opened) != 0 ||
            LibC.Statx(LibC.AtFdCwd, file, LibC.AtSymlinkNoFollow, LibC.StatxBasicStats, &named) != 0)
        {
            return false;
        }

        inode = opened.Inode;
        return opened.Inode == named.Inode;
    }

    private void WriteRecord()
    {
        var record = new JsonObject
        {
            ["pid"] = Environment.ProcessId,
            ["start_ticks"] = ProcessIdentity.Current.StartTicks,
            ["program"] = Program(Environment.GetCommandLineArgs()),
            ["server_url"] = serverUrl,
            ["since"] = since.ToString("O"),
        };
        var bytes = Encoding.UTF8.GetBytes(record.ToJsonString() + "\n");
        if (bytes.Length > MaxRecordBytes)
        {
            throw new ArgumentException($"the server URL is too long for the lease record ({bytes.Length} bytes, at most {MaxRecordBytes}).");
        }

        _ = LibC.FTruncate(fd, 0);
        fixed (byte* b = bytes)
        {
            _ = LibC.PWrite(fd, b, (nuint)bytes.Length, 0);
        }
    }

    /// <summary>
    /// The program and its arguments, as a person would recognise it ("Flowline.Cli.dll serve pipeline.yaml"),
    /// with the value of every option whose name mentions a token, password or secret left out: the record
    /// and the errors that quote it are read by other processes.
    /// </summary>
    internal static string Program(IReadOnlyList<string> args)
    {
        var words = new List<string> { Path.GetFileName(args.Count > 0 ? args[0] : Environment.ProcessPath ?? "unknown") };
        for (var i = 1; i < args.Count; i++)
        {
            var arg = args[i];
            var secret = arg.StartsWith('-') && (arg.Contains("token", StringComparison.OrdinalIgnoreCase) || arg.Contains("password", StringComparison.OrdinalIgnoreCase) || arg.Contains("secret", StringComparison.OrdinalIgnoreCase));
            if (secret && arg.IndexOf('=', StringComparison.Ordinal) is var eq and > 0)
            {
                words.Add(arg[..(eq + 1)] + "***");
            }
            else if (secret)
            {
                words.Add(arg);
                if (i + 1 < args.Count)
                {
                    words.Add("***");
                    i++;
                }
            }
            else
            {
                words.Add(arg);
            }
        }

        var text = string.Join(' ', words);
        return text.Length <= 200 ? text : text[..200] + "...";
    }

    private static NamespaceHolder? ReadRecord(int fd)
    {
        var buffer = new byte[MaxRecordBytes];
        nint read;
        fixed (byte* b = buffer)
        {
            read = LibC.PRead(fd, b, MaxRecordBytes, 0);
        }

        if (read <= 0)
        {
            return null;
        }

        try
        {
            if (JsonNode.Parse(buffer.AsSpan(0, (int)read)) is not JsonObject o)
            {
                return null;
            }

            var since = DateTimeOffset.TryParse((string?)o["since"], out var s) ? s : DateTimeOffset.MinValue;
            return new NamespaceHolder((int?)o["pid"] ?? 0, (string?)o["program"] ?? "unknown", (string?)o["server_url"], since, (ulong?)o["start_ticks"] ?? 0);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            return null;
        }
    }
}
