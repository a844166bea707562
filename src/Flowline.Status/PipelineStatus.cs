using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Flowline.Status;

/// <summary>
/// A pipeline's status (shmpipeline's <c>status()</c>): <c>state</c>, <c>workers</c>, <c>sources</c>,
/// <c>sinks</c>, <c>failures</c>, <c>metrics</c>, <c>synthetic_sources</c>, <c>placement_policy</c> and
/// <c>summary</c>, plus Flowline's <c>namespace</c> and <c>streams</c> (ring fill). A snapshot adds
/// <c>timestamp</c> and <c>graph</c>; the control plane adds the document's revision and paths.
/// Serialise it with <see cref="StatusJson"/>.
/// </summary>
public sealed record PipelineStatus
{
    /// <summary><c>initialized</c>, <c>built</c>, <c>running</c>, <c>paused</c>, <c>failed</c> or <c>stopped</c>.</summary>
    public string State { get; init; } = "";

    /// <summary>The namespace of the pipeline's streams.</summary>
    public string Namespace { get; init; } = "";

    /// <summary>Kernels and tasks, by name.</summary>
    public IReadOnlyDictionary<string, WorkerStatus> Workers { get; init; } = new Dictionary<string, WorkerStatus>();

    /// <summary>Sources, by name.</summary>
    public IReadOnlyDictionary<string, SourceStatus> Sources { get; init; } = new Dictionary<string, SourceStatus>();

    /// <summary>Sinks, by name.</summary>
    public IReadOnlyDictionary<string, SinkStatus> Sinks { get; init; } = new Dictionary<string, SinkStatus>();

    /// <summary>One record per failed worker, in the order of the workers.</summary>
    public IReadOnlyList<FailureRecord> Failures { get; init; } = [];

    /// <summary>The figures of kernels and tasks that have a process or thread, by name.</summary>
    public IReadOnlyDictionary<string, WorkerFigures> Metrics { get; init; } = new Dictionary<string, WorkerFigures>();

    /// <summary>The synthetic inputs, by stream.</summary>
    public IReadOnlyDictionary<string, SyntheticInputStatus> SyntheticSources { get; init; } = new Dictionary<string, SyntheticInputStatus>();

    /// <summary><c>round_robin</c>, or null when workers are not pinned.</summary>
    public string? PlacementPolicy { get; init; }

    /// <summary>The streams that exist, by name.</summary>
    public IReadOnlyDictionary<string, StreamStatus> Streams { get; init; } = new Dictionary<string, StreamStatus>();

    /// <summary>The pipeline's processes (the snapshot only; null in the status).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<ProcessRecord>? Processes { get; init; }

    /// <summary>The NATS bridges of the pipeline's <c>remote</c> streams (docs/nats.md), keyed by stream; absent when it has none.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyDictionary<string, BridgeStatus>? Bridges { get; init; }

    /// <summary>Counts of workers, sources and sinks by health.</summary>
    public StatusSummary Summary { get; init; } = new();

    /// <summary>True when this is the last status built, returned because the manager was busy; absent otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? Stale { get; init; }

    /// <summary>Snapshots only: when it was taken (seconds since the Unix epoch).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? Timestamp { get; init; }

    /// <summary>Snapshots only: the pipeline's graph (its own JSON form, <c>GET /graph</c>).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonObject? Graph { get; init; }

    /// <summary>Control plane only: the revision of the served document.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? DocumentRevision { get; init; }

    /// <summary>Control plane only: the document's file; written (possibly null) whenever <see cref="DocumentRevision"/> is.</summary>
    public string? ConfigPath { get; init; }

    /// <summary><c>GET /status</c> only: the directory relative paths of the document resolve against.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? ConfigBasePath { get; init; }

    /// <summary>Every worker, source and sink: kernels and tasks, then sources, then sinks.</summary>
    public IEnumerable<WorkerEntry> AllWorkers() =>
        Workers.Values.Cast<WorkerEntry>().Concat(Sources.Values).Concat(Sinks.Values);
}

/// <summary>shmpipeline's <c>summary</c>: counts by health.</summary>
public sealed record StatusSummary
{
    /// <summary>Kernels and tasks.</summary>
    public int WorkersTotal { get; init; }

    /// <summary>Workers that made progress lately.</summary>
    public int ActiveWorkers { get; init; }

    /// <summary>Workers without progress for a while.</summary>
    public int IdleWorkers { get; init; }

    /// <summary>Workers starting or waiting for their first input.</summary>
    public int WaitingWorkers { get; init; }

    /// <summary>Paused workers.</summary>
    public int PausedWorkers { get; init; }

    /// <summary>Failed workers.</summary>
    public int FailedWorkers { get; init; }

    /// <summary>Stopped workers.</summary>
    public int StoppedWorkers { get; init; }

    /// <summary>Sources.</summary>
    public int SourcesTotal { get; init; }

    /// <summary>Sources active, idle or waiting.</summary>
    public int ActiveSources { get; init; }

    /// <summary>Failed sources.</summary>
    public int FailedSources { get; init; }

    /// <summary>Sinks.</summary>
    public int SinksTotal { get; init; }

    /// <summary>Sinks active, idle or waiting.</summary>
    public int ActiveSinks { get; init; }

    /// <summary>Failed sinks.</summary>
    public int FailedSinks { get; init; }
}

/// <summary>The ring of one stream.</summary>
public sealed record StreamStatus
{
    /// <summary>Frames the ring holds.</summary>
    public int Capacity { get; init; }

    /// <summary>Fill of the slowest lossless reader's ring, from 0 to 1.</summary>
    public double Fill { get; init; }

    /// <summary>Frames not yet read by the slowest lossless reader.</summary>
    public long FillFrames { get; init; }

    /// <summary>Frames published so far.</summary>
    public long FramesPublished { get; init; }

    /// <summary>The writer's state.</summary>
    public string? WriterState { get; init; }

    /// <summary>The writer's process, or null when none holds the stream.</summary>
    public int? WriterPid { get; init; }

    /// <summary>Readers attached.</summary>
    public int Readers { get; init; }

    /// <summary>True when the pipeline created the stream (and removes it at shutdown).</summary>
    public bool Created { get; init; }
}

/// <summary>
/// A NATS bridge of a <c>remote</c> stream (docs/nats.md): <c>direction</c> is <c>publish</c> (the local stream is
/// sent to the subject) or <c>subscribe</c> (the subject is written to the local stream); <c>frames</c> counts
/// the frames published or written; <c>frames_lost</c> the sequence gaps a <c>latest</c> receiver saw;
/// <c>frames_skipped</c> the frames a <c>latest</c> publisher's local reader skipped; <c>frames_duplicate</c> the
/// frames JetStream delivered again and the receiver dropped. <c>error</c> is set once the bridge has stopped with one.
/// </summary>
public sealed record BridgeStatus
{
    /// <summary><c>publish</c> or <c>subscribe</c>.</summary>
    public string Direction { get; init; } = "";

    /// <summary>The NATS subject.</summary>
    public string Subject { get; init; } = "";

    /// <summary><c>latest</c> (core NATS) or <c>lossless</c> (JetStream).</summary>
    public string Delivery { get; init; } = "";

    /// <summary>True while the bridge runs; false once it stopped with an error (the manager's restart starts it again).</summary>
    public bool Running { get; init; }

    /// <summary>Frames published (publish) or written to the local stream (subscribe).</summary>
    public long Frames { get; init; }

    /// <summary>Frames lost between the two hosts (subscribe, <c>latest</c>); 0 for <c>lossless</c>.</summary>
    public long FramesLost { get; init; }

    /// <summary>Frames the publisher's local reader skipped because it fell behind (publish, <c>latest</c>).</summary>
    public long FramesSkipped { get; init; }

    /// <summary>Frames delivered again by JetStream and dropped (subscribe, <c>lossless</c>).</summary>
    public long FramesDuplicate { get; init; }

    /// <summary>Why the bridge stopped, when it stopped with an error.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Error { get; init; }
}

/// <summary>
/// A failure record (shmpipeline's): <c>type</c> (<c>worker_failed</c>, <c>source_failed</c> or
/// <c>sink_failed</c>), the worker (<c>kernel</c>), and the error with its type and traceback.
/// </summary>
public sealed record FailureRecord
{
    /// <summary><c>worker_failed</c>, <c>source_failed</c> or <c>sink_failed</c>.</summary>
    public string Type { get; init; } = "";

    /// <summary>The failed worker's name.</summary>
    public string Kernel { get; init; } = "";

    /// <summary><c>kernel</c>, <c>task</c>, <c>source</c> or <c>sink</c>.</summary>
    public string? ComponentType { get; init; }

    /// <summary>The worker's kind.</summary>
    public string? Kind { get; init; }

    /// <summary>Its process.</summary>
    public int? Pid { get; init; }

    /// <summary>The CPU it was pinned to.</summary>
    public int? CpuSlot { get; init; }

    /// <summary>Sources and sinks: their (first) stream.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Stream { get; init; }

    /// <summary>Sources: every stream they write.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Streams { get; init; }

    /// <summary>Sinks: their outputs.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Outputs { get; init; }

    /// <summary>What went wrong.</summary>
    public string? Error { get; init; }

    /// <summary>The exception's type; <c>crash</c> for a process that ended, <c>hung</c> for one without heartbeat.</summary>
    public string? ExceptionType { get; init; }

    /// <summary>The stack trace, or the end of a crashed process's output.</summary>
    public string? Traceback { get; init; }

    /// <summary>The process's exit code, null while it runs.</summary>
    public int? Exitcode { get; init; }
}

/// <summary>shmpipeline's status of a synthetic input.</summary>
public sealed record SyntheticInputStatus
{
    /// <summary>The stream it writes.</summary>
    public string StreamName { get; init; } = "";

    /// <summary>Its pattern.</summary>
    public string Pattern { get; init; } = "";

    /// <summary>Frames per second; null: as fast as the stream accepts.</summary>
    public double? RateHz { get; init; }

    /// <summary>The rate asked for.</summary>
    public double? RequestedRateHz { get; init; }

    /// <summary>The seed of the random pattern.</summary>
    public long Seed { get; init; }

    /// <summary>The amplitude.</summary>
    public double Amplitude { get; init; }

    /// <summary>Added to every value.</summary>
    public double Offset { get; init; }

    /// <summary>The period of ramp and sine, the tile of checkerboard.</summary>
    public double Period { get; init; }

    /// <summary>The constant pattern's value.</summary>
    public double Constant { get; init; }

    /// <summary>Frames between impulses.</summary>
    public long ImpulseInterval { get; init; }

    /// <summary>Frames written.</summary>
    public long FramesWritten { get; init; }

    /// <summary>True while it writes.</summary>
    public bool Alive { get; init; }

    /// <summary>Frames written over the time since it started.</summary>
    public double EffectiveRateHz { get; init; }

    /// <summary>When it started (seconds since the Unix epoch).</summary>
    public double StartedAt { get; init; }

    /// <summary>When it last wrote (seconds since the Unix epoch).</summary>
    public double? LastWriteTime { get; init; }

    /// <summary>How long the last write took.</summary>
    public double LastWriteDurationMs { get; init; }

    /// <summary>Why it stopped, if it failed.</summary>
    public string? LastError { get; init; }
}

/// <summary>The payload of a <c>snapshot</c> event: why it was taken, and the snapshot.</summary>
public sealed record SnapshotEvent
{
    /// <summary><c>initial</c>, or the command or change that caused it (<c>start</c>, <c>synthetic_stop</c>, ...).</summary>
    public string Reason { get; init; } = "";

    /// <summary>The snapshot.</summary>
    public PipelineStatus Snapshot { get; init; } = new();
}

/// <summary>
/// The payload of a <c>stream_metrics</c> event (Flowline): every stream's figures as <c>/status</c> has them
/// (frames, ring fill, readers, writer), pushed once a second while they change, so that a client following
/// <c>/events</c> needs no polling for them.
/// </summary>
public sealed record StreamMetricsEvent
{
    /// <summary>The streams by name.</summary>
    public IReadOnlyDictionary<string, StreamStatus> Streams { get; init; } = new Dictionary<string, StreamStatus>();
}

/// <summary>The answer of <c>POST /synthetic/start</c>.</summary>
public sealed record SyntheticStartResult
{
    /// <summary>The synthetic input's status.</summary>
    public SyntheticInputStatus SyntheticSource { get; init; } = new();

    /// <summary>The snapshot after it started.</summary>
    public PipelineStatus Snapshot { get; init; } = new();
}

/// <summary>The answer of <c>POST /synthetic/stop</c>.</summary>
public sealed record SyntheticStopResult
{
    /// <summary>The stream it wrote.</summary>
    public string StreamName { get; init; } = "";

    /// <summary>The snapshot after it stopped.</summary>
    public PipelineStatus Snapshot { get; init; } = new();
}
