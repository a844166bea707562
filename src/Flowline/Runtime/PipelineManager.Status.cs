using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.SharedMemory;
using Flowline.SharedMemory.Diagnostics;
using Flowline.SharedMemory.Liveness;

namespace Flowline.Runtime;

/// <summary>Status, snapshots and synthetic inputs.</summary>
public sealed partial class PipelineManager
{
    /// <summary>The health states of a worker, in shmpipeline's order of checks.</summary>
    public static readonly IReadOnlyList<string> HealthStates = ["failed", "stopped", "paused", "starting", "waiting-input", "idle", "active"];

    /// <summary>
    /// shmpipeline's status: <c>state</c>, <c>workers</c>, <c>sources</c>, <c>sinks</c>, <c>failures</c>,
    /// <c>metrics</c>, <c>synthetic_sources</c>, <c>placement_policy</c> and <c>summary</c>, plus
    /// Flowline's <c>namespace</c> and <c>streams</c> (ring fill).
    /// </summary>
    public PipelineStatus Status()
    {
        PipelineStatus status;
        lock (gate)
        {
            Drain();
            status = BuildStatus();
            lastStatus = status;
        }

        Flush();
        return status;
    }

    /// <summary>
    /// Each running worker's CPU time so far (user and system): its process's for a worker process, its
    /// thread's for a worker on a thread of this process (<c>placement: thread</c>), read from
    /// <c>/proc</c> as the status's <c>cpu_percent</c> is. A worker whose process or thread is gone is left out.
    /// </summary>
    public IReadOnlyDictionary<string, TimeSpan> WorkerCpuTimes()
    {
        var times = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
        lock (gate)
        {
            foreach (var slot in slots)
            {
                if (slot is null || slot.HasExited)
                {
                    continue;
                }

                if (slot.IsThread ? ThisProcess.TryReadThreadCpuTime(slot.Control.ThreadId, out var cpu) : ThisProcess.TryReadUsage(slot.Pid, out cpu, out _))
                {
                    times[slot.Plan.Name] = cpu;
                }
            }
        }

        return times;
    }

    /// <summary>
    /// The status, without waiting more than <paramref name="wait"/> for an operation in progress (a
    /// start that waits for its workers holds the manager): then the last status built, with
    /// <c>stale: true</c>. Null only if no status was ever built and the manager is busy.
    /// </summary>
    public PipelineStatus? TryStatus(TimeSpan wait)
    {
        if (!Monitor.TryEnter(gate, wait))
        {
            return lastStatus is { } cached ? cached with { Stale = true } : null;
        }

        PipelineStatus status;
        try
        {
            Drain();
            status = BuildStatus();
            lastStatus = status;
        }
        finally
        {
            Monitor.Exit(gate);
        }

        Flush();
        return status;
    }

    /// <summary>The status plus <c>timestamp</c> and <c>graph</c>.</summary>
    public PipelineStatus RuntimeSnapshot() => AsSnapshot(Status());

    /// <summary>The snapshot of <see cref="TryStatus"/>; null when that is null.</summary>
    public PipelineStatus? TryRuntimeSnapshot(TimeSpan wait) => TryStatus(wait) is { } status ? AsSnapshot(status) : null;

    private PipelineStatus AsSnapshot(PipelineStatus status) => status with { Timestamp = Clock.UnixNow(), Graph = Pipeline.Graph.ToJson(), Processes = Processes() };

    /// <summary>
    /// Starts writing <paramref name="settings"/>' pattern into <paramref name="streamName"/>, a stream no
    /// node writes. From built, running, paused or failed; returns its status.
    /// </summary>
    public SyntheticInputStatus StartSyntheticInput(string streamName, SyntheticSettings settings)
    {
        ArgumentNullException.ThrowIfNull(streamName);
        ArgumentNullException.ThrowIfNull(settings);
        SyntheticInputStatus status;
        lock (gate)
        {
            Require("start a synthetic input on", PipelineState.Built, PipelineState.Running, PipelineState.Paused, PipelineState.Failed);
            if (Pipeline.Spec.FindStream(streamName) is null)
            {
                throw new KeyNotFoundException($"the pipeline has no stream '{streamName}'");
            }

            if (Pipeline.Graph.ProducersOf(streamName) is [var producer, ..])
            {
                throw new InvalidOperationException($"stream '{streamName}' is written by '{producer}'; a synthetic input can only drive a stream nothing else writes");
            }

            if (synthetic.ContainsKey(streamName))
            {
                throw new InvalidOperationException($"a synthetic input already drives stream '{streamName}'; stop it first");
            }

            ValidateSettings(settings);
            var input = new SyntheticInput(Plan.NamespaceOf(streamName), streamName, settings, OnSyntheticError);
            synthetic[streamName] = input;
            status = input.Status();
            Emit("synthetic_started", StatusJson.ToJsonObject(status));
        }

        Flush();
        return status;
    }

    /// <summary>Stops the synthetic input of <paramref name="streamName"/>; throws <see cref="KeyNotFoundException"/> if there is none.</summary>
    public void StopSyntheticInput(string streamName, TimeSpan? timeout = null)
    {
        lock (gate)
        {
            if (!synthetic.Remove(streamName, out var input))
            {
                throw new KeyNotFoundException($"no synthetic input drives stream '{streamName}'");
            }

            input.Stop(timeout ?? TimeSpan.FromSeconds(2));
            var status = input.Status();
            input.Dispose();
            Emit("synthetic_stopped", StatusJson.ToJsonObject(status));
        }

        Flush();
    }

    /// <summary>The status of every synthetic input, by stream.</summary>
    public IReadOnlyDictionary<string, SyntheticInputStatus> SyntheticInputs()
    {
        lock (gate)
        {
            return SyntheticStatus();
        }
    }

    private static void ValidateSettings(SyntheticSettings settings)
    {
        if (!SyntheticSettings.Patterns.Contains(settings.Pattern))
        {
            throw new ArgumentException($"unknown pattern '{settings.Pattern}'; patterns are {string.Join(", ", SyntheticSettings.Patterns)}");
        }

        if (settings.RateHz is { } rate && !(rate > 0 && double.IsFinite(rate)))
        {
            throw new ArgumentException($"rate_hz must be a positive number or null, not {rate}");
        }

        if (!(settings.Period > 0))
        {
            throw new ArgumentException($"period must be greater than 0, not {settings.Period}");
        }

        if (settings.ImpulseInterval < 1)
        {
            throw new ArgumentException($"impulse_interval must be at least 1, not {settings.ImpulseInterval}");
        }
    }

    /// <summary>Called on a synthetic input's thread: queued for the supervisor, so that the thread never waits for the manager's lock.</summary>
    private void OnSyntheticError(SyntheticInput input, Exception error)
    {
        syntheticErrors.Enqueue(new JsonObject { ["stream_name"] = input.StreamName, ["error"] = $"{error.GetType().Name}: {error.Message}" });
        wake.Set();
    }

    private SortedDictionary<string, SyntheticInputStatus> SyntheticStatus() =>
        new(synthetic.ToDictionary(p => p.Key, p => p.Value.Status(), StringComparer.Ordinal), StringComparer.Ordinal);

    private PipelineStatus BuildStatus()
    {
        var now = MonotonicClock.NowNs();
        var workers = new Dictionary<string, WorkerStatus>(StringComparer.Ordinal);
        var sources = new Dictionary<string, SourceStatus>(StringComparer.Ordinal);
        var sinks = new Dictionary<string, SinkStatus>(StringComparer.Ordinal);
        var metrics = new Dictionary<string, WorkerFigures>(StringComparer.Ordinal);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var plan in Plan.Workers)
        {
            var slot = slots[plan.Index];
            var health = Health(plan, slot, now, out var m);
            var figures = Figures(plan, slot, m, now);
            var lastError = failures.TryGetValue(plan.Index, out var failure) ? failure.Error : null;
            switch (plan.Node)
            {
                case KernelSpec or TaskSpec:
                    var task = plan.Node as TaskSpec;
                    workers[plan.Name] = new WorkerStatus(figures, plan.Name, plan.Node.Kind, Placement(plan), slot is { HasExited: false }, slot?.ExitCode, health)
                    {
                        Task = task is null ? null : true,
                        Reads = task is null ? null : [.. task.Reads.Values],
                        Writes = task is null ? null : [.. task.Writes.Values],
                        Finished = task is null ? null : slot is not null && slot.HasExited && slot.Control.State == WorkerState.Stopped && !failures.ContainsKey(plan.Index),
                    };
                    metrics[plan.Name] = figures;
                    Count(counts, "workers", health);
                    break;
                case SourceSpec s:
                    var (started, rate, lastWrite) = EndpointTimes(m, slot, now);
                    sources[plan.Name] = new SourceStatus(figures with { LatencyUs = null, SkippedPerInput = null }, plan.Name, plan.Node.Kind, Placement(plan), slot is { HasExited: false }, slot?.ExitCode, health)
                    {
                        FramesWritten = m.FramesProcessed,
                        MissedWrites = m.MissedWrites,
                        EffectiveRateHz = rate,
                        ThroughputHz = Math.Round(m.ThroughputHz, 3),
                        StartedAt = started,
                        LastWriteTime = lastWrite,
                        LastWriteDurationMs = Math.Round(m.LastExecNs / 1e6, 6),
                        PluginMetrics = PluginMetrics(slot),
                        Stream = s.Streams[0],
                        Streams = s.Streams,
                        CoordinatedGenerationCount = s.Streams.Length > 1 ? m.FramesProcessed : 0,
                        PollInterval = s.PollInterval ?? 0.01,
                        Pacer = PacerOf(m),
                        LastError = lastError,
                    };
                    Count(counts, "sources", health);
                    break;
                case SinkSpec s:
                    var (sinkStarted, sinkRate, lastRead) = EndpointTimes(m, slot, now);
                    sinks[plan.Name] = new SinkStatus(figures, plan.Name, plan.Node.Kind, Placement(plan), slot is { HasExited: false }, slot?.ExitCode, health)
                    {
                        FramesConsumed = m.FramesProcessed,
                        MissedWrites = m.MissedWrites,
                        EffectiveRateHz = sinkRate,
                        ThroughputHz = Math.Round(m.ThroughputHz, 3),
                        StartedAt = sinkStarted,
                        LastReadTime = lastRead,
                        LastReadDurationMs = Math.Round(m.LastExecNs / 1e6, 6),
                        PluginMetrics = PluginMetrics(slot),
                        Stream = s.Stream,
                        Outputs = s.Outputs,
                        ReadTimeout = s.ReadTimeout ?? 1.0,
                        PauseSleep = s.PauseSleep ?? 0.01,
                        LastError = lastError,
                    };
                    Count(counts, "sinks", health);
                    break;
            }
        }

        int C(string key) => counts.GetValueOrDefault(key);
        return new PipelineStatus
        {
            State = State.ToName(),
            Namespace = Namespace,
            Workers = workers,
            Sources = sources,
            Sinks = sinks,
            Failures = [.. failures.OrderBy(f => f.Key).Select(f => f.Value)],
            Metrics = metrics,
            SyntheticSources = SyntheticStatus(),
            PlacementPolicy = Plan.Placement == PlacementPolicy.RoundRobin ? "round_robin" : null,
            Streams = StreamFigures(),
            Bridges = bridges?.Figures(),
            Summary = new StatusSummary
            {
                WorkersTotal = Pipeline.Spec.Kernels.Length + Pipeline.Spec.Tasks.Length,
                ActiveWorkers = C("workers:active"),
                IdleWorkers = C("workers:idle"),
                WaitingWorkers = C("workers:waiting-input") + C("workers:starting"),
                PausedWorkers = C("workers:paused"),
                FailedWorkers = C("workers:failed"),
                StoppedWorkers = C("workers:stopped"),
                SourcesTotal = Pipeline.Spec.Sources.Length,
                ActiveSources = C("sources:active") + C("sources:idle") + C("sources:waiting-input"),
                FailedSources = C("sources:failed"),
                SinksTotal = Pipeline.Spec.Sinks.Length,
                ActiveSinks = C("sinks:active") + C("sinks:idle") + C("sinks:waiting-input"),
                FailedSinks = C("sinks:failed"),
            },
        };
    }

    private static string Placement(WorkerPlan plan) => plan.Placement.ToString().ToLowerInvariant();

    private static void Count(Dictionary<string, int> counts, string group, string health) =>
        counts[$"{group}:{health}"] = counts.GetValueOrDefault($"{group}:{health}") + 1;
    /// <summary>shmpipeline's health rules: failed, stopped, paused, starting, waiting-input, idle (no progress for max(1 s, 4 x read_timeout)), active.</summary>
    private string Health(WorkerPlan plan, WorkerSlot? slot, long now, out WorkerMetrics metrics)
    {
        metrics = default;
        slot?.Control.TryReadMetrics(out metrics); // a worker that ended keeps its last figures
        if (failures.ContainsKey(plan.Index))
        {
            return "failed";
        }

        if (slot is null || slot.HasExited)
        {
            return "stopped";
        }

        if (State == PipelineState.Paused || slot.Control.State == WorkerState.Paused)
        {
            return "paused";
        }

        if (!slot.StartReported || slot.Control.State is WorkerState.Starting or WorkerState.Ready)
        {
            return "starting";
        }

        if (metrics.FramesProcessed == 0)
        {
            return "waiting-input";
        }

        var readTimeout = plan.Node switch { KernelSpec k => k.ReadTimeout, SinkSpec s => s.ReadTimeout, SourceSpec s => s.ReadTimeout, _ => null } ?? 1.0;
        var idleLimit = Math.Max(1.0, 4 * readTimeout);
        return (now - metrics.LastProgressNs) / 1e9 > idleLimit ? "idle" : "active";
    }

    /// <summary>A worker's figures (shmpipeline's metric fields, plus latency, skips, CPU and memory); not measured without a process or thread.</summary>
    private static WorkerFigures Figures(WorkerPlan plan, WorkerSlot? slot, in WorkerMetrics m, long now)
    {
        if (slot is null)
        {
            return new WorkerFigures { HasFigures = false, CpuSlot = plan.Cpu };
        }

        static double Us(double ns) => Math.Round(ns / 1e3, 3);
        static double Ms(double ns) => Math.Round(ns / 1e6, 6);
        var skipped = new SortedDictionary<string, long>(StringComparer.Ordinal);
        var inputs = slot.Plan.Node switch { KernelSpec k => k.Inputs.ToArray(), SinkSpec s => [s.Stream], TaskSpec t => t.Reads.Values.ToArray(), _ => [] };
        for (var i = 0; i < Math.Min(inputs.Length, WorkerMetrics.MaxInputs); i++)
        {
            skipped[inputs[i]] = m.SkippedPerInput[i];
        }

        var started = slot.Control.StartedNs;
        var lastProgress = m.LastProgressNs != 0 ? m.LastProgressNs : started;
        ThisProcess.TryReadUsage(slot.Pid, out _, out var rss);
        return new WorkerFigures
        {
            Pid = slot.Pid,
            CpuSlot = slot.Plan.Cpu,
            FramesProcessed = m.FramesProcessed,
            LastExecMs = Ms(m.LastExecNs),
            LastExecUs = Us(m.LastExecNs),
            AvgExecMs = Ms(m.AvgExecNs),
            AvgExecUs = Us(m.AvgExecNs),
            JitterUsRms = Us(m.JitterNs),
            ThroughputHz = Math.Round(m.ThroughputHz, 3),
            RuntimeS = started == 0 ? 0 : Math.Round((now - started) / 1e9, 3),
            LastOutputCount = m.OutputFrames,
            MetricsWindow = m.Window,
            FrameSyncSkewEvents = m.SkewEvents,
            FrameSyncSkippedGenerations = m.SkippedGenerations,
            FrameSyncTimeouts = m.SyncTimeouts,
            IdleS = lastProgress == 0 ? 0 : Math.Round(Math.Max(0, now - lastProgress) / 1e9, 3),
            LastMetricAgeS = m.PublishedNs == 0 ? null : Math.Round(Math.Max(0, now - m.PublishedNs) / 1e9, 3),
            HeartbeatAgeS = slot.Control.HeartbeatNs == 0 ? null : Math.Round(Math.Max(0, now - slot.Control.HeartbeatNs) / 1e9, 3),
            LatencyUs = new LatencyFigures { P50 = Us(m.LatencyP50Ns), P90 = Us(m.LatencyP90Ns), P99 = Us(m.LatencyP99Ns), Max = Us(m.LatencyMaxNs) },
            SkippedPerInput = skipped,
            TornFrames = m.TornFrames,
            DiscardedComputes = plan.Role == WorkerRole.Kernel ? m.TornFrames : 0,
            AuxiliaryTornCopies = m.AuxiliaryTornCopies,
            Waits = new WaitFigures { PredictedWaits = m.PredictedWaits, PredictedHits = m.PredictedHits, EarlyWakes = m.EarlyWakes, EarlyWakeHits = m.EarlyWakeHits },
            CpuPercent = slot.CpuPercent,
            RssBytes = rss,
        };
    }

    /// <summary>A paced source's pacer figures (decision 161), or null for a worker that reported no pacer.</summary>
    private static PacerFigures? PacerOf(in WorkerMetrics m) => m.PacerIntervalNs == 0 ? null : new PacerFigures
    {
        IntervalUs = Math.Round(m.PacerIntervalNs / 1e3, 3),
        WakeLeadUs = Math.Round(m.PacerWakeLeadNs / 1e3, 3),
        MaxEarlyShare = Pacer.MaxEarlyShare,
        Intervals = m.PacerIntervals,
        EarlyWakes = m.PacerEarlyWakes,
        BoundSkips = m.PacerBoundSkips,
        LateWakes = m.PacerLateWakes,
        Overdue = m.PacerOverdue,
        Missed = m.MissedWrites,
        TimerLatenessUs = Math.Round(m.PacerTimerLatenessNs / 1e3, 3),
    };

    /// <summary>A source's or sink's start time, lifetime rate and time of its last frame (shmpipeline's endpoint fields).</summary>
    private static (double? StartedAt, double EffectiveRateHz, double? LastFrameTime) EndpointTimes(in WorkerMetrics m, WorkerSlot? slot, long now)
    {
        var started = slot?.Control.StartedNs ?? 0;
        var elapsed = started == 0 ? 0 : (now - started) / 1e9;
        return (
            started == 0 ? null : Clock.ToUnix(started),
            elapsed > 0 ? Math.Round(m.FramesProcessed / elapsed, 3) : 0.0,
            m.LastProgressNs == 0 ? null : Clock.ToUnix(m.LastProgressNs));
    }

    /// <summary>The figures a source or sink plugin reports about itself (free-form JSON).</summary>
    private static JsonObject PluginMetrics(WorkerSlot? slot) => slot?.Control.ReadReport() is { } report && JsonNode.Parse(report) is JsonObject o ? o : [];

    private Dictionary<string, StreamStatus> StreamFigures()
    {
        var result = new Dictionary<string, StreamStatus>(StringComparer.Ordinal);
        var seen = new Dictionary<string, (int WriterPid, IReadOnlyList<int> ReaderPids)>(StringComparer.Ordinal);
        foreach (var spec in Pipeline.Spec.Streams)
        {
            if (!streams.TryGetValue(spec.Name, out var stream))
            {
                continue;
            }

            var s = stream.GetStatistics();
            seen[spec.Name] = (s.WriterState is "attached" ? s.WriterPid : 0, [.. s.Readers.Select(r => r.Pid)]);
            result[spec.Name] = new StreamStatus
            {
                Capacity = s.CapacityFrames,
                Fill = Math.Round(s.Fill, 4),
                FillFrames = s.FillFrames,
                FramesPublished = s.Cursor,
                WriterState = s.WriterState,
                WriterPid = s.WriterPid == 0 ? null : s.WriterPid,
                Readers = s.Readers.Count,
                Created = createdStreams.Contains(spec.Name),
            };
        }

        ObserveExternal(seen);
        return result;
    }
}
