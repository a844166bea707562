using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// An auxiliary input: the newest intact frame of a stream, copied into a buffer of the worker's own
/// whenever the stream publishes a new one. A copy goes into a scratch buffer and is checked afterwards
/// (the writer may have lapped the ring meanwhile); only an intact copy replaces the frame the worker
/// computes with, so a computation never sees a torn frame and never holds its writer back. A matrix
/// that never changes is copied once. Zeros until the stream's first frame.
/// </summary>
internal sealed class AuxiliaryInput : IDisposable
{
    /// <summary>Copies tried per <see cref="Refresh"/>: a writer that laps every copy must not hold the computation back.</summary>
    public const int MaxAttempts = 4;

    private readonly SharedStream stream;
    private readonly StreamReader<byte> reader;
    private readonly WorkerReporter? reporter;

    // Invariant: `frame` holds the intact copy of frame `sequence` (zeros while it is -1); `scratch` is
    // free to be written. They change places only when a copy into `scratch` proved intact.
    private byte[] frame;
    private byte[] scratch;
    private long sequence = -1;

    /// <summary>Attaches to stream <paramref name="name"/>; torn copies are also counted in <paramref name="reporter"/>'s figures.</summary>
    public AuxiliaryInput(string @namespace, string name, WorkerReporter? reporter = null)
    {
        stream = SharedStream.Attach(@namespace, name);
        try
        {
            reader = stream.OpenReader<byte>(PipelinePlan.AuxiliaryReader);
        }
        catch
        {
            stream.Dispose();
            throw;
        }

        this.reporter = reporter;
        frame = new byte[stream.Format.FrameBytes];
        scratch = new byte[stream.Format.FrameBytes];

        // Copy what the stream holds now (an initial value written at build): a large constant operand is
        // then copied while the worker starts, not in its first computation, where a second of page
        // faults for a 1 GiB matrix would look like a hung worker.
        Refresh();
    }

    /// <summary>Copies discarded because the writer overwrote the frame while it was copied.</summary>
    public long TornCopies { get; private set; }

    /// <summary>The frame to compute with: the newest intact copy, refreshed if the stream published since the last call.</summary>
    public ReadOnlyMemory<byte> Refresh()
    {
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            if (!reader.PeekNewest(out var newest, out var header) || header.Sequence == sequence)
            {
                break;
            }

            newest.Span.CopyTo(scratch);
            if (reader.IsStillIntact(header.Sequence))
            {
                (frame, scratch) = (scratch, frame);
                sequence = header.Sequence;
                break;
            }

            TornCopies++;
            if (reporter is not null)
            {
                reporter.Counters.AuxiliaryTornCopies++;
            }
        }

        return frame;
    }

    public void Dispose()
    {
        reader.Dispose();
        stream.Dispose();
    }
}

/// <summary>
/// What a worker publishes in its control block a few times a second: the rolling window's figures,
/// its counters and an endpoint's own metrics as JSON.
/// </summary>
internal sealed class WorkerReporter(ControlBlock control, Func<JsonObject?>? pluginMetrics = null)
{
    /// <summary>How often figures are published (shmpipeline: at most every 0.25 s).</summary>
    public static readonly long IntervalNs = 250_000_000;

    private long lastPublishNs;
    private WorkerMetrics metrics;
    private Action<WorkerReporter>? collect;

    public MetricsWindow Window { get; } = new();

    /// <summary>The worker's histograms (decision 90), published with its figures; null when profiling is off.</summary>
    public WorkerProfiler? Profiler { get; set; }
    /// <summary>The worker's routed requests: those that wait for a frame boundary run in <see cref="Tick"/>.</summary>
    public WorkerRequestService? Requests { get; set; }

    /// <summary>
    /// True for a worker on a thread of a process that runs others (<c>placement: thread</c>): it reports the
    /// waits of its own thread (<see cref="WaitCounters.ThisThread"/>), not its process's. Published from the worker's thread.
    /// </summary>
    public bool OwnThreadsWaits { get; set; }

    /// <summary>True while the loop is inside a frame (waiting for an output slot): between-frame requests wait.</summary>
    public bool InFrame { get; set; }

    /// <summary>The counters the worker keeps beside the window (frame sync, missed writes, outputs).</summary>
    public ref WorkerMetrics Counters => ref metrics;

    /// <summary>
    /// Beats, and publishes on the first frame, when the interval has passed, or when forced. The counters
    /// are collected by <paramref name="beforePublish"/>, or by the last one given (so that the final,
    /// forced publication of a stopping worker carries its latest counters too).
    /// </summary>
    public void Tick(Action<WorkerReporter>? beforePublish = null, bool force = false)
    {
        control.Beat();
        if (!InFrame)
        {
            Requests?.DrainBetweenFrames();
        }

        if (beforePublish is not null)
        {
            collect = beforePublish;
        }

        var now = MonotonicClock.NowNs();
        // Published on the first frame, then at most every interval (shmpipeline's rule).
        var first = metrics.FramesProcessed == 0 && Window.Frames > 0;
        if (!force && !first && now - lastPublishNs < IntervalNs)
        {
            return;
        }

        lastPublishNs = now;
        collect?.Invoke(this);
        var waits = OwnThreadsWaits
            ? WaitCounters.ThisThread
            : new WaitCounts(WaitCounters.PredictedWaits, WaitCounters.PredictedHits, WaitCounters.EarlyWakes, WaitCounters.EarlyWakeHits);
        metrics.PredictedWaits = waits.PredictedWaits;
        metrics.PredictedHits = waits.PredictedHits;
        metrics.EarlyWakes = waits.EarlyWakes;
        metrics.EarlyWakeHits = waits.EarlyWakeHits;
        Profiler?.Publish();
        Window.Fill(ref metrics);
        metrics.PublishedNs = now;
        control.WriteMetrics(metrics);
        if (pluginMetrics?.Invoke() is { } extra)
        {
            control.WriteReport(extra.ToJsonString());
        }
    }
}

/// <summary>A failure as the control block carries it and the manager reports it: type, message and stack trace.</summary>
/// <param name="Type">The exception's type, or "crash" / "hung" for failures the manager saw.</param>
/// <param name="Error">The message.</param>
/// <param name="Traceback">The stack trace (inner exceptions included), or what the worker printed last.</param>
public sealed record WorkerError(string Type, string Error, string Traceback)
{
    /// <summary>The error of <paramref name="exception"/>.</summary>
    public static WorkerError From(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return new WorkerError(exception.GetType().FullName ?? exception.GetType().Name, exception.Message, exception.ToString());
    }

    /// <summary>As JSON text.</summary>
    public string ToJson() => new JsonObject { ["type"] = Type, ["error"] = Error, ["traceback"] = Traceback }.ToJsonString();

    /// <summary>Reads JSON text written by <see cref="ToJson"/>; anything else becomes the message of an error of unknown type.</summary>
    public static WorkerError Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        try
        {
            if (JsonNode.Parse(text) is JsonObject o)
            {
                return new WorkerError((string?)o["type"] ?? "Exception", (string?)o["error"] ?? "", (string?)o["traceback"] ?? "");
            }
        }
        catch (JsonException)
        {
        }

        return new WorkerError("Exception", text, "");
    }
}
