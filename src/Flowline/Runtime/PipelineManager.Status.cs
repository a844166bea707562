using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.SharedMemory;
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
    public JsonObject Status()
    {
        JsonObject status;
        lock (gate)
        {
            Drain();
            status = BuildStatus();
            lastStatus = status;
        }

        Flush();
        return (JsonObject)status.DeepClone();
    }

    /// <summary>
    /// The status, without waiting more than <paramref name="wait"/> for an operation in progress (a
    /// start that waits for its workers holds the manager): then the last status built, with
    /// <c>stale: true</c>. Null only if no status was ever built and the manager is busy.
    /// </summary>
    public JsonObject? TryStatus(TimeSpan wait)
    {
        if (!Monitor.TryEnter(gate, wait))
        {
            return lastStatus?.DeepClone() is JsonObject cached ? cached.Also("stale", true) : null;
        }

        JsonObject status;
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
        return (JsonObject)status.DeepClone();
    }

    /// <summary>The status plus <c>timestamp</c> and <c>graph</c>.</summary>
    public JsonObject RuntimeSnapshot() => AsSnapshot(Status());

    /// <summary>The snapshot of <see cref="TryStatus"/>; null when that is null.</summary>
    public JsonObject? TryRuntimeSnapshot(TimeSpan wait) => TryStatus(wait) is { } status ? AsSnapshot(status) : null;

    private JsonObject AsSnapshot(JsonObject status)
    {
        status["timestamp"] = Clock.UnixNow();
        status["graph"] = Pipeline.Graph.ToJson();
        return status;
    }

    /// <summary>
    /// Starts writing <paramref name="settings"/>' pattern into <paramref name="streamName"/>, a stream no
    /// node writes. From built, running, paused or failed; returns its status.
    /// </summary>
    public JsonObject StartSyntheticInput(string streamName, SyntheticSettings settings)
    {
        ArgumentNullException.ThrowIfNull(streamName);
        ArgumentNullException.ThrowIfNull(settings);
        JsonObject status;
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
            Emit("synthetic_started", input.Status());
            status = input.Status();
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
            Emit("synthetic_stopped", status);
        }

        Flush();
    }

    /// <summary>The status of every synthetic input, by stream.</summary>
    public JsonObject SyntheticInputs()
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

    private JsonObject SyntheticStatus()
    {
        var result = new JsonObject();
        foreach (var (name, input) in synthetic.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            result[name] = input.Status();
        }

        return result;
    }

    private JsonObject BuildStatus()
    {
        var now = MonotonicClock.NowNs();
        var workers = new JsonObject();
        var sources = new JsonObject();
        var sinks = new JsonObject();
        var metrics = new JsonObject();
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var plan in Plan.Workers)
        {
            var slot = slots[plan.Index];
            var health = Health(plan, slot, now, out var m);
            var entry = new JsonObject
            {
                ["name"] = plan.Name,
                ["kind"] = plan.Node.Kind,
                ["placement"] = plan.Placement.ToString().ToLowerInvariant(),
                ["pid"] = slot?.Pid,
                ["alive"] = slot is not null && !slot.HasExited,
                ["exitcode"] = slot?.ExitCode,
                ["cpu_slot"] = plan.Cpu,
                ["health"] = health,
            };
            var figures = slot is null ? new JsonObject() : MetricsJson(slot, m, now);
            var lastError = failures.TryGetValue(plan.Index, out var failure) ? failure["error"]?.DeepClone() : null;
            switch (plan.Node)
            {
                case KernelSpec or TaskSpec:
                    foreach (var (key, value) in figures)
                    {
                        entry[key] = value?.DeepClone();
                    }

                    if (plan.Node is TaskSpec task)
                    {
                        entry["task"] = true;
                        entry["reads"] = Names(task.Reads.Values);
                        entry["writes"] = Names(task.Writes.Values);
                        entry["finished"] = slot is not null && slot.HasExited && slot.Control.State == WorkerState.Stopped && !failures.ContainsKey(plan.Index);
                    }

                    workers[plan.Name] = entry;
                    metrics[plan.Name] = figures;
                    Count(counts, "workers", health);
                    break;
                case SourceSpec s:
                    figures.Remove("latency_us");
                    figures.Remove("skipped_per_input");
                    EndpointFields(entry, figures, m, slot, now, written: true);
                    entry["stream"] = s.Streams[0];
                    entry["streams"] = Names(s.Streams);
                    entry["coordinated_generation_count"] = s.Streams.Length > 1 ? m.FramesProcessed : 0;
                    entry["poll_interval"] = s.PollInterval ?? 0.01;
                    entry["last_error"] = lastError;
                    sources[plan.Name] = entry;
                    Count(counts, "sources", health);
                    break;
                case SinkSpec s:
                    EndpointFields(entry, figures, m, slot, now, written: false);
                    entry["stream"] = s.Stream;
                    entry["outputs"] = Names(s.Outputs);
                    entry["read_timeout"] = s.ReadTimeout ?? 1.0;
                    entry["pause_sleep"] = s.PauseSleep ?? 0.01;
                    entry["last_error"] = lastError;
                    sinks[plan.Name] = entry;
                    Count(counts, "sinks", health);
                    break;
            }
        }

        int C(string key) => counts.GetValueOrDefault(key);
        return new JsonObject
        {
            ["state"] = State.ToName(),
            ["namespace"] = Namespace,
            ["workers"] = workers,
            ["sources"] = sources,
            ["sinks"] = sinks,
            ["failures"] = new JsonArray([.. failures.OrderBy(f => f.Key).Select(f => f.Value.DeepClone())]),
            ["metrics"] = metrics,
            ["synthetic_sources"] = SyntheticStatus(),
            ["placement_policy"] = Plan.Placement == PlacementPolicy.RoundRobin ? "round_robin" : null,
            ["streams"] = StreamStatus(),
            ["summary"] = new JsonObject
            {
                ["workers_total"] = Pipeline.Spec.Kernels.Length + Pipeline.Spec.Tasks.Length,
                ["active_workers"] = C("workers:active"),
                ["idle_workers"] = C("workers:idle"),
                ["waiting_workers"] = C("workers:waiting-input") + C("workers:starting"),
                ["paused_workers"] = C("workers:paused"),
                ["failed_workers"] = C("workers:failed"),
                ["stopped_workers"] = C("workers:stopped"),
                ["sources_total"] = Pipeline.Spec.Sources.Length,
                ["active_sources"] = C("sources:active") + C("sources:idle") + C("sources:waiting-input"),
                ["failed_sources"] = C("sources:failed"),
                ["sinks_total"] = Pipeline.Spec.Sinks.Length,
                ["active_sinks"] = C("sinks:active") + C("sinks:idle") + C("sinks:waiting-input"),
                ["failed_sinks"] = C("sinks:failed"),
            },
        };
    }

    private static void Count(Dictionary<string, int> counts, string group, string health) =>
        counts[$"{group}:{health}"] = counts.GetValueOrDefault($"{group}:{health}") + 1;

    private static JsonArray Names(IEnumerable<string> names) => new([.. names.Select(n => (JsonNode?)n)]);

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

    /// <summary>A worker's figures (shmpipeline's metric fields, plus latency, skips, CPU and memory).</summary>
    private JsonObject MetricsJson(WorkerSlot slot, in WorkerMetrics m, long now)
    {
        static double Us(double ns) => Math.Round(ns / 1e3, 3);
        static double Ms(double ns) => Math.Round(ns / 1e6, 6);
        var skipped = new JsonObject();
        var inputs = slot.Plan.Node switch { KernelSpec k => k.Inputs.ToArray(), SinkSpec s => [s.Stream], TaskSpec t => t.Reads.Values.ToArray(), _ => [] };
        for (var i = 0; i < Math.Min(inputs.Length, WorkerMetrics.MaxInputs); i++)
        {
            skipped[inputs[i]] = m.SkippedPerInput[i];
        }

        var started = slot.Control.StartedNs;
        var lastProgress = m.LastProgressNs != 0 ? m.LastProgressNs : started;
        ThisProcess.TryReadUsage(slot.Pid, out _, out var rss);
        return new JsonObject
        {
            ["pid"] = slot.Pid,
            ["cpu_slot"] = slot.Plan.Cpu,
            ["frames_processed"] = m.FramesProcessed,
            ["last_exec_ms"] = Ms(m.LastExecNs),
            ["last_exec_us"] = Us(m.LastExecNs),
            ["avg_exec_ms"] = Ms(m.AvgExecNs),
            ["avg_exec_us"] = Us(m.AvgExecNs),
            ["jitter_us_rms"] = Us(m.JitterNs),
            ["throughput_hz"] = Math.Round(m.ThroughputHz, 3),
            ["runtime_s"] = started == 0 ? 0 : Math.Round((now - started) / 1e9, 3),
            ["last_output_count"] = m.OutputFrames,
            ["metrics_window"] = m.Window,
            ["frame_sync_skew_events"] = m.SkewEvents,
            ["frame_sync_skipped_generations"] = m.SkippedGenerations,
            ["frame_sync_timeouts"] = m.SyncTimeouts,
            ["idle_s"] = lastProgress == 0 ? 0 : Math.Round(Math.Max(0, now - lastProgress) / 1e9, 3),
            ["last_metric_age_s"] = m.PublishedNs == 0 ? null : Math.Round(Math.Max(0, now - m.PublishedNs) / 1e9, 3),
            ["heartbeat_age_s"] = slot.Control.HeartbeatNs == 0 ? null : Math.Round(Math.Max(0, now - slot.Control.HeartbeatNs) / 1e9, 3),
            ["latency_us"] = new JsonObject
            {
                ["p50"] = Us(m.LatencyP50Ns),
                ["p90"] = Us(m.LatencyP90Ns),
                ["p99"] = Us(m.LatencyP99Ns),
                ["max"] = Us(m.LatencyMaxNs),
            },
            ["skipped_per_input"] = skipped,
            ["torn_frames"] = m.TornFrames,
            ["auxiliary_torn_copies"] = m.AuxiliaryTornCopies,
            ["cpu_percent"] = slot.CpuPercent,
            ["rss_bytes"] = rss,
        };
    }

    /// <summary>shmpipeline's source and sink status fields, from the worker's figures and its own metrics.</summary>
    private static void EndpointFields(JsonObject entry, JsonObject figures, in WorkerMetrics m, WorkerSlot? slot, long now, bool written)
    {
        var started = slot?.Control.StartedNs ?? 0;
        var elapsed = started == 0 ? 0 : (now - started) / 1e9;
        entry[written ? "frames_written" : "frames_consumed"] = m.FramesProcessed;
        entry["missed_writes"] = m.MissedWrites;
        entry["effective_rate_hz"] = elapsed > 0 ? Math.Round(m.FramesProcessed / elapsed, 3) : 0.0;
        entry["throughput_hz"] = Math.Round(m.ThroughputHz, 3);
        entry["started_at"] = started == 0 ? null : Clock.ToUnix(started);
        entry[written ? "last_write_time" : "last_read_time"] = m.LastProgressNs == 0 ? null : Clock.ToUnix(m.LastProgressNs);
        entry[written ? "last_write_duration_ms" : "last_read_duration_ms"] = Math.Round(m.LastExecNs / 1e6, 6);
        entry["last_error"] = null;
        entry["plugin_metrics"] = slot?.Control.ReadReport() is { } report ? JsonNode.Parse(report) : new JsonObject();
        foreach (var (key, value) in figures)
        {
            if (!entry.ContainsKey(key))
            {
                entry[key] = value?.DeepClone();
            }
        }
    }

    private JsonObject StreamStatus()
    {
        var result = new JsonObject();
        foreach (var spec in Pipeline.Spec.Streams)
        {
            if (!streams.TryGetValue(spec.Name, out var stream))
            {
                continue;
            }

            var s = stream.GetStatistics();
            result[spec.Name] = new JsonObject
            {
                ["capacity"] = s.CapacityFrames,
                ["fill"] = Math.Round(s.Fill, 4),
                ["fill_frames"] = s.FillFrames,
                ["frames_published"] = s.Cursor,
                ["writer_state"] = s.WriterState,
                ["writer_pid"] = s.WriterPid == 0 ? null : s.WriterPid,
                ["readers"] = s.Readers.Count,
                ["created"] = createdStreams.Contains(spec.Name),
            };
        }

        return result;
    }
}
