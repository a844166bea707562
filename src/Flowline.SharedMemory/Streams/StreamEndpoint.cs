using System.Runtime.CompilerServices;
using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Regions;
using Flowline.SharedMemory.Streams;

namespace Flowline.SharedMemory;

/// <summary>What readers and writers share: the mapping they keep alive and the typed view of a frame.</summary>
/// <remarks>
/// An endpoint that is dropped without <see cref="Dispose()"/> still leaves the stream when it is
/// finalized, so a forgotten lossless reader cannot hold a writer back for the life of its process.
/// Its reference keeps the mapping alive until then.
/// </remarks>
public abstract unsafe class StreamEndpoint<T> : IDisposable
    where T : unmanaged
{
    private readonly MappingHandle mapping;
    private protected readonly byte* baseAddress;
    private protected readonly byte* slots;
    private protected readonly byte* slotMap;
    private protected readonly long slotBytes;
    private protected readonly long mask;
    private protected readonly int capacity;
    private bool disposed;
    private SlotMemoryManager[]? slotMemories;

    private protected StreamEndpoint(SharedStream stream)
    {
        var clr = typeof(T);
        if (clr != typeof(byte) && clr != stream.Format.ElementType.ClrType())
        {
            // Nothing was taken yet: there is nothing to finalize.
            GC.SuppressFinalize(this);
            throw new ArgumentException(
                $"stream '{stream.DisplayName}' holds {stream.Format.ElementType.ToName()} ({stream.Format.ElementType.ClrType().Name}) elements, not {clr.Name}; " +
                $"use {stream.Format.ElementType.ClrType().Name}, or byte for raw bytes.");
        }

        Stream = stream;
        FrameLength = stream.Format.FrameBytes / sizeof(T);
        mapping = stream.Mapping;
        try
        {
            mapping.AddReference();
        }
        catch
        {
            GC.SuppressFinalize(this);
            throw;
        }

        baseAddress = stream.Base;
        slots = stream.Base + stream.SlotsOffset;
        slotMap = stream.Base + stream.SlotMapOffset;
        slotBytes = stream.SlotBytes;
        capacity = stream.Options.CapacityFrames;
        mask = capacity - 1;
    }

    /// <summary>The stream.</summary>
    public SharedStream Stream { get; }

    /// <summary>The number of <typeparamref name="T"/> in one frame.</summary>
    public int FrameLength { get; }

    /// <summary>True once disposed.</summary>
    protected bool IsDisposed => disposed;

    /// <summary>Finalizes an endpoint that was not disposed.</summary>
    ~StreamEndpoint() => Dispose(disposing: false);

    /// <summary>Detaches and lets go of the mapping.</summary>
    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Detaches from the stream's tables and releases this endpoint's reference to the mapping.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        try
        {
            Detach();
        }
        finally
        {
            mapping.DangerousRelease();
        }
    }

    /// <summary>Leaves the stream's tables; called once, from <see cref="Dispose()"/>.</summary>
    private protected abstract void Detach();

    private protected ref long Cursor => ref StreamLayout.Long(baseAddress, StreamLayout.CursorOffset);

    private protected ref ulong WriterOwner => ref StreamLayout.ULong(baseAddress, StreamLayout.WriterOwnerOffset);

    /// <summary>The slot that holds (or held) frame <paramref name="sequence"/>, from the slot map.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private protected int MapOf(long sequence) => Ordered.GetIntVolatile(slotMap + ((sequence & mask) * sizeof(int)));

    /// <summary>Slot <paramref name="index"/> of the ring (its header; the payload follows).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private protected byte* SlotAt(int index) => slots + (index * slotBytes);

    /// <summary>The sequence word of slot <paramref name="index"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private protected long SequenceAt(int index) => Ordered.GetLongVolatile(SlotAt(index) + StreamLayout.SlotSequenceOffset);

    private protected ref ulong LatestReaders => ref StreamLayout.ULong(baseAddress, StreamLayout.LatestReadersOffset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private protected static FrameHeader ReadHeader(byte* slot) => new(
        Ordered.GetLong(slot + StreamLayout.SlotSequenceOffset),
        Ordered.GetULong(slot + StreamLayout.SlotFrameIdOffset),
        Ordered.GetLong(slot + StreamLayout.SlotPublishOffset),
        Ordered.GetLong(slot + StreamLayout.SlotOriginOffset));

    /// <summary>The payload of slot <paramref name="index"/>, as memory; one manager per slot, made once.</summary>
    private protected Memory<byte> SlotMemory(int index)
    {
        slotMemories ??= CreateSlotMemories();
        return slotMemories[index].Memory;
    }

    private SlotMemoryManager[] CreateSlotMemories()
    {
        var managers = new SlotMemoryManager[capacity];
        for (var i = 0; i < capacity; i++)
        {
            managers[i] = new SlotMemoryManager(slots + (i * slotBytes) + StreamLayout.SlotHeaderBytes, Stream.Format.FrameBytes);
        }

        return managers;
    }

    /// <summary>Memory over one slot's payload; valid while the endpoint holds the mapping.</summary>
    private sealed class SlotMemoryManager(byte* payload, int length) : System.Buffers.MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => new(payload, length);

        public override System.Buffers.MemoryHandle Pin(int elementIndex = 0) => new(payload + elementIndex);

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }

    private protected void ThrowIfDisposed()
    {
        if (disposed)
        {
            ThrowDisposed();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowDisposed() => throw new ObjectDisposedException(GetType().Name, $"this endpoint of stream '{Stream.DisplayName}' is disposed.");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private protected void ThrowLengthMismatch(int length, string what) =>
        throw new ArgumentException($"{what} holds {length} elements; a frame of stream '{Stream.DisplayName}' ({Stream.Format}) holds {FrameLength} {typeof(T).Name}.");
}
