using System.Collections.Immutable;
using Flowline.Runtime;
using Flowline.SharedMemory;

namespace Flowline.Pipelines;

/// <summary>
/// What every binding of one task shares: the worker's control block (for pauses), its reporter (for
/// figures), the stop token, and the stamp of the last frame the task read (carried to what it writes,
/// so that end-to-end latency flows through tasks as through kernels).
/// </summary>
internal sealed class TaskGate(ControlBlock control, WorkerReporter reporter, CancellationTokenSource stopping)
{
    private long lastFrameNs = MonotonicClock.NowNs();

    public CancellationToken Stopping { get; } = stopping.Token;

    public FrameStamp LastStamp { get; private set; }

    /// <summary>
    /// Called before every operation: reports, holds the task while the pipeline is paused (the worker
    /// says paused only while it is held here), and ends the task's operations once it is told to stop.
    /// </summary>
    public void Enter()
    {
        reporter.Tick();
        if (control.Command == WorkerCommand.Pause)
        {
            control.State = WorkerState.Paused;
            while (control.Command == WorkerCommand.Pause && !Stopping.IsCancellationRequested)
            {
                control.WaitForCommandChange(WorkerCommand.Pause, WorkerRunner.WaitSlice);
                reporter.Tick();
            }

            control.State = WorkerState.Running;
        }

        if (control.Command == WorkerCommand.Stop)
        {
            stopping.Cancel();
        }

        Stopping.ThrowIfCancellationRequested();
    }

    /// <summary>The task's compute-time histogram (decision 110): the time from a frame in to the frame out; null without profiling.</summary>
    public HdrHistogram.LongHistogram? Compute { get; set; }

    /// <summary>Notes a frame read; <paramref name="latency"/> (the reader's histogram, if profiled) gets its age from the origin.</summary>
    public void Received(in FrameHeader header, HdrHistogram.LongHistogram? latency = null)
    {
        LastStamp = FrameStamp.From(header);
        lastFrameNs = MonotonicClock.NowNs();
        if (header.OriginTimestampNs > 0)
        {
            ProfileHistograms.Record(latency, lastFrameNs - header.OriginTimestampNs);
        }
    }

    /// <summary>Counts one frame out: its time since the last frame in, and its latency from the origin.</summary>
    public void Produced()
    {
        var now = MonotonicClock.NowNs();
        reporter.Window.Record(now - lastFrameNs, now, LastStamp.OriginTimestampNs == 0 ? now : LastStamp.OriginTimestampNs);
        ProfileHistograms.Record(Compute, now - lastFrameNs);
        lastFrameNs = now;
    }

    /// <summary>A task that only reads counts the frames it consumes.</summary>
    public bool CountsReads { get; set; }

    /// <summary>Waits for <paramref name="wait"/> in slices, so that reports, pauses and stops are seen; false on timeout.</summary>
    public TStatus Wait<TStatus>(Func<TimeSpan, CancellationToken, TStatus> wait, TimeSpan? timeout, CancellationToken cancellationToken, TStatus timedOut)
        where TStatus : struct, Enum
    {
        using var linked = cancellationToken.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(Stopping, cancellationToken) : null;
        var token = linked?.Token ?? Stopping;
        var deadline = MonotonicClock.DeadlineNs(timeout);
        while (true)
        {
            Enter();
            var left = deadline == long.MaxValue ? WorkerRunner.WaitSlice : TimeSpan.FromTicks(Math.Max(0, (deadline - MonotonicClock.NowNs()) / 100));
            var slice = left < WorkerRunner.WaitSlice ? left : WorkerRunner.WaitSlice;
            var status = wait(slice, token);
            if (!EqualityComparer<TStatus>.Default.Equals(status, timedOut) || MonotonicClock.NowNs() >= deadline)
            {
                return status;
            }
        }
    }
}

/// <summary>What a task's reader and writer tell about their stream.</summary>
/// <typeparam name="T">The element type of the binding.</typeparam>
public abstract class TaskStream<T>
    where T : unmanaged
{
    private protected TaskStream(string name, FrameFormat format)
    {
        Name = name;
        Shape = format.Shape;
        ElementType = format.ElementType;
        FrameBytes = format.FrameBytes;
        FrameLength = format.FrameBytes / System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
    }

    /// <summary>The stream's name.</summary>
    public string Name { get; }

    /// <summary>The frame shape.</summary>
    public ImmutableArray<int> Shape { get; }

    /// <summary>The stream's element type.</summary>
    public ElementType ElementType { get; }

    /// <summary>Bytes per frame.</summary>
    public int FrameBytes { get; }

    /// <summary>Values of <typeparamref name="T"/> per frame.</summary>
    public int FrameLength { get; }
}

/// <summary>
/// A task's reader of one stream (PYTHUSA's <c>StreamReader</c> binding). By default it is lossless: the
/// writer waits for it when the ring is full. Calls without a timeout return at once (PYTHUSA's
/// non-blocking reads); with a timeout they sleep until a frame comes (no polling loop in user code).
/// Pauses of the pipeline hold the task inside these calls; a stop ends them with
/// <see cref="OperationCanceledException"/>.
/// </summary>
/// <typeparam name="T">The element type: the stream's, or <see cref="byte"/> for raw bytes.</typeparam>
public sealed class TaskReader<T> : TaskStream<T>
    where T : unmanaged
{
    private readonly TaskGate gate;
    private bool looking;

    internal TaskReader(string name, FrameFormat format, StreamReader<T> reader, TaskGate gate)
        : base(name, format)
    {
        Raw = reader;
        this.gate = gate;
    }

    /// <summary>The underlying ring reader (PYTHUSA's <c>.raw</c>): every operation of <see cref="StreamReader{T}"/>.</summary>
    public StreamReader<T> Raw { get; }

    /// <summary>The latency histogram of this reader's frames (profiling, decision 110); null without profiling.</summary>
    internal HdrHistogram.LongHistogram? Latency { get; set; }

    /// <summary>The header (sequence, frame id, timestamps) of the last frame read or looked at.</summary>
    public FrameHeader LastHeader { get; private set; }

    /// <summary>True once the writer closed the stream and every frame was read.</summary>
    public bool EndOfStream { get; private set; }

    /// <summary>True while this reader holds the writer back (lossless delivery).</summary>
    public bool IsBlocking => Raw.IsBlocking;

    /// <summary>
    /// A copy of the next frame, or null if none is ready (or none came within <paramref name="timeout"/>,
    /// or the stream ended: see <see cref="EndOfStream"/>).
    /// </summary>
    public T[]? Read(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var frame = new T[FrameLength];
        return ReadInto(frame, timeout, cancellationToken) ? frame : null;
    }

    /// <summary>Copies the next frame into <paramref name="destination"/> (exactly one frame long); false if none is ready in time.</summary>
    public bool ReadInto(Span<T> destination, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        if (destination.Length != FrameLength)
        {
            throw new ArgumentException($"stream '{Name}' has frames of {FrameLength} {typeof(T).Name} values, not {destination.Length}", nameof(destination));
        }

        if (!Await(timeout, cancellationToken))
        {
            return false;
        }

        var status = Raw.ReadInto(destination, out var header, TimeSpan.Zero);
        return Took(status, header);
    }

    /// <summary>The next frame in place, without consuming it (call <see cref="Increment"/> when done); false if none is ready in time.</summary>
    public bool Look(out ReadOnlySpan<T> frame, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        frame = default;
        if (!Await(timeout, cancellationToken))
        {
            return false;
        }

        var status = Raw.Look(out frame, out var header, TimeSpan.Zero);
        if (status != ReadStatus.Ok)
        {
            EndOfStream = status is ReadStatus.EndOfStream or ReadStatus.WriterGone;
            return false;
        }

        LastHeader = header;
        gate.Received(header, Latency);
        looking = true;
        return true;
    }

    /// <summary>Releases the frame of the last <see cref="Look"/>; false if none was held.</summary>
    public bool Increment()
    {
        if (!looking)
        {
            return false;
        }

        looking = false;
        var released = Raw.Increment();
        if (released && gate.CountsReads)
        {
            gate.Produced();
        }

        return released;
    }

    /// <summary>
    /// True: lossless (the writer waits for this reader). False: latest (it never holds the writer back and
    /// skips to the newest frame). Switching back to lossless resumes from the newest frame: the backlog
    /// skipped meanwhile is not replayed.
    /// </summary>
    public void SetBlocking(bool blocking) => Raw.SetBlocking(blocking);

    private bool Await(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        gate.Enter();
        var status = timeout is null || timeout == TimeSpan.Zero
            ? Raw.WaitForFrame(TimeSpan.Zero)
            : gate.Wait((slice, token) => Raw.WaitForFrame(slice, token), timeout, cancellationToken, ReadStatus.Timeout);
        if (status is ReadStatus.EndOfStream or ReadStatus.WriterGone)
        {
            EndOfStream = true;
        }

        return status == ReadStatus.Ok;
    }

    private bool Took(ReadStatus status, in FrameHeader header)
    {
        if (status != ReadStatus.Ok)
        {
            EndOfStream = status is ReadStatus.EndOfStream or ReadStatus.WriterGone;
            return false;
        }

        LastHeader = header;
        gate.Received(header, Latency);
        if (gate.CountsReads)
        {
            gate.Produced();
        }

        return true;
    }
}

/// <summary>
/// A task's writer of one stream (PYTHUSA's <c>StreamWriter</c> binding). Each frame carries the frame id
/// and origin timestamp of the last frame the task read, so latency is measured end to end.
/// </summary>
/// <typeparam name="T">The element type: the stream's, or <see cref="byte"/> for raw bytes.</typeparam>
public sealed class TaskWriter<T> : TaskStream<T>
    where T : unmanaged
{
    private readonly TaskGate gate;
    private bool looking;

    internal TaskWriter(string name, FrameFormat format, StreamWriter<T> writer, TaskGate gate)
        : base(name, format)
    {
        Raw = writer;
        this.gate = gate;
    }

    /// <summary>The underlying ring writer (PYTHUSA's <c>.raw</c>).</summary>
    public StreamWriter<T> Raw { get; }

    /// <summary>
    /// Publishes a copy of <paramref name="frame"/> (exactly one frame long). Without a timeout it waits as
    /// long as a lossless reader keeps the ring full; false if there was no room within <paramref name="timeout"/>.
    /// </summary>
    public bool Write(ReadOnlySpan<T> frame, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        if (frame.Length != FrameLength)
        {
            throw new ArgumentException($"stream '{Name}' has frames of {FrameLength} {typeof(T).Name} values, not {frame.Length}", nameof(frame));
        }

        if (!AwaitSpace(timeout, cancellationToken))
        {
            return false;
        }

        Raw.Write(frame, gate.LastStamp, TimeSpan.Zero);
        gate.Produced();
        return true;
    }

    /// <summary>The next slot to fill in place (publish it with <see cref="Increment"/>); false if there was no room in time.</summary>
    public bool Look(out Span<T> slot, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        slot = default;
        if (!AwaitSpace(timeout, cancellationToken))
        {
            return false;
        }

        looking = Raw.Look(out slot, TimeSpan.Zero) == WriteStatus.Ok;
        return looking;
    }

    /// <summary>Publishes the slot of the last <see cref="Look"/>; false if none was taken.</summary>
    public bool Increment()
    {
        if (!looking)
        {
            return false;
        }

        looking = false;
        Raw.Publish(gate.LastStamp);
        gate.Produced();
        return true;
    }

    /// <summary>Ends the stream: readers get end-of-stream once they have read every frame.</summary>
    public void Close() => Raw.Close();

    private bool AwaitSpace(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        gate.Enter();
        // A look that finds room takes the slot; the write or look that follows takes the same one.
        return gate.Wait((slice, token) => Raw.Look(out _, slice, token), timeout ?? Timeout.InfiniteTimeSpan, cancellationToken, WriteStatus.Timeout) == WriteStatus.Ok;
    }
}

/// <summary>A task's binding of a pipeline event (PYTHUSA's <c>WorkerEvent</c>): set, signal, reset, wait.</summary>
public sealed class TaskEvent
{
    private readonly TaskGate gate;

    internal TaskEvent(string name, SharedEvent @event, TaskGate gate)
    {
        Name = name;
        Raw = @event;
        this.gate = gate;
    }

    /// <summary>The event's name.</summary>
    public string Name { get; }

    /// <summary>The underlying shared event.</summary>
    public SharedEvent Raw { get; }

    /// <summary>True while set.</summary>
    public bool IsSet => Raw.IsSet;

    /// <summary>Activations not yet taken.</summary>
    public int PendingActivations => Raw.PendingActivations;

    /// <summary>Sets the event (without counting an activation).</summary>
    public void Set() => Raw.Set();

    /// <summary>Counts one activation and sets the event.</summary>
    public void Signal() => Raw.Signal();

    /// <summary>Takes one activation; clears the event when none is left.</summary>
    public void Reset() => Raw.Reset();

    /// <summary>Clears the event and every pending activation.</summary>
    public void Clear() => Raw.Clear();

    /// <summary>Waits until the event is set; false on timeout (null waits until the pipeline stops).</summary>
    public bool Wait(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        gate.Wait((slice, token) => Raw.Wait(slice, token) ? WaitOutcome.Set : WaitOutcome.TimedOut, timeout, cancellationToken, WaitOutcome.TimedOut) == WaitOutcome.Set;

    /// <summary>Waits for an activation and takes it; false on timeout.</summary>
    public bool WaitActivation(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        gate.Wait((slice, token) => Raw.WaitActivation(slice, token) ? WaitOutcome.Set : WaitOutcome.TimedOut, timeout, cancellationToken, WaitOutcome.TimedOut) == WaitOutcome.Set;

    private enum WaitOutcome
    {
        TimedOut,
        Set,
    }
}

/// <summary>What a task may ask of its worker: its name, the pipeline's namespace, and the stop token.</summary>
public sealed class TaskContext
{
    internal TaskContext(string name, string @namespace, CancellationToken stopping)
    {
        Name = name;
        Namespace = @namespace;
        Stopping = stopping;
    }

    /// <summary>The task's name.</summary>
    public string Name { get; }

    /// <summary>The namespace of the pipeline's streams.</summary>
    public string Namespace { get; }

    /// <summary>Fires when the pipeline stops the task; a task that owns a loop should end it then.</summary>
    public CancellationToken Stopping { get; }
}
