using Flowline.Graph;
using Flowline.Kernels;
using Flowline.Plugins;

namespace Flowline.Documents;

/// <summary>
/// The checks that need the whole document: unique names, references, wiring rules, one producer per
/// stream, each node's kind (arity, parameters, shapes and element types), cycles through trigger
/// inputs, and the feedback-path rule of stateful sinks. Every problem is collected.
/// </summary>
internal sealed class PipelineValidator
{
    private readonly PipelineSpec spec;
    private readonly KindRegistry kinds;
    private readonly IReadOnlyDictionary<string, SourcePosition> positions;
    private readonly IReadOnlySet<string> brokenStreams;
    private readonly IReadOnlyDictionary<object, string> paths;
    private readonly ErrorCollector errors;
    private readonly Dictionary<string, StreamSpec> streams = new(StringComparer.Ordinal);
    private string? streamNames;

    public PipelineValidator(
        PipelineSpec spec,
        KindRegistry kinds,
        ErrorCollector errors,
        IReadOnlyDictionary<string, SourcePosition>? positions = null,
        IReadOnlySet<string>? brokenStreams = null,
        IReadOnlyDictionary<object, string>? paths = null)
    {
        this.spec = spec;
        this.kinds = kinds;
        this.errors = errors;
        this.positions = positions ?? new Dictionary<string, SourcePosition>();
        this.brokenStreams = brokenStreams ?? new HashSet<string>();
        this.paths = paths ?? new Dictionary<object, string>();
    }

    /// <summary>Runs every check, adding what it finds to the collector.</summary>
    public void Validate()
    {
        Streams();
        NodeNames();
        var producers = new Dictionary<string, List<(string Node, string Path)>>(StringComparer.Ordinal);
        for (var i = 0; i < spec.Sources.Length; i++)
        {
            Source(spec.Sources[i], PathOf(spec.Sources[i], $"sources[{i}]"), producers);
        }

        for (var i = 0; i < spec.Kernels.Length; i++)
        {
            Kernel(spec.Kernels[i], PathOf(spec.Kernels[i], $"kernels[{i}]"), producers);
        }

        for (var i = 0; i < spec.Sinks.Length; i++)
        {
            Sink(spec.Sinks[i], PathOf(spec.Sinks[i], $"sinks[{i}]"), producers);
        }

        foreach (var (stream, writers) in producers)
        {
            if (writers.Count > 1)
            {
                var (_, path) = writers[1];
                var more = writers.Count > 10 ? $" and {writers.Count - 10:N0} more" : "";
                Error(path, $"stream '{stream}' already has a producer: {string.Join(" and ", writers.Take(10).Select(w => $"'{w.Node}'"))}{more} all write it; a stream has one producer");
            }
        }

        var graph = new PipelineGraph(spec);
        LatestDepths(graph);
        if (graph.FindTriggerCycle() is { } cycle)
        {
            var first = spec.Kernels.FirstOrDefault(k => k.Name == cycle[0]) as NodeSpec ?? spec.Sinks.First(s => s.Name == cycle[0]);
            Error(PathOf(first, "kernels"), $"the nodes {string.Join(" -> ", cycle.Select(c => $"'{c}'"))} trigger each other in a cycle; break it, or make one of the links an auxiliary input (which never triggers)");
        }

        Feedback(graph);
    }

    private void Streams()
    {
        var first = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < spec.Streams.Length; i++)
        {
            var stream = spec.Streams[i];
            var path = PathOf(stream, $"shared_memory[{i}]");
            if (first.TryGetValue(stream.Name, out var earlier))
            {
                Error($"{path}.name", $"stream '{stream.Name}' is declared twice (first at {earlier}); stream names are unique");
                continue;
            }

            first[stream.Name] = path;
            streams[stream.Name] = stream;
        }
    }

    /// <summary>
    /// A stream with a writer and latest readers needs a slot held by each of them (decision 100), one to
    /// fill and one for the newest frame: a <c>depth</c> below that is refused (a stream without depth
    /// gets enough).
    /// </summary>
    private void LatestDepths(PipelineGraph graph)
    {
        for (var i = 0; i < spec.Streams.Length; i++)
        {
            var stream = spec.Streams[i];
            if (stream.Depth is not { } depth || graph.ProducersOf(stream.Name).Count == 0)
            {
                continue;
            }

            var latest = spec.LatestReadersOf(stream.Name, written: true);
            if (latest.Count > 0 && depth < latest.Count + 2)
            {
                var readers = latest.Count == 1 ? $"its latest reader ({latest[0]}) holds" : $"its {latest.Count} latest readers ({string.Join(", ", latest)}) each hold";
                Error(
                    $"{PathOf(stream, $"shared_memory[{i}]")}.depth",
                    $"depth {depth} is too small for stream '{stream.Name}': {readers} the slot it reads, and the writer needs one slot to fill and one for the newest frame; " +
                    $"give depth: {PipelineSpec.LeastLatestDepth(latest.Count)} or more (latest readers + 2, a power of two), or read it with delivery: lossless" +
                    (stream.Remote is not null && (stream.Remote.Delivery ?? Flowline.SharedMemory.Delivery.Latest) == Flowline.SharedMemory.Delivery.Latest ? " (remote: delivery: lossless for the bridge)" : ""));
            }
        }
    }

    private void NodeNames()
    {
        var first = new Dictionary<string, string>(StringComparer.Ordinal);
        var nodes = spec.Sources.Select((n, i) => ((NodeSpec)n, PathOf(n, $"sources[{i}]")))
            .Concat(spec.Kernels.Select((n, i) => ((NodeSpec)n, PathOf(n, $"kernels[{i}]"))))
            .Concat(spec.Sinks.Select((n, i) => ((NodeSpec)n, PathOf(n, $"sinks[{i}]"))));
        foreach (var (node, path) in nodes)
        {
            if (first.TryGetValue(node.Name, out var earlier))
            {
                Error($"{path}.name", $"name '{node.Name}' is already used by {earlier}; kernels, sources and sinks need unique names");
            }
            else
            {
                first[node.Name] = path;
            }
        }
    }

    private void Kernel(KernelSpec kernel, string path, Dictionary<string, List<(string, string)>> producers)
    {
        var inputs = References(kernel.Inputs, kernel.InputsAsList ? $"{path}.inputs" : $"{path}.input", kernel.InputsAsList);
        var outputs = References(kernel.Outputs, kernel.OutputsAsList ? $"{path}.outputs" : $"{path}.output", kernel.OutputsAsList);
        var auxiliary = AuxiliaryReferences(kernel, path);
        Wiring(kernel, path, kernel.Inputs, kernel.Outputs);
        PerInputKeys(kernel.Delivery?.ByStream.Keys, kernel, path, "delivery");
        PerInputKeys(kernel.Wait?.ByStream.Keys, kernel, path, "wait");
        for (var i = 0; i < kernel.Outputs.Length; i++)
        {
            Produce(producers, kernel.Outputs[i], kernel.Name, kernel.OutputsAsList ? $"{path}.outputs[{i}]" : $"{path}.output");
        }

        if (kernel.Kind.StartsWith("gpu.", StringComparison.Ordinal))
        {
            Error($"{path}.kind", $"kind '{ErrorCollector.Quote(kernel.Kind)}' needs a GPU: no GPU backend in this build; use the cpu. kind of the same name");
            return;
        }

        if (!kinds.Kernels.TryGetValue(kernel.Kind, out var definition))
        {
            Error($"{path}.kind", $"unknown kernel kind '{ErrorCollector.Quote(kernel.Kind)}'{errors.Suggest(kernel.Kind, kinds.Kernels.Keys)}; kernel kinds are {string.Join(", ", kinds.Kernels.Keys.Order(StringComparer.Ordinal))}");
            return;
        }

        var ok = Arity(definition.Inputs, kernel.Inputs.Length, $"{path}.{(kernel.InputsAsList ? "inputs" : "input")}", "trigger input", kernel.Kind);
        ok &= Arity(definition.Auxiliary, kernel.Auxiliary.Length, $"{path}.auxiliary", "auxiliary input", kernel.Kind);
        ok &= Arity(definition.Outputs, kernel.Outputs.Length, $"{path}.{(kernel.OutputsAsList ? "outputs" : "output")}", "output", kernel.Kind);
        if (kernel.Operation is not null && !definition.UsesOperation)
        {
            Error($"{path}.operation", $"'operation' is only read by cpu.custom_operation; {kernel.Kind} does not use it");
        }

        KnownParameters(definition, kernel, path);
        if (ok && inputs is not null && outputs is not null && auxiliary is not null)
        {
            definition.Validate(new KernelContext(kernel, inputs, auxiliary, outputs, (field, message) => Error($"{path}.{field}", message)) { BaseDirectory = spec.BaseDirectory });
        }
    }

    private void Source(SourceSpec source, string path, Dictionary<string, List<(string, string)>> producers)
    {
        var written = References(source.Streams, source.StreamsAsList ? $"{path}.streams" : $"{path}.stream", source.StreamsAsList);
        var auxiliary = AuxiliaryReferences(source, path);
        Wiring(source, path, [], source.Streams);
        for (var i = 0; i < source.Streams.Length; i++)
        {
            Produce(producers, source.Streams[i], source.Name, source.StreamsAsList ? $"{path}.streams[{i}]" : $"{path}.stream");
        }

        if (!kinds.Sources.TryGetValue(source.Kind, out var definition))
        {
            Error($"{path}.kind", $"unknown source kind '{ErrorCollector.Quote(source.Kind)}'{errors.Suggest(source.Kind, kinds.Sources.Keys)}; source kinds are {string.Join(", ", kinds.Sources.Keys.Order(StringComparer.Ordinal))}");
            return;
        }

        var ok = Arity(definition.Streams, source.Streams.Length, $"{path}.{(source.StreamsAsList ? "streams" : "stream")}", "stream", source.Kind);
        ok &= Arity(definition.Auxiliary, source.Auxiliary.Length, $"{path}.auxiliary", "auxiliary input", source.Kind);
        KnownParameters(definition, source, path);
        if (ok && written is not null && auxiliary is not null)
        {
            definition.Validate(new SourceContext(source, written, auxiliary, (field, message) => Error($"{path}.{field}", message)) { BaseDirectory = spec.BaseDirectory });
        }
    }

    private void Sink(SinkSpec sink, string path, Dictionary<string, List<(string, string)>> producers)
    {
        var read = References([sink.Stream], $"{path}.stream", asList: false);
        var outputs = References(sink.Outputs, $"{path}.outputs", asList: true);
        var auxiliary = AuxiliaryReferences(sink, path);
        Wiring(sink, path, [sink.Stream], sink.Outputs);
        for (var i = 0; i < sink.Outputs.Length; i++)
        {
            Produce(producers, sink.Outputs[i], sink.Name, $"{path}.outputs[{i}]");
        }

        if (!kinds.Sinks.TryGetValue(sink.Kind, out var definition))
        {
            Error($"{path}.kind", $"unknown sink kind '{ErrorCollector.Quote(sink.Kind)}'{errors.Suggest(sink.Kind, kinds.Sinks.Keys)}; sink kinds are {string.Join(", ", kinds.Sinks.Keys.Order(StringComparer.Ordinal))}");
            return;
        }

        var ok = Arity(definition.Outputs, sink.Outputs.Length, $"{path}.outputs", "feedback output", sink.Kind);
        ok &= Arity(definition.Auxiliary, sink.Auxiliary.Length, $"{path}.auxiliary", "auxiliary input", sink.Kind);
        KnownParameters(definition, sink, path);
        if (ok && read is not null && outputs is not null && auxiliary is not null)
        {
            definition.Validate(new SinkContext(sink, read[0], outputs, auxiliary, (field, message) => Error($"{path}.{field}", message)) { BaseDirectory = spec.BaseDirectory });
        }
    }

    /// <summary>A source's required feedback aliases come from stateful sinks, along paths whose kernels propagate frame ids.</summary>
    private void Feedback(PipelineGraph graph)
    {
        FeedbackIndex? index = null;
        for (var i = 0; i < spec.Sources.Length; i++)
        {
            var source = spec.Sources[i];
            if (!kinds.Sources.TryGetValue(source.Kind, out var definition))
            {
                continue;
            }

            var path = PathOf(source, $"sources[{i}]");
            foreach (var alias in definition.RequiredFeedbackAliases)
            {
                var binding = source.Auxiliary.FirstOrDefault(a => a.Alias == alias);
                if (binding is null)
                {
                    Error($"{path}.auxiliary", $"{source.Kind} needs the feedback alias '{alias}' bound to a stateful sink's output");
                    continue;
                }

                index ??= new FeedbackIndex(spec);
                if (!index.SinkWriting.TryGetValue(binding.Stream, out var sink))
                {
                    Error($"{path}.auxiliary.{alias}", $"feedback alias '{alias}' reads '{binding.Stream}', which no sink writes in its 'outputs'; bind it to a stateful sink's output");
                    continue;
                }

                foreach (var kernel in index.KernelsBetween(graph, source, sink))
                {
                    if (kernel.PropagateFrameId != true)
                    {
                        var kernelPath = PathOf(kernel, "kernels");
                        Error($"{kernelPath}.propagate_frame_id", $"kernel '{kernel.Name}' is on the feedback path from source '{source.Name}' to sink '{sink.Name}'; set propagate_frame_id: true so the feedback matches its frame");
                    }
                }
            }
        }
    }

    /// <summary>The lookups of the feedback rule, built once: each stream's trigger readers, each kernel by name, each feedback stream's sink.</summary>
    private sealed class FeedbackIndex
    {
        private readonly PipelineSpec spec;
        private readonly Dictionary<string, List<KernelSpec>> triggerReaders = new(StringComparer.Ordinal);
        private readonly Dictionary<string, KernelSpec> kernels = new(StringComparer.Ordinal);

        public FeedbackIndex(PipelineSpec spec)
        {
            this.spec = spec;
            foreach (var kernel in spec.Kernels)
            {
                kernels.TryAdd(kernel.Name, kernel);
                foreach (var input in kernel.Inputs.Distinct(StringComparer.Ordinal))
                {
                    if (!triggerReaders.TryGetValue(input, out var readers))
                    {
                        triggerReaders[input] = readers = [];
                    }

                    readers.Add(kernel);
                }
            }

            foreach (var sink in spec.Sinks)
            {
                foreach (var output in sink.Outputs)
                {
                    SinkWriting.TryAdd(output, sink);
                }
            }
        }

        /// <summary>The first sink that writes each stream in its <c>outputs</c>.</summary>
        public Dictionary<string, SinkSpec> SinkWriting { get; } = new(StringComparer.Ordinal);

        /// <summary>Kernels on some trigger path from a source's streams to a sink's input.</summary>
        public IEnumerable<KernelSpec> KernelsBetween(PipelineGraph graph, SourceSpec source, SinkSpec sink)
        {
            var reachable = new HashSet<string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(source.Streams, StringComparer.Ordinal);
            var queue = new Queue<string>(seen);
            while (queue.Count > 0)
            {
                foreach (var kernel in triggerReaders.TryGetValue(queue.Dequeue(), out var readers) ? readers : [])
                {
                    if (reachable.Add(kernel.Name))
                    {
                        foreach (var output in kernel.Outputs.Where(seen.Add))
                        {
                            queue.Enqueue(output);
                        }
                    }
                }
            }

            var leadsToSink = new HashSet<string>(StringComparer.Ordinal);
            var back = new Queue<string>([sink.Stream]);
            var seenBack = new HashSet<string>([sink.Stream], StringComparer.Ordinal);
            while (back.Count > 0)
            {
                foreach (var producer in graph.ProducersOf(back.Dequeue()))
                {
                    if (kernels.TryGetValue(producer, out var kernel) && leadsToSink.Add(kernel.Name))
                    {
                        foreach (var input in kernel.Inputs.Where(seenBack.Add))
                        {
                            back.Enqueue(input);
                        }
                    }
                }
            }

            return spec.Kernels.Where(k => reachable.Contains(k.Name) && leadsToSink.Contains(k.Name));
        }
    }

    private List<StreamSpec>? References(IReadOnlyList<string> names, string field, bool asList)
    {
        var found = new List<StreamSpec>();
        var complete = true;
        for (var i = 0; i < names.Count; i++)
        {
            if (streams.TryGetValue(names[i], out var stream))
            {
                found.Add(stream);
                continue;
            }

            complete = false;
            if (!brokenStreams.Contains(names[i]))
            {
                Error(asList ? $"{field}[{i}]" : field, UnknownStream(names[i]));
            }
        }

        return complete ? found : null;
    }

    private List<(AuxiliaryBinding, StreamSpec)>? AuxiliaryReferences(NodeSpec node, string path)
    {
        var found = new List<(AuxiliaryBinding, StreamSpec)>();
        var complete = true;
        for (var i = 0; i < node.Auxiliary.Length; i++)
        {
            var binding = node.Auxiliary[i];
            if (streams.TryGetValue(binding.Stream, out var stream))
            {
                found.Add((binding, stream));
                continue;
            }

            complete = false;
            if (!brokenStreams.Contains(binding.Stream))
            {
                Error(node.AuxiliaryAsMapping ? $"{path}.auxiliary.{binding.Alias}" : $"{path}.auxiliary[{i}]", UnknownStream(binding.Stream));
            }
        }

        return complete ? found : null;
    }

    private string UnknownStream(string name) =>
        $"unknown stream '{ErrorCollector.Quote(name)}'{errors.Suggest(name, streams.Keys)}; streams are {streamNames ??= ErrorCollector.List(streams.Keys)}";

    /// <summary>No duplicate names or aliases, and no stream in two roles of one node.</summary>
    private void Wiring(NodeSpec node, string path, IReadOnlyList<string> triggers, IReadOnlyList<string> outputs)
    {
        Duplicates(triggers, path, "trigger input");
        Duplicates(outputs, path, "output");
        Duplicates([.. node.Auxiliary.Select(a => a.Alias)], path, "auxiliary alias");
        Duplicates([.. node.Auxiliary.Select(a => a.Stream)], path, "auxiliary stream");
        var auxiliary = node.Auxiliary.Select(a => a.Stream).ToHashSet(StringComparer.Ordinal);
        foreach (var stream in triggers.Intersect(outputs))
        {
            Error(path, $"stream '{stream}' is both a trigger input and an output of '{node.Name}'; a node cannot read and write the same stream");
        }

        foreach (var stream in triggers.Where(auxiliary.Contains))
        {
            Error($"{path}.auxiliary", $"stream '{stream}' is both a trigger input and an auxiliary input of '{node.Name}'; use it once");
        }

        foreach (var stream in outputs.Where(auxiliary.Contains))
        {
            Error($"{path}.auxiliary", $"stream '{stream}' is both an output and an auxiliary input of '{node.Name}'; a node cannot read and write the same stream");
        }
    }

    private void Duplicates(IReadOnlyList<string> values, string path, string what)
    {
        foreach (var duplicate in values.GroupBy(v => v, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            Error(path, $"{what} '{ErrorCollector.Quote(duplicate.Key)}' is listed {duplicate.Count()} times; list it once");
        }
    }

    private void PerInputKeys(IEnumerable<string>? keys, KernelSpec kernel, string path, string field)
    {
        if (keys is null)
        {
            return;
        }

        var inputs = kernel.Inputs.Concat(kernel.Auxiliary.Select(a => a.Stream)).Concat(kernel.Auxiliary.Select(a => a.Alias)).ToHashSet(StringComparer.Ordinal);
        foreach (var key in keys.Where(k => !inputs.Contains(k)))
        {
            Error($"{path}.{field}.{key}", $"'{ErrorCollector.Quote(key)}' is not an input of '{kernel.Name}'; its inputs are {ErrorCollector.List([.. kernel.Inputs, .. kernel.Auxiliary.Select(a => a.Stream)])}");
        }
    }

    private static void Produce(Dictionary<string, List<(string, string)>> producers, string stream, string node, string path)
    {
        if (!producers.TryGetValue(stream, out var list))
        {
            producers[stream] = list = [];
        }

        list.Add((node, path));
    }

    private bool Arity(Arity arity, int count, string field, string what, string kind)
    {
        if (arity.Allows(count))
        {
            return true;
        }

        Error(field, arity.Max == 0 ? $"{kind} takes no {what}s, not {count}" : $"{kind} takes {arity} {what}{(arity.Max == 1 ? "" : "s")}, not {count}");
        return false;
    }

    /// <summary>Reports parameters the kind does not declare; the kind's own checks of the others still run.</summary>
    private void KnownParameters(KindDefinition definition, NodeSpec node, string path)
    {
        if (definition.AcceptsUndeclaredParameters)
        {
            return;
        }

        var known = definition.Parameters.Select(p => p.Name).ToList();
        foreach (var name in node.Parameters.Names.Where(n => !known.Contains(n)))
        {
            var valid = known.Count == 0 ? $"{node.Kind} takes no parameters" : $"{node.Kind} takes {string.Join(", ", known)}";
            Error($"{path}.parameters.{name}", $"unknown parameter '{ErrorCollector.Quote(name)}'{errors.Suggest(name, known)}; {valid}");
        }
    }

    private string PathOf(object node, string fallback) => paths.TryGetValue(node, out var path) ? path : fallback;

    private void Error(string path, string message)
    {
        var position = positions.TryGetValue(path, out var p) ? p : Nearest(path);
        errors.Add(new SpecError(path, message, spec.File, position));
    }

    /// <summary>The position of the closest enclosing field that has one.</summary>
    private SourcePosition Nearest(string path)
    {
        while (path.Length > 0)
        {
            var cut = Math.Max(path.LastIndexOf('.'), path.LastIndexOf('['));
            if (cut <= 0)
            {
                break;
            }

            path = path[..cut];
            if (positions.TryGetValue(path, out var p))
            {
                return p;
            }
        }

        return SourcePosition.None;
    }
}
