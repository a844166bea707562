using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Reflection;

namespace Flowline.Runtime;

/// <summary>
/// A pipeline's figures as .NET instruments (meter <see cref="MeterName"/>), read from its typed status
/// when a listener collects them (OpenTelemetry, <c>dotnet-counters</c>), and its lifecycle operations
/// as activities of <see cref="ActivitySource"/>. Units follow OpenTelemetry's conventions: seconds,
/// ratios (0 to 1), bytes; counters are cumulative. Every measurement is tagged with the pipeline's
/// <c>namespace</c>, and a worker's with its <c>worker</c> name and <c>role</c> (kernel, task, source, sink).
/// </summary>
public sealed class PipelineMetrics : IDisposable
{
    /// <summary>The name of Flowline's meter and activity source.</summary>
    public const string MeterName = "Flowline";

    /// <summary>How long one status serves every instrument of a collection.</summary>
    private static readonly TimeSpan StatusReuse = TimeSpan.FromMilliseconds(200);

    private static readonly string? Version = typeof(PipelineMetrics).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;

    private readonly Func<PipelineStatus?> read;
    private readonly Func<ProfilingSnapshot?>? readProfiling;
    private readonly Histogram<double> operations;
    private readonly Lock gate = new();
    private PipelineStatus? cached;
    private long cachedAt;
    private ProfilingSnapshot? cachedProfiling;
    private long cachedProfilingAt;

    /// <summary>Creates the instruments of a pipeline whose status <paramref name="status"/> returns (null when it cannot be had).</summary>
    /// <param name="status">Reads the status; called at most once per 200 ms, on the collecting thread.</param>
    /// <param name="meterFactory">Creates the meter (a host's, so that its exporters can tell its meters apart); null for a meter of its own.</param>
    /// <param name="profiling">Reads the profiling snapshot (decision 90); called at most once per 200 ms; null for no profiling instruments.</param>
    public PipelineMetrics(Func<PipelineStatus?> status, IMeterFactory? meterFactory = null, Func<ProfilingSnapshot?>? profiling = null)
    {
        ArgumentNullException.ThrowIfNull(status);
        read = status;
        readProfiling = profiling;
        Meter = meterFactory?.Create(new MeterOptions(MeterName) { Version = Version }) ?? new Meter(MeterName, Version);

        Meter.CreateObservableGauge("flowline.pipeline.state", States, null, "1 for the pipeline's current state, 0 for the others.");
        Meter.CreateObservableGauge("flowline.pipeline.failures", () => Pipeline(s => s.Failures.Count), "{failure}", "Failure records of the pipeline.");
        Meter.CreateObservableGauge("flowline.document.revision", () => Pipeline(s => s.DocumentRevision), null, "Revision of the document a control plane serves.");
        operations = Meter.CreateHistogram(
            "flowline.pipeline.operation.duration",
            "s",
            "Duration of lifecycle operations (build, start, pause, resume, stop, restart, shutdown).",
            tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] });

        WorkerCounter("flowline.worker.frames", "{frame}", "Frames a worker processed (kernels, tasks), wrote (sources) or consumed (sinks).", w => w.Frames);
        WorkerCounter("flowline.worker.torn_frames", "{frame}", "Latest-delivery copies a worker discarded because the writer overwrote them.", w => w.TornFrames);
        WorkerCounter("flowline.worker.auxiliary_torn_copies", "{copy}", "Auxiliary-input copies a worker discarded because the writer overwrote them.", w => w.AuxiliaryTornCopies);
        WorkerCounter("flowline.worker.frame_sync.skew_events", "{event}", "Times matching_frame_id inputs disagreed.", w => w.FrameSyncSkewEvents);
        WorkerCounter("flowline.worker.missed_writes", "{frame}", "Source periods missed, or frames a sink skipped.", w => (w as EndpointStatus)?.MissedWrites);
        WorkerGauge("flowline.worker.throughput", "{frame}/s", "Rolling frames per second of a worker.", w => w.ThroughputHz);
        WorkerGauge("flowline.worker.exec.duration.mean", "s", "Mean execution time over the metrics window.", w => w.AvgExecUs / 1e6);
        WorkerGauge("flowline.worker.exec.duration.last", "s", "Execution time of the last frame.", w => w.LastExecUs / 1e6);
        WorkerGauge("flowline.worker.exec.jitter", "s", "Population standard deviation of the execution time over the metrics window.", w => w.JitterUsRms / 1e6);
        WorkerGauge("flowline.worker.idle.time", "s", "Time since the worker last made progress.", w => w.IdleS);
        WorkerGauge("flowline.worker.cpu.utilization_ratio", "1", "CPU use of the worker's process or thread, as a fraction of one core.", w => w.CpuPercent / 100);
        WorkerGauge("flowline.worker.memory.resident", "By", "Resident memory of the worker's process.", w => w.RssBytes);
        foreach (var (quantile, pick) in new (string, Func<LatencyFigures, double>)[] { ("p50", l => l.P50), ("p90", l => l.P90), ("p99", l => l.P99), ("max", l => l.Max) })
        {
            WorkerGauge($"flowline.worker.latency.{quantile}", "s", $"End-to-end latency from the frame's origin, {quantile} over the worker's window.", w => w.LatencyUs is { } l ? pick(l) / 1e6 : null);
        }

        Meter.CreateObservableGauge("flowline.stream.fill_ratio", () => Streams(s => s.Fill), "1", "Fill of a stream's ring for its slowest lossless reader (0 to 1).");
        Meter.CreateObservableCounter("flowline.stream.frames.published", () => Streams(s => s.FramesPublished), "{frame}", "Frames published into a stream.");
        if (readProfiling is not null)
        {
            CreateProfilingInstruments();
        }
    }

    /// <summary>The meter of the instruments.</summary>
    public Meter Meter { get; }

    /// <summary>The activity source of lifecycle operations (<c>flowline.pipeline.build</c>, <c>.start</c>, ...).</summary>
    public static ActivitySource ActivitySource { get; } = new(MeterName, Version);

    /// <summary>Records the duration of a lifecycle operation.</summary>
    public void RecordOperation(string operation, string @namespace, TimeSpan duration, bool failed) =>
        operations.Record(duration.TotalSeconds, new("namespace", @namespace), new("operation", operation), new("outcome", failed ? "error" : "ok"));

    /// <summary>Removes the instruments.</summary>
    public void Dispose() => Meter.Dispose();

    /// <summary>The status of this collection: read once for every instrument, then reused briefly.</summary>
    private PipelineStatus? Current()
    {
        lock (gate)
        {
            var now = Stopwatch.GetTimestamp();
            if (cached is null || Stopwatch.GetElapsedTime(cachedAt, now) > StatusReuse)
            {
                cached = read();
                cachedAt = now;
            }

            return cached;
        }
    }

    private IEnumerable<Measurement<int>> States()
    {
        if (Current() is not { } s)
        {
            yield break;
        }

        foreach (var state in Enum.GetValues<PipelineState>())
        {
            var name = state.ToName();
            yield return new(name == s.State ? 1 : 0, new("namespace", s.Namespace), new("state", name));
        }
    }

    private IEnumerable<Measurement<double>> Pipeline(Func<PipelineStatus, double?> value)
    {
        if (Current() is { } s && value(s) is { } v)
        {
            yield return new(v, new KeyValuePair<string, object?>("namespace", s.Namespace));
        }
    }

    private void WorkerGauge(string name, string unit, string description, Func<WorkerEntry, double?> value) =>
        Meter.CreateObservableGauge(name, () => Workers(value), unit, description);

    private void WorkerCounter(string name, string unit, string description, Func<WorkerEntry, long?> value) =>
        Meter.CreateObservableCounter(name, () => Workers(value), unit, description);

    /// <summary>One measurement per worker that has measured figures.</summary>
    private IEnumerable<Measurement<T>> Workers<T>(Func<WorkerEntry, T?> value)
        where T : struct
    {
        if (Current() is not { } s)
        {
            yield break;
        }

        foreach (var w in s.AllWorkers())
        {
            if (w.HasFigures && value(w) is { } v)
            {
                yield return new(v, new("namespace", s.Namespace), new("role", w.Role), new("worker", w.Name));
            }
        }
    }

    /// <summary>The profiling instruments (decision 90): stream counters and the quantiles of the workers' histograms.</summary>
    private void CreateProfilingInstruments()
    {
        Meter.CreateObservableCounter("flowline.stream.bytes.published", () => Writers(w => w.Bytes), "By", "Bytes published into a stream.");
        Meter.CreateObservableCounter("flowline.stream.writer.blocked.time", () => Writers(w => w.BlockedSeconds), "s", "Time a stream's writer spent blocked on backpressure.");
        Meter.CreateObservableCounter("flowline.stream.reader.frames", () => Readers(r => r.Frames), "{frame}", "Frames a reader of a stream read.");
        Meter.CreateObservableCounter("flowline.stream.reader.bytes", () => Readers(r => r.Bytes), "By", "Bytes a reader of a stream read.");
        Meter.CreateObservableCounter("flowline.stream.reader.skipped", () => Readers(r => r.Skipped), "{frame}", "Frames a reader of a stream skipped.");
        Meter.CreateObservableCounter("flowline.stream.reader.wait.time", () => Readers(r => r.WaitSeconds), "s", "Time a reader of a stream spent waiting for input.");
        Meter.CreateObservableGauge("flowline.stream.reader.fill_ratio", () => Readers(r => r.Fill), "1", "Frames published that a reader has not read, as a fraction of the ring.");
        foreach (var (quantile, pick) in new (string, Func<HistogramSummary, double>)[] { ("p50", h => h.P50Us), ("p90", h => h.P90Us), ("p99", h => h.P99Us), ("p999", h => h.P999Us), ("max", h => h.MaxUs) })
        {
            Meter.CreateObservableGauge($"flowline.stream.reader.latency.{quantile}", () => Readers(r => r.Latency is { } l ? pick(l) / 1e6 : (double?)null), "s", $"Latency of a reader's frames from their origin, {quantile} since the worker started (HdrHistogram).");
            Meter.CreateObservableGauge($"flowline.node.compute.duration.{quantile}", () => Nodes(n => n.Compute is { } c ? pick(c) / 1e6 : (double?)null), "s", $"Compute time of a node per frame, {quantile} since the worker started (HdrHistogram).");
        }
    }

    /// <summary>The profiling snapshot of this collection: read once for every instrument, then reused briefly.</summary>
    private ProfilingSnapshot? CurrentProfiling()
    {
        lock (gate)
        {
            var now = Stopwatch.GetTimestamp();
            if (cachedProfiling is null || Stopwatch.GetElapsedTime(cachedProfilingAt, now) > StatusReuse)
            {
                cachedProfiling = readProfiling?.Invoke();
                cachedProfilingAt = now;
            }

            return cachedProfiling;
        }
    }

    private IEnumerable<Measurement<T>> Writers<T>(Func<WriterProfile, T> value)
        where T : struct
    {
        if (Current() is not { } s || CurrentProfiling() is not { } p)
        {
            yield break;
        }

        foreach (var stream in p.Streams)
        {
            yield return new(value(stream.Writer), new("namespace", s.Namespace), new("stream", stream.Name));
        }
    }

    private IEnumerable<Measurement<T>> Readers<T>(Func<ReaderProfile, T?> value)
        where T : struct
    {
        if (Current() is not { } s || CurrentProfiling() is not { } p)
        {
            yield break;
        }

        foreach (var stream in p.Streams)
        {
            foreach (var reader in stream.Readers)
            {
                if (value(reader) is { } v)
                {
                    yield return new(v, new("namespace", s.Namespace), new("stream", stream.Name), new("reader", reader.Node ?? $"external-{reader.Index}"));
                }
            }
        }
    }

    private IEnumerable<Measurement<T>> Readers<T>(Func<ReaderProfile, T> value)
        where T : struct => Readers<T>(r => (T?)value(r));

    private IEnumerable<Measurement<double>> Nodes(Func<NodeProfile, double?> value)
    {
        if (Current() is not { } s || CurrentProfiling() is not { } p)
        {
            yield break;
        }

        foreach (var node in p.Nodes)
        {
            if (value(node) is { } v)
            {
                yield return new(v, new("namespace", s.Namespace), new("node", node.Name));
            }
        }
    }

    private IEnumerable<Measurement<T>> Streams<T>(Func<StreamStatus, T> value)
        where T : struct
    {
        if (Current() is not { } s)
        {
            yield break;
        }

        foreach (var (name, stream) in s.Streams)
        {
            yield return new(value(stream), new KeyValuePair<string, object?>("namespace", s.Namespace), new("stream", name));
        }
    }
}
