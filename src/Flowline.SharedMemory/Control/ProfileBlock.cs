using System.Runtime.CompilerServices;
using System.Text;
using Flowline.SharedMemory.Regions;
using Flowline.SharedMemory.Waiting;

namespace Flowline.SharedMemory;

/// <summary>What a profile entry measures.</summary>
public enum ProfileEntryKind
{
    /// <summary>A free entry.</summary>
    None = 0,

    /// <summary>The latency of an input's frames: when the worker took the frame, minus the frame's origin timestamp.</summary>
    InputLatency = 1,

    /// <summary>The node's compute time per frame.</summary>
    Compute = 2,
}

/// <summary>One histogram read from a profile block: what it measures and its encoded bytes.</summary>
/// <param name="Kind">What it measures.</param>
/// <param name="Name">The stream (input latency) or the node (compute time).</param>
/// <param name="ReaderIndex">The worker's reader entry in the stream's reader table (input latency), or -1.</param>
/// <param name="Encoded">The histogram in HdrHistogram's V2 encoding (uncompressed).</param>
public sealed record ProfileEntry(ProfileEntryKind Kind, string Name, int ReaderIndex, byte[] Encoded);

/// <summary>
/// A worker's profile block in shared memory (decision 90): a fixed table of entries, each one histogram
/// encoded by the worker a few times a second under a seqlock and decoded by the manager when it is asked.
/// The block holds bytes only; what they encode is the runtime's business (HdrHistogram's V2 format).
/// </summary>
/// <remarks>
/// <code>
///  offset  size            what                                            written by
///  0       128             region header                                   creator
///  128     128             descriptor: i32 entries, i32 entry bytes        creator
///  256     entry x count   entries:
///                            +0   i64 seqlock sequence (odd while written)  worker
///                            +8   i32 kind, +12 i32 reader index
///                            +16  i32 name length, +20 name (UTF-8, 64)
///                            +84  i32 encoded length
///                            +128 encoded histogram (entry bytes - 128)
/// </code>
/// </remarks>
public sealed unsafe class ProfileBlock : IDisposable
{
    /// <summary>Entries in a block: every input of a node and its compute time.</summary>
    public const int EntryCount = 16;

    /// <summary>The bytes of one entry.</summary>
    public const int EntryBytes = 16_384;

    /// <summary>The bytes an entry has for its encoded histogram.</summary>
    public const int EncodedCapacity = EntryBytes - DataOffset;

    /// <summary>The longest name, in UTF-8 bytes.</summary>
    public const int NameCapacity = 64;

    private const int DescriptorOffset = RegionHeader.Size;
    private const int EntriesOffset = DescriptorOffset + 128;
    private const int SequenceOffset = 0;
    private const int KindOffset = 8;
    private const int ReaderIndexOffset = 12;
    private const int NameLengthOffset = 16;
    private const int NameOffset = 20;
    private const int LengthOffset = 84;
    private const int DataOffset = 128;
    private const long TotalBytes = EntriesOffset + ((long)EntryCount * EntryBytes);

    private static readonly string Signature =
        RegionHeader.Signature + $";profile:desc@{DescriptorOffset},entries@{EntriesOffset}x{EntryCount}x{EntryBytes}(seq@{SequenceOffset},kind@{KindOffset},reader@{ReaderIndexOffset}," +
        $"name@{NameLengthOffset}+{NameOffset}x{NameCapacity},length@{LengthOffset},data@{DataOffset});encoding=hdr-v2";

    private static readonly ulong LayoutHash = RegionHeader.Hash(Signature);

    private readonly SharedRegion region;
    private bool disposed;

    private ProfileBlock(SharedRegion region)
    {
        this.region = region;
        region.Mapping.AddReference();
    }

    /// <summary>The region's name.</summary>
    public string Name => region.Name;

    /// <summary>The name of the profile block beside control block <paramref name="controlName"/>.</summary>
    public static string NameFor(string controlName) => controlName + ".profile";

    /// <summary>Creates (or replaces) an empty profile block.</summary>
    public static ProfileBlock Create(string @namespace, string name) => Open(@namespace, name, RegionMode.Replace);

    /// <summary>Attaches to a profile block made by the manager.</summary>
    public static ProfileBlock Attach(string @namespace, string name) => Open(@namespace, name, RegionMode.Attach);

    /// <summary>
    /// Claims entry <paramref name="index"/> for a histogram of <paramref name="kind"/> named
    /// <paramref name="name"/> (cut to 64 bytes); it holds nothing until <see cref="Publish"/>.
    /// </summary>
    public void Describe(int index, ProfileEntryKind kind, string name, int readerIndex = -1)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, EntryCount);
        ArgumentNullException.ThrowIfNull(name);
        var entry = Entry(index);
        ref var sequence = ref Long(entry, SequenceOffset);
        var s = Volatile.Read(ref sequence) & ~1L;
        Interlocked.Exchange(ref sequence, s + 1);
        var bytes = Encoding.UTF8.GetBytes(name);
        var length = Math.Min(bytes.Length, NameCapacity);
        bytes.AsSpan(0, length).CopyTo(new Span<byte>(entry + NameOffset, NameCapacity));
        Int(entry, NameLengthOffset) = length;
        Int(entry, ReaderIndexOffset) = readerIndex;
        Int(entry, LengthOffset) = 0;
        Int(entry, KindOffset) = (int)kind;
        Interlocked.Exchange(ref sequence, s + 2);
    }

    /// <summary>
    /// Publishes entry <paramref name="index"/>'s encoded histogram under its seqlock; false (and nothing
    /// changes) if it is longer than <see cref="EncodedCapacity"/>. One writer per entry: the worker.
    /// </summary>
    public bool Publish(int index, ReadOnlySpan<byte> encoded)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, EntryCount);
        if (encoded.Length > EncodedCapacity)
        {
            return false;
        }

        var entry = Entry(index);
        ref var sequence = ref Long(entry, SequenceOffset);
        var s = Volatile.Read(ref sequence) & ~1L;
        Interlocked.Exchange(ref sequence, s + 1);
        encoded.CopyTo(new Span<byte>(entry + DataOffset, EncodedCapacity));
        Int(entry, LengthOffset) = encoded.Length;
        Interlocked.Exchange(ref sequence, s + 2);
        return true;
    }

    /// <summary>Every described entry with its last published histogram (entries still empty or written through every retry are left out).</summary>
    public IReadOnlyList<ProfileEntry> Read()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var entries = new List<ProfileEntry>();
        for (var i = 0; i < EntryCount; i++)
        {
            if (TryRead(i) is { } entry)
            {
                entries.Add(entry);
            }
        }

        return entries;
    }

    /// <summary>Lets go of the region.</summary>
    public void Dispose()
    {
        if (!disposed)
        {
            disposed = true;
            region.Mapping.DangerousRelease();
            region.Dispose();
        }
    }

    /// <summary>Removes the block's name.</summary>
    public bool Unlink() => region.UnlinkIfSame();

    private ProfileEntry? TryRead(int index)
    {
        var entry = Entry(index);
        ref var sequence = ref Long(entry, SequenceOffset);
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var before = Volatile.Read(ref sequence);
            if ((before & 1) != 0)
            {
                Waiter.Pause();
                continue;
            }

            var kind = (ProfileEntryKind)Volatile.Read(ref Int(entry, KindOffset));
            var length = Math.Clamp(Volatile.Read(ref Int(entry, LengthOffset)), 0, EncodedCapacity);
            if (kind == ProfileEntryKind.None || length == 0)
            {
                return null;
            }

            var nameLength = Math.Clamp(Int(entry, NameLengthOffset), 0, NameCapacity);
            var name = Encoding.UTF8.GetString(new ReadOnlySpan<byte>(entry + NameOffset, nameLength));
            var readerIndex = Int(entry, ReaderIndexOffset);
            var data = new ReadOnlySpan<byte>(entry + DataOffset, length).ToArray();
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref sequence) == before)
            {
                return new ProfileEntry(kind, name, readerIndex, data);
            }
        }

        return null;
    }

    private static ProfileBlock Open(string @namespace, string name, RegionMode mode)
    {
        var region = SharedRegion.Open(new RegionRequest(@namespace, name, mode, RegionKind.Profile, LayoutHash, TotalBytes, Initialize, null));
        return new ProfileBlock(region);
    }

    private static void Initialize(byte* b, long length)
    {
        *(int*)(b + DescriptorOffset) = EntryCount;
        *(int*)(b + DescriptorOffset + 4) = EntryBytes;
    }

    private byte* Entry(int index) => region.Base + EntriesOffset + ((long)index * EntryBytes);

    private static ref int Int(byte* entry, int offset) => ref Unsafe.AsRef<int>(entry + offset);

    private static ref long Long(byte* entry, int offset) => ref Unsafe.AsRef<long>(entry + offset);
}
