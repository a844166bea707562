using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Flowline.Status;

/// <summary>
/// The figures of a worker (shmpipeline's metric fields, plus Flowline's latency, skips, CPU and memory).
/// Times are in the units their names say; they are what shmpipeline's tools read.
/// </summary>
public record WorkerFigures
{
    /// <summary>
    /// True when the figures are measured (the worker has a process or thread); they are written only
    /// then (an entry keeps its <c>pid</c> and <c>cpu_slot</c>), as shmpipeline reports figures only once a worker has them.
    /// </summary>
    [JsonIgnore]
    public bool HasFigures { get; init; } = true;

    /// <summary>The worker's process (the program's own for a task on a thread).</summary>
    public int? Pid { get; init; }

    /// <summary>The CPU it is pinned to, or null.</summary>
    public int? CpuSlot { get; init; }

    /// <summary>Frames it processed (kernels), wrote (sources) or consumed (sinks).</summary>
    public long FramesProcessed { get; init; }

    /// <summary>Execution time of the last frame, ms.</summary>
    public double LastExecMs { get; init; }

    /// <summary>Execution time of the last frame, µs.</summary>
    public double LastExecUs { get; init; }

    /// <summary>Mean execution time over the metrics window, ms.</summary>
    public double AvgExecMs { get; init; }

    /// <summary>Mean execution time over the metrics window, µs.</summary>
    public double AvgExecUs { get; init; }

    /// <summary>Population standard deviation of the execution time over the window, µs.</summary>
    public double JitterUsRms { get; init; }

    /// <summary>Rolling frames per second.</summary>
    public double ThroughputHz { get; init; }

    /// <summary>Seconds since the worker started.</summary>
    public double RuntimeS { get; init; }

    /// <summary>Frames it wrote.</summary>
    public long LastOutputCount { get; init; }

    /// <summary>Samples in the metrics window.</summary>
    public int MetricsWindow { get; init; }

    /// <summary>Times <c>matching_frame_id</c> inputs disagreed.</summary>
    public long FrameSyncSkewEvents { get; init; }

    /// <summary>Generations dropped to resynchronise inputs.</summary>
    public long FrameSyncSkippedGenerations { get; init; }

    /// <summary>Synchronisations given up after <c>max_wait_s</c>.</summary>
    public long FrameSyncTimeouts { get; init; }

    /// <summary>Seconds since the worker last made progress.</summary>
    public double IdleS { get; init; }

    /// <summary>Seconds since the worker last published its figures; null before it first did.</summary>
    public double? LastMetricAgeS { get; init; }

    /// <summary>Seconds since the worker's last heartbeat; null before its first.</summary>
    public double? HeartbeatAgeS { get; init; }

    /// <summary>End-to-end latency from the frame's origin, µs (absent for sources).</summary>
    public LatencyFigures? LatencyUs { get; init; }

    /// <summary>Frames skipped on each input (latest delivery), by stream (absent for sources).</summary>
    public IReadOnlyDictionary<string, long>? SkippedPerInput { get; init; }

    /// <summary>Latest-delivery copies discarded because the writer overwrote them.</summary>
    public long TornFrames { get; init; }

    /// <summary>
    /// Computations of a kernel whose outputs were thrown away because a latest input was overwritten
    /// while it computed (kernels only; 0 since latest readers hold the slot they read, decision 100).
    /// </summary>
    public long DiscardedComputes { get; init; }

    /// <summary>Auxiliary-input copies discarded because the writer overwrote them.</summary>
    public long AuxiliaryTornCopies { get; init; }

    /// <summary>How the worker's waits for input ended (predictive plans, early wake-ups), counted since it started.</summary>
    public WaitFigures? Waits { get; init; }

    /// <summary>CPU use of the worker's process, percent of one core.</summary>
    public double CpuPercent { get; init; }

    /// <summary>Resident memory of the worker's process, bytes.</summary>
    public long RssBytes { get; init; }
}

/// <summary>How a worker's waits for input ended, counted since it started (decision 138).</summary>
public sealed record WaitFigures
{
    /// <summary>Predictive waits that had a plan (slept to it, or were woken before it, then spun across the expected arrival).</summary>
    public long PredictedWaits { get; init; }

    /// <summary>Those whose frame came while they spun.</summary>
    public long PredictedHits { get; init; }

    /// <summary>Waits woken early by a writer about to publish (a paced source, or an upstream stage woken for the same frame).</summary>
    public long EarlyWakes { get; init; }

    /// <summary>Those whose frame came while they spun; the others slept again until the frame's wake-up.</summary>
    public long EarlyWakeHits { get; init; }
}

/// <summary>
/// How a paced source kept its rate and woke its readers before its frames, counted since it started
/// (decision 161). <see cref="Intervals"/> = <see cref="EarlyWakes"/> + <see cref="BoundSkips"/> + <see cref="Overdue"/>.
/// </summary>
public sealed record PacerFigures
{
    /// <summary>The interval between intended times (one over the rate), µs.</summary>
    public double IntervalUs { get; init; }

    /// <summary>How long before each intended time the source wakes its readers, µs.</summary>
    public double WakeLeadUs { get; init; }

    /// <summary>The largest share of the interval the lead and the learnt lateness may take for an early wake-up to be given (0.1).</summary>
    public double MaxEarlyShare { get; init; }

    /// <summary>Intended times the source waited for or came back to.</summary>
    public long Intervals { get; init; }

    /// <summary>Intervals in which it woke its readers early (late ones included).</summary>
    public long EarlyWakes { get; init; }

    /// <summary>Intervals without an early wake-up because the lead and the learnt lateness exceeded <see cref="MaxEarlyShare"/> of the interval.</summary>
    public long BoundSkips { get; init; }

    /// <summary>Early wake-ups given after the intended time (the timer woke later than the lead and its learnt lateness).</summary>
    public long LateWakes { get; init; }

    /// <summary>Intervals the source came back to after their intended time: no wait and no early wake-up.</summary>
    public long Overdue { get; init; }

    /// <summary>Whole intervals skipped because the source was late (its <c>missed_writes</c>).</summary>
    public long Missed { get; init; }

    /// <summary>How late the source's timer wakes, as it learnt it (the median of its last 16 sleeps), µs.</summary>
    public double TimerLatenessUs { get; init; }
}

/// <summary>Latency quantiles, in the unit of the field that holds them.</summary>
public sealed record LatencyFigures
{
    /// <summary>Median.</summary>
    public double P50 { get; init; }

    /// <summary>90th percentile.</summary>
    public double P90 { get; init; }

    /// <summary>99th percentile.</summary>
    public double P99 { get; init; }

    /// <summary>Largest.</summary>
    public double Max { get; init; }
}

/// <summary>
/// What every worker, source and sink reports: its identity and health, and its figures once it has a
/// process or thread (<see cref="WorkerFigures.HasFigures"/>).
/// </summary>
public abstract record WorkerEntry : WorkerFigures
{
    /// <summary>An entry without figures (for deserialisation).</summary>
    protected WorkerEntry()
    {
    }

    /// <summary>An entry with <paramref name="figures"/> (their <see cref="WorkerFigures.HasFigures"/> included).</summary>
    protected WorkerEntry(WorkerFigures figures, string name, string kind, string placement, bool alive, int? exitcode, string health)
        : base(figures)
    {
        Name = name;
        Kind = kind;
        Placement = placement;
        Alive = alive;
        Exitcode = exitcode;
        Health = health;
    }

    /// <summary>The node's name.</summary>
    [JsonPropertyOrder(-10)]
    public string Name { get; init; } = "";

    /// <summary>The node's kind.</summary>
    [JsonPropertyOrder(-9)]
    public string Kind { get; init; } = "";

    /// <summary><c>process</c> or <c>thread</c>.</summary>
    [JsonPropertyOrder(-8)]
    public string Placement { get; init; } = "";

    /// <summary>True while its process or thread runs.</summary>
    [JsonPropertyOrder(-6)]
    public bool Alive { get; init; }

    /// <summary>Its process's exit code once it ended.</summary>
    [JsonPropertyOrder(-5)]
    public int? Exitcode { get; init; }

    /// <summary><c>failed</c>, <c>stopped</c>, <c>paused</c>, <c>starting</c>, <c>waiting-input</c>, <c>idle</c> or <c>active</c>.</summary>
    [JsonPropertyOrder(-3)]
    public string Health { get; init; } = "";

    /// <summary><c>kernel</c>, <c>task</c>, <c>source</c> or <c>sink</c>.</summary>
    [JsonIgnore]
    public abstract string Role { get; }

    /// <summary>Frames processed, written or consumed.</summary>
    [JsonIgnore]
    public abstract long Frames { get; }
}

/// <summary>A kernel or a task.</summary>
public sealed record WorkerStatus : WorkerEntry
{
    /// <summary>An entry without figures (for deserialisation).</summary>
    [JsonConstructor]
    public WorkerStatus()
    {
    }

    /// <summary>An entry with <paramref name="figures"/>; the other fields are set by the initializer.</summary>
    public WorkerStatus(WorkerFigures figures, string name, string kind, string placement, bool alive, int? exitcode, string health)
        : base(figures, name, kind, placement, alive, exitcode, health)
    {
    }

    /// <summary>True for a task; absent for a kernel.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    [JsonPropertyOrder(10)]
    public bool? Task { get; init; }

    /// <summary>Tasks: the streams they read.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    [JsonPropertyOrder(11)]
    public IReadOnlyList<string>? Reads { get; init; }

    /// <summary>Tasks: the streams they write.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    [JsonPropertyOrder(12)]
    public IReadOnlyList<string>? Writes { get; init; }

    /// <summary>Tasks: true when the task returned without failing.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    [JsonPropertyOrder(13)]
    public bool? Finished { get; init; }

    /// <inheritdoc/>
    [JsonIgnore]
    public override string Role => Task == true ? "task" : "kernel";

    /// <inheritdoc/>
    [JsonIgnore]
    public override long Frames => FramesProcessed;
}

/// <summary>What sources and sinks report beside a worker's fields (shmpipeline's endpoint status).</summary>
public abstract record EndpointStatus : WorkerEntry
{
    /// <summary>An entry without figures (for deserialisation).</summary>
    protected EndpointStatus()
    {
    }

    /// <summary>An entry with <paramref name="figures"/>; the other fields are set by the initializer.</summary>
    protected EndpointStatus(WorkerFigures figures, string name, string kind, string placement, bool alive, int? exitcode, string health)
        : base(figures, name, kind, placement, alive, exitcode, health)
    {
    }

    /// <summary>Source periods missed, or frames a sink skipped.</summary>
    [JsonPropertyOrder(-1)]
    public long MissedWrites { get; init; }

    /// <summary>Frames over the time since it started.</summary>
    [JsonPropertyOrder(-1)]
    public double EffectiveRateHz { get; init; }

    /// <summary>When it started (seconds since the Unix epoch).</summary>
    [JsonPropertyOrder(-1)]
    public double? StartedAt { get; init; }

    /// <summary>The plugin's own figures (whatever the plugin reports).</summary>
    [JsonPropertyOrder(-1)]
    public JsonObject PluginMetrics { get; init; } = [];

    /// <summary>Its (first) stream.</summary>
    [JsonPropertyOrder(10)]
    public string Stream { get; init; } = "";

    /// <summary>Its failure's error, or null.</summary>
    [JsonPropertyOrder(20)]
    public string? LastError { get; init; }
}

/// <summary>A source.</summary>
public sealed record SourceStatus : EndpointStatus
{
    /// <summary>An entry without figures (for deserialisation).</summary>
    [JsonConstructor]
    public SourceStatus()
    {
    }

    /// <summary>An entry with <paramref name="figures"/>; the other fields are set by the initializer.</summary>
    public SourceStatus(WorkerFigures figures, string name, string kind, string placement, bool alive, int? exitcode, string health)
        : base(figures, name, kind, placement, alive, exitcode, health)
    {
    }

    /// <summary>Frames written.</summary>
    [JsonPropertyOrder(-2)]
    public long FramesWritten { get; init; }

    /// <summary>When it last wrote (seconds since the Unix epoch).</summary>
    [JsonPropertyOrder(-1)]
    public double? LastWriteTime { get; init; }

    /// <summary>How long its last write took, ms.</summary>
    [JsonPropertyOrder(-1)]
    public double LastWriteDurationMs { get; init; }

    /// <summary>Every stream it writes.</summary>
    [JsonPropertyOrder(11)]
    public IReadOnlyList<string> Streams { get; init; } = [];

    /// <summary>Generations written together to several streams.</summary>
    [JsonPropertyOrder(12)]
    public long CoordinatedGenerationCount { get; init; }

    /// <summary>Seconds between polls of the plugin.</summary>
    [JsonPropertyOrder(13)]
    public double PollInterval { get; init; }

    /// <summary>A paced source (one with a rate): its pacer's figures since it started (decision 161); absent for a source without a rate.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    [JsonPropertyOrder(14)]
    public PacerFigures? Pacer { get; init; }

    /// <inheritdoc/>
    [JsonIgnore]
    public override string Role => "source";

    /// <inheritdoc/>
    [JsonIgnore]
    public override long Frames => FramesWritten;
}

/// <summary>A sink.</summary>
public sealed record SinkStatus : EndpointStatus
{
    /// <summary>An entry without figures (for deserialisation).</summary>
    [JsonConstructor]
    public SinkStatus()
    {
    }

    /// <summary>An entry with <paramref name="figures"/>; the other fields are set by the initializer.</summary>
    public SinkStatus(WorkerFigures figures, string name, string kind, string placement, bool alive, int? exitcode, string health)
        : base(figures, name, kind, placement, alive, exitcode, health)
    {
    }

    /// <summary>Frames consumed.</summary>
    [JsonPropertyOrder(-2)]
    public long FramesConsumed { get; init; }

    /// <summary>When it last read (seconds since the Unix epoch).</summary>
    [JsonPropertyOrder(-1)]
    public double? LastReadTime { get; init; }

    /// <summary>How long its last read took, ms.</summary>
    [JsonPropertyOrder(-1)]
    public double LastReadDurationMs { get; init; }

    /// <summary>Its outputs.</summary>
    [JsonPropertyOrder(11)]
    public IReadOnlyList<string> Outputs { get; init; } = [];

    /// <summary>Seconds it waits for a frame.</summary>
    [JsonPropertyOrder(12)]
    public double ReadTimeout { get; init; }

    /// <summary>Seconds it sleeps between checks while paused.</summary>
    [JsonPropertyOrder(13)]
    public double PauseSleep { get; init; }

    /// <inheritdoc/>
    [JsonIgnore]
    public override string Role => "sink";

    /// <inheritdoc/>
    [JsonIgnore]
    public override long Frames => FramesConsumed;
}
