using System.Security.Cryptography;
using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Liveness;

namespace Flowline.SharedMemory.Regions;

/// <summary>Fills a new region's body (after the header) before it becomes visible.</summary>
internal unsafe delegate void RegionInitializer(byte* region, long length);

/// <summary>Checks an existing region's body; returns what does not match, or null if it matches.</summary>
internal unsafe delegate string? RegionValidator(byte* region, long length);

/// <summary>What to open and how.</summary>
internal sealed record RegionRequest(
    string Namespace,
    string Name,
    RegionMode Mode,
    RegionKind Kind,
    ulong LayoutHash,
    long CreateBytes,
    RegionInitializer? Initialize,
    RegionValidator? Validate);

/// <summary>
/// A mapped region file under <c>/dev/shm/flowline/&lt;namespace&gt;/</c>, opened in one of the
/// <see cref="RegionMode"/>s.
/// </summary>
/// <remarks>
/// <para>Creation is atomic: the region is built and initialised under a hidden temporary name, then
/// <c>link</c>ed (exclusive create) or <c>rename</c>d (replace) into place. A name that opens is
/// therefore always a complete region.</para>
/// <para>A stale region (its creator died) is replaced under an exclusive <c>flock</c> on the stale
/// file, after checking that the name still refers to the same incarnation (its random region id), so
/// two processes that find the same stale region do not both replace it.</para>
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
                return TryCreate(request, path, replace: false)
                    ?? throw new RegionExistsException(
                        $"region '{display}' already exists ({DescribeExisting(path)}); open it with mode create_or_attach or replace.");

            case RegionMode.Replace:
                return TryCreate(request, path, replace: true)!;

            case RegionMode.Attach:
            {
                var outcome = TryAttach(request, path, out var region, out var problem);
                return outcome switch
                {
                    AttachOutcome.Attached => region!,
                    AttachOutcome.NotFound => throw new RegionNotFoundException(
                        $"region '{display}' does not exist ({path}); create it first, or open it with mode create_or_attach."),
                    AttachOutcome.Stale => throw new StaleRegionException(problem!),
                    _ => throw new RegionLayoutException(problem!),
                };
            }

            case RegionMode.CreateOrAttach:
                for (var attempt = 0; attempt < MaxAttempts; attempt++)
                {
                    var outcome = TryAttach(request, path, out var region, out var problem);
                    switch (outcome)
                    {
                        case AttachOutcome.Attached:
                            return region!;
                        case AttachOutcome.NotFound:
                            region = TryCreate(request, path, replace: false);
                            if (region is not null)
                            {
                                return region;
                            }

                            break; // Someone else created it meanwhile: attach to theirs.
                        case AttachOutcome.Stale:
                            region = TryReplaceStale(request, path);
                            if (region is not null)
                            {
                                return region;
                            }

                            break; // Someone else replaced it meanwhile.
                        default:
                            throw new RegionLayoutException(problem!);
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
        var fd = LibC.Open(Path, LibC.ORdOnly | LibC.OCloExec, 0);
        if (fd < 0)
        {
            return false;
        }

        try
        {
            if (ReadRegionId(fd) != RegionId)
            {
                return false;
            }
        }
        finally
        {
            LibC.Close(fd);
        }

        var removed = LibC.Unlink(Path) == 0;
        SharedMemoryNamespace.RemoveDirectoryIfEmpty(Namespace);
        return removed;
    }

    /// <summary>Releases this object's reference to the mapping; the memory is unmapped when no reader or writer uses it.</summary>
    public void Dispose() => mapping.Dispose();

    private enum AttachOutcome
    {
        Attached,
        NotFound,
        Stale,
        Incompatible,
    }

    private static AttachOutcome TryAttach(RegionRequest request, string path, out SharedRegion? region, out string? problem)
    {
        region = null;
        problem = null;
        var display = $"{request.Namespace}/{request.Name}";
        var fd = LibC.Open(path, LibC.ORdWr | LibC.OCloExec, 0);
        if (fd < 0)
        {
            var errno = LibC.Errno;
            if (errno == LibC.ENoEnt)
            {
                return AttachOutcome.NotFound;
            }

            problem = $"cannot open region '{display}' ({path}): {LibC.Describe(errno)}.";
            return AttachOutcome.Incompatible;
        }

        MappingHandle? mapping = null;
        try
        {
            var length = LibC.LSeek(fd, 0, LibC.SeekEnd);
            if (length < RegionHeader.Size)
            {
                problem = $"'{path}' is not a Flowline region: it holds {length} bytes, fewer than a region header ({RegionHeader.Size}); remove it or open with mode replace.";
                return AttachOutcome.Incompatible;
            }

            mapping = Map(fd, length, populate: false, path);
            var b = (byte*)mapping.DangerousGetHandle();
            var found = Check(b, length, request, path);
            if (found.Problem is not null)
            {
                problem = found.Problem;
                var outcome = found.OwnerAlive ? AttachOutcome.Incompatible : AttachOutcome.Stale;
                mapping.Dispose();
                mapping = null;
                return outcome;
            }

            region = new SharedRegion(request.Namespace, request.Name, path, mapping, created: false);
            mapping = null;
            return AttachOutcome.Attached;
        }
        finally
        {
            mapping?.Dispose();
            LibC.Close(fd);
        }
    }

    private readonly record struct CheckResult(string? Problem, bool OwnerAlive);

    private static CheckResult Check(byte* b, long length, RegionRequest request, string path)
    {
        var display = $"{request.Namespace}/{request.Name}";
        var magic = RegionHeader.ReadMagic(b);
        if (magic != RegionHeader.Magic)
        {
            return new($"'{path}' is not a Flowline region (magic 0x{magic:X16}, expected 0x{RegionHeader.Magic:X16}); remove it or open with mode replace.", OwnerAlive: true);
        }

        var owner = RegionHeader.ReadOwner(b);
        var alive = owner.IsAlive();
        var ownerText = alive ? $"created by live {owner}" : $"created by {owner}, which has exited";
        var version = RegionHeader.ReadVersion(b);
        var kind = RegionHeader.ReadKind(b);
        var hash = RegionHeader.ReadHash(b);
        if (version != RegionHeader.LayoutVersion || kind != request.Kind || hash != request.LayoutHash)
        {
            var text =
                $"region '{display}' has layout version {version}, kind {KindName(kind)}, layout hash 0x{hash:X16} ({ownerText}); " +
                $"expected layout version {RegionHeader.LayoutVersion}, kind {KindName(request.Kind)}, layout hash 0x{request.LayoutHash:X16}. " +
                "It was made by another Flowline version or for another purpose; stop its users and open it with mode replace.";
            return new(text, alive);
        }

        var total = RegionHeader.ReadTotalBytes(b);
        if (total != length)
        {
            return new($"region '{display}' is damaged: its header records {total} bytes but the file holds {length} ({ownerText}); open it with mode replace.", alive);
        }

        var mismatch = request.Validate?.Invoke(b, length);
        if (mismatch is not null)
        {
            return new($"region '{display}' does not match: {mismatch} ({ownerText}). Use the same definition everywhere, or open it with mode replace.", alive);
        }

        if (!alive && request.Mode == RegionMode.Attach)
        {
            return new($"region '{display}' was {ownerText}: nothing keeps it up to date. Start the pipeline that owns it, or open it with mode create_or_attach to recreate it.", OwnerAlive: false);
        }

        return alive ? default : new($"region '{display}' is stale ({ownerText}).", OwnerAlive: false);
    }

    private static SharedRegion? TryCreate(RegionRequest request, string path, bool replace)
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
                var rc = replace ? LibC.Rename(tmp, path) : LibC.Link(tmp, path);
                if (rc != 0)
                {
                    var errno = LibC.Errno;
                    if (errno == LibC.EExist && !replace)
                    {
                        mapping.Dispose();
                        return null;
                    }

                    if (errno == LibC.ENoEnt && attempt < MaxAttempts)
                    {
                        mapping.Dispose();
                        continue;
                    }

                    mapping.Dispose();
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

    private static SharedRegion? TryReplaceStale(RegionRequest request, string path)
    {
        var fd = LibC.Open(path, LibC.ORdOnly | LibC.OCloExec, 0);
        if (fd < 0)
        {
            return null;
        }

        try
        {
            var observed = ReadRegionId(fd);
            if (LibC.Flock(fd, LibC.LockEx) != 0)
            {
                return null;
            }

            // Under the lock, check the name still refers to the stale incarnation we looked at.
            var check = LibC.Open(path, LibC.ORdOnly | LibC.OCloExec, 0);
            if (check < 0)
            {
                return null;
            }

            try
            {
                if (ReadRegionId(check) != observed)
                {
                    return null;
                }
            }
            finally
            {
                LibC.Close(check);
            }

            return TryCreate(request, path, replace: true);
        }
        finally
        {
            LibC.Close(fd); // Closing releases the lock.
        }
    }

    private static MappingHandle Build(RegionRequest request, string tmp)
    {
        var fd = LibC.Open(tmp, LibC.ORdWr | LibC.OCreat | LibC.OExcl | LibC.OCloExec, 0b110_000_000);
        if (fd < 0)
        {
            var errno = LibC.Errno;
            if (errno == LibC.ENoEnt)
            {
                throw new DirectoryNotFoundException(tmp);
            }

            if (errno == LibC.EExist)
            {
                // A temporary file left by a killed process that had our pid: remove it and retry.
                _ = LibC.Unlink(tmp);
                fd = LibC.Open(tmp, LibC.ORdWr | LibC.OCreat | LibC.OExcl | LibC.OCloExec, 0b110_000_000);
            }

            if (fd < 0)
            {
                errno = LibC.Errno;
                throw new SharedMemoryException($"cannot create region '{request.Namespace}/{request.Name}' in {System.IO.Path.GetDirectoryName(tmp)}: {LibC.Describe(errno)}.");
            }
        }

        MappingHandle? mapping = null;
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

            mapping = Map(fd, request.CreateBytes, populate: true, tmp);
            var b = (byte*)mapping.DangerousGetHandle();
            request.Initialize!(b, request.CreateBytes);
            RegionHeader.Write(b, request.Kind, request.LayoutHash, request.CreateBytes, NewRegionId());
            var result = mapping;
            mapping = null;
            return result;
        }
        finally
        {
            mapping?.Dispose();
            LibC.Close(fd);
        }
    }

    private static MappingHandle Map(int fd, long length, bool populate, string path)
    {
        var flags = LibC.MapShared | (populate ? LibC.MapPopulate : 0);
        var address = LibC.MMap(0, (nuint)length, LibC.ProtRead | LibC.ProtWrite, flags, fd, 0);
        if (address == LibC.MapFailed)
        {
            var errno = LibC.Errno;
            throw new SharedMemoryException($"cannot map {path} ({length:N0} bytes): {LibC.Describe(errno)}.");
        }

        return new MappingHandle(address, length);
    }

    private static ulong ReadRegionId(int fd)
    {
        ulong id = 0;
        return LibC.PRead(fd, (byte*)&id, sizeof(ulong), RegionHeader.RegionIdOffset) == sizeof(ulong) ? id : 0;
    }

    private static ulong NewRegionId()
    {
        Span<byte> bytes = stackalloc byte[8];
        RandomNumberGenerator.Fill(bytes);
        return BitConverter.ToUInt64(bytes) | 1; // never 0, which means "unreadable"
    }

    private static string DescribeExisting(string path)
    {
        var fd = LibC.Open(path, LibC.ORdOnly | LibC.OCloExec, 0);
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
        _ => $"unknown ({(int)kind})",
    };
}
