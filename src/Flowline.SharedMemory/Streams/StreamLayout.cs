using System.Runtime.CompilerServices;
using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Regions;

namespace Flowline.SharedMemory.Streams;

/// <summary>
/// Every offset of a stream region. One writer, a table of readers, a ring of fixed-size slots.
/// </summary>
/// <remarks>
/// <code>
///  offset  size            what                                  written by        read by
///  ------  --------------  ------------------------------------  ----------------  -----------------
///  0       128             region header (RegionHeader)          creator           everyone
///  128     128             descriptor (immutable)                creator           everyone
///                            +0  u8   element type
///                            +1  u8   rank
///                            +4  u32  capacity (frames, 2^k)
///                            +8  u32  max readers
///                            +16 i64  frame bytes
///                            +24 i64  slot bytes
///                            +32 i32[8] shape
///  256     128             cursor line                           writer            readers
///                            +0  i64  cursor = frames published
///  384     128             writer line                           writer, readers   readers, writer
///                            +0  u64  writer owner word (state | pid | start time)
///                            +8  i64  writer epoch (attach count)
///                            +16 i64  waits for space
///                            +24 i64  dead readers reclaimed
///                            +32 i64  time blocked waiting for space (ns, profiling counter)
///                            +40 u64  latest readers: bit i set while entry i reads with latest delivery
///  512     128             data signal line                      writer, readers   readers
///                            +0  i32  futex word: bumped to wake readers
///                            +4  i32  sleeping readers
///  640     128             space signal line                     readers, writer   writer
///                            +0  i32  futex word: bumped to wake the writer
///                            +4  i32  writer sleeping (0 or 1)
///  768     128 x readers   reader table, one entry per reader
///                            +0  i64  position = next sequence to read     (reader; writer reads)
///                            +8  i64  hold: 1 + the slot a latest reader is reading, 0 for none
///                                     (reader; writer reads; the writer never fills a held slot)
///                            +64 u64  owner word (state | pid | start time)
///                            +72 i64  frames skipped (latest delivery)
///                            +80 i64  frames read
///                            +88 i64  torn copies discarded (latest delivery)
///                            +96 i32  sleeping: 1 while counted in the data signal's sleepers
///                            +104 i64 time waiting for input (ns, profiling counter)
///  M       4 x capacity    slot map: entry s mod capacity = the slot that holds frame s,
///          (to a multiple       written by the writer before it publishes s   (writer; readers read)
///          of 128)
///  S       slot x capacity slots; the writer fills a slot that is not held, not the newest frame's,
///                          and holds no frame a lossless reader still needs
///                            +0  i64  sequence (-1 while the writer claims or fills the slot)
///                            +8  u64  frame id
///                            +16 i64  publish timestamp (ns)
///                            +24 i64  origin timestamp (ns)
///                            +64      payload (frame bytes), then padding to a multiple of 64
/// </code>
/// Every line that two sides write sits on its own 128-byte pair of cache lines (the adjacent-line
/// prefetcher pulls lines in pairs). Slots are contiguous, so a frame never straddles the ring's end.
/// </remarks>
internal static class StreamLayout
{
    public const int LineBytes = 128;
    public const int SlotHeaderBytes = 64;
    public const int SlotAlignment = 64;

    public const int DescriptorOffset = RegionHeader.Size;
    public const int ElementTypeOffset = DescriptorOffset + 0;
    public const int RankOffset = DescriptorOffset + 1;
    public const int CapacityOffset = DescriptorOffset + 4;
    public const int MaxReadersOffset = DescriptorOffset + 8;
    public const int FrameBytesOffset = DescriptorOffset + 16;
    public const int SlotBytesOffset = DescriptorOffset + 24;
    public const int ShapeOffset = DescriptorOffset + 32;

    public const int CursorOffset = DescriptorOffset + LineBytes;
    public const int WriterLineOffset = CursorOffset + LineBytes;
    public const int WriterOwnerOffset = WriterLineOffset + 0;
    public const int WriterEpochOffset = WriterLineOffset + 8;
    public const int SpaceWaitsOffset = WriterLineOffset + 16;
    public const int ReclaimedReadersOffset = WriterLineOffset + 24;
    public const int WriterBlockedNsOffset = WriterLineOffset + 32;
    public const int LatestReadersOffset = WriterLineOffset + 40;
    public const int DataSignalOffset = WriterLineOffset + LineBytes;
    public const int DataSleepersOffset = DataSignalOffset + 4;
    public const int SpaceSignalOffset = DataSignalOffset + LineBytes;
    public const int SpaceSleepersOffset = SpaceSignalOffset + 4;
    public const int ReaderTableOffset = SpaceSignalOffset + LineBytes;

    public const int ReaderEntryBytes = 128;
    public const int ReaderPositionOffset = 0;
    public const int ReaderHoldOffset = 8;
    public const int ReaderOwnerOffset = 64;
    public const int ReaderSkippedOffset = 72;
    public const int ReaderFramesReadOffset = 80;
    public const int ReaderTornOffset = 88;
    public const int ReaderSleepingOffset = 96;
    public const int ReaderWaitNsOffset = 104;

    public const int SlotSequenceOffset = 0;
    public const int SlotFrameIdOffset = 8;
    public const int SlotPublishOffset = 16;
    public const int SlotOriginOffset = 24;

    /// <summary>The sequence word of a slot the writer is claiming or filling: no frame is there (or, if a reader holds it, the writer is about to put the sequence back).</summary>
    public const long SlotWriting = -1;

    /// <summary>The sequence word of a held slot the writer fills anyway (a ring smaller than latest readers + 2).</summary>
    public const long SlotOverwriting = -2;

    /// <summary>Writer states in the writer owner word.</summary>
    public const int WriterNone = 0;
    public const int WriterAttached = 1;
    public const int WriterDetached = 2;
    public const int WriterClosed = 3;
    public const int WriterDead = 4;

    /// <summary>Reader states in a reader owner word.</summary>
    public const int ReaderFree = 0;
    public const int ReaderJoining = 1;
    public const int ReaderLossless = 2;
    public const int ReaderLatest = 3;

    /// <summary>Everything that must agree between two processes for them to share a stream.</summary>
    public static readonly string Signature =
        RegionHeader.Signature +
        $";stream:line={LineBytes},desc@{DescriptorOffset}(type@{ElementTypeOffset},rank@{RankOffset},cap@{CapacityOffset},readers@{MaxReadersOffset}," +
        $"frame@{FrameBytesOffset},slot@{SlotBytesOffset},shape@{ShapeOffset}),cursor@{CursorOffset},writer@{WriterLineOffset}(owner@{WriterOwnerOffset}," +
        $"epoch@{WriterEpochOffset},waits@{SpaceWaitsOffset},reclaimed@{ReclaimedReadersOffset},blocked@{WriterBlockedNsOffset},latest@{LatestReadersOffset}),data@{DataSignalOffset}+{DataSleepersOffset}," +
        $"space@{SpaceSignalOffset}+{SpaceSleepersOffset},readers@{ReaderTableOffset}x{ReaderEntryBytes}(pos@{ReaderPositionOffset},hold@{ReaderHoldOffset},owner@{ReaderOwnerOffset}," +
        $"skipped@{ReaderSkippedOffset},read@{ReaderFramesReadOffset},torn@{ReaderTornOffset},sleeping@{ReaderSleepingOffset},wait@{ReaderWaitNsOffset}),map=i32xcap/{LineBytes},slot(header={SlotHeaderBytes},seq@{SlotSequenceOffset}," +
        $"id@{SlotFrameIdOffset},pub@{SlotPublishOffset},origin@{SlotOriginOffset},writing={SlotWriting},overwriting={SlotOverwriting},align={SlotAlignment});owner-word:state3,pid22,start39";

    /// <summary>The layout hash recorded in every stream region's header.</summary>
    public static readonly ulong Hash = RegionHeader.Hash(Signature);

    /// <summary>The bytes of one slot: the header, then the payload, rounded up to 64.</summary>
    public static long SlotBytes(int frameBytes) => (SlotHeaderBytes + (long)frameBytes + SlotAlignment - 1) / SlotAlignment * SlotAlignment;

    /// <summary>Where the slot map starts.</summary>
    public static long SlotMapOffset(int maxReaders) => ReaderTableOffset + ((long)maxReaders * ReaderEntryBytes);

    /// <summary>Where the slots start: after the slot map, rounded up to a line pair.</summary>
    public static long SlotsOffset(int maxReaders, int capacity) =>
        SlotMapOffset(maxReaders) + (((long)capacity * sizeof(int)) + LineBytes - 1) / LineBytes * LineBytes;

    /// <summary>The size of a whole stream region.</summary>
    public static long TotalBytes(int frameBytes, int capacity, int maxReaders) => SlotsOffset(maxReaders, capacity) + (SlotBytes(frameBytes) * capacity);

    public static unsafe ref long Long(byte* region, long offset) => ref Unsafe.AsRef<long>(region + offset);

    public static unsafe ref ulong ULong(byte* region, long offset) => ref Unsafe.AsRef<ulong>(region + offset);

    public static unsafe ref int Int(byte* region, long offset) => ref Unsafe.AsRef<int>(region + offset);

    /// <summary>Writes the descriptor of a new stream region.</summary>
    public static unsafe void Initialize(byte* region, FrameFormat format, StreamOptions options)
    {
        *(region + ElementTypeOffset) = (byte)format.ElementType;
        *(region + RankOffset) = (byte)format.Shape.Length;
        Ordered.PutUInt(region + CapacityOffset, (uint)options.CapacityFrames);
        Ordered.PutUInt(region + MaxReadersOffset, (uint)options.MaxReaders);
        Ordered.PutLong(region + FrameBytesOffset, format.FrameBytes);
        Ordered.PutLong(region + SlotBytesOffset, SlotBytes(format.FrameBytes));
        for (var i = 0; i < format.Shape.Length; i++)
        {
            Ordered.PutInt(region + ShapeOffset + (i * sizeof(int)), format.Shape[i]);
        }
    }

    /// <summary>Reads the format and options a stream region was created with; null if the descriptor is not valid.</summary>
    public static unsafe (FrameFormat Format, StreamOptions Options)? ReadDescriptor(byte* region, long length)
    {
        var type = (ElementType)(*(region + ElementTypeOffset));
        int rank = *(region + RankOffset);
        var capacity = (int)Ordered.GetUInt(region + CapacityOffset);
        var maxReaders = (int)Ordered.GetUInt(region + MaxReadersOffset);
        if (!Enum.IsDefined(type) || rank > FrameFormat.MaxRank)
        {
            return null;
        }

        Span<int> shape = stackalloc int[rank];
        for (var i = 0; i < rank; i++)
        {
            shape[i] = Ordered.GetInt(region + ShapeOffset + (i * sizeof(int)));
        }

        try
        {
            var format = new FrameFormat(type, shape);
            var options = new StreamOptions { CapacityFrames = capacity, MaxReaders = maxReaders };
            options.Validate();
            if (Ordered.GetLong(region + FrameBytesOffset) != format.FrameBytes || TotalBytes(format.FrameBytes, capacity, maxReaders) != length)
            {
                return null;
            }

            return (format, options);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }
}
