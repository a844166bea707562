using System.Security.Cryptography;
using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Liveness;

namespace Flowline.SharedMemory.Regions;

/// <summary>Fills a new region's body (after the header) before it becomes visible.</summary>
internal unsafe delegate void RegionInitializer(byte* region, long length);

/// <summary>Checks an existing region's body; returns what does not match, or null if it matches.</summary>
internal unsafe delegate string? RegionValidator(byte* region, long length);

/// <summary>Names a live process that uses an existing region (other than its owner), or returns null if none does.</summary>
internal unsafe delegate string? RegionUsers(byte* region, long length);

/// <summary>What to open and how.</summary>
internal sealed record RegionRequest(
    string Namespace,
    string Name,
    RegionMode Mode,
    RegionKind Kind,
    ulong LayoutHash,
    long CreateBytes,
    RegionInitializer? Initialize,
    RegionValidator? Validate,
    RegionUsers? LiveUsers = null);

/// <summary>
/// A mapped region file under <c>/dev/shm/flowline/&lt;namespace&gt;/</c>, opened in one of the
/// <see cref="RegionMode"/>s.
/// </summary>
/// <remarks>
/// <para>Creation is atomic: the region is built and initialised under a hidden temporary name, then
/// <c>link</c>ed (exclusive create) or <c>rename</c>d (replace) into place. A name that opens is
/// therefore always a complete region.</para>
/// <para>Changes to an existing name (replace, recreating a stale region, unlink) take an exclusive
/// <c>flock</c> on the namespace directory and, where they act on one incarnation, check its random
/// region id under that lock: two processes that find the same stale region do not both replace it,
/// and an unlink never removes a replacement made meanwhile.</para>
/// <para>A region is stale when its creator has exited and no other process uses it (for a stream:
/// no live writer and no live reader).</para>
/// </remarks>
internal sealed unsafe class SharedRegion : IDisposable
{
    private const int MaxAttempts = 64;
    private readonly MappingHandle mapping;

    private SharedRegion(string @namespace, string name, string path, MappingHandle mapping, bool created)
    {
        Namespace = @namespace;
        Name = name;
        Path = path;
        this.mapping = mapping;
        Base = (byte*)mapping.DangerousGetHandle();
        Length = mapping.Length;
        Created = created;
        RegionId = RegionHeader.ReadRegionId(Base);
        Owner = RegionHeader.ReadOwner(Base);
    }

    public string Namespace { get; }

    public string Name { get; }

    public string Path { get; }

    public byte* Base { get; }

    public long Length { get; }

    /// <summary>True if this open created the region (rather than attaching to an existing one).</summary>
    public bool Created { get; }

    /// <summary>The random identity of this incarnation of the region.</summary>
    public ulong RegionId { get; }

    /// <summary>The process that created the region.</summary>
    public ProcessIdentity Owner { get; }

    public MappingHandle Mapping => mapping;

    public string DisplayName => $"{Namespace}/{Name}";

    /// <summary>Opens a region as <paramref name="request"/> says.</summary>
    public static SharedRegion Open(RegionRequest request)
    {
        Syscalls.EnsureSupported();
        SharedMemoryNamespace.Validate(request.Namespace, "namespace");
        SharedMemoryNamespace.Validate(request.Name, "region name");
        var path = SharedMemoryNamespace.PathOf(request.Namespace, request.Name);
        var display = $"{request.Namespace}/{request.Name}";

        switch (request.Mode)
        {
            case RegionMode.Create:
                return TryCreate(request, path, replaceId: null)
                    ?? throw new RegionExistsException(
                        $"region '{display}' already exists ({DescribeExisting(path)}); open it with mode create_or_attach or replace.");

            case RegionMode.Replace:
                return TryCreate(request, path, replaceId: AnyIncarnation)!;

            case RegionMode.Attach:
            {
                var attempt = TryAttach(request, path);
                return attempt.Outcome switch
                {
                    AttachOutcome.Attached => attempt.Region!,
                    AttachOutcome.NotFound => throw new RegionNotFoundException(
                        $"region '{display}' does not exist ({path}); create it first, or open it with mode create_or_attach."),
                    AttachOutcome.Stale => throw new StaleRegionException(attempt.Problem!),
                    _ => throw new RegionLayoutException(attempt.Problem!),
                };
            }

            case RegionMode.CreateOrAttach:
                for (var i = 0; i < MaxAttempts; i++)
                {
                    var attempt = TryAttach(request, path);
                    var region = attempt.Outcome switch
                    {
                        AttachOutcome.Attached => attempt.Region,

                        // null: someone else created it meanwhile, so attach to theirs.
                        AttachOutcome.NotFound => TryCreate(request, path, replaceId: null),

                        // null: someone else replaced or removed it meanwhile.
                        AttachOutcome.Stale => TryCreate(request, path, replaceId: attempt.RegionId),
                        _ => throw new RegionLayoutException(attempt.Problem!),
                    };
                    if (region is not null)
                    {
                        return region;
                    }
                }

                throw new SharedMemoryException($"region '{display}': gave up after {MaxAttempts} attempts while other processes kept creating and removing it.");

            default:
                throw new ArgumentOutOfRangeException(nameof(request), request.Mode, "unknown region mode");
        }
    }

    /// <summary>Removes this region's name if it still names this incarnation; returns true if removed.</summary>
    public bool UnlinkIfSame()
    {
        bool removed;
        using (NamespaceLock.Acquire(Namespace))
        {
            removed = ReadRegionId(Path) == RegionId && LibC.Unlink(Path) == 0;
        }

        SharedMemoryNamespace.RemoveDirectoryIfEmpty(Namespace);
        return removed;
    }

    /// <summary>Releases this object's reference to the mapping; the memory is unmapped when no reader or writer uses it.</summary>
    public void Dispose() => mapping.Dispose();

    /// <summary>Passed as the incarnation to replace when any incarnation (or none) may be replaced.</summary>
    private const ulong AnyIncarnation = ulong.MaxValue;

    private enum AttachOutcome
    {
        Attached,
        NotFound,
        Stale,
        Incompatible,
    }

    private readonly record struct AttachAttempt(AttachOutcome Outcome, SharedRegion? Region = null, string? Problem = null, ulong RegionId = 0);

    private static AttachAttempt TryAttach(RegionRequest request, string path)
    {
        var display = $"{request.Namespace}/{request.Name}";
        SharedMemoryNamespace.CheckTrusted(request.Namespace);
        var fd = LibC.Open(path, LibC.ORdWr | LibC.OCloExec | LibC.ONoFollow, 0);
        if (fd < 0)
        {
            var errno = LibC.Errno;
            return errno == LibC.ENoEnt
                ? new AttachAttempt(AttachOutcome.NotFound)
                : new AttachAttempt(AttachOutcome.Incompatible, Problem: $"cannot open region '{display}' ({path}): {LibC.Describe(errno)}.");
        }

        MappingHandle? mapping = null;
        try
        {
            var length = LibC.LSeek(fd, 0, LibC.SeekEnd);
            if (length < RegionHeader.Size)
            {
                return new AttachAttempt(
                    AttachOutcome.Incompatible,
                    Problem: $"'{path}' is not a Flowline region: it holds {length} bytes, fewer than a region header ({RegionHeader.Size}); remove it or open with mode replace.");
            }

            mapping = Map(fd, length, path);
            var b = (byte*)mapping.DangerousGetHandle();
            var found = Check(b, length, request, path);
            if (found.Problem is not null)
            {
                return new AttachAttempt(found.InUse ? AttachOutcome.Incompatible : AttachOutcome.Stale, Problem: found.Problem, RegionId: RegionHeader.ReadRegionId(b));
            }

            var region = new SharedRegion(request.Namespace, request.Name, path, mapping, created: false);
            mapping = null;
            return new AttachAttempt(AttachOutcome.Attached, region);
        }
        finally
        {
            mapping?.Dispose();
            LibC.Close(fd);
        }
    }

    private readonly record struct CheckResult(string? Problem, bool InUse);

    private static CheckResult Check(byte* b, long length, RegionRequest request, string path)
    {
        var display = $"{request.Namespace}/{request.Name}";
        var magic = RegionHeader.ReadMagic(b);
        if (magic != RegionHeader.Magic)
        {
            return new($"'{path}' is not a Flowline region (magic 0x{magic:X16}, expected 0x{RegionHeader.Magic:X16}); remove it or open with mode replace.", InUse: true);
        }

        var owner = RegionHeader.ReadOwner(b);
        var ownerAlive = owner.IsAlive();
        var ownerText = ownerAlive ? $"created by live {owner}" : $"created by {owner}, which has exited";
        var version = RegionHeader.ReadVersion(b);
        var kind = RegionHeader.ReadKind(b);
        var hash = RegionHeader.ReadHash(b);
        if (version != RegionHeader.LayoutVersion || kind != request.Kind || hash != request.LayoutHash)
        {
            var text =
                $"region '{display}' has layout version {version}, kind {KindName(kind)}, layout hash 0x{hash:X16} ({ownerText}); " +
                $"expected layout version {RegionHeader.LayoutVersion}, kind {KindName(request.Kind)}, layout hash 0x{request.LayoutHash:X16}. " +
                "It was made by another Flowline version or for another purpose; stop its users and open it with mode replace.";
            return new(text, ownerAlive);
        }

        var total = RegionHeader.ReadTotalBytes(b);
        if (total != length)
        {
            return new($"region '{display}' is damaged: its header records {total} bytes but the file holds {length} ({ownerText}); open it with mode replace.", ownerAlive);
        }

        // With the layout known, processes other than the creator may be found using the region.
        var user = ownerAlive ? null : request.LiveUsers?.Invoke(b, length);
        var inUse = ownerAlive || user is not null;
        if (user is not null)
        {
            ownerText += $", but {user}";
        }

        var mismatch = request.Validate?.Invoke(b, length);
        if (mismatch is not null)
        {
            return new($"region '{display}' does not match: {mismatch} ({ownerText}). Use the same definition everywhere, or open it with mode replace.", inUse);
        }

        if (!inUse && request.Mode == RegionMode.Attach)
        {
            return new($"region '{display}' was {ownerText}: nothing keeps it up to date. Start the pipeline that owns it, or open it with mode create_or_attach to recreate it.", InUse: false);
        }

        return inUse ? default : new($"region '{display}' is stale ({ownerText}).", InUse: false);
    }

    /// <summary>
    /// Builds a region under a temporary name and puts it in place: exclusively when
    /// <paramref name="replaceId"/> is null (null if the name exists), otherwise by replacing the
    /// incarnation <paramref name="replaceId"/> (null if the name now holds another, or nothing) or any
    /// incarnation (<see cref="AnyIncarnation"/>).
    /// </summary>
    private static SharedRegion? TryCreate(RegionRequest request, string path, ulong? replaceId)
    {
        if (request.Initialize is null || request.CreateBytes < RegionHeader.Size)
        {
            throw new ArgumentException($"region '{request.Namespace}/{request.Name}' cannot be created without its size and layout.", nameof(request));
        }

        for (var attempt = 0; ; attempt++)
        {
            var dir = SharedMemoryNamespace.EnsureDirectory(request.Namespace);
            var tmp = System.IO.Path.Combine(dir, $".{request.Name}.{Environment.ProcessId}.{Environment.CurrentManagedThreadId}.tmp");
            MappingHandle mapping;
            try
            {
                mapping = Build(request, tmp);
            }
            catch (DirectoryNotFoundException) when (attempt < MaxAttempts)
            {
                continue; // The namespace directory was removed under us: make it again.
            }

            try
            {
                int rc;
                if (replaceId is not { } expected)
                {
                    rc = LibC.Link(tmp, path);
                }
                else
                {
                    using var _ = NamespaceLock.Acquire(request.Namespace);
                    if (expected != AnyIncarnation && ReadRegionId(path) != expected)
                    {
                        mapping.Dispose();
                        return null;
                    }

                    rc = LibC.Rename(tmp, path);
                }

                if (rc != 0)
                {
                    var errno = LibC.Errno;
                    mapping.Dispose();
                    if (errno == LibC.EExist && replaceId is null)
                    {
                        return null;
                    }

                    if (errno == LibC.ENoEnt && attempt < MaxAttempts)
                    {
                        continue;
                    }

                    throw new SharedMemoryException($"cannot create region '{request.Namespace}/{request.Name}' ({path}): {LibC.Describe(errno)}.");
                }

                return new SharedRegion(request.Namespace, request.Name, path, mapping, created: true);
            }
            finally
            {
                _ = LibC.Unlink(tmp);
            }
        }
    }

    /// <summary>Creates, sizes, maps and initialises a temporary region file; removes it again if any step fails.</summary>
    private static MappingHandle Build(RegionRequest request, string tmp)
    {
        var fd = LibC.Open(tmp, LibC.ORdWr | LibC.OCreat | LibC.OExcl | LibC.OCloExec, 0b110_000_000);
        if (fd < 0 && LibC.Errno == LibC.EExist)
        {
            // A temporary file left by a killed process that had our pid and thread: remove it and retry.
            _ = LibC.Unlink(tmp);
            fd = LibC.Open(tmp, LibC.ORdWr | LibC.OCreat | LibC.OExcl | LibC.OCloExec, 0b110_000_000);
        }

        if (fd < 0)
        {
            var errno = LibC.Errno;
            if (errno == LibC.ENoEnt)
            {
                throw new DirectoryNotFoundException(tmp);
            }

            throw new SharedMemoryException($"cannot create region '{request.Namespace}/{request.Name}' in {System.IO.Path.GetDirectoryName(tmp)}: {LibC.Describe(errno)}.");
        }

        MappingHandle? mapping = null;
        var built = false;
        try
        {
            // Reserve the memory now: a full /dev/shm then fails here with a message, not later with SIGBUS.
            var rc = LibC.PosixFallocate(fd, 0, request.CreateBytes);
            if (rc != 0)
            {
                throw new SharedMemoryException(
                    $"cannot create region '{request.Namespace}/{request.Name}' of {request.CreateBytes:N0} bytes: {LibC.Describe(rc)} " +
                    $"(is {SharedMemoryNamespace.Root} full? `df -h /dev/shm` shows its free space).");
            }

            mapping = Map(fd, request.CreateBytes, tmp);
            var b = (byte*)mapping.DangerousGetHandle();
            request.Initialize!(b, request.CreateBytes);
            RegionHeader.Write(b, request.Kind, request.LayoutHash, request.CreateBytes, NewRegionId());
            built = true;
            return mapping;
        }
        finally
        {
            if (!built)
            {
                mapping?.Dispose();
                _ = LibC.Unlink(tmp);
            }

            LibC.Close(fd);
        }
    }

    /// <summary>Maps a whole region, pre-faulting every page so that no fault happens on the data path.</summary>
    private static MappingHandle Map(int fd, long length, string path)
    {
        var address = LibC.MMap(0, (nuint)length, LibC.ProtRead | LibC.ProtWrite, LibC.MapShared | LibC.MapPopulate, fd, 0);
        if (address == LibC.MapFailed)
        {
            var errno = LibC.Errno;
            throw new SharedMemoryException($"cannot map {path} ({length:N0} bytes): {LibC.Describe(errno)}.");
        }

        return new MappingHandle(address, length);
    }

    /// <summary>The region id of the file at <paramref name="path"/> now, or 0 if it cannot be read.</summary>
    internal static ulong ReadRegionId(string path)
    {
        var fd = LibC.Open(path, LibC.ORdOnly | LibC.OCloExec | LibC.ONoFollow | LibC.ONonBlock, 0);
        if (fd < 0)
        {
            return 0;
        }

        try
        {
            ulong id = 0;
            return LibC.PRead(fd, (byte*)&id, sizeof(ulong), RegionHeader.RegionIdOffset) == sizeof(ulong) ? id : 0;
        }
        finally
        {
            LibC.Close(fd);
        }
    }

    private static ulong NewRegionId()
    {
        Span<byte> bytes = stackalloc byte[8];
        RandomNumberGenerator.Fill(bytes);
        var id = BitConverter.ToUInt64(bytes) | 1; // never 0, which means "unreadable"
        return id == AnyIncarnation ? id - 2 : id;
    }

    private static string DescribeExisting(string path)
    {
        var fd = LibC.Open(path, LibC.ORdOnly | LibC.OCloExec | LibC.ONoFollow | LibC.ONonBlock, 0);
        if (fd < 0)
        {
            return "unreadable";
        }

        try
        {
            Span<byte> header = stackalloc byte[RegionHeader.Size];
            fixed (byte* h = header)
            {
                if (LibC.PRead(fd, h, RegionHeader.Size, 0) != RegionHeader.Size || RegionHeader.ReadMagic(h) != RegionHeader.Magic)
                {
                    return "not a Flowline region";
                }

                var owner = RegionHeader.ReadOwner(h);
                return $"{KindName(RegionHeader.ReadKind(h))}, created by {owner}{(owner.IsAlive() ? ", alive" : ", which has exited")}";
            }
        }
        finally
        {
            LibC.Close(fd);
        }
    }

    private static string KindName(RegionKind kind) => kind switch
    {
        RegionKind.Stream => "stream",
        RegionKind.Event => "event",
        RegionKind.Probe => "probe",
        RegionKind.ControlBlock => "control block",
        RegionKind.Profile => "profile block",
        _ => $"unknown ({(int)kind})",
    };
}
