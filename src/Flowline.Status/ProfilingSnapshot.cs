namespace Flowline.Status;

/// <summary>
/// A profiling snapshot of a pipeline (<c>GET /profiling</c>): the always-on counters of every stream's
/// writer and readers, read from shared memory, and the histograms its workers keep (decision 90).
/// Counters and histograms are cumulative since the stream was created or the worker started.
/// </summary>
/// <param name="Time">When the snapshot was taken.</param>
/// <param name="Streams">Every stream of the pipeline, by name.</param>
/// <param name="Nodes">Every node with a compute-time histogram.</param>
public sealed record ProfilingSnapshot(DateTimeOffset Time, IReadOnlyList<StreamProfile> Streams, IReadOnlyList<NodeProfile> Nodes)
{
    /// <summary>True if the manager was busy and this is the last snapshot taken.</summary>
    public bool Stale { get; init; }
}

/// <summary>One stream's counters.</summary>
/// <param name="Name">The stream.</param>
/// <param name="Writer">Its writer's counters.</param>
/// <param name="Readers">Its attached readers' counters.</param>
public sealed record StreamProfile(string Name, WriterProfile Writer, IReadOnlyList<ReaderProfile> Readers)
{
    /// <summary>Slots in the ring.</summary>
    public int CapacityFrames { get; init; }

    /// <summary>Ring fill of the slowest lossless reader, 0 to 1.</summary>
    public double Fill { get; init; }
}

/// <summary>A stream writer's counters (every writer the stream had, added up).</summary>
/// <param name="Frames">Frames published.</param>
/// <param name="Bytes">Bytes published.</param>
/// <param name="BlockedSeconds">Time blocked on backpressure, waiting for a lossless reader.</param>
/// <param name="ProcessId">The process registry's id of the writer's process, when known; otherwise null.</param>
public sealed record WriterProfile(long Frames, long Bytes, double BlockedSeconds, string? ProcessId)
{
    /// <summary>The node that writes the stream, when a worker of the pipeline does.</summary>
    public string? Node { get; init; }

    /// <summary>The writer's pid, or null if no writer ever attached.</summary>
    public int? Pid { get; init; }

    /// <summary>none, attached, detached, closed or dead.</summary>
    public string State { get; init; } = "none";

    /// <summary>How many times the writer had to wait for space.</summary>
    public long SpaceWaits { get; init; }
}

/// <summary>A stream reader's counters, with its latency histogram when a worker of the pipeline reads.</summary>
/// <param name="Node">The node that reads, when a worker of the pipeline does; null for an external reader.</param>
/// <param name="ProcessId">The process registry's id of the reader's process, when known; otherwise null.</param>
/// <param name="Frames">Frames read.</param>
/// <param name="Bytes">Bytes read.</param>
/// <param name="WaitSeconds">Time spent waiting for input.</param>
/// <param name="Skipped">Frames skipped (latest delivery, or jumps when rejoining).</param>
/// <param name="Fill">Frames published but not yet read, as a fraction of the ring (0 to 1).</param>
/// <param name="Latency">The latency from the frames' origin timestamp to when the worker took them, or null.</param>
public sealed record ReaderProfile(string? Node, string? ProcessId, long Frames, long Bytes, double WaitSeconds, long Skipped, double Fill, HistogramSummary? Latency)
{
    /// <summary>The reader's entry in the stream's reader table.</summary>
    public int Index { get; init; }

    /// <summary>The reader's pid.</summary>
    public int Pid { get; init; }

    /// <summary>lossless or latest.</summary>
    public string Delivery { get; init; } = "lossless";

    /// <summary>Copies discarded because the writer overwrote them meanwhile (latest delivery).</summary>
    public long Torn { get; init; }
}

/// <summary>A node's compute-time histogram.</summary>
/// <param name="Name">The node.</param>
/// <param name="Compute">Its compute time per frame, or null before its first frame.</param>
public sealed record NodeProfile(string Name, HistogramSummary? Compute)
{
    /// <summary>The worker's pid, when it has one.</summary>
    public int? Pid { get; init; }

    /// <summary>The process registry's id of the worker's process, when known; otherwise null.</summary>
    public string? ProcessId { get; init; }
}

/// <summary>The summary of an HdrHistogram of times, in microseconds (two significant digits: 1 % resolution).</summary>
/// <param name="Count">Values recorded.</param>
/// <param name="P50Us">Median.</param>
/// <param name="P90Us">90th percentile.</param>
/// <param name="P99Us">99th percentile.</param>
/// <param name="P999Us">99.9th percentile.</param>
/// <param name="MaxUs">Largest.</param>
/// <param name="MeanUs">Mean.</param>
public sealed record HistogramSummary(long Count, double P50Us, double P90Us, double P99Us, double P999Us, double MaxUs, double MeanUs)
{
    /// <summary>
    /// The histogram's counts in buckets whose upper bounds are powers of two in microseconds (1, 2, 4, ... µs):
    /// each counts the values above the previous bound and at most its own (the first, every value up to 1 µs),
    /// at the histogram's resolution; listed from the first to the last non-empty bucket, with the empty ones
    /// between. Python workers report the same buckets (docs/http-api.md).
    /// </summary>
    public IReadOnlyList<HistogramBucket>? Buckets { get; init; }
}

/// <summary>One bucket of a <see cref="HistogramSummary"/>.</summary>
/// <param name="UpToUs">Its upper bound in microseconds, included: a power of two from 1.</param>
/// <param name="Count">Values above the previous bucket's bound and at most <paramref name="UpToUs"/>.</param>
public sealed record HistogramBucket(double UpToUs, long Count);

/// <summary>One traced frame (<c>GET /profiling/traces</c>, decision 94).</summary>
/// <param name="Stream">The stream the frame came on.</param>
/// <param name="Seq">Its sequence in the stream.</param>
/// <param name="FrameId">Its frame id.</param>
/// <param name="PublishNs">When its writer published it (<c>CLOCK_MONOTONIC</c>, ns).</param>
/// <param name="ReadNs">When the node took it.</param>
/// <param name="Node">The node that read it.</param>
/// <param name="ComputeNs">The node's compute time for it.</param>
public sealed record TraceSample(string Stream, long Seq, ulong FrameId, long PublishNs, long ReadNs, string Node, long ComputeNs);

/// <summary>What traces record (<c>POST /profiling/traces</c>).</summary>
/// <param name="Nodes">The nodes traced (null or empty: every kernel).</param>
/// <param name="Streams">The input streams traced (null or empty: every input).</param>
/// <param name="Every">Every n-th frame of a node is traced.</param>
/// <param name="Seconds">Traces switch off by themselves after this long.</param>
public sealed record TraceRequest(IReadOnlyList<string>? Nodes, IReadOnlyList<string>? Streams, int Every = 1, double Seconds = 10);

/// <summary>The state of traces after a request.</summary>
/// <param name="Enabled">Whether traces are on.</param>
/// <param name="Nodes">The nodes traced.</param>
/// <param name="Every">Every n-th frame.</param>
/// <param name="Seconds">The time limit.</param>
public sealed record TraceState(bool Enabled, IReadOnlyList<string> Nodes, int Every, double Seconds);
