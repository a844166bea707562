using Flowline.SharedMemory.Liveness;
using Flowline.SharedMemory.Regions;
using Flowline.SharedMemory.Streams;

namespace Flowline.SharedMemory;

/// <summary>
/// A stream in shared memory: a ring of fixed-size frame slots with one writer and a table of readers
/// (decision D1). Open it by namespace and name, then open a writer and readers on it, in this process
/// or any other.
/// </summary>
/// <example>
/// <code>
/// using var stream = SharedStream.Open("radar", "iq", new FrameFormat(ElementType.Complex64, 4096));
/// using var writer = stream.OpenWriter&lt;Complex64&gt;();
/// using var reader = stream.OpenReader&lt;Complex64&gt;(new ReaderOptions { Delivery = Delivery.Latest });
/// </code>
/// </example>
public sealed unsafe class SharedStream : IDisposable
{
    private readonly SharedRegion region;
    private bool disposed;

    private SharedStream(SharedRegion region, FrameFormat format, StreamOptions options)
    {
        this.region = region;
        Format = format;
        Options = options;
        Base = region.Base;
        SlotMapOffset = StreamLayout.SlotMapOffset(options.MaxReaders);
        SlotsOffset = StreamLayout.SlotsOffset(options.MaxReaders, options.CapacityFrames);
        SlotBytes = StreamLayout.SlotBytes(format.FrameBytes);
    }

    /// <summary>The namespace the stream lives in.</summary>
    public string Namespace => region.Namespace;

    /// <summary>The stream's name.</summary>
    public string Name => region.Name;

    /// <summary>What each frame holds.</summary>
    public FrameFormat Format { get; }

    /// <summary>The ring depth and reader table size the stream was created with.</summary>
    public StreamOptions Options { get; }

    /// <summary>True if this open created the region; false if it attached to an existing one.</summary>
    public bool Created => region.Created;

    /// <summary>The process that created the region.</summary>
    public ProcessIdentity Owner => region.Owner;

    /// <summary>The file backing the region.</summary>
    public string Path => region.Path;

    internal byte* Base { get; }

    internal long SlotMapOffset { get; }

    internal long SlotsOffset { get; }

    internal long SlotBytes { get; }

    internal string DisplayName => region.DisplayName;

    internal MappingHandle Mapping => region.Mapping;

    /// <summary>
    /// Opens a stream of <paramref name="format"/>. With <see cref="RegionMode.Attach"/> or
    /// <see cref="RegionMode.CreateOrAttach"/>, an existing stream must have the same format and options.
    /// </summary>
    public static SharedStream Open(string @namespace, string name, FrameFormat format, RegionMode mode = RegionMode.CreateOrAttach, StreamOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(format);
        options ??= StreamOptions.Default;
        var bytes = RegionBytes(format, options);
        var request = new RegionRequest(
            @namespace,
            name,
            mode,
            RegionKind.Stream,
            StreamLayout.Hash,
            bytes,
            (b, _) => StreamLayout.Initialize(b, format, options),
            (b, length) => Mismatch(b, length, format, options),
            LiveUser);
        return new SharedStream(SharedRegion.Open(request), format, options);
    }

    /// <summary>
    /// The bytes of shared memory a stream of <paramref name="format"/> and <paramref name="options"/> takes:
    /// its header, reader table and every slot of its ring.
    /// </summary>
    public static long RegionBytes(FrameFormat format, StreamOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(format);
        options ??= StreamOptions.Default;
        options.Validate();
        return StreamLayout.TotalBytes(format.FrameBytes, options.CapacityFrames, options.MaxReaders);
    }

    /// <summary>Attaches to an existing stream, whatever its format (read it from <see cref="Format"/>).</summary>
    public static SharedStream Attach(string @namespace, string name)
    {
        var request = new RegionRequest(@namespace, name, RegionMode.Attach, RegionKind.Stream, StreamLayout.Hash, 0, null, (b, length) => Mismatch(b, length, null, null), LiveUser);
        var region = SharedRegion.Open(request);
        var (format, options) = StreamLayout.ReadDescriptor(region.Base, region.Length)!.Value;
        return new SharedStream(region, format, options);
    }

    /// <summary>Opens the writer of this stream. A stream has at most one live writer.</summary>
    /// <typeparam name="T">The element type's CLR type (<see cref="ElementTypes.ClrType"/>), or <see cref="byte"/> for raw bytes.</typeparam>
    public StreamWriter<T> OpenWriter<T>(WriterOptions? options = null)
        where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return new StreamWriter<T>(this, options ?? WriterOptions.Default);
    }

    /// <summary>Opens a reader of this stream; it receives the frames published from now on.</summary>
    /// <typeparam name="T">The element type's CLR type (<see cref="ElementTypes.ClrType"/>), or <see cref="byte"/> for raw bytes.</typeparam>
    public StreamReader<T> OpenReader<T>(ReaderOptions? options = null)
        where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return new StreamReader<T>(this, options ?? ReaderOptions.Default);
    }

    /// <summary>A snapshot of the stream's cursors, writer and readers, read without disturbing them.</summary>
    public StreamStatistics GetStatistics()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var cursor = Volatile.Read(ref StreamLayout.Long(Base, StreamLayout.CursorOffset));
        var writerWord = Volatile.Read(ref StreamLayout.ULong(Base, StreamLayout.WriterOwnerOffset));
        var readers = new List<ReaderStatistics>();
        var minLossless = cursor;
        for (var i = 0; i < Options.MaxReaders; i++)
        {
            var entry = ReaderEntry(i);
            var word = Volatile.Read(ref StreamLayout.ULong(entry, StreamLayout.ReaderOwnerOffset));
            var state = ProcessIdentity.StateOf(word);
            if (state is StreamLayout.ReaderFree or StreamLayout.ReaderJoining)
            {
                continue;
            }

            var position = Volatile.Read(ref StreamLayout.Long(entry, StreamLayout.ReaderPositionOffset));
            var delivery = state == StreamLayout.ReaderLossless ? Delivery.Lossless : Delivery.Latest;
            if (delivery == Delivery.Lossless)
            {
                minLossless = Math.Min(minLossless, position);
            }

            readers.Add(new ReaderStatistics(
                i,
                delivery,
                ProcessIdentity.Unpack(word).Pid,
                position,
                Volatile.Read(ref StreamLayout.Long(entry, StreamLayout.ReaderFramesReadOffset)),
                Volatile.Read(ref StreamLayout.Long(entry, StreamLayout.ReaderSkippedOffset)),
                Volatile.Read(ref StreamLayout.Long(entry, StreamLayout.ReaderTornOffset)))
            {
                WaitNs = Volatile.Read(ref StreamLayout.Long(entry, StreamLayout.ReaderWaitNsOffset)),
                FrameBytes = Format.FrameBytes,
                HeldSlot = delivery == Delivery.Latest ? (int)Volatile.Read(ref StreamLayout.Long(entry, StreamLayout.ReaderHoldOffset)) - 1 : -1,
            });
        }

        return new StreamStatistics(
            cursor,
            Options.CapacityFrames,
            cursor - minLossless,
            WriterStateName(ProcessIdentity.StateOf(writerWord)),
            ProcessIdentity.StateOf(writerWord) == StreamLayout.WriterNone ? 0 : ProcessIdentity.Unpack(writerWord).Pid,
            Volatile.Read(ref StreamLayout.Long(Base, StreamLayout.WriterEpochOffset)),
            Volatile.Read(ref StreamLayout.Long(Base, StreamLayout.SpaceWaitsOffset)),
            Volatile.Read(ref StreamLayout.Long(Base, StreamLayout.ReclaimedReadersOffset)),
            Volatile.Read(ref StreamLayout.Int(Base, StreamLayout.DataSleepersOffset)),
            readers)
        {
            WriterBlockedNs = Volatile.Read(ref StreamLayout.Long(Base, StreamLayout.WriterBlockedNsOffset)),
            FrameBytes = Format.FrameBytes,
        };
    }

    /// <summary>
    /// Removes the stream's name if it still names this region (not a replacement made since); processes
    /// that map it keep it until they let go. Returns true if the name was removed.
    /// </summary>
    public bool Unlink()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return region.UnlinkIfSame();
    }

    /// <summary>Lets go of the region; it stays mapped while readers or writers opened from it are in use.</summary>
    public void Dispose()
    {
        if (!disposed)
        {
            disposed = true;
            region.Dispose();
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"stream '{DisplayName}' {Format} x {Options.CapacityFrames} slots";

    internal byte* ReaderEntry(int index) => Base + StreamLayout.ReaderTableOffset + ((long)index * StreamLayout.ReaderEntryBytes);

    private static string WriterStateName(int state) => state switch
    {
        StreamLayout.WriterNone => "none",
        StreamLayout.WriterAttached => "attached",
        StreamLayout.WriterDetached => "detached",
        StreamLayout.WriterClosed => "closed",
        StreamLayout.WriterDead => "dead",
        _ => "unknown",
    };

    /// <summary>Names a live writer or reader of a stream region, if there is one: a stream in use is not stale.</summary>
    internal static string? LiveUser(byte* b, long length)
    {
        var writer = Volatile.Read(ref StreamLayout.ULong(b, StreamLayout.WriterOwnerOffset));
        if (ProcessIdentity.StateOf(writer) == StreamLayout.WriterAttached && ProcessIdentity.Unpack(writer).IsAlive())
        {
            return $"its writer ({ProcessIdentity.Unpack(writer)}) is alive";
        }

        if (StreamLayout.ReadDescriptor(b, length) is not { } descriptor)
        {
            return null;
        }

        for (var i = 0; i < descriptor.Options.MaxReaders; i++)
        {
            var word = Volatile.Read(ref StreamLayout.ULong(b, StreamLayout.ReaderTableOffset + ((long)i * StreamLayout.ReaderEntryBytes) + StreamLayout.ReaderOwnerOffset));
            if (ProcessIdentity.StateOf(word) != StreamLayout.ReaderFree && ProcessIdentity.Unpack(word).IsAlive())
            {
                return $"its reader ({ProcessIdentity.Unpack(word)}) is alive";
            }
        }

        return null;
    }

    private static string? Mismatch(byte* b, long length, FrameFormat? format, StreamOptions? options)
    {
        var found = StreamLayout.ReadDescriptor(b, length);
        if (found is null)
        {
            return "its stream descriptor is not valid";
        }

        var (foundFormat, foundOptions) = found.Value;
        if (format is null || options is null)
        {
            return null;
        }

        if (foundFormat == format && foundOptions.CapacityFrames == options.CapacityFrames && foundOptions.MaxReaders == options.MaxReaders)
        {
            return null;
        }

        return $"it holds {foundFormat} frames in {foundOptions.CapacityFrames} slots for {foundOptions.MaxReaders} readers; " +
               $"expected {format} frames in {options.CapacityFrames} slots for {options.MaxReaders} readers";
    }
}

/// <summary>A snapshot of a stream.</summary>
/// <param name="Cursor">Frames published since the stream was created.</param>
/// <param name="CapacityFrames">Slots in the ring.</param>
/// <param name="FillFrames">Frames published but not yet read by the slowest lossless reader (0 with none).</param>
/// <param name="WriterState">none, attached, detached, closed or dead.</param>
/// <param name="WriterPid">The writer's pid, or 0 if no writer ever attached.</param>
/// <param name="WriterEpoch">How many times a writer attached.</param>
/// <param name="SpaceWaits">How many times the writer had to wait for a lossless reader.</param>
/// <param name="ReclaimedReaders">Readers of dead processes whose entries were freed or taken over.</param>
/// <param name="SleepingReaders">Readers asleep on the stream's futex now (a writer wakes them with a system call).</param>
/// <param name="Readers">The attached readers.</param>
public sealed record StreamStatistics(
    long Cursor,
    int CapacityFrames,
    long FillFrames,
    string WriterState,
    int WriterPid,
    long WriterEpoch,
    long SpaceWaits,
    long ReclaimedReaders,
    int SleepingReaders,
    IReadOnlyList<ReaderStatistics> Readers)
{
    /// <summary>Ring fill of the slowest lossless reader, from 0 to 1.</summary>
    public double Fill => CapacityFrames == 0 ? 0 : (double)FillFrames / CapacityFrames;

    /// <summary>Time the writers of this stream spent blocked on backpressure (waiting for a lossless reader), in nanoseconds.</summary>
    public long WriterBlockedNs { get; init; }

    /// <summary>The bytes of one frame.</summary>
    public int FrameBytes { get; init; }

    /// <summary>Bytes published since the stream was created (<see cref="Cursor"/> frames).</summary>
    public long BytesPublished => Cursor * FrameBytes;
}

/// <summary>A snapshot of one reader.</summary>
/// <param name="Index">Its entry in the reader table.</param>
/// <param name="Delivery">Its delivery now.</param>
/// <param name="Pid">Its process.</param>
/// <param name="Position">The sequence of the next frame it will read.</param>
/// <param name="FramesRead">Frames it has read.</param>
/// <param name="FramesSkipped">Frames it skipped to stay on the newest (latest delivery).</param>
/// <param name="TornCopies">Copies it discarded because the writer overwrote the slot meanwhile (latest delivery).</param>
public sealed record ReaderStatistics(int Index, Delivery Delivery, int Pid, long Position, long FramesRead, long FramesSkipped, long TornCopies)
{
    /// <summary>Time it spent waiting for input, in nanoseconds.</summary>
    public long WaitNs { get; init; }

    /// <summary>The bytes of one frame of its stream.</summary>
    public int FrameBytes { get; init; }

    /// <summary>Bytes it has read.</summary>
    public long BytesRead => FramesRead * FrameBytes;

    /// <summary>The slot a latest reader holds now (the writer does not fill it until released), or -1.</summary>
    public int HeldSlot { get; init; } = -1;
}
