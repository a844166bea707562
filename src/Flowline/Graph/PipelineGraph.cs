using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.SharedMemory;

namespace Flowline.Graph;

/// <summary>The role of a stream in a pipeline.</summary>
public enum StreamRole
{
    /// <summary>Enters the pipeline: written by a source or a stateful sink, or by something outside it.</summary>
    Source,

    /// <summary>Leaves the pipeline: read by a sink, or written and never read.</summary>
    Sink,

    /// <summary>Both: goes straight from a source (or outside) to a sink.</summary>
    SourceAndSink,

    /// <summary>Written by a kernel and read inside the pipeline.</summary>
    Intermediate,

    /// <summary>Neither written nor read by any node.</summary>
    Orphan,
}

/// <summary>A connection between a stream and a node.</summary>
/// <param name="Source">Where data flows from: a stream name for a read, a node name for a write.</param>
/// <param name="Target">Where data flows to.</param>
/// <param name="Role">input, input:N, auxiliary:&lt;alias&gt;, output, output:N, source, source:N, sink, sink_output.</param>
/// <param name="Stream">The stream.</param>
public sealed record GraphEdge(string Source, string Target, string Role, string Stream)
{
    /// <summary>True when a node reads the stream (the node is <see cref="Target"/>); false when it writes it.</summary>
    public bool IsRead => Role.StartsWith("input", StringComparison.Ordinal) || Role.StartsWith("auxiliary", StringComparison.Ordinal) || Role == "sink";
}

/// <summary>
/// Who writes and who reads each stream, which kernels feed which, and each stream's role: the pipeline
/// as a graph, built from a spec. Serialises to shmpipeline's graph JSON.
/// </summary>
public sealed class PipelineGraph
{
    private readonly Dictionary<string, List<string>> producers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> consumers = new(StringComparer.Ordinal);
    private readonly List<GraphEdge> edges = [];

    /// <summary>Builds the graph of <paramref name="spec"/>. References to undeclared streams are ignored (validation reports them).</summary>
    public PipelineGraph(PipelineSpec spec)
    {
        Spec = spec;
        foreach (var stream in spec.Streams)
        {
            producers[stream.Name] = [];
            consumers[stream.Name] = [];
        }

        foreach (var source in spec.Sources)
        {
            for (var i = 0; i < source.Streams.Length; i++)
            {
                Write(source.Name, source.Streams[i], source.Streams.Length > 1 ? $"source:{i}" : "source");
            }

            ReadAuxiliary(source);
        }

        foreach (var kernel in spec.Kernels)
        {
            for (var i = 0; i < kernel.Inputs.Length; i++)
            {
                Read(kernel.Name, kernel.Inputs[i], kernel.Inputs.Length > 1 ? $"input:{i}" : "input");
            }

            ReadAuxiliary(kernel);
            for (var i = 0; i < kernel.Outputs.Length; i++)
            {
                Write(kernel.Name, kernel.Outputs[i], kernel.Outputs.Length > 1 ? $"output:{i}" : "output");
            }
        }

        foreach (var task in spec.Tasks)
        {
            foreach (var stream in task.Reads.Values)
            {
                Read(task.Name, stream, "input");
            }

            foreach (var stream in task.Writes.Values)
            {
                Write(task.Name, stream, "output");
            }
        }

        foreach (var sink in spec.Sinks)
        {
            Read(sink.Name, sink.Stream, "sink");
            ReadAuxiliary(sink);
            foreach (var output in sink.Outputs)
            {
                Write(sink.Name, output, "sink_output");
            }
        }
    }

    /// <summary>The spec the graph was built from.</summary>
    public PipelineSpec Spec { get; }

    /// <summary>Every edge, in document order.</summary>
    public IReadOnlyList<GraphEdge> Edges => edges;

    /// <summary>The nodes that write <paramref name="stream"/>.</summary>
    public IReadOnlyList<string> ProducersOf(string stream) => producers.TryGetValue(stream, out var p) ? p : [];

    /// <summary>The nodes that read <paramref name="stream"/> (as trigger or auxiliary input).</summary>
    public IReadOnlyList<string> ConsumersOf(string stream) => consumers.TryGetValue(stream, out var c) ? c : [];

    /// <summary>The role of <paramref name="stream"/>.</summary>
    public StreamRole RoleOf(string stream)
    {
        var written = ProducersOf(stream);
        var read = ConsumersOf(stream);
        if (written.Count == 0 && read.Count == 0)
        {
            return StreamRole.Orphan;
        }

        var enters = written.Count == 0 || written.Any(p => !IsKernel(p));
        var sinkRead = read.Any(IsSink);
        var kernelRead = read.Any(c => !IsSink(c));
        var leaves = sinkRead || read.Count == 0;
        return (enters, leaves) switch
        {
            (true, true) when !kernelRead && read.Count > 0 => StreamRole.SourceAndSink,
            (true, _) => StreamRole.Source,
            (false, true) => StreamRole.Sink,
            _ => StreamRole.Intermediate,
        };
    }

    /// <summary>Kernels whose outputs a node reads.</summary>
    public IReadOnlyList<string> UpstreamKernels(string node) =>
        [.. edges.Where(e => e.IsRead && e.Target == node).SelectMany(e => ProducersOf(e.Stream)).Where(IsKernel).Distinct()];

    /// <summary>Kernels that read a node's outputs.</summary>
    public IReadOnlyList<string> DownstreamKernels(string node) =>
        [.. edges.Where(e => !e.IsRead && e.Source == node).SelectMany(e => ConsumersOf(e.Stream)).Where(IsKernel).Distinct()];

    /// <summary>Streams that enter the pipeline.</summary>
    public IReadOnlyList<string> SourceStreams => [.. Spec.Streams.Select(s => s.Name).Where(s => RoleOf(s) is StreamRole.Source or StreamRole.SourceAndSink)];

    /// <summary>Streams that leave the pipeline.</summary>
    public IReadOnlyList<string> SinkStreams => [.. Spec.Streams.Select(s => s.Name).Where(s => RoleOf(s) is StreamRole.Sink or StreamRole.SourceAndSink)];

    /// <summary>Streams no node uses.</summary>
    public IReadOnlyList<string> OrphanedStreams => [.. Spec.Streams.Select(s => s.Name).Where(s => RoleOf(s) == StreamRole.Orphan)];

    /// <summary>
    /// The first cycle through trigger inputs (kernels and sinks that wait on each other), as node names
    /// with the first repeated at the end, or null. Auxiliary inputs never trigger, so feedback through
    /// them is not a cycle.
    /// </summary>
    public IReadOnlyList<string>? FindTriggerCycle()
    {
        var next = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (name, outputs) in Spec.Kernels.Select(k => (k.Name, k.Outputs)).Concat(Spec.Sinks.Select(s => (s.Name, s.Outputs))))
        {
            next[name] = [.. outputs.SelectMany(o => edges.Where(e => e.IsRead && e.Source == o && IsTrigger(e.Role)).Select(e => e.Target)).Distinct()];
        }

        var state = new Dictionary<string, int>(StringComparer.Ordinal);
        var path = new List<string>();
        foreach (var start in next.Keys)
        {
            if (Visit(start) is { } cycle)
            {
                return cycle;
            }
        }

        return null;

        List<string>? Visit(string node)
        {
            if (state.TryGetValue(node, out var s))
            {
                if (s == 1)
                {
                    var from = path.IndexOf(node);
                    return [.. path.Skip(from), node];
                }

                return null;
            }

            state[node] = 1;
            path.Add(node);
            foreach (var target in next.TryGetValue(node, out var targets) ? targets : [])
            {
                if (Visit(target) is { } cycle)
                {
                    return cycle;
                }
            }

            path.RemoveAt(path.Count - 1);
            state[node] = 2;
            return null;
        }
    }

    /// <summary>The graph in shmpipeline's JSON shape (<c>/graph</c>, <c>describe --json</c>).</summary>
    public JsonObject ToJson() => new()
    {
        ["shared_memory"] = new JsonArray([.. Spec.Streams.Select(s => (JsonNode)new JsonObject
        {
            ["name"] = s.Name,
            ["shape"] = new JsonArray([.. s.Shape.Select(d => (JsonNode)JsonValue.Create(d))]),
            ["dtype"] = s.Dtype.ToName(),
            ["storage"] = s.Storage ?? "cpu",
            ["gpu_device"] = null,
            ["producers"] = Names(ProducersOf(s.Name)),
            ["consumers"] = Names(ConsumersOf(s.Name)),
            ["role"] = RoleName(RoleOf(s.Name)),
        })]),
        ["sources"] = new JsonArray([.. Spec.Sources.Select(s => (JsonNode)new JsonObject
        {
            ["name"] = s.Name,
            ["kind"] = s.Kind,
            ["stream"] = s.Streams[0],
            ["streams"] = Names(s.Streams),
            ["auxiliary"] = Auxiliary(s),
            ["parameters"] = s.Parameters.ToJsonObject(),
            ["downstream_kernels"] = Names(DownstreamKernels(s.Name)),
        })]),
        ["kernels"] = new JsonArray([.. Spec.Kernels.Select(k => (JsonNode)new JsonObject
        {
            ["name"] = k.Name,
            ["kind"] = k.Kind,
            ["input"] = k.Inputs[0],
            ["inputs"] = Names(k.Inputs),
            ["trigger_policy"] = k.EffectiveTriggerPolicy == TriggerPolicy.AllNew ? "all_new" : "any_new",
            ["output"] = k.Outputs[0],
            ["outputs"] = Names(k.Outputs),
            ["auxiliary"] = Auxiliary(k),
            ["upstream_kernels"] = Names(UpstreamKernels(k.Name)),
            ["downstream_kernels"] = Names(DownstreamKernels(k.Name)),
        })]),
        ["sinks"] = new JsonArray([.. Spec.Sinks.Select(s => (JsonNode)new JsonObject
        {
            ["name"] = s.Name,
            ["kind"] = s.Kind,
            ["stream"] = s.Stream,
            ["outputs"] = Names(s.Outputs),
            ["auxiliary"] = Auxiliary(s),
            ["parameters"] = s.Parameters.ToJsonObject(),
            ["upstream_kernels"] = Names(UpstreamKernels(s.Name)),
        })]),
        ["edges"] = new JsonArray([.. edges.Select(e => (JsonNode)new JsonObject
        {
            ["source"] = e.Source,
            ["target"] = e.Target,
            ["role"] = e.Role,
            ["stream"] = e.Stream,
        })]),
        ["source_streams"] = Names(SourceStreams),
        ["sink_streams"] = Names(SinkStreams),
        ["orphaned_streams"] = Names(OrphanedStreams),
    };

    /// <summary>The name shmpipeline gives a role.</summary>
    public static string RoleName(StreamRole role) => role switch
    {
        StreamRole.Source => "source",
        StreamRole.Sink => "sink",
        StreamRole.SourceAndSink => "source+sink",
        StreamRole.Intermediate => "intermediate",
        _ => "orphan",
    };

    private static JsonArray Names(IEnumerable<string> names) => new([.. names.Select(n => (JsonNode)JsonValue.Create(n))]);

    private static JsonNode Auxiliary(NodeSpec node)
    {
        if (!node.AuxiliaryAsMapping)
        {
            return Names(node.Auxiliary.Select(a => a.Stream));
        }

        var map = new JsonObject();
        foreach (var binding in node.Auxiliary)
        {
            map[binding.Alias] = binding.Stream;
        }

        return map;
    }

    private static bool IsTrigger(string role) => role.StartsWith("input", StringComparison.Ordinal) || role == "sink";

    private bool IsKernel(string node) => Spec.Kernels.Any(k => k.Name == node);

    private bool IsSink(string node) => Spec.Sinks.Any(s => s.Name == node);

    private void ReadAuxiliary(NodeSpec node)
    {
        foreach (var binding in node.Auxiliary)
        {
            Read(node.Name, binding.Stream, $"auxiliary:{binding.Alias}");
        }
    }

    private void Read(string node, string stream, string role)
    {
        edges.Add(new GraphEdge(stream, node, role, stream));
        if (consumers.TryGetValue(stream, out var list) && !list.Contains(node))
        {
            list.Add(node);
        }
    }

    private void Write(string node, string stream, string role)
    {
        edges.Add(new GraphEdge(node, stream, role, stream));
        if (producers.TryGetValue(stream, out var list) && !list.Contains(node))
        {
            list.Add(node);
        }
    }
}
