using System.Runtime.CompilerServices;
using System.Text;
using Flowline.SharedMemory.Interop;
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

/// <summary>One per-frame trace record (opt-in traces, decision 94).</summary>
/// <param name="Input">The worker's input index the frame came on.</param>
/// <param name="Sequence">The frame's sequence in its stream.</param>
/// <param name="FrameId">The frame's id.</param>
/// <param name="PublishNs">When its writer published it (<see cref="MonotonicClock"/>, ns).</param>
/// <param name="ReadNs">When the worker took it.</param>
/// <param name="ComputeNs">The node's compute time for it.</param>
public readonly record struct TraceRecord(int Input, long Sequence, ulong FrameId, long PublishNs, long ReadNs, long ComputeNs);

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
///  T       128             trace control: i32 enabled, i32 every, i64 until ns,   manager
///                            u32 input mask
///  T+128   128             trace cursor: i64 records written                     worker
///  T+256   64 x 4096       trace ring: +0 i64 stamp (record number + 1, last),    worker
///                            +8 i32 input, +16 i64 sequence, +24 u64 frame id,
///                            +32 i64 publish ns, +40 i64 read ns, +48 i64 compute ns
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
    private const long TraceControlOffset = EntriesOffset + ((long)EntryCount * EntryBytes);
    private const long TraceCursorOffset = TraceControlOffset + 128;
    private const long TraceRingOffset = TraceCursorOffset + 128;
    private const int TraceRecordBytes = 64;
    private const long TotalBytes = TraceRingOffset + ((long)TraceCapacity * TraceRecordBytes);

    /// <summary>Records the trace ring holds; a reader more than this behind loses the oldest.</summary>
    public const int TraceCapacity = 4096;

    private static readonly string Signature =
        RegionHeader.Signature + $";profile:desc@{DescriptorOffset},entries@{EntriesOffset}x{EntryCount}x{EntryBytes}(seq@{SequenceOffset},kind@{KindOffset},reader@{ReaderIndexOffset}," +
        $"name@{NameLengthOffset}+{NameOffset}x{NameCapacity},length@{LengthOffset},data@{DataOffset}),trace@{TraceControlOffset}(cursor@{TraceCursorOffset},ring@{TraceRingOffset}x{TraceCapacity}x{TraceRecordBytes});encoding=hdr-v2";

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

    /// <summary>Switches the worker's traces on until <paramref name="untilNs"/> (<see cref="MonotonicClock"/>) for the inputs of <paramref name="inputMask"/>, every <paramref name="every"/>-th frame; or off. The manager's side.</summary>
    public void SetTrace(bool enabled, int every = 1, long untilNs = 0, uint inputMask = 0)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentOutOfRangeException.ThrowIfLessThan(every, 1);
        var control = region.Base + TraceControlOffset;
        Ordered.PutIntOrdered(control, 0);
        Ordered.PutInt(control + 4, every);
        Ordered.PutLongOrdered(control + 8, untilNs);
        Ordered.PutUInt(control + 16, inputMask);
        Ordered.PutIntVolatile(control, enabled ? 1 : 0);
    }

    /// <summary>Whether the manager switched traces on (one load of a shared word; the time limit is not checked).</summary>
    public bool TraceEnabled => Ordered.GetIntVolatile(region.Base + TraceControlOffset) != 0;

    /// <summary>Whether traces are on now (one load while they are off); with the settings when they are. The worker's side.</summary>
    public bool TraceActive(long nowNs, out int every, out uint inputMask)
    {
        var control = region.Base + TraceControlOffset;
        if (Ordered.GetIntVolatile(control) == 0 || nowNs > Ordered.GetLongVolatile(control + 8))
        {
            every = 0;
            inputMask = 0;
            return false;
        }

        every = Math.Max(1, Ordered.GetInt(control + 4));
        inputMask = Ordered.GetUInt(control + 16);
        return true;
    }

    /// <summary>Records written into the trace ring so far.</summary>
    public long TraceCursor => Ordered.GetLongVolatile(region.Base + TraceCursorOffset);

    /// <summary>Appends <paramref name="record"/> to the trace ring (one writer: the worker; never waits, overwrites the oldest).</summary>
    public void WriteTrace(in TraceRecord record)
    {
        var cursor = region.Base + TraceCursorOffset;
        var n = Ordered.GetLong(cursor); // only this worker writes it
        var slot = region.Base + TraceRingOffset + ((n % TraceCapacity) * TraceRecordBytes);
        Ordered.PutLongVolatile(slot, 0); // torn while 0; a full fence, so no field store is seen before it
        Ordered.PutInt(slot + 8, record.Input);
        Ordered.PutLong(slot + 16, record.Sequence);
        Ordered.PutULong(slot + 24, record.FrameId);
        Ordered.PutLong(slot + 32, record.PublishNs);
        Ordered.PutLong(slot + 40, record.ReadNs);
        Ordered.PutLong(slot + 48, record.ComputeNs);
        Ordered.PutLongOrdered(slot, n + 1);
        Ordered.PutLongOrdered(cursor, n + 1);
    }

    /// <summary>
    /// Reads the trace records from number <paramref name="from"/> on into <paramref name="into"/>; returns the
    /// number to read from next time. Records overwritten before they were read are counted in
    /// <paramref name="lost"/>. Any number of readers may read, each with its own position: nothing is consumed.
    /// </summary>
    public long ReadTraces(long from, List<TraceRecord> into, out long lost)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentNullException.ThrowIfNull(into);
        var end = TraceCursor;
        lost = 0;
        if (from > end)
        {
            from = end; // the worker restarted with a new block: start again from its cursor
        }

        if (end - from > TraceCapacity)
        {
            lost = end - from - TraceCapacity;
            from = end - TraceCapacity;
        }

        for (var n = from; n < end; n++)
        {
            var slot = region.Base + TraceRingOffset + ((n % TraceCapacity) * TraceRecordBytes);
            if (Ordered.GetLongVolatile(slot) != n + 1)
            {
                lost++;
                continue;
            }

            var record = new TraceRecord(Ordered.GetInt(slot + 8), Ordered.GetLong(slot + 16), Ordered.GetULong(slot + 24), Ordered.GetLong(slot + 32), Ordered.GetLong(slot + 40), Ordered.GetLong(slot + 48));
            Interlocked.MemoryBarrier();
            if (Ordered.GetLongVolatile(slot) != n + 1)
            {
                lost++; // overwritten while copied
                continue;
            }

            into.Add(record);
        }

        return end;
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
        Ordered.PutInt(b + DescriptorOffset, EntryCount);
        Ordered.PutInt(b + DescriptorOffset + 4, EntryBytes);
    }

    private byte* Entry(int index) => region.Base + EntriesOffset + ((long)index * EntryBytes);

    private static ref int Int(byte* entry, int offset) => ref Unsafe.AsRef<int>(entry + offset);

    private static ref long Long(byte* entry, int offset) => ref Unsafe.AsRef<long>(entry + offset);
}
