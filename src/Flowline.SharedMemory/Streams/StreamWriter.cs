using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Liveness;
using Flowline.SharedMemory.Streams;
using Flowline.SharedMemory.Waiting;

namespace Flowline.SharedMemory;

/// <summary>
/// The writer of a stream. Copy a frame in with <see cref="Write(ReadOnlySpan{T}, TimeSpan?, CancellationToken)"/>,
/// or fill the next slot in place with <see cref="Look"/> and <see cref="Publish()"/>.
/// </summary>
/// <remarks>
/// <para>Publication (D2): the writer fills the slot and its header, then stores the cursor with an
/// atomic exchange, which is a release store and a full fence at once; after it, the writer reads the
/// sleeper count and makes a wake system call only if a reader sleeps.</para>
/// <para>Backpressure: the writer keeps the smallest lossless reader position it last saw and rescans
/// the reader table only when that cached position says the ring is full. A reader that joins later
/// joins at the cursor, which is never behind the cached position, so the cache never over-reports
/// space.</para>
/// <para>Slots (D100): the writer fills a slot that no latest reader holds, that does not hold the newest
/// frame and that holds no frame a lossless reader still needs, and records in the slot map which slot
/// holds each frame. It claims the slot (its sequence word to -1, with a full fence) before it reads the
/// holds, so a reader that holds the slot either is seen here or sees the claim and lets go. It never
/// waits for a latest reader: with at least latest readers + 2 slots a free slot always exists; in a
/// smaller ring it fills a held slot when nothing else is free, and that reader finds its look torn.</para>
/// <para>Not thread-safe: one thread writes.</para>
/// </remarks>
public sealed unsafe class StreamWriter<T> : StreamEndpoint<T>
    where T : unmanaged
{
    private readonly ulong ownerWord;
    private readonly FutexSignal dataSignal;
    private readonly FutexSignal spaceSignal;
    private long next;
    private long cachedMinReader;
    private int claimed = -1;
    private int newestSlot = -1;
    private int fillFrom;
    private bool lookPending;
    private bool closed;
    private bool ownerWordInstalled;
    private long lastPeerCheck;
    private PeerLiveness? liveness;

    internal StreamWriter(SharedStream stream, WriterOptions options)
        : base(stream)
    {
        Options = options;
        dataSignal = new FutexSignal((int*)(baseAddress + StreamLayout.DataSignalOffset), (int*)(baseAddress + StreamLayout.DataSleepersOffset));
        spaceSignal = new FutexSignal((int*)(baseAddress + StreamLayout.SpaceSignalOffset), (int*)(baseAddress + StreamLayout.SpaceSleepersOffset));
        ownerWord = ProcessIdentity.Current.Pack(StreamLayout.WriterAttached);
        try
        {
            Attach();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The options this writer was opened with.</summary>
    public WriterOptions Options { get; }

    /// <summary>The sequence the next frame will get (frames published so far).</summary>
    public long Position => next;

    /// <summary>
    /// Copies <paramref name="frame"/> into the next slot and publishes it, stamped with its own
    /// sequence as frame id and now as origin. Waits for space while a lossless reader lags.
    /// </summary>
    public WriteStatus Write(ReadOnlySpan<T> frame, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        Write(frame, new FrameStamp(unchecked((ulong)next), 0), timeout, cancellationToken);

    /// <summary>Copies <paramref name="frame"/> into the next slot and publishes it with <paramref name="stamp"/>.</summary>
    public WriteStatus Write(ReadOnlySpan<T> frame, FrameStamp stamp, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        if (frame.Length != FrameLength)
        {
            ThrowLengthMismatch(frame.Length, "the frame to write");
        }

        var status = Look(out var slot, timeout, cancellationToken);
        if (status != WriteStatus.Ok)
        {
            return status;
        }

        frame.CopyTo(slot);
        Publish(stamp);
        return WriteStatus.Ok;
    }

    /// <summary>
    /// Copies the frames of <paramref name="frames"/> (a whole number of frames, back to back) into the
    /// ring and publishes them with one cursor store per <see cref="BatchFrames"/> frames (Aeron's and
    /// the Disruptor's batching) rather than one per frame; each frame is stamped with its own sequence
    /// as frame id and the time of its batch's store as publish time and origin. Waits for space while a
    /// lossless reader lags, after making the frames written so far visible (the reader may be waiting
    /// for them). <paramref name="written"/> counts the frames published, also on a timeout.
    /// </summary>
    public WriteStatus WriteBatch(ReadOnlySpan<T> frames, out int written, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ThrowIfUnusable();
        if (FrameLength == 0 || frames.Length % FrameLength != 0)
        {
            ThrowLengthMismatch(frames.Length, "the frames to write (a whole number of frames)");
        }

        if (lookPending)
        {
            throw new InvalidOperationException($"publish the slot given by Look before writing a batch (stream '{Stream.DisplayName}').");
        }

        var count = frames.Length / FrameLength;
        var chunk = BatchFrames;
        written = 0;
        while (written < count)
        {
            var space = capacity - (next - cachedMinReader);
            if (space <= 0)
            {
                cachedMinReader = MinLosslessPosition();
                space = capacity - (next - cachedMinReader);
                if (space <= 0)
                {
                    if (!WaitForSpace(timeout, cancellationToken))
                    {
                        return WriteStatus.Timeout;
                    }

                    continue;
                }
            }

            var n = (int)Math.Min(Math.Min(space, chunk), count - written);
            var now = MonotonicClock.NowNs();
            var published = 0;
            while (published < n && (claimed >= 0 || ClaimSlot()))
            {
                // Each frame takes its slot by the same claim as Look (held slots are skipped, decision
                // 100) and is entered in the slot map; only the cursor store is shared by the chunk.
                var slot = SlotAt(claimed);
                frames.Slice((written + published) * FrameLength, FrameLength).CopyTo(new Span<T>(slot + StreamLayout.SlotHeaderBytes, FrameLength));
                Ordered.PutULong(slot + StreamLayout.SlotFrameIdOffset, unchecked((ulong)next));
                Ordered.PutLong(slot + StreamLayout.SlotPublishOffset, now);
                Ordered.PutLong(slot + StreamLayout.SlotOriginOffset, now);
                Ordered.PutLongOrdered(slot + StreamLayout.SlotSequenceOffset, next);
                MapNext(claimed);
                newestSlot = claimed;
                claimed = -1;
                next++;
                published++;
            }

            written += published;

            // One release store and full fence for the chunk, then the sleeper check (as in Publish).
            Interlocked.Exchange(ref Cursor, next);
            dataSignal.NotifyIfSleeping();

            if (published < n && !ClaimAfterRescan() && !WaitForSpace(timeout, cancellationToken))
            {
                return WriteStatus.Timeout; // Every free slot is held or still needed: wait as Look does.
            }
        }

        return WriteStatus.Ok;
    }

    /// <summary>
    /// The most frames a batch publishes with one cursor store (<see cref="WriteBatch"/>): a quarter of the
    /// ring, at most 64, so that a reader starts on a batch while the writer fills the rest.
    /// </summary>
    public int BatchFrames => (int)Math.Clamp(capacity / 4, 1, 64);

    /// <summary>
    /// Gives the next slot to fill in place (zero-copy); call <see cref="Publish()"/> when it is filled.
    /// Waits for space while a lossless reader lags. The slot is contiguous: a look never fails at the ring's end.
    /// </summary>
    public WriteStatus Look(out Span<T> slot, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ThrowIfUnusable();
        if (!lookPending)
        {
            if (next - cachedMinReader >= capacity)
            {
                cachedMinReader = MinLosslessPosition();
                if (next - cachedMinReader >= capacity && !WaitForSpace(timeout, cancellationToken))
                {
                    slot = default;
                    return WriteStatus.Timeout;
                }
            }

            if (claimed < 0 && !ClaimSlot() && !ClaimAfterRescan() && !WaitForSpace(timeout, cancellationToken))
            {
                slot = default;
                return WriteStatus.Timeout;
            }
        }

        slot = new Span<T>(SlotAt(claimed) + StreamLayout.SlotHeaderBytes, FrameLength);
        lookPending = true;
        return WriteStatus.Ok;
    }

    /// <summary>Gives the next slot as memory (for APIs that keep frames in <see cref="Memory{T}"/>); same rules as <see cref="Look"/>.</summary>
    public WriteStatus LookMemory(out Memory<byte> slot, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var status = Look(out _, timeout, cancellationToken);
        slot = status == WriteStatus.Ok ? SlotMemory(claimed) : default;
        return status;
    }

    /// <summary>Publishes the slot given by <see cref="Look"/>, stamped with its sequence as frame id and now as origin.</summary>
    public void Publish() => Publish(new FrameStamp(unchecked((ulong)next), 0));

    /// <summary>Publishes the slot given by <see cref="Look"/> with <paramref name="stamp"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Publish(FrameStamp stamp)
    {
        if (!lookPending)
        {
            ThrowIfDisposed();
            ThrowNoLook();
        }

        var slot = SlotAt(claimed);
        var now = MonotonicClock.NowNs();
        Ordered.PutULong(slot + StreamLayout.SlotFrameIdOffset, stamp.FrameId);
        Ordered.PutLong(slot + StreamLayout.SlotPublishOffset, now);
        Ordered.PutLong(slot + StreamLayout.SlotOriginOffset, stamp.OriginTimestampNs != 0 ? stamp.OriginTimestampNs : now);
        Ordered.PutLongOrdered(slot + StreamLayout.SlotSequenceOffset, next);

        // The map entry is a release store: a reader that finds the slot in the map finds the frame in it.
        MapNext(claimed);
        newestSlot = claimed;
        claimed = -1;
        lookPending = false;
        next++;

        // Release store of the cursor and full fence: the slot is visible before the cursor, and the
        // sleeper count is read after the cursor is visible (no lost wake-up).
        Interlocked.Exchange(ref Cursor, next);
        dataSignal.NotifyIfSleeping();
    }

    /// <summary>
    /// Wakes the readers asleep on this stream before the next frame is published (a paced writer a
    /// little before its frame is due, or a stage woken early for the frame it will compute): a woken
    /// reader with no frame yet spins for it instead of sleeping, and passes the wake-up on to its own
    /// readers, so that the frame finds every stage awake. No system call when nobody sleeps.
    /// </summary>
    public void WakeReadersEarly()
    {
        ThrowIfDisposed();
        Interlocked.MemoryBarrier();
        dataSignal.NotifyIfSleeping();
    }

    /// <summary>
    /// Ends the stream: readers read what is left, then get <see cref="ReadStatus.EndOfStream"/>.
    /// A writer that attaches later reopens the stream.
    /// </summary>
    public void Close()
    {
        ThrowIfDisposed();
        if (closed)
        {
            return;
        }

        closed = true;
        lookPending = false;
        SetState(StreamLayout.WriterClosed);
    }

    private protected override void Detach()
    {
        lookPending = false;
        liveness?.Dispose();
        if (!closed && ownerWordInstalled)
        {
            SetState(StreamLayout.WriterDetached);
        }
    }

    private void Attach()
    {
        ref var owner = ref WriterOwner;
        var observed = Volatile.Read(ref owner);
        while (true)
        {
            if (ProcessIdentity.StateOf(observed) == StreamLayout.WriterAttached)
            {
                var holder = ProcessIdentity.Unpack(observed);
                if (holder.IsAlive())
                {
                    throw new InvalidOperationException(
                        $"stream '{Stream.DisplayName}' already has a writer ({holder}); a stream has one writer at a time.");
                }
            }

            var seen = Interlocked.CompareExchange(ref owner, ownerWord, observed);
            if (seen == observed)
            {
                break;
            }

            observed = seen;
        }

        ownerWordInstalled = true;

        // The only writer is the only space sleeper: a count left by a writer killed in its sleep goes.
        Interlocked.Exchange(ref *(int*)(baseAddress + StreamLayout.SpaceSleepersOffset), 0);
        Interlocked.Increment(ref StreamLayout.Long(baseAddress, StreamLayout.WriterEpochOffset));
        next = Volatile.Read(ref Cursor);
        cachedMinReader = MinLosslessPosition();
        newestSlot = next > 0 ? MapOf(next - 1) : -1;
        fillFrom = newestSlot + 1;

        // Readers that saw the previous writer go learn that a writer is back.
        dataSignal.Wake();
    }

    private void SetState(int state)
    {
        // Only the word this writer installed is replaced: a reader may have marked it dead meanwhile,
        // or a new writer may have taken over after that.
        var final = (ownerWord & ~7UL) | (uint)state;
        Interlocked.CompareExchange(ref WriterOwner, final, ownerWord);
        dataSignal.Wake();
    }

    /// <summary>Claims a slot to fill (see the remarks); false if every slot is held or still needed by a lossless reader.</summary>
    /// <remarks>
    /// With no latest reader attached (decision 142) nobody can hold a slot this writer may take: the
    /// bit of a latest reader is set with a full fence before it reads the cursor, and this word is read
    /// after the full fence of the last cursor store (or of the attach), so a reader this read misses
    /// reads the cursor this writer published last and holds at most the newest frame's slot, which is
    /// never claimed (a batch's frames go to slots after it in ring order and never lap it). The claim
    /// is then a store of -1 that need not be fenced before the holds are read: it only has to reach
    /// other cores before the payload does, for the seqlock of peeking readers (IsStillIntact), and
    /// x86's stores become visible in program order; elsewhere it keeps the full fence.
    /// </remarks>
    private bool ClaimSlot()
    {
        if (Volatile.Read(ref LatestReaders) == 0)
        {
            return ClaimUnheld();
        }

        var sawHold = false;
        var sawNeeded = false;
        var heldFree = -1;
        for (var k = 0; k <= capacity; k++)
        {
            // The newest frame's slot is the last resort (k == capacity): a ring smaller than latest
            // readers + 2 overwrites the newest frame rather than wait for a reader.
            var index = k < capacity ? (int)((fillFrom + k) & mask) : newestSlot;
            if (index < 0 || (k < capacity && index == newestSlot))
            {
                continue;
            }

            var header = SlotAt(index);
            var held = Ordered.GetLongVolatile(header + StreamLayout.SlotSequenceOffset);
            if (held >= cachedMinReader && held < next && MapOf(held) == index)
            {
                sawNeeded = true;
                continue; // A lossless reader has yet to read that frame.
            }

            // Claim first, then look for holds: a full fence between them (D100).
            Ordered.PutLongVolatile(header + StreamLayout.SlotSequenceOffset, StreamLayout.SlotWriting);
            var holders = Volatile.Read(ref LatestReaders);
            if (holders != 0 && IsHeld(index, holders))
            {
                Ordered.PutLongOrdered(header + StreamLayout.SlotSequenceOffset, held);
                sawHold = true;
                heldFree = heldFree < 0 ? index : heldFree;
                continue;
            }

            claimed = index;
            fillFrom = index + 1;
            if (sawHold)
            {
                ReclaimDeadReaders();
            }

            return true;
        }

        if (sawHold)
        {
            ReclaimDeadReaders();
        }

        if (!sawHold || sawNeeded)
        {
            return false; // A lossless reader has yet to read a frame: backpressure, it frees a slot.
        }

        // Only held slots are left (a ring smaller than latest readers + 2): never wait for a latest
        // reader; fill a held slot, whose reader finds its look torn.
        Ordered.PutLongVolatile(SlotAt(heldFree) + StreamLayout.SlotSequenceOffset, StreamLayout.SlotOverwriting);
        claimed = heldFree;
        fillFrom = heldFree + 1;
        return true;
    }

    /// <summary>Claims the first slot in ring order that no lossless reader still needs (no latest reader attached: decision 142).</summary>
    private bool ClaimUnheld()
    {
        for (var k = 0; k < capacity; k++)
        {
            var index = (int)((fillFrom + k) & mask);
            if (index == newestSlot)
            {
                continue;
            }

            var header = SlotAt(index);
            var held = Ordered.GetLongVolatile(header + StreamLayout.SlotSequenceOffset);
            if (held >= cachedMinReader && held < next && MapOf(held) == index)
            {
                continue; // A lossless reader has yet to read that frame.
            }

            if (X86Base.IsSupported)
            {
                Ordered.PutLongOrdered(header + StreamLayout.SlotSequenceOffset, StreamLayout.SlotWriting);
            }
            else
            {
                Ordered.PutLongVolatile(header + StreamLayout.SlotSequenceOffset, StreamLayout.SlotWriting);
            }

            claimed = index;
            fillFrom = index + 1;
            return true;
        }

        return false; // A lossless reader has yet to read a frame: backpressure, it frees a slot.
    }

    /// <summary>Enters <paramref name="slot"/> as the slot of frame <see cref="next"/> in the slot map (a release store), unless it is there already.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void MapNext(int slot)
    {
        // Filled in ring order, a slot holds the frame a lap after its last one, whose entry already
        // names it: the store (and the reader's cache miss on the map's line) is skipped (decision 142).
        var entry = slotMap + ((next & mask) * sizeof(int));
        if (Ordered.GetInt(entry) != slot)
        {
            Ordered.PutIntOrdered(entry, slot);
        }
    }

    /// <summary>Claims a slot after reading the lossless readers' positions again.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool ClaimAfterRescan()
    {
        cachedMinReader = MinLosslessPosition();
        return ClaimSlot();
    }

    /// <summary>True if a latest reader among <paramref name="holders"/> (a bit per reader entry) holds slot <paramref name="index"/>.</summary>
    private bool IsHeld(int index, ulong holders)
    {
        while (holders != 0)
        {
            var reader = System.Numerics.BitOperations.TrailingZeroCount(holders);
            holders &= holders - 1;
            if (Volatile.Read(ref StreamLayout.Long(Stream.ReaderEntry(reader), StreamLayout.ReaderHoldOffset)) == index + 1)
            {
                return true;
            }
        }

        return false;
    }

    private long MinLosslessPosition()
    {
        var min = next;
        for (var i = 0; i < Stream.Options.MaxReaders; i++)
        {
            var entry = Stream.ReaderEntry(i);
            if (ProcessIdentity.StateOf(Volatile.Read(ref StreamLayout.ULong(entry, StreamLayout.ReaderOwnerOffset))) == StreamLayout.ReaderLossless)
            {
                var position = Volatile.Read(ref StreamLayout.Long(entry, StreamLayout.ReaderPositionOffset));
                if (position < min)
                {
                    min = position;
                }
            }
        }

        return min;
    }

    private bool WaitForSpace(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        ref var waits = ref StreamLayout.Long(baseAddress, StreamLayout.SpaceWaitsOffset);
        Volatile.Write(ref waits, waits + 1);
        var condition = new SpaceCondition(this);
        var started = MonotonicClock.NowNs();
        try
        {
            return Waiter.Wait(ref condition, spaceSignal, Options.WaitPolicy, Options.SpinTime, timeout, cancellationToken);
        }
        finally
        {
            // Profiling counter: time blocked on backpressure (only this writer writes it; two clock reads per wait, none per frame).
            ref var blocked = ref StreamLayout.Long(baseAddress, StreamLayout.WriterBlockedNsOffset);
            Volatile.Write(ref blocked, blocked + (MonotonicClock.NowNs() - started));
        }
    }

    /// <summary>Frees the entries of readers whose processes have died (proven by pid and start time).</summary>
    private void ReclaimDeadReaders()
    {
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (now - lastPeerCheck < WaitTuning.LivenessInterval.TotalSeconds * System.Diagnostics.Stopwatch.Frequency)
        {
            return;
        }

        lastPeerCheck = now;
        liveness ??= new PeerLiveness();
        var holding = (ownerWord & ~7UL) | (uint)StreamLayout.ReaderJoining;
        for (var i = 0; i < Stream.Options.MaxReaders; i++)
        {
            var entry = Stream.ReaderEntry(i);
            ref var owner = ref StreamLayout.ULong(entry, StreamLayout.ReaderOwnerOffset);
            var word = Volatile.Read(ref owner);

            // Hold the entry (joining, under this writer's name) while the dead reader's sleeper count
            // is taken back, so that no new reader can claim it and raise its own flag meanwhile.
            if (ProcessIdentity.StateOf(word) != StreamLayout.ReaderFree && !liveness.IsAlive(ProcessIdentity.Unpack(word))
                && Interlocked.CompareExchange(ref owner, holding, word) == word)
            {
                dataSignal.ForgetDeadSleeper((int*)(entry + StreamLayout.ReaderSleepingOffset));

                // Its hold goes with it: a crashed latest reader does not pin a slot.
                Volatile.Write(ref StreamLayout.Long(entry, StreamLayout.ReaderHoldOffset), 0);
                Interlocked.And(ref LatestReaders, ~(1UL << i));
                Interlocked.Exchange(ref owner, StreamLayout.ReaderFree);
                Interlocked.Increment(ref StreamLayout.Long(baseAddress, StreamLayout.ReclaimedReadersOffset));
            }
        }
    }

    private void ThrowIfUnusable()
    {
        ThrowIfDisposed();
        if (closed)
        {
            ThrowClosed();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowClosed() => throw new InvalidOperationException($"the writer of stream '{Stream.DisplayName}' has closed it.");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowNoLook() => throw new InvalidOperationException($"Publish needs a slot from Look first (stream '{Stream.DisplayName}').");

    private readonly struct SpaceCondition(StreamWriter<T> writer) : IWaitCondition
    {
        public bool IsSatisfied()
        {
            writer.cachedMinReader = writer.MinLosslessPosition();
            return writer.next - writer.cachedMinReader < writer.capacity && (writer.lookPending || writer.claimed >= 0 || writer.ClaimSlot());
        }

        public void CheckPeers() => writer.ReclaimDeadReaders();
    }
}
