using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>Profiling: the stream counters and the workers' histograms, read from shared memory (decision 90).</summary>
public sealed partial class PipelineManager
{
    private ProfilingSnapshot? lastProfiling;

    /// <summary>
    /// A profiling snapshot of the whole pipeline: every stream's writer and reader counters, each worker's
    /// input-latency histograms (matched to its reader entries) and compute-time histogram. Read from shared
    /// memory without asking any worker. Waits at most <paramref name="wait"/> for an operation in progress;
    /// then returns the last snapshot with <c>stale: true</c> (or an empty one).
    /// </summary>
    public ProfilingSnapshot Profiling(TimeSpan? wait = null)
    {
        if (!Monitor.TryEnter(gate, wait ?? TimeSpan.FromSeconds(1)))
        {
            return (lastProfiling ?? new ProfilingSnapshot(DateTimeOffset.UtcNow, [], [])) with { Stale = true };
        }

        ProfilingSnapshot built;
        List<WorkerSlot> python;
        try
        {
            built = BuildProfiling();
            python = [.. slots.OfType<WorkerSlot>().Where(s => !s.HasExited && PythonWorker.Runs(s.Plan))];
        }
        finally
        {
            Monitor.Exit(gate);
        }

        // Python workers keep their histograms themselves: asked outside the lock, each for at most PythonProfileTimeout.
        built = python.Aggregate(built, WithPythonHistograms);
        lastProfiling = built;
        return built;
    }

    /// <summary>How long a whole-pipeline snapshot waits for a Python worker's histograms (it then shows none for it).</summary>
    private static readonly TimeSpan PythonProfileTimeout = TimeSpan.FromMilliseconds(250);

    /// <summary><paramref name="snapshot"/> with a Python worker's input latencies and compute time (as its <c>profiling_snapshot</c> gives them).</summary>
    private static ProfilingSnapshot WithPythonHistograms(ProfilingSnapshot snapshot, WorkerSlot slot)
    {
        JsonObject? answer;
        try
        {
            answer = SendAsync(slot, "profiling_snapshot", null, PythonProfileTimeout, CancellationToken.None).GetAwaiter().GetResult().Result as JsonObject;
        }
        catch (RequestException)
        {
            return snapshot; // busy, exiting, or too old a worker: no histograms this time
        }

        static HistogramSummary? Summary(JsonNode? node)
        {
            try
            {
                return node is JsonObject o ? StatusJson.Deserialize<HistogramSummary>(o) : null;
            }
            catch (System.Text.Json.JsonException)
            {
                return null;
            }
        }

        var node = slot.Plan.Name;
        var latencies = (answer?["streams"] as JsonArray ?? []).OfType<JsonObject>()
            .ToDictionary(s => (string?)s["name"] ?? "", s => Summary((s["readers"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault()?["latency"]), StringComparer.Ordinal);
        var compute = Summary((answer?["nodes"] as JsonArray ?? []).OfType<JsonObject>().FirstOrDefault(n => (string?)n["name"] == node)?["compute"]);
        var processId = slot.ProcessId.ToString();
        return snapshot with
        {
            Streams = [.. snapshot.Streams.Select(s => latencies.TryGetValue(s.Name, out var latency)
                ? s with { Readers = [.. s.Readers.Select(r => r.ProcessId == processId ? r with { Node = r.Node ?? node, Latency = latency } : r)] }
                : s)],
            Nodes = [.. snapshot.Nodes.Select(n => n.Name == node && n.ProcessId == processId ? n with { Compute = compute } : n)],
        };
    }

    private ProfilingSnapshot BuildProfiling()
    {
        // Which node reads which reader entry, from the workers' profile blocks; the histograms decoded once.
        var readerNodes = new Dictionary<(string Stream, int Index), (string Node, HistogramSummary? Latency)>();
        var nodes = new List<NodeProfile>();
        for (var i = 0; i < profiles.Length; i++)
        {
            var worker = Plan.Workers[i];
            int? pid = slots[i] is { } slot && slot.Pid != 0 ? slot.Pid : null;
            HistogramSummary? computeSummary = null;
            if (profiles[i] is { } block)
            {
                foreach (var entry in block.Read())
                {
                    var summary = ProfileHistograms.Summarize(ProfileHistograms.Decode(entry.Encoded));
                    if (entry.Kind == ProfileEntryKind.InputLatency)
                    {
                        readerNodes[(entry.Name, entry.ReaderIndex)] = (worker.Name, summary);
                    }
                    else if (entry.Kind == ProfileEntryKind.Compute)
                    {
                        computeSummary = summary;
                    }
                }
            }

            // Every node: a kernel's, source's, sink's or task's compute time (decision 110); null where nothing was recorded (a Python worker).
            nodes.Add(new NodeProfile(worker.Name, computeSummary) { Pid = pid, ProcessId = slots[i]?.ProcessId.ToString() });
        }

        var externals = registry.Externals();
        var streamProfiles = new List<StreamProfile>();
        foreach (var (name, stream) in streams.OrderBy(s => s.Key, StringComparer.Ordinal))
        {
            StreamStatistics statistics;
            try
            {
                statistics = stream.GetStatistics();
            }
            catch (ObjectDisposedException)
            {
                continue;
            }

            var writerNode = WriterNode(name);
            var writer = new WriterProfile(statistics.Cursor, statistics.BytesPublished, statistics.WriterBlockedNs / 1e9, ProcessIdOf(statistics.WriterPid, writerNode, name, writes: true, externals))
            {
                Node = writerNode,
                Pid = statistics.WriterPid == 0 ? null : statistics.WriterPid,
                State = statistics.WriterState,
                SpaceWaits = statistics.SpaceWaits,
            };
            var readers = statistics.Readers.Select(r =>
            {
                readerNodes.TryGetValue((name, r.Index), out var owner);
                return new ReaderProfile(
                    owner.Node,
                    ProcessIdOf(r.Pid, owner.Node, name, writes: false, externals),
                    r.FramesRead,
                    r.BytesRead,
                    r.WaitNs / 1e9,
                    r.FramesSkipped,
                    statistics.CapacityFrames == 0 ? 0 : Math.Clamp((double)(statistics.Cursor - r.Position) / statistics.CapacityFrames, 0, 1),
                    owner.Latency)
                {
                    Index = r.Index,
                    Pid = r.Pid,
                    Delivery = r.Delivery == Delivery.Lossless ? "lossless" : "latest",
                    Torn = r.TornCopies,
                };
            }).ToList();
            streamProfiles.Add(new StreamProfile(name, writer, readers) { CapacityFrames = statistics.CapacityFrames, Fill = statistics.Fill });
        }

        return new ProfilingSnapshot(DateTimeOffset.UtcNow, streamProfiles, nodes);
    }

    /// <summary>
    /// The registry's id of the process with <paramref name="pid"/> that writes or reads <paramref name="stream"/>:
    /// the current launch of <paramref name="node"/> when its pid matches; else the one launch with that pid
    /// whose node writes (or reads) the stream (thread-placed workers share the manager's pid); else the
    /// manager (synthetic inputs are its threads); else an external process of that pid; else null (a
    /// writer or reader that is gone, such as a previous launch).
    /// </summary>
    private string? ProcessIdOf(int pid, string? node, string stream, bool writes, IReadOnlyList<ProcessRecord> externals)
    {
        if (pid <= 0)
        {
            return null;
        }

        WorkerSlot? match = null;
        var matches = 0;
        foreach (var slot in slots)
        {
            if (slot is null || slot.Pid != pid)
            {
                continue;
            }

            if (node is not null && slot.Plan.Name == node)
            {
                return slot.ProcessId.ToString();
            }

            var (written, read) = StreamsOf(slot.Plan.Node);
            if ((writes ? written : read).Contains(stream))
            {
                match = slot;
                matches++;
            }
        }

        if (matches == 1)
        {
            return match!.ProcessId.ToString();
        }

        if (pid == Environment.ProcessId)
        {
            return ProcessId.ToString();
        }

        return externals.FirstOrDefault(p => p.Pid == pid)?.Id;
    }

    /// <summary>The node of the pipeline that writes <paramref name="stream"/>, or null.</summary>
    private string? WriterNode(string stream)
    {
        foreach (var worker in Plan.Workers)
        {
            var writes = worker.Node switch
            {
                KernelSpec k => k.Outputs.Contains(stream),
                SourceSpec s => s.Streams.Contains(stream),
                SinkSpec s => s.Outputs.Contains(stream),
                _ => false,
            };
            if (writes)
            {
                return worker.Name;
            }
        }

        return null;
    }

    /// <summary>
    /// Switches opt-in traces on (decision 94): every <c>every</c>-th frame of the kernels in
    /// <paramref name="request"/>'s nodes (all when empty), for their inputs in its streams (all when empty),
    /// until its time limit. Running workers record into their profile blocks; read them with <see cref="ReadTraces"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A node or stream is unknown, or every or seconds is out of range.</exception>
    public TraceState SetTraces(TraceRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Every < 1)
        {
            throw new ArgumentException($"every must be at least 1, not {request.Every}", nameof(request));
        }

        if (!(request.Seconds > 0 && request.Seconds <= 3600))
        {
            throw new ArgumentException($"seconds must be more than 0 and at most 3600, not {request.Seconds}", nameof(request));
        }

        var kernels = Plan.Workers.Where(w => TracedInputs(w.Node) is not null).ToList();
        var nodes = request.Nodes is { Count: > 0 } n ? n.ToHashSet(StringComparer.Ordinal) : null;
        var streamFilter = request.Streams is { Count: > 0 } s ? s.ToHashSet(StringComparer.Ordinal) : null;
        foreach (var name in nodes ?? [])
        {
            if (!kernels.Any(k => k.Name == name))
            {
                throw new ArgumentException($"node '{name}' is not a kernel or sink of the pipeline (traces record kernels and sinks: {string.Join(", ", kernels.Select(k => k.Name))})", nameof(request));
            }
        }

        foreach (var name in streamFilter ?? [])
        {
            if (Pipeline.Spec.FindStream(name) is null)
            {
                throw new ArgumentException($"stream '{name}' is not a stream of the pipeline", nameof(request));
            }
        }

        lock (gate)
        {
            var until = MonotonicClock.NowNs() + (long)(request.Seconds * 1e9);
            var traced = new List<string>();
            foreach (var worker in kernels)
            {
                var inputs = TracedInputs(worker.Node)!;
                uint mask = 0;
                for (var i = 0; i < Math.Min(inputs.Count, 32); i++)
                {
                    if (streamFilter is null || streamFilter.Contains(inputs[i]))
                    {
                        mask |= 1u << i;
                    }
                }

                var on = (nodes is null || nodes.Contains(worker.Name)) && mask != 0;
                profiles[worker.Index]?.SetTrace(on, request.Every, until, mask);
                if (on)
                {
                    traced.Add(worker.Name);
                }
            }

            return new TraceState(traced.Count > 0, traced, request.Every, request.Seconds);
        }
    }

    /// <summary>Switches traces off.</summary>
    public TraceState StopTraces()
    {
        lock (gate)
        {
            foreach (var block in profiles)
            {
                block?.SetTrace(false);
            }

            return new TraceState(false, [], 1, 0);
        }
    }

    /// <summary>
    /// Reads the trace records written since <paramref name="cursors"/> (one per worker, kept by the
    /// caller: any number of readers read the same records, none takes them from another) into
    /// <paramref name="into"/>; returns how many records were overwritten before they were read.
    /// </summary>
    public long ReadTraces(long[] cursors, List<TraceSample> into)
    {
        ArgumentNullException.ThrowIfNull(cursors);
        ArgumentNullException.ThrowIfNull(into);
        if (cursors.Length != profiles.Length)
        {
            throw new ArgumentException($"give one cursor per worker ({profiles.Length})", nameof(cursors));
        }

        var lost = 0L;
        var records = new List<TraceRecord>();
        lock (gate)
        {
            for (var i = 0; i < profiles.Length; i++)
            {
                if (profiles[i] is not { } block || TracedInputs(Plan.Workers[i].Node) is not { } inputs)
                {
                    continue;
                }

                records.Clear();
                cursors[i] = block.ReadTraces(cursors[i], records, out var missed);
                lost += missed;
                foreach (var r in records)
                {
                    var stream = r.Input >= 0 && r.Input < inputs.Count ? inputs[r.Input] : "?";
                    into.Add(new TraceSample(stream, r.Sequence, r.FrameId, r.PublishNs, r.ReadNs, Plan.Workers[i].Name, r.ComputeNs));
                }
            }
        }

        return lost;
    }

    /// <summary>The inputs whose frames a node traces (a kernel's trigger inputs, a sink's stream), or null for a node that traces none.</summary>
    private static IReadOnlyList<string>? TracedInputs(NodeSpec node) => node switch
    {
        KernelSpec k => k.Inputs,
        SinkSpec s => [s.Stream],
        _ => null,
    };

    /// <summary>The number of workers (the length of the cursor array <see cref="ReadTraces"/> takes).</summary>
    public int WorkerCount => profiles.Length;

    /// <summary>Makes worker <paramref name="index"/>'s profile block anew (its histograms start empty with the worker).</summary>
    private void ReplaceProfile(int index, WorkerPlan worker)
    {
        DropProfile(index);
        if (!ProfileHistograms.Enabled)
        {
            return;
        }

        profiles[index] = ProfileBlock.Create(Plan.ControlNamespace, ProfileBlock.NameFor(worker.ControlName));
    }

    private void DropProfile(int index)
    {
        if (profiles[index] is { } block)
        {
            block.Unlink();
            block.Dispose();
            profiles[index] = null;
        }
    }

    private void DropProfiles()
    {
        for (var i = 0; i < profiles.Length; i++)
        {
            DropProfile(i);
        }
    }
}
