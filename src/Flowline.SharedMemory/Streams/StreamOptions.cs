namespace Flowline.SharedMemory;

/// <summary>How a stream's ring is sized when it is created.</summary>
public sealed record StreamOptions
{
    /// <summary>The default ring depth (PYTHUSA's default <c>frames</c>).</summary>
    public const int DefaultCapacityFrames = 32;

    /// <summary>The default size of the reader table.</summary>
    public const int DefaultMaxReaders = 8;

    /// <summary>The largest reader table.</summary>
    public const int MaxReadersLimit = 64;

    /// <summary>The deepest ring.</summary>
    public const int MaxCapacityFrames = 1 << 20;

    /// <summary>The default options.</summary>
    public static StreamOptions Default { get; } = new();

    /// <summary>
    /// Slots in the ring: a power of two, at least 2 (a <c>latest</c> reader needs the slot it copies
    /// not to be the one the writer fills next). Default 32.
    /// </summary>
    public int CapacityFrames { get; init; } = DefaultCapacityFrames;

    /// <summary>How many readers can be attached at once, 1 to 64. Default 8.</summary>
    public int MaxReaders { get; init; } = DefaultMaxReaders;

    /// <summary>Throws <see cref="ArgumentException"/> if an option is out of range.</summary>
    public void Validate()
    {
        if (CapacityFrames < 2 || CapacityFrames > MaxCapacityFrames || (CapacityFrames & (CapacityFrames - 1)) != 0)
        {
            throw new ArgumentException($"capacity of {CapacityFrames} frames is not valid: it must be a power of two from 2 to {MaxCapacityFrames:N0}.", nameof(CapacityFrames));
        }

        if (MaxReaders < 1 || MaxReaders > MaxReadersLimit)
        {
            throw new ArgumentException($"max readers of {MaxReaders} is not valid: it must be from 1 to {MaxReadersLimit}.", nameof(MaxReaders));
        }
    }
}

/// <summary>What a reader receives.</summary>
public enum Delivery
{
    /// <summary>Every frame, in order: the writer waits for this reader when the ring is full (backpressure).</summary>
    Lossless,

    /// <summary>The newest complete frame: the writer never waits for this reader, which counts the frames it skipped.</summary>
    Latest,
}

/// <summary>How a reader or writer waits for frames or space.</summary>
public enum WaitPolicy
{
    /// <summary>Spin briefly, then yield, then sleep on a futex: fast under load, idle when idle. The default.</summary>
    Hybrid,

    /// <summary>Spin without sleeping: the lowest latency, at the cost of a busy core.</summary>
    Spin,

    /// <summary>Sleep on a futex at once: the least CPU, at the cost of a wake-up per frame when idle.</summary>
    Block,

    /// <summary>
    /// Learn the stream's inter-arrival time, sleep on a timer until just before the next frame is due, spin
    /// across its arrival within a bounded budget (<see cref="ReaderOptions.SpinBudget"/>), then sleep on the
    /// futex. A stream with no regular rate waits exactly as <see cref="Hybrid"/> does; a writer waiting for
    /// space waits as <see cref="Hybrid"/> does.
    /// </summary>
    Predictive,
}

/// <summary>Options of a stream reader.</summary>
public sealed record ReaderOptions
{
    /// <summary>The default options: lossless delivery, hybrid waiting.</summary>
    public static ReaderOptions Default { get; } = new();

    /// <summary>What the reader receives. Default <see cref="Delivery.Lossless"/>.</summary>
    public Delivery Delivery { get; init; } = Delivery.Lossless;

    /// <summary>How the reader waits. Default <see cref="WaitPolicy.Hybrid"/>.</summary>
    public WaitPolicy WaitPolicy { get; init; } = WaitPolicy.Hybrid;

    /// <summary>How long a hybrid wait spins and yields before it sleeps. Default 50 µs.</summary>
    public TimeSpan SpinTime { get; init; } = WaitTuning.DefaultSpinTime;

    /// <summary>
    /// The most a <see cref="WaitPolicy.Predictive"/> wait spins per frame, as a fraction of the stream's
    /// frame interval (so of a core): above 0, at most 1. Default <see cref="WaitTuning.DefaultSpinBudget"/>.
    /// A stream whose timing jitter does not fit in the budget waits as <see cref="WaitPolicy.Hybrid"/> does.
    /// </summary>
    public double SpinBudget { get; init; } = WaitTuning.DefaultSpinBudget;

    /// <summary>Throws <see cref="ArgumentException"/> if an option is out of range.</summary>
    public void Validate() => WaitTuning.ValidateSpinBudget(SpinBudget, nameof(SpinBudget));

    /// <summary>
    /// When true, a writer that detached or died does not end a wait: the reader keeps waiting for a
    /// writer to attach and publish (a restarted worker). <see cref="ReadStatus.WriterGone"/> is then
    /// never returned; <see cref="ReadStatus.EndOfStream"/> still is. Default false.
    /// </summary>
    public bool WaitThroughWriterChanges { get; init; }
}

/// <summary>Options of a stream writer.</summary>
public sealed record WriterOptions
{
    /// <summary>The default options: hybrid waiting.</summary>
    public static WriterOptions Default { get; } = new();

    /// <summary>How the writer waits for space when a lossless reader lags. Default <see cref="WaitPolicy.Hybrid"/>.</summary>
    public WaitPolicy WaitPolicy { get; init; } = WaitPolicy.Hybrid;

    /// <summary>How long a hybrid wait spins and yields before it sleeps. Default 50 µs.</summary>
    public TimeSpan SpinTime { get; init; } = WaitTuning.DefaultSpinTime;
}

/// <summary>The result of a read or look.</summary>
public enum ReadStatus
{
    /// <summary>A frame was read.</summary>
    Ok,

    /// <summary>No frame arrived before the timeout.</summary>
    Timeout,

    /// <summary>The writer closed the stream and every frame has been read.</summary>
    EndOfStream,

    /// <summary>The writer died or detached without closing, and every frame it published has been read.</summary>
    WriterGone,
}

/// <summary>The result of a write or look.</summary>
public enum WriteStatus
{
    /// <summary>The frame was written (or the slot is ready to fill).</summary>
    Ok,

    /// <summary>A lossless reader kept the ring full until the timeout.</summary>
    Timeout,
}
