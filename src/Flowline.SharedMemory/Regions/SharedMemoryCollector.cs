using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Regions;

namespace Flowline.SharedMemory;

/// <summary>A region found by <see cref="SharedMemoryCollector"/>, and what became of it.</summary>
/// <param name="Namespace">Its namespace.</param>
/// <param name="Name">Its name (a lease or temporary file's dot name for those).</param>
/// <param name="Kind">stream, event, control block, probe, lease, temporary file, or unknown.</param>
/// <param name="Bytes">Its size.</param>
/// <param name="Reason">Why it is garbage, or why it is kept.</param>
public sealed record CollectedItem(string Namespace, string Name, string Kind, long Bytes, string Reason);

/// <summary>What <see cref="SharedMemoryCollector.Collect"/> found.</summary>
/// <param name="Garbage">Leftovers of dead processes: removed, or to be removed in a dry run.</param>
/// <param name="Kept">Regions in use (by a live creator, writer or reader), and files that are not Flowline's.</param>
/// <param name="Problems">Namespaces that were not looked into, and why (an untrusted directory, for one).</param>
/// <param name="DryRun">True if nothing was removed.</param>
public sealed record CollectResult(IReadOnlyList<CollectedItem> Garbage, IReadOnlyList<CollectedItem> Kept, IReadOnlyList<string> Problems, bool DryRun)
{
    /// <summary>The bytes of shared memory the garbage holds.</summary>
    public long GarbageBytes => Garbage.Sum(g => g.Bytes);
}

/// <summary>
/// Finds and removes what dead processes left under <c>/dev/shm/flowline</c> (<c>flowline gc</c>): regions
/// whose creator has exited and that no live process uses (for a stream: no live writer or reader),
/// lease files of managers that died, temporary files of creations that were killed half-way, and
/// namespace directories left empty. A region in use is never removed; a file that is not a Flowline
/// region is reported and left alone.
/// </summary>
/// <remarks>
/// Each removal takes the namespace lock and checks the region's random incarnation id again, so a
/// region recreated meanwhile by another process is not removed (the same rule as stale regions).
/// </remarks>
public static unsafe class SharedMemoryCollector
{
    /// <summary>Looks at every namespace, or at <paramref name="namespace"/> only, and removes the garbage unless <paramref name="dryRun"/>.</summary>
    public static CollectResult Collect(string? @namespace = null, bool dryRun = false)
    {
        var garbage = new List<CollectedItem>();
        var kept = new List<CollectedItem>();
        var problems = new List<string>();
        if (RootProblem() is { } rootProblem)
        {
            return new CollectResult(garbage, kept, [rootProblem], dryRun);
        }

        var namespaces = @namespace is null ? SharedMemoryNamespace.ListNamespaces() : [@namespace];
        foreach (var ns in namespaces)
        {
            var dir = SharedMemoryNamespace.DirectoryOf(ns);
            if (TrustedDirectory.NamespaceProblem(dir) is { } problem)
            {
                problems.Add(problem);
                continue;
            }

            if (!Directory.Exists(dir))
            {
                continue;
            }

            CollectNamespace(ns, dir, dryRun, garbage, kept);
            if (!dryRun)
            {
                SharedMemoryNamespace.RemoveDirectoryIfEmpty(ns);
            }
        }

        return new CollectResult(garbage, kept, problems, dryRun);
    }

    private static string? RootProblem() => TrustedDirectory.RootProblem(SharedMemoryNamespace.Root);

    private static void CollectNamespace(string ns, string dir, bool dryRun, List<CollectedItem> garbage, List<CollectedItem> kept)
    {
        IEnumerable<string> files;
        try
        {
            files = Directory.EnumerateFiles(dir).Select(Path.GetFileName).Where(n => n is not null).Select(n => n!).Order(StringComparer.Ordinal).ToList();
        }
        catch (DirectoryNotFoundException)
        {
            return;
        }

        foreach (var name in files)
        {
            var path = Path.Combine(dir, name);
            if (name == NamespaceLease.FileName)
            {
                if (NamespaceLease.HolderOf(ns) is { } holder)
                {
                    kept.Add(new CollectedItem(ns, name, "lease", SizeOf(path), $"held by {holder}"));
                }
                else
                {
                    var bytes = SizeOf(path);
                    if (dryRun || NamespaceLease.RemoveIfAbandoned(ns))
                    {
                        garbage.Add(new CollectedItem(ns, name, "lease", bytes, "its manager has exited"));
                    }
                }

                continue;
            }

            if (name.StartsWith('.'))
            {
                // A creation's temporary file: .<name>.<pid>.<thread>.tmp
                var parts = name.Split('.');
                if (name.EndsWith(".tmp", StringComparison.Ordinal) && parts.Length >= 5 && int.TryParse(parts[^3], out var pid) && !PidExists(pid))
                {
                    var bytes = SizeOf(path);
                    if (dryRun || LibC.Unlink(path) == 0)
                    {
                        garbage.Add(new CollectedItem(ns, name, "temporary file", bytes, $"left by pid {pid}, which has exited, while it created a region"));
                    }
                }

                continue;
            }

            if (SharedMemoryNamespace.Check(name) is not null)
            {
                continue;
            }

            var verdict = Inspect(path);
            var item = new CollectedItem(ns, name, verdict.Kind, verdict.Bytes, verdict.Reason);
            if (!verdict.Garbage)
            {
                kept.Add(item);
            }
            else if (dryRun || RemoveIfSame(ns, path, verdict.RegionId))
            {
                garbage.Add(item);
            }
        }
    }

    private readonly record struct Verdict(bool Garbage, string Kind, long Bytes, string Reason, ulong RegionId);

    /// <summary>Maps a region read-only and decides whether it is garbage.</summary>
    private static Verdict Inspect(string path)
    {
        var fd = LibC.Open(path, LibC.ORdOnly | LibC.OCloExec | LibC.ONoFollow | LibC.ONonBlock, 0);
        if (fd < 0)
        {
            return new Verdict(false, "unknown", 0, $"cannot open it: {LibC.Describe(LibC.Errno)}", 0);
        }

        try
        {
            LibC.StatxBuffer stat;
            if (LibC.Statx(fd, "", LibC.AtEmptyPath, LibC.StatxBasicStats, &stat) != 0 || (stat.Mode & LibC.SIfMt) != LibC.SIfReg)
            {
                return new Verdict(false, "unknown", 0, "not a regular file; left alone", 0);
            }

            var length = LibC.LSeek(fd, 0, LibC.SeekEnd);
            if (length < RegionHeader.Size)
            {
                return new Verdict(false, "unknown", Math.Max(0, length), "not a Flowline region (too short); left alone", 0);
            }

            var address = LibC.MMap(0, (nuint)length, LibC.ProtRead, LibC.MapShared, fd, 0);
            if (address == LibC.MapFailed)
            {
                return new Verdict(false, "unknown", length, $"cannot map it: {LibC.Describe(LibC.Errno)}", 0);
            }

            try
            {
                var b = (byte*)address;
                if (RegionHeader.ReadMagic(b) != RegionHeader.Magic)
                {
                    return new Verdict(false, "unknown", length, "not a Flowline region; left alone", 0);
                }

                var kind = RegionHeader.ReadKind(b);
                var kindName = kind switch
                {
                    RegionKind.Stream => "stream",
                    RegionKind.Event => "event",
                    RegionKind.Probe => "probe",
                    RegionKind.ControlBlock => "control block",
                    RegionKind.Profile => "profile block",
                    _ => "unknown",
                };
                var owner = RegionHeader.ReadOwner(b);
                var id = RegionHeader.ReadRegionId(b);
                if (owner.IsAlive())
                {
                    return new Verdict(false, kindName, length, $"its creator ({owner}) is alive", id);
                }

                var user = kind == RegionKind.Stream && RegionHeader.ReadVersion(b) == RegionHeader.LayoutVersion && RegionHeader.ReadHash(b) == Streams.StreamLayout.Hash
                    ? SharedStream.LiveUser(b, length)
                    : null;
                return user is not null
                    ? new Verdict(false, kindName, length, $"its creator ({owner}) has exited, but {user}", id)
                    : new Verdict(true, kindName, length, $"its creator ({owner}) has exited and no live process uses it", id);
            }
            finally
            {
                _ = LibC.MUnmap(address, (nuint)length);
            }
        }
        finally
        {
            LibC.Close(fd);
        }
    }

    private static bool RemoveIfSame(string ns, string path, ulong regionId)
    {
        using var _ = NamespaceLock.Acquire(ns);
        return SharedRegion.ReadRegionId(path) == regionId && LibC.Unlink(path) == 0;
    }

    private static bool PidExists(int pid) => pid > 0 && (LibC.Kill(pid, 0) == 0 || LibC.Errno != LibC.ESrch);

    private static long SizeOf(string path)
    {
        try
        {
            return new FileInfo(path).Length;
        }
        catch (IOException)
        {
            return 0;
        }
    }
}
