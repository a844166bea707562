using System.Diagnostics;
using System.Runtime.CompilerServices;
using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Liveness;
using Flowline.SharedMemory.Streams;
using Flowline.SharedMemory.Waiting;

namespace Flowline.SharedMemory;

/// <summary>
/// A reader of a stream, with its own position in the reader table. Copy frames out with
/// <see cref="ReadInto(Span{T}, out FrameHeader, TimeSpan?, CancellationToken)"/> or <see cref="Read"/>,
/// or read them in place with <see cref="Look(out ReadOnlySpan{T}, out FrameHeader, TimeSpan?, CancellationToken)"/>
/// and <see cref="Increment"/>.
/// </summary>
/// <remarks>
/// <para><b>Lossless</b>: the reader sees every frame in order; the writer waits for it when the ring is
/// full. Releasing a frame stores the position with an atomic exchange (release and full fence) and
/// wakes the writer only if it sleeps.</para>
/// <para><b>Latest</b>: the reader takes the newest published frame and never holds the writer back. It
/// holds the slot while it copies or looks (D100): it stores the slot in its hold word (a full fence),
/// then checks that the slot still holds the frame; the writer, which claims a slot before it reads the
/// holds, then skips it until the reader lets go, as triple buffering does. A held frame is never
/// overwritten, so a look stays intact however many times the writer laps the ring.</para>
/// <para>Not thread-safe: one thread reads.</para>
/// </remarks>
public sealed unsafe class StreamReader<T> : StreamEndpoint<T>
    where T : unmanaged
{
    private readonly byte* entry;
    private readonly ulong identity;
    private readonly FutexSignal dataSignal;
    private readonly FutexSignal spaceSignal;
    private ulong ownerWord;
    private long next;
    private long cachedCursor;
    private long lookSequence = -1;
    private int heldSlot = -1;
    private long framesRead;
    private long framesSkipped;
    private long tornCopies;
    private long waitNs;
    private long lastPeerCheck;
    private PeerLiveness? liveness;
    private ReadStatus waitOutcome;
    private readonly bool waitThroughWriterChanges;
    private ArrivalEstimator? arrivals;
    private double spinBudget;

    internal StreamReader(SharedStream stream, ReaderOptions options)
        : base(stream)
    {
        WaitPolicy = options.WaitPolicy;
        SpinTime = options.SpinTime;
        spinBudget = options.SpinBudget;
        Delivery = options.Delivery;
        waitThroughWriterChanges = options.WaitThroughWriterChanges;
        spaceSignal = new FutexSignal((int*)(baseAddress + StreamLayout.SpaceSignalOffset), (int*)(baseAddress + StreamLayout.SpaceSleepersOffset));
        identity = ProcessIdentity.Current.Pack(0);
        try
        {
            options.Validate();
            (Index, var address) = ClaimEntry();
            entry = (byte*)address;
            dataSignal = DataSignal((int*)(entry + StreamLayout.ReaderSleepingOffset));
            Join(options.Delivery);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>This reader's entry in the stream's reader table.</summary>
    public int Index { get; } = -1;

    /// <summary>What this reader receives now; change it with <see cref="SetDelivery"/>.</summary>
    public Delivery Delivery { get; private set; }

    /// <summary>True for lossless delivery (PYTHUSA's "blocking": the reader applies backpressure).</summary>
    public bool IsBlocking => Delivery == Delivery.Lossless;

    /// <summary>How this reader waits.</summary>
    public WaitPolicy WaitPolicy { get; set; }

    /// <summary>How long a hybrid wait stays awake before it sleeps.</summary>
    public TimeSpan SpinTime { get; set; }

    /// <summary>The most a predictive wait spins per frame, as a fraction of the frame interval (above 0, at most 1).</summary>
    public double SpinBudget
    {
        get => spinBudget;
        set
        {
            WaitTuning.ValidateSpinBudget(value, nameof(SpinBudget));
            spinBudget = value;
        }
    }

    /// <summary>What a predictive wait has learnt of the stream's rate (null until its first predictive wait).</summary>
    internal ArrivalEstimator? Arrivals => arrivals;

    /// <summary>The sequence of the next frame this reader will read.</summary>
    public long Position => next;

    /// <summary>Frames published that this reader has neither read nor skipped.</summary>
    public long FramesAvailable => Math.Max(0, Volatile.Read(ref Cursor) - next);

    /// <summary>Frames read.</summary>
    public long FramesRead => framesRead;

    /// <summary>Time spent waiting for input, in nanoseconds (a profiling counter, also in the reader table).</summary>
    public long WaitNs => waitNs;

    /// <summary>Frames skipped: older frames a latest reader passed over, and frames dropped when rejoining at the writer's position.</summary>
    public long FramesSkipped => framesSkipped;

    /// <summary>Copies or looks discarded because the writer overwrote the slot meanwhile (latest delivery).</summary>
    public long TornCopies => tornCopies;

    /// <summary>
    /// Switches delivery at run time (PYTHUSA's <c>set_blocking</c>). Switching to lossless jumps to the
    /// writer's position: older frames are skipped, and from there on every frame arrives.
    /// </summary>
    public void SetDelivery(Delivery delivery)
    {
        ThrowIfDisposed();
        if (lookSequence >= 0)
        {
            throw new InvalidOperationException("call Increment before changing delivery: a look is in progress.");
        }

        if (delivery == Delivery)
        {
            return;
        }

        var before = next;
        Join(delivery);
        framesSkipped += next - before;
        Volatile.Write(ref Counter(StreamLayout.ReaderSkippedOffset), framesSkipped);
    }

    /// <summary>Same as <see cref="SetDelivery"/>: true for lossless, false for latest.</summary>
    public void SetBlocking(bool blocking) => SetDelivery(blocking ? Delivery.Lossless : Delivery.Latest);

    /// <summary>Waits until a frame can be read without waiting; consumes nothing.</summary>
    public ReadStatus WaitForFrame(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        return next < cachedCursor ? ReadStatus.Ok : Wait(timeout, cancellationToken);
    }

    /// <summary>
    /// Gives the next frame in place (zero-copy), without consuming it; call <see cref="Increment"/> when
    /// done with it. A lossless look stays valid until then; so does a latest look, whose slot this reader
    /// holds (the writer skips it, decision 100). Only in a ring smaller than latest readers + 2 can the
    /// writer overwrite a held slot: <see cref="Increment"/> says whether the look stayed intact, and
    /// <see cref="IsStillIntact"/>(<c>header.Sequence</c>) whether it still is.
    /// </summary>
    public ReadStatus Look(out ReadOnlySpan<T> frame, out FrameHeader header, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        if (lookSequence >= 0)
        {
            ThrowLookPending();
        }

        var status = EnsureFrame(timeout, cancellationToken);
        if (status != ReadStatus.Ok)
        {
            frame = default;
            header = default;
            return status;
        }

        var sequence = Delivery == Delivery.Lossless ? next : Hold();
        var slot = Delivery == Delivery.Lossless ? SlotAt(MapOf(sequence)) : SlotAt(heldSlot);
        header = ReadHeader(slot);
        if (Delivery == Delivery.Lossless)
        {
            if (header.Sequence != sequence)
            {
                ThrowCorrupt(sequence, header.Sequence);
            }
        }
        else
        {
            // Held: the writer leaves the slot alone until Increment.
            header = header with { Sequence = sequence };
        }

        frame = new ReadOnlySpan<T>(slot + StreamLayout.SlotHeaderBytes, FrameLength);
        lookSequence = sequence;
        return ReadStatus.Ok;
    }

    /// <summary>Gives the next frame in place; see <see cref="Look(out ReadOnlySpan{T}, out FrameHeader, TimeSpan?, CancellationToken)"/>.</summary>
    public ReadStatus Look(out ReadOnlySpan<T> frame, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        Look(out frame, out _, timeout, cancellationToken);

    /// <summary>
    /// Releases the frame given by <see cref="Look(out ReadOnlySpan{T}, out FrameHeader, TimeSpan?, CancellationToken)"/>.
    /// Returns false if a latest look was overwritten while it was held (its data may be torn).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Increment()
    {
        ThrowIfDisposed();
        var sequence = lookSequence;
        if (sequence < 0)
        {
            ThrowNoLook();
        }

        lookSequence = -1;
        if (Delivery == Delivery.Lossless)
        {
            Release(sequence);
            return true;
        }

        var intact = IsHeldIntact(sequence);
        ReleaseHold();
        Consume(sequence, intact);
        return intact;
    }

    /// <summary>
    /// Gives the next frame in place as memory (for APIs that keep frames in <see cref="ReadOnlyMemory{T}"/>,
    /// such as a kernel's inputs); same rules as <see cref="Look(out ReadOnlySpan{T}, out FrameHeader, TimeSpan?, CancellationToken)"/>.
    /// </summary>
    public ReadStatus LookMemory(out ReadOnlyMemory<byte> frame, out FrameHeader header, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var status = Look(out _, out header, timeout, cancellationToken);
        frame = status == ReadStatus.Ok ? SlotMemory(Delivery == Delivery.Lossless ? MapOf(lookSequence) : heldSlot) : default;
        return status;
    }

    /// <summary>
    /// Gives the newest frame the stream holds, whenever it was published (even before this reader
    /// joined), in place and without consuming anything: what an auxiliary input reads. False if nothing
    /// was ever published. The writer may overwrite it meanwhile: check with <see cref="IsStillIntact"/>(<c>header.Sequence</c>)
    /// after using the frame or the header (whose sequence is always the frame peeked at).
    /// </summary>
    public bool PeekNewest(out ReadOnlyMemory<byte> frame, out FrameHeader header)
    {
        ThrowIfDisposed();
        var cursor = Volatile.Read(ref Cursor);
        if (cursor == 0)
        {
            frame = default;
            header = default;
            return false;
        }

        var sequence = cursor - 1;
        var index = MapOf(sequence);
        header = ReadHeader(SlotAt(index)) with { Sequence = sequence };
        frame = SlotMemory(index);
        return true;
    }

    /// <summary>True if the frame of <paramref name="sequence"/> has not been overwritten since it was looked at or peeked.</summary>
    /// <remarks>A lossless look held by this reader is always intact: the writer waits for it.</remarks>
    public bool IsStillIntact(long sequence) =>
        sequence == lookSequence && lookSequence >= 0 ? Delivery == Delivery.Lossless || IsHeldIntact(sequence) : IsIntact(sequence);

    /// <summary>
    /// Waits until one of <paramref name="readers"/> can read without waiting (a frame, or its writer
    /// closed or left) and returns its index, or -1 when <paramref name="timeout"/> elapses
    /// (<see cref="Timeout.InfiniteTimeSpan"/> waits without limit). Consumes nothing. Honours every
    /// reader's wait policy: it spins if any reader spins, stays awake for the longest spin time of the
    /// hybrid readers otherwise, and sleeps at once only if every reader blocks; it sleeps on every stream
    /// at once (<c>futex_waitv</c>). Throws <see cref="OperationCanceledException"/> if
    /// <paramref name="cancellationToken"/> fires.
    /// </summary>
    public static int WaitAny(ReadOnlySpan<StreamReader<T>> readers, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        if (readers.IsEmpty)
        {
            throw new ArgumentException("give at least one reader", nameof(readers));
        }

        var ready = PollAny(readers);
        if (ready >= 0)
        {
            return ready;
        }

        var (policy, spinTime) = (WaitPolicy.Block, TimeSpan.Zero);
        foreach (var reader in readers)
        {
            (policy, spinTime) = Waiter.Combine(policy, spinTime, reader.WaitPolicy, reader.SpinTime);
        }

        return WaitOn(readers, policy, spinTime, timeout, cancellationToken);
    }

    /// <summary>Times this reader registered as a sleeper on its stream's futex while waiting (a test's view of how waits end).</summary>
    internal long SleepCount { get; private set; }

    /// <summary>Waits with <see cref="Waiter"/> until one of <paramref name="readers"/> is ready; its index, or -1 on timeout.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int WaitOn(ReadOnlySpan<StreamReader<T>> readers, WaitPolicy policy, TimeSpan spinTime, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var plan = default(WaitPlan);
        if (policy == WaitPolicy.Predictive)
        {
            foreach (var reader in readers)
            {
                plan = WaitPlan.Earliest(plan, reader.PlanWait());
            }
        }

        scoped var condition = new AnyCondition(readers);
        var signals = new DataSignals(
            readers,
            readers.Length <= 16 ? stackalloc nint[readers.Length] : new nint[readers.Length],
            readers.Length <= 16 ? stackalloc int[readers.Length] : new int[readers.Length]);
        var started = MonotonicClock.NowNs();
        try
        {
            return Waiter.Wait(ref condition, ref signals, policy, spinTime, plan, timeout, cancellationToken) ? condition.Ready : -1;
        }
        finally
        {
            // Profiling counter: every reader of the wait waited this long for input (two clock reads per wait, none per frame).
            var waited = MonotonicClock.NowNs() - started;
            foreach (var reader in readers)
            {
                reader.AddWait(waited);
            }
        }
    }

    /// <summary>The first of <paramref name="readers"/> that can read without waiting, or -1; checks first that each can wait.</summary>
    private static int PollAny(ReadOnlySpan<StreamReader<T>> readers)
    {
        foreach (var reader in readers)
        {
            reader.ThrowIfDisposed();
            if (reader.lookSequence >= 0)
            {
                ThrowLookPending();
            }
        }

        return FirstReady(readers);
    }

    /// <summary>The first of <paramref name="readers"/> that can read without waiting (a frame, or its writer closed or left), or -1.</summary>
    private static int FirstReady(ReadOnlySpan<StreamReader<T>> readers)
    {
        for (var i = 0; i < readers.Length; i++)
        {
            var reader = readers[i];
            if (reader.next < reader.cachedCursor || reader.PollFrame())
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>Copies the next frame into <paramref name="destination"/> and consumes it.</summary>
    public ReadStatus ReadInto(Span<T> destination, out FrameHeader header, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        if (destination.Length != FrameLength)
        {
            ThrowLengthMismatch(destination.Length, "the destination");
        }

        if (lookSequence >= 0)
        {
            ThrowLookPending();
        }

        long deadline = 0;
        while (true)
        {
            var status = EnsureFrame(timeout, cancellationToken);
            if (status != ReadStatus.Ok)
            {
                header = default;
                return status;
            }

            if (Delivery == Delivery.Lossless)
            {
                var slot = SlotAt(MapOf(next));
                header = ReadHeader(slot);
                if (header.Sequence != next)
                {
                    ThrowCorrupt(next, header.Sequence);
                }

                new ReadOnlySpan<T>(slot + StreamLayout.SlotHeaderBytes, FrameLength).CopyTo(destination);
                Release(next);
                return ReadStatus.Ok;
            }

            var sequence = Hold();
            var latest = SlotAt(heldSlot);
            // The slot's sequence word is the claim word: a writer that claims the held slot, sees the hold
            // and puts the sequence back shows -1 there for a moment, which is no tear; the held sequence is
            // given instead (as Look does), and the rest of the header is written only into a claimed slot.
            header = ReadHeader(latest) with { Sequence = sequence };
            new ReadOnlySpan<T>(latest + StreamLayout.SlotHeaderBytes, FrameLength).CopyTo(destination);
            var intact = IsHeldIntact(sequence);
            ReleaseHold();
            if (intact)
            {
                Consume(sequence, intact: true);
                return ReadStatus.Ok;
            }

            // Held frames stay intact; this is only reached if the region was changed outside the
            // protocol (or a writer died while claiming). Count it and take the newest frame again,
            // unless the time is up.
            tornCopies++;
            Volatile.Write(ref Counter(StreamLayout.ReaderTornOffset), tornCopies);
            cancellationToken.ThrowIfCancellationRequested();
            var now = Stopwatch.GetTimestamp();
            if (deadline == 0)
            {
                deadline = Waiter.Deadline(now, timeout);
            }

            if (now >= deadline && timeout is not null)
            {
                header = default;
                return ReadStatus.Timeout;
            }
        }
    }

    /// <summary>
    /// Copies the frames available now, up to as many as <paramref name="destination"/> holds (a whole
    /// number of frames, back to back), waiting for the first one as <see cref="ReadInto(Span{T}, TimeSpan?, CancellationToken)"/>
    /// does, and releases them with one position store per <see cref="BatchFrames"/> frames rather than
    /// one per frame. Lossless delivery only: every frame, in order. <paramref name="frames"/> counts the
    /// frames copied (0 unless the status is <see cref="ReadStatus.Ok"/>).
    /// </summary>
    public ReadStatus ReadBatch(Span<T> destination, out int frames, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        frames = 0;
        if (Delivery != Delivery.Lossless)
        {
            throw new InvalidOperationException($"ReadBatch reads every frame in order: it needs lossless delivery (stream '{Stream.DisplayName}').");
        }

        if (FrameLength == 0 || destination.Length < FrameLength || destination.Length % FrameLength != 0)
        {
            ThrowLengthMismatch(destination.Length, "the destination (a whole number of frames, at least one)");
        }

        if (lookSequence >= 0)
        {
            ThrowLookPending();
        }

        var status = EnsureFrame(timeout, cancellationToken);
        if (status != ReadStatus.Ok)
        {
            return status;
        }

        var room = destination.Length / FrameLength;
        var chunk = BatchFrames;
        while (frames < room)
        {
            if (next >= cachedCursor)
            {
                cachedCursor = Volatile.Read(ref Cursor);
                if (next >= cachedCursor)
                {
                    break;
                }
            }

            var n = (int)Math.Min(Math.Min(cachedCursor - next, chunk), room - frames);
            for (var i = 0; i < n; i++)
            {
                var sequence = next + i;
                var slot = SlotAt(MapOf(sequence));
                var found = Ordered.GetLong(slot + StreamLayout.SlotSequenceOffset);
                if (found != sequence)
                {
                    ThrowCorrupt(sequence, found);
                }

                new ReadOnlySpan<T>(slot + StreamLayout.SlotHeaderBytes, FrameLength).CopyTo(destination.Slice((frames + i) * FrameLength, FrameLength));
            }

            frames += n;
            framesRead += n - 1;
            Release(next + n - 1);
        }

        return ReadStatus.Ok;
    }

    /// <summary>The most frames <see cref="ReadBatch"/> releases with one position store: a quarter of the ring, at most 64.</summary>
    public int BatchFrames => (int)Math.Clamp(capacity / 4, 1, 64);

    /// <summary>Copies the next frame into <paramref name="destination"/> and consumes it.</summary>
    public ReadStatus ReadInto(Span<T> destination, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        ReadInto(destination, out _, timeout, cancellationToken);

    /// <summary>Reads the next frame into a new array (an owned copy); <paramref name="frame"/> is empty unless the status is <see cref="ReadStatus.Ok"/>.</summary>
    public ReadStatus Read(out T[] frame, out FrameHeader header, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var buffer = new T[FrameLength];
        var status = ReadInto(buffer, out header, timeout, cancellationToken);
        frame = status == ReadStatus.Ok ? buffer : [];
        return status;
    }

    private protected override void Detach()
    {
        lookSequence = -1;
        liveness?.Dispose();
        if (entry == null)
        {
            return;
        }

        ReleaseHold();
        if (Delivery == Delivery.Latest)
        {
            Interlocked.And(ref LatestReaders, ~LatestBit);
        }

        // Leave the table; the writer may be waiting on this reader's position.
        Interlocked.CompareExchange(ref Owner, StreamLayout.ReaderFree, ownerWord);
        spaceSignal.NotifyIfSleeping();
    }

    private void AddWait(long ns)
    {
        if (entry == null)
        {
            return;
        }

        waitNs += ns;
        Volatile.Write(ref Counter(StreamLayout.ReaderWaitNsOffset), waitNs);
    }

    private ref ulong Owner => ref StreamLayout.ULong(entry, StreamLayout.ReaderOwnerOffset);

    private ref long PositionWord => ref StreamLayout.Long(entry, StreamLayout.ReaderPositionOffset);

    private ref long Counter(int offset) => ref StreamLayout.Long(entry, offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ReadStatus EnsureFrame(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        if (next < cachedCursor)
        {
            return ReadStatus.Ok;
        }

        cachedCursor = Volatile.Read(ref Cursor);
        return next < cachedCursor ? ReadStatus.Ok : Wait(timeout, cancellationToken);
    }

    /// <summary>Waits for this reader alone: the same loop as <see cref="WaitAny"/>, with this reader's policy.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ReadStatus Wait(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var self = this;
        if (WaitOn(new ReadOnlySpan<StreamReader<T>>(ref self), WaitPolicy, SpinTime, timeout, cancellationToken) < 0)
        {
            return ReadStatus.Timeout;
        }

        return next < cachedCursor ? ReadStatus.Ok : waitOutcome;
    }

    /// <summary>
    /// The plan of a predictive wait for this reader's next frame: the estimator learns from the newest
    /// frame published (its sequence and publish time, nothing per frame read), then plans from the
    /// process's timer lateness. No plan (a hybrid wait) unless this reader is predictive and its stream regular.
    /// </summary>
    private WaitPlan PlanWait()
    {
        if (WaitPolicy != WaitPolicy.Predictive)
        {
            return default;
        }

        arrivals ??= new ArrivalEstimator();
        var cursor = Volatile.Read(ref Cursor);
        if (cursor > 0)
        {
            var sequence = cursor - 1;
            var index = MapOf(sequence);
            var slot = SlotAt(index);
            if ((uint)index < (uint)capacity && Ordered.GetLongVolatile(slot + StreamLayout.SlotSequenceOffset) == sequence
                && Ordered.GetLong(slot + StreamLayout.SlotPublishOffset) is var published
                && Ordered.GetLongVolatile(slot + StreamLayout.SlotSequenceOffset) == sequence)
            {
                arrivals.Observe(sequence, published);
            }
        }

        var lateness = TimerLateness.Shared;
        return arrivals.TryPlan(Math.Max(next, cursor), spinBudget, lateness.MarginNs, lateness.CushionNs, out var plan) ? plan : default;
    }

    /// <summary>True if a frame can be read, or the writer closed or left: sets <see cref="waitOutcome"/>.</summary>
    private bool PollFrame()
    {
        var cursor = Volatile.Read(ref Cursor);
        if (cursor > next)
        {
            cachedCursor = cursor;
            waitOutcome = ReadStatus.Ok;
            return true;
        }

        var state = ProcessIdentity.StateOf(Volatile.Read(ref WriterOwner));
        if (state is StreamLayout.WriterNone or StreamLayout.WriterAttached ||
            (waitThroughWriterChanges && state is StreamLayout.WriterDetached or StreamLayout.WriterDead))
        {
            return false;
        }

        // The writer's state changed after its last publish: read the cursor again to drain what is left.
        cursor = Volatile.Read(ref Cursor);
        if (cursor > next)
        {
            cachedCursor = cursor;
            waitOutcome = ReadStatus.Ok;
            return true;
        }

        waitOutcome = state == StreamLayout.WriterClosed ? ReadStatus.EndOfStream : ReadStatus.WriterGone;
        return true;
    }

    /// <summary>Marks the writer dead if its process has exited (checked at most every liveness interval).</summary>
    private void CheckWriter()
    {
        var now = Stopwatch.GetTimestamp();
        if (now - lastPeerCheck < WaitTuning.LivenessInterval.TotalSeconds * Stopwatch.Frequency)
        {
            return;
        }

        lastPeerCheck = now;
        ref var owner = ref WriterOwner;
        var word = Volatile.Read(ref owner);
        liveness ??= new PeerLiveness();
        if (ProcessIdentity.StateOf(word) == StreamLayout.WriterAttached && !liveness.IsAlive(ProcessIdentity.Unpack(word)))
        {
            Interlocked.CompareExchange(ref owner, (word & ~7UL) | (ulong)StreamLayout.WriterDead, word);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Release(long sequence)
    {
        next = sequence + 1;
        framesRead++;

        // Release store and full fence: the copy is done before the writer can see the slot free, and
        // the writer's sleeping flag is read after the position is visible (no lost wake-up).
        Interlocked.Exchange(ref PositionWord, next);
        Volatile.Write(ref Counter(StreamLayout.ReaderFramesReadOffset), framesRead);
        spaceSignal.NotifyIfSleeping();
    }

    /// <summary>True if the frame of <paramref name="sequence"/> (not held) is still in its slot: a seqlock on the slot's sequence word.</summary>
    private bool IsIntact(long sequence)
    {
        // The copy's loads complete before the sequence word is read again; the writer sets it to -1
        // (with a full fence) before it fills a slot, and a slot's sequence only ever grows after that.
        Interlocked.MemoryBarrier();
        var index = MapOf(sequence);
        return (uint)index < (uint)capacity && SequenceAt(index) == sequence;
    }

    /// <summary>
    /// True if the slot this reader holds still holds <paramref name="sequence"/>: always, unless the ring
    /// has fewer than latest readers + 2 slots. A -1 there is a writer's claim that saw the hold and is
    /// about to put the sequence back (it touched nothing else): wait for that, a bounded time.
    /// </summary>
    private bool IsHeldIntact(long sequence)
    {
        Interlocked.MemoryBarrier();
        if (heldSlot < 0)
        {
            return false;
        }

        var found = SequenceAt(heldSlot);
        if (found == StreamLayout.SlotWriting)
        {
            var spin = default(SpinWait);
            var deadline = Stopwatch.GetTimestamp() + (Stopwatch.Frequency / 20);
            while ((found = SequenceAt(heldSlot)) == StreamLayout.SlotWriting && Stopwatch.GetTimestamp() < deadline)
            {
                spin.SpinOnce();
            }
        }

        return found == sequence;
    }

    private ulong LatestBit => 1UL << Index;

    private ref long HoldWord => ref StreamLayout.Long(entry, StreamLayout.ReaderHoldOffset);

    /// <summary>
    /// Holds the slot of the newest frame and returns its sequence (D100): the hold is stored with a full
    /// fence, then the slot's sequence word is checked. A writer that claimed the slot before it could
    /// see the hold has set that word to -1 (or published a later frame there): take the newest again.
    /// </summary>
    private long Hold()
    {
        ref var hold = ref HoldWord;
        while (true)
        {
            var sequence = Volatile.Read(ref Cursor) - 1;
            var index = MapOf(sequence);
            if ((uint)index >= (uint)capacity)
            {
                ThrowCorrupt(sequence, index);
            }

            Interlocked.Exchange(ref hold, index + 1);
            if (SequenceAt(index) == sequence)
            {
                heldSlot = index;
                return sequence;
            }
        }
    }

    /// <summary>Lets the writer have the held slot again; the loads from it are done before (a release store).</summary>
    private void ReleaseHold()
    {
        if (heldSlot >= 0 || (entry != null && Volatile.Read(ref HoldWord) != 0))
        {
            heldSlot = -1;
            Volatile.Write(ref HoldWord, 0);
        }
    }

    private void Consume(long sequence, bool intact)
    {
        framesSkipped += sequence - next;
        next = sequence + 1;
        if (next > cachedCursor)
        {
            cachedCursor = next;
        }

        if (intact)
        {
            framesRead++;
        }
        else
        {
            tornCopies++;
            Volatile.Write(ref Counter(StreamLayout.ReaderTornOffset), tornCopies);
        }

        Volatile.Write(ref PositionWord, next);
        Volatile.Write(ref Counter(StreamLayout.ReaderFramesReadOffset), framesRead);
        Volatile.Write(ref Counter(StreamLayout.ReaderSkippedOffset), framesSkipped);
    }

    /// <summary>Claims a free entry of the reader table, or the entry of a reader whose process has died.</summary>
    private (int Index, nint Entry) ClaimEntry()
    {
        var joining = identity | (uint)StreamLayout.ReaderJoining;
        for (var pass = 0; pass < 2; pass++)
        {
            for (var i = 0; i < Stream.Options.MaxReaders; i++)
            {
                var candidate = Stream.ReaderEntry(i);
                ref var owner = ref StreamLayout.ULong(candidate, StreamLayout.ReaderOwnerOffset);
                while (true)
                {
                    var word = Volatile.Read(ref owner);
                    var free = ProcessIdentity.StateOf(word) == StreamLayout.ReaderFree;

                    // The second pass takes over entries whose process has provably died.
                    if (!free && (pass == 0 || ProcessIdentity.Unpack(word).IsAlive()))
                    {
                        break;
                    }

                    if (Interlocked.CompareExchange(ref owner, joining, word) != word)
                    {
                        continue; // Lost a race for this entry: look at it again.
                    }

                    if (!free)
                    {
                        DataSignal(null).ForgetDeadSleeper((int*)(candidate + StreamLayout.ReaderSleepingOffset));
                        Interlocked.Increment(ref StreamLayout.Long(baseAddress, StreamLayout.ReclaimedReadersOffset));
                    }

                    ownerWord = joining;

                    // A dead reader's hold goes with it (the writer skips only the slots of latest readers' bits).
                    Volatile.Write(ref StreamLayout.Long(candidate, StreamLayout.ReaderHoldOffset), 0);
                    Interlocked.And(ref LatestReaders, ~(1UL << i));
                    StreamLayout.Long(candidate, StreamLayout.ReaderSkippedOffset) = 0;
                    StreamLayout.Long(candidate, StreamLayout.ReaderFramesReadOffset) = 0;
                    StreamLayout.Long(candidate, StreamLayout.ReaderTornOffset) = 0;
                    StreamLayout.Long(candidate, StreamLayout.ReaderWaitNsOffset) = 0;
                    return (i, (nint)candidate);
                }
            }
        }

        var pids = Stream.GetStatistics().Readers.Select(r => r.Pid).Distinct();
        throw new InvalidOperationException(
            $"stream '{Stream.DisplayName}' has {Stream.Options.MaxReaders} readers attached (pids {string.Join(", ", pids)}), its limit; " +
            "dispose readers that are done, or create the stream with more MaxReaders.");
    }

    private FutexSignal DataSignal(int* sleepingFlag) =>
        new((int*)(baseAddress + StreamLayout.DataSignalOffset), (int*)(baseAddress + StreamLayout.DataSleepersOffset), sleepingFlag);

    /// <summary>
    /// Takes part in the stream with <paramref name="delivery"/>, at the writer's position.
    /// </summary>
    /// <remarks>
    /// The position is stored before the state changes, and stored again from a cursor read after the
    /// change (a full fence). A writer that scans the table meanwhile sees either position, both at or
    /// before the cursor, so it never overwrites a frame this reader may still read.
    /// </remarks>
    private void Join(Delivery delivery)
    {
        // A latest reader's bit is set (a full fence) before it reads the cursor to hold a frame: a writer
        // that claims a slot after this looks at its hold (D100).
        if (delivery == Delivery.Latest)
        {
            Interlocked.Or(ref LatestReaders, LatestBit);
        }

        next = Volatile.Read(ref Cursor);
        Volatile.Write(ref PositionWord, next);
        var word = identity | (uint)(delivery == Delivery.Lossless ? StreamLayout.ReaderLossless : StreamLayout.ReaderLatest);
        if (Interlocked.CompareExchange(ref Owner, word, ownerWord) != ownerWord)
        {
            ThrowEntryLost();
        }

        ownerWord = word;
        next = Volatile.Read(ref Cursor);
        cachedCursor = next;
        Interlocked.Exchange(ref PositionWord, next);
        if (delivery == Delivery.Lossless && Delivery == Delivery.Latest)
        {
            ReleaseHold();
            Interlocked.And(ref LatestReaders, ~LatestBit);
        }

        Delivery = delivery;
        spaceSignal.NotifyIfSleeping();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowLookPending() => throw new InvalidOperationException("call Increment before the next Look or read: a look is in progress.");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowEntryLost() =>
        throw new SharedMemoryException($"stream '{Stream.DisplayName}': reader entry {Index} was taken over by another process, which judged this one dead.");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowNoLook() => throw new InvalidOperationException("Increment needs a frame from Look first.");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowCorrupt(long expected, long found) =>
        throw new SharedMemoryException($"stream '{Stream.DisplayName}': slot for frame {expected} holds frame {found}; the region was modified outside Flowline or replaced while in use.");

    /// <summary>Satisfied when one of the readers is ready (<see cref="FirstReady"/>); <see cref="Ready"/> says which.</summary>
    private ref struct AnyCondition(ReadOnlySpan<StreamReader<T>> readers) : IWaitCondition
    {
        private readonly ReadOnlySpan<StreamReader<T>> readers = readers;

        public int Ready { get; private set; } = -1;

        public bool IsSatisfied() => (Ready = FirstReady(readers)) >= 0;

        public readonly void CheckPeers()
        {
            foreach (var reader in readers)
            {
                reader.CheckWriter();
            }
        }
    }

    /// <summary>The data signals of the readers' streams: one futex wait for one reader, <c>futex_waitv</c> for several.</summary>
    private ref struct DataSignals(ReadOnlySpan<StreamReader<T>> readers, Span<nint> words, Span<int> observed) : ISleepSignal
    {
        private readonly ReadOnlySpan<StreamReader<T>> readers = readers;
        private readonly Span<nint> words = words;
        private readonly Span<int> observed = observed;

        public readonly FutexSignal CancelSignal => readers[0].dataSignal;

        public readonly void BeginSleep()
        {
            for (var i = 0; i < readers.Length; i++)
            {
                var reader = readers[i];
                reader.SleepCount++;
                words[i] = (nint)reader.dataSignal.Word;
                observed[i] = reader.dataSignal.BeginSleep();
            }
        }

        public readonly void Sleep(TimeSpan slice)
        {
            if (readers.Length == 1)
            {
                readers[0].dataSignal.Sleep(observed[0], slice);
            }
            else
            {
                Interop.Futex.WaitAny(words, observed, slice);
            }
        }

        public readonly void EndSleep()
        {
            foreach (var reader in readers)
            {
                reader.dataSignal.EndSleep();
            }
        }
    }
}
