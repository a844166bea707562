using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// An auxiliary input: the newest frame of a stream, copied into a buffer of the worker's own whenever
/// the stream publishes a new one (a check after the copy catches a writer that lapped the ring
/// meanwhile). A matrix that never changes is copied once; a computation never sees a torn frame and
/// never holds its writer back. Zeros until the stream's first frame.
/// </summary>
internal sealed class AuxiliaryInput : IDisposable
{
    private readonly SharedStream stream;
    private readonly StreamReader<byte> reader;
    private readonly byte[] copy;
    private long sequence = -1;

    public AuxiliaryInput(string @namespace, string name)
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

        copy = new byte[stream.Format.FrameBytes];
    }

    /// <summary>The frame to compute with: refreshed if the stream published since the last call.</summary>
    public ReadOnlyMemory<byte> Refresh()
    {
        for (var attempt = 0; attempt < 16; attempt++)
        {
            if (!reader.PeekNewest(out var frame, out var header) || header.Sequence == sequence)
            {
                break;
            }

            frame.Span.CopyTo(copy);
            if (reader.IsStillIntact(header.Sequence))
            {
                sequence = header.Sequence;
                break;
            }
        }

        return copy;
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

    public MetricsWindow Window { get; } = new();

    /// <summary>The counters the worker keeps beside the window (frame sync, missed writes, outputs).</summary>
    public ref WorkerMetrics Counters => ref metrics;

    /// <summary>Beats, and publishes on the first frame, when the interval has passed, or when forced.</summary>
    public void Tick(Action<WorkerReporter>? beforePublish = null, bool force = false)
    {
        control.Beat();
        var now = MonotonicClock.NowNs();
        // Published on the first frame, then at most every interval (shmpipeline's rule).
        var first = metrics.FramesProcessed == 0 && Window.Frames > 0;
        if (!force && !first && now - lastPublishNs < IntervalNs)
        {
            return;
        }

        lastPublishNs = now;
        beforePublish?.Invoke(this);
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
