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
    private readonly HashSet<(string Stream, string Node, bool Read)> linked = [];
    private readonly List<GraphEdge> edges = [];

    // Every edge of a node (reads and writes), and the kernels and sinks by name: the queries below stay
    // linear in the size of the document, however large a hostile one is.
    private readonly Dictionary<string, List<GraphEdge>> edgesOf = new(StringComparer.Ordinal);
    private readonly HashSet<string> kernelNames;
    private readonly HashSet<string> sinkNames;

    /// <summary>Builds the graph of <paramref name="spec"/>. References to undeclared streams are ignored (validation reports them).</summary>
    public PipelineGraph(PipelineSpec spec)
    {
        Spec = spec;
        kernelNames = spec.Kernels.Select(k => k.Name).ToHashSet(StringComparer.Ordinal);
        sinkNames = spec.Sinks.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
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
        [.. EdgesOf(node).Where(e => e.IsRead && e.Target == node).SelectMany(e => ProducersOf(e.Stream)).Where(IsKernel).Distinct()];

    /// <summary>Kernels that read a node's outputs.</summary>
    public IReadOnlyList<string> DownstreamKernels(string node) =>
        [.. EdgesOf(node).Where(e => !e.IsRead && e.Source == node).SelectMany(e => ConsumersOf(e.Stream)).Where(IsKernel).Distinct()];

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
        // The search walks from nodes to the streams they write and from streams to the nodes they trigger,
        // visiting each once: linear in the edges, however many nodes read one stream.
        var triggered = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var edge in edges.Where(e => e.IsRead && IsTrigger(e.Role)))
        {
            if (!triggered.TryGetValue(edge.Source, out var readers))
            {
                triggered[edge.Source] = readers = [];
            }

            readers.Add(edge.Target);
        }

        var writes = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var (name, outputs) in Spec.Kernels.Select(k => (k.Name, k.Outputs)).Concat(Spec.Sinks.Select(s => (s.Name, s.Outputs))))
        {
            writes.TryAdd(name, outputs);
        }

        IReadOnlyList<string> Next((bool IsStream, string Name) vertex) =>
            vertex.IsStream
                ? triggered.TryGetValue(vertex.Name, out var readers) ? readers : []
                : writes.TryGetValue(vertex.Name, out var outputs) ? outputs : [];

        // Depth-first, with a stack of its own (a chain of thousands of nodes is as deep): 1 on the path, 2 done.
        var state = new Dictionary<(bool IsStream, string Name), int>();
        var path = new List<(bool IsStream, string Name)>();
        var stack = new Stack<((bool IsStream, string Name) Vertex, int Next)>();
        foreach (var start in writes.Keys.Select(n => (false, n)).Where(v => !state.ContainsKey(v)))
        {
            state[start] = 1;
            path.Add(start);
            stack.Push((start, 0));
            while (stack.Count > 0)
            {
                var (vertex, index) = stack.Pop();
                var targets = Next(vertex);
                if (index == targets.Count)
                {
                    state[vertex] = 2;
                    path.RemoveAt(path.Count - 1);
                    continue;
                }

                stack.Push((vertex, index + 1));
                var target = (!vertex.IsStream, targets[index]);
                if (!state.TryGetValue(target, out var seen))
                {
                    state[target] = 1;
                    path.Add(target);
                    stack.Push((target, 0));
                }
                else if (seen == 1)
                {
                    var nodes = path.Skip(path.IndexOf(target)).Where(v => !v.IsStream).Select(v => v.Name).ToList();
                    return [.. nodes, nodes[0]];
                }
            }
        }

        return null;
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

    private bool IsKernel(string node) => kernelNames.Contains(node);

    private bool IsSink(string node) => sinkNames.Contains(node);

    private List<GraphEdge> EdgesOf(string node) => edgesOf.TryGetValue(node, out var list) ? list : [];

    private void Add(string node, GraphEdge edge)
    {
        edges.Add(edge);
        if (!edgesOf.TryGetValue(node, out var list))
        {
            edgesOf[node] = list = [];
        }

        list.Add(edge);
    }

    private void ReadAuxiliary(NodeSpec node)
    {
        foreach (var binding in node.Auxiliary)
        {
            Read(node.Name, binding.Stream, $"auxiliary:{binding.Alias}");
        }
    }

    private void Read(string node, string stream, string role)
    {
        Add(node, new GraphEdge(stream, node, role, stream));
        if (consumers.TryGetValue(stream, out var list) && linked.Add((stream, node, true)))
        {
            list.Add(node);
        }
    }

    private void Write(string node, string stream, string role)
    {
        Add(node, new GraphEdge(node, stream, role, stream));
        if (producers.TryGetValue(stream, out var list) && linked.Add((stream, node, false)))
        {
            list.Add(node);
        }
    }
}
