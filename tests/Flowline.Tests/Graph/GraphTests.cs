using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Graph;

namespace Flowline.Tests.Graph;

/// <summary>The pipeline graph: stream roles, producers and consumers, edges, its JSON, and the graph checks of validation.</summary>
public sealed class GraphTests
{
    /// <summary>
    /// cam: written by a source, read by kernels (source); ext: written by no one, read by a kernel (source);
    /// mid: kernel to kernels (intermediate); out: kernel to sink (sink); tail and sum: written by a kernel, never read
    /// (sink); direct: source straight to a sink (source+sink); unused: no one (orphan).
    /// </summary>
    private const string Roles = """
        shared_memory:
          - {name: cam, shape: [4], dtype: float32}
          - {name: ext, shape: [4], dtype: float32}
          - {name: mid, shape: [4], dtype: float32}
          - {name: out, shape: [4], dtype: float32}
          - {name: tail, shape: [4], dtype: float32}
          - {name: direct, shape: [4], dtype: float32}
          - {name: unused, shape: [4], dtype: float32}
          - {name: sum, shape: [4], dtype: float32}
        sources:
          - {name: camera, kind: synthetic.array, stream: cam}
          - {name: passthrough, kind: synthetic.array, stream: direct}
        kernels:
          - {name: first, kind: cpu.elementwise_add, input: cam, auxiliary: {other: ext}, output: mid}
          - {name: second, kind: cpu.copy, input: mid, output: out}
          - {name: third, kind: cpu.scale, input: mid, output: tail, parameters: {factor: 2}}
          - {name: fourth, kind: cpu.elementwise_add, input: cam, auxiliary: [mid], output: sum}
        sinks:
          - {name: display, kind: null.sink, stream: out}
          - {name: recorder, kind: null.sink, stream: direct}
        """;

    /// <summary>Every kind of edge: source:N, source, input:N, input, auxiliary (mapping and list), output, output:N, sink, sink_output.</summary>
    private const string Edges = """
        plugins: [plugins/Flowline.Tests.Plugin.dll]
        shared_memory:
          - {name: left, shape: [2], dtype: float32}
          - {name: right, shape: [2], dtype: float32}
          - {name: gain, shape: [4], dtype: float32}
          - {name: joined, shape: [4], dtype: float32}
          - {name: scaled, shape: [4], dtype: float32}
          - {name: offset, shape: [4], dtype: float32}
          - {name: echo, shape: [4], dtype: float32}
          - {name: echo2, shape: [4], dtype: float32}
          - {name: feedback, shape: [4], dtype: float32}
        sources:
          - {name: pair, kind: synthetic.frame_set, streams: [left, right]}
          - {name: gains, kind: synthetic.array, stream: gain}
        kernels:
          - {name: join, kind: cpu.concatenate, inputs: [left, right], output: joined}
          - {name: apply, kind: cpu.custom_operation, input: joined, auxiliary: {g: gain}, output: scaled, operation: input * g}
          - {name: shift, kind: cpu.elementwise_subtract, input: scaled, auxiliary: [offset], outputs: [echo]}
          - {name: fail, kind: cpu.raise_error, input: joined, outputs: [echo2, offset], parameters: {message: boom}}
        sinks:
          - {name: rec, kind: test.recorder, stream: scaled, outputs: [feedback]}
        """;

    private static ValidatedPipeline Parse(string yaml) => PipelineDocument.Parse(yaml, "graph.yaml", AppContext.BaseDirectory);

    private static PipelineGraph RolesGraph() => Parse(Roles).Graph;

    private static string[] Keys(JsonNode? node) => [.. node!.AsObject().Select(p => p.Key)];

    private static string[] Strings(JsonNode? node) => [.. node!.AsArray().Select(n => n!.GetValue<string>())];

    // ---------------------------------------------------------------- roles

    [Theory]
    [InlineData("cam", StreamRole.Source)]
    [InlineData("ext", StreamRole.Source)]
    [InlineData("mid", StreamRole.Intermediate)]
    [InlineData("out", StreamRole.Sink)]
    [InlineData("tail", StreamRole.Sink)]
    [InlineData("sum", StreamRole.Sink)]
    [InlineData("direct", StreamRole.SourceAndSink)]
    [InlineData("unused", StreamRole.Orphan)]
    public void RoleOf_EachKindOfStream_IsItsRole(string stream, StreamRole role) => Assert.Equal(role, RolesGraph().RoleOf(stream));

    [Fact]
    public void RoleOf_StreamWrittenByAStatefulSink_IsASource() => Assert.Equal(StreamRole.Source, Parse(Edges).Graph.RoleOf("feedback"));

    [Theory]
    [InlineData(StreamRole.Source, "source")]
    [InlineData(StreamRole.Sink, "sink")]
    [InlineData(StreamRole.SourceAndSink, "source+sink")]
    [InlineData(StreamRole.Intermediate, "intermediate")]
    [InlineData(StreamRole.Orphan, "orphan")]
    public void RoleName_IsShmpipelinesName(StreamRole role, string name) => Assert.Equal(name, PipelineGraph.RoleName(role));

    [Fact]
    public void SourceSinkAndOrphanedStreams_ListStreamsByRoleInDocumentOrder()
    {
        var graph = RolesGraph();

        Assert.Equal(["cam", "ext", "direct"], graph.SourceStreams);
        Assert.Equal(["out", "tail", "direct", "sum"], graph.SinkStreams);
        Assert.Equal(["unused"], graph.OrphanedStreams);
    }

    // ---------------------------------------------------------------- producers, consumers, upstream, downstream

    [Theory]
    [InlineData("cam", "camera", "first,fourth")]
    [InlineData("ext", "", "first")]
    [InlineData("mid", "first", "second,third,fourth")]
    [InlineData("out", "second", "display")]
    [InlineData("tail", "third", "")]
    [InlineData("direct", "passthrough", "recorder")]
    [InlineData("unused", "", "")]
    [InlineData("no_such_stream", "", "")]
    public void ProducersAndConsumers_AreTheNodesThatWriteAndRead(string stream, string producers, string consumers)
    {
        var graph = RolesGraph();

        Assert.Equal(producers.Split(',', StringSplitOptions.RemoveEmptyEntries), graph.ProducersOf(stream));
        Assert.Equal(consumers.Split(',', StringSplitOptions.RemoveEmptyEntries), graph.ConsumersOf(stream));
    }

    [Theory]
    [InlineData("camera", "", "first,fourth")]
    [InlineData("passthrough", "", "")]
    [InlineData("first", "", "second,third,fourth")]
    [InlineData("second", "first", "")]
    [InlineData("third", "first", "")]
    [InlineData("fourth", "first", "")]
    [InlineData("display", "second", "")]
    [InlineData("recorder", "", "")]
    public void UpstreamAndDownstreamKernels_FollowTriggerAndAuxiliaryInputs(string node, string upstream, string downstream)
    {
        var graph = RolesGraph();

        Assert.Equal(upstream.Split(',', StringSplitOptions.RemoveEmptyEntries), graph.UpstreamKernels(node));
        Assert.Equal(downstream.Split(',', StringSplitOptions.RemoveEmptyEntries), graph.DownstreamKernels(node));
    }

    /// <summary>PRODUCT BUG: UpstreamKernels takes a read edge from a stream named like a node for a write edge, and drops it.</summary>
    [Fact]
    public void UpstreamKernels_StreamNamedLikeTheKernelThatWritesIt_IsStillFollowed()
    {
        var yaml = """
            shared_memory:
              - {name: raw, shape: [4], dtype: float32}
              - {name: centroids, shape: [4], dtype: float32}
              - {name: slopes, shape: [4], dtype: float32}
            kernels:
              - {name: centroids, kind: cpu.copy, input: raw, output: centroids}
              - {name: flatten, kind: cpu.copy, input: centroids, output: slopes}
            """;

        var graph = Parse(yaml).Graph;

        Assert.Equal(["flatten"], graph.DownstreamKernels("centroids"));
        Assert.Equal(["centroids"], graph.UpstreamKernels("flatten"));
    }

    // ---------------------------------------------------------------- edges

    [Fact]
    public void Edges_HaveEveryRoleInDocumentOrder()
    {
        var graph = Parse(Edges).Graph;

        GraphEdge[] expected =
        [
            new("pair", "left", "source:0", "left"),
            new("pair", "right", "source:1", "right"),
            new("gains", "gain", "source", "gain"),
            new("left", "join", "input:0", "left"),
            new("right", "join", "input:1", "right"),
            new("join", "joined", "output", "joined"),
            new("joined", "apply", "input", "joined"),
            new("gain", "apply", "auxiliary:g", "gain"),
            new("apply", "scaled", "output", "scaled"),
            new("scaled", "shift", "input", "scaled"),
            new("offset", "shift", "auxiliary:offset", "offset"),
            new("shift", "echo", "output", "echo"),
            new("joined", "fail", "input", "joined"),
            new("fail", "echo2", "output:0", "echo2"),
            new("fail", "offset", "output:1", "offset"),
            new("scaled", "rec", "sink", "scaled"),
            new("rec", "feedback", "sink_output", "feedback"),
        ];
        Assert.Equal(expected, graph.Edges);
    }

    [Fact]
    public void Edges_OfAStatefulSink_MakeItAProducer()
    {
        var graph = Parse(Edges).Graph;

        Assert.Equal(["rec"], graph.ProducersOf("feedback"));
        Assert.Equal(["apply"], graph.UpstreamKernels("rec"));
        Assert.Equal(["shift"], graph.DownstreamKernels("fail"));
        Assert.Equal(["apply", "fail"], graph.DownstreamKernels("join"));
    }

    // ---------------------------------------------------------------- JSON

    [Fact]
    public void ToJson_HasShmpipelinesTopLevelKeys() =>
        Assert.Equal(["shared_memory", "sources", "kernels", "sinks", "edges", "source_streams", "sink_streams", "orphaned_streams"], Keys(RolesGraph().ToJson()));

    [Fact]
    public void ToJson_Streams_HaveShmpipelinesKeysAndValues()
    {
        var json = RolesGraph().ToJson();

        var streams = json["shared_memory"]!.AsArray();
        Assert.Equal(8, streams.Count);
        Assert.All(streams, s => Assert.Equal(["name", "shape", "dtype", "storage", "gpu_device", "producers", "consumers", "role"], Keys(s)));
        var mid = streams[2]!;
        Assert.Equal("mid", (string?)mid["name"]);
        Assert.Equal("[4]", mid["shape"]!.ToJsonString());
        Assert.Equal("float32", (string?)mid["dtype"]);
        Assert.Equal("cpu", (string?)mid["storage"]);
        Assert.Null(mid["gpu_device"]);
        Assert.True(mid.AsObject().ContainsKey("gpu_device"));
        Assert.Equal(["first"], Strings(mid["producers"]));
        Assert.Equal(["second", "third", "fourth"], Strings(mid["consumers"]));
        Assert.Equal(["source", "source", "intermediate", "sink", "sink", "source+sink", "orphan", "sink"], streams.Select(s => (string?)s!["role"]));
    }

    [Fact]
    public void ToJson_Nodes_HaveShmpipelinesKeysAndValues()
    {
        var json = RolesGraph().ToJson();

        var source = json["sources"]![0]!;
        Assert.Equal(["name", "kind", "stream", "streams", "auxiliary", "parameters", "downstream_kernels"], Keys(source));
        Assert.Equal(("camera", "synthetic.array", "cam"), ((string?)source["name"], (string?)source["kind"], (string?)source["stream"]));
        Assert.Equal(["first", "fourth"], Strings(source["downstream_kernels"]));

        var kernels = json["kernels"]!.AsArray();
        Assert.All(kernels, k => Assert.Equal(["name", "kind", "input", "inputs", "trigger_policy", "output", "outputs", "auxiliary", "upstream_kernels", "downstream_kernels"], Keys(k)));
        Assert.Equal("""{"other":"ext"}""", kernels[0]!["auxiliary"]!.ToJsonString());
        Assert.Equal("""["mid"]""", kernels[3]!["auxiliary"]!.ToJsonString());
        Assert.Equal("any_new", (string?)kernels[0]!["trigger_policy"]);
        Assert.Equal(["second", "third", "fourth"], Strings(kernels[0]!["downstream_kernels"]));
        Assert.Equal(["first"], Strings(kernels[1]!["upstream_kernels"]));
        Assert.Equal("{}", source["parameters"]!.ToJsonString());

        var sink = json["sinks"]![0]!;
        Assert.Equal(["name", "kind", "stream", "outputs", "auxiliary", "parameters", "upstream_kernels"], Keys(sink));
        Assert.Equal(["second"], Strings(sink["upstream_kernels"]));
        Assert.Equal("out", (string?)sink["stream"]);
        Assert.Equal("[]", sink["outputs"]!.ToJsonString());
        Assert.Equal("[]", sink["auxiliary"]!.ToJsonString());
    }

    [Fact]
    public void ToJson_EdgesAndStreamLists_MatchTheGraph()
    {
        var graph = Parse(Edges).Graph;
        var json = graph.ToJson();

        var edges = json["edges"]!.AsArray();
        Assert.All(edges, e => Assert.Equal(["source", "target", "role", "stream"], Keys(e)));
        Assert.Equal(graph.Edges.Select(e => (e.Source, e.Target, e.Role, e.Stream)), edges.Select(e => ((string)e!["source"]!, (string)e["target"]!, (string)e["role"]!, (string)e["stream"]!)));
        Assert.Equal(graph.SourceStreams, Strings(json["source_streams"]));
        Assert.Equal(graph.SinkStreams, Strings(json["sink_streams"]));
        Assert.Equal(graph.OrphanedStreams, Strings(json["orphaned_streams"]));
        var join = json["kernels"]![0]!;
        Assert.Equal("all_new", (string?)join["trigger_policy"]);
        Assert.Equal(["left", "right"], Strings(join["inputs"]));
        Assert.Equal("left", (string?)join["input"]);
        Assert.Equal(["feedback"], Strings(json["sinks"]![0]!["outputs"]));
        Assert.Equal(["left", "right"], Strings(json["sources"]![0]!["streams"]));
    }

    // ---------------------------------------------------------------- trigger cycles

    [Fact]
    public void FindTriggerCycle_AcyclicPipeline_IsNull() => Assert.Null(RolesGraph().FindTriggerCycle());

    [Fact]
    public void FindTriggerCycle_KernelsFeedingEachOther_ReturnsTheCycle()
    {
        var spec = Parse(Roles).Spec;

        // 'second' now writes 'cam', which 'first' reads: first -> mid -> second -> cam -> first.
        var cyclic = spec with { Kernels = spec.Kernels.SetItem(1, spec.Kernels[1] with { Outputs = ["cam"] }) };

        var cycle = new PipelineGraph(cyclic).FindTriggerCycle();

        Assert.NotNull(cycle);
        Assert.Equal(cycle[0], cycle[^1]);
        Assert.Equal(["first", "second"], cycle.Distinct().Order(StringComparer.Ordinal));
    }

    /// <summary>A chain of <paramref name="length"/> copy kernels from s0 to s{length}, built in code (beyond the limits of a document).</summary>
    private static PipelineSpec Chain(int length) => new()
    {
        Streams = [.. Enumerable.Range(0, length + 1).Select(i => new StreamSpec { Name = $"s{i}", Shape = [4], Dtype = Flowline.SharedMemory.ElementType.Float32 })],
        Kernels = [.. Enumerable.Range(0, length).Select(i => new KernelSpec { Name = $"k{i}", Kind = "cpu.copy", Inputs = [$"s{i}"], Outputs = [$"s{i + 1}"] })],
    };

    [Fact]
    public void FindTriggerCycle_AChainOfAHundredThousandNodes_IsSearchedWithoutExhaustingTheStack()
    {
        var chain = Chain(100_000);
        Assert.Null(new PipelineGraph(chain).FindTriggerCycle());

        // The last kernel writes the first stream: the whole chain is one cycle.
        var loop = chain with { Kernels = chain.Kernels.SetItem(99_999, chain.Kernels[99_999] with { Outputs = ["s0"] }) };
        var cycle = new PipelineGraph(loop).FindTriggerCycle();

        Assert.NotNull(cycle);
        Assert.Equal(100_001, cycle.Count);
        Assert.Equal(["k0", "k1", "k2"], cycle.Take(3));
        Assert.Equal(["k99999", "k0"], cycle.TakeLast(2));
    }

    [Fact]
    public void FindTriggerCycle_ManyNodesReadingOneStream_FindsTheCycleBehindThem()
    {
        // 20,000 kernels read 'hub'; only the last one writes back into it.
        var spec = new PipelineSpec
        {
            Streams = [.. new[] { "hub", "out", "back" }.Select(n => new StreamSpec { Name = n, Shape = [4], Dtype = Flowline.SharedMemory.ElementType.Float32 })],
            Kernels =
            [
                .. Enumerable.Range(0, 20_000).Select(i => new KernelSpec { Name = $"k{i}", Kind = "cpu.copy", Inputs = ["hub"], Outputs = ["out"] }),
                new KernelSpec { Name = "loop", Kind = "cpu.copy", Inputs = ["out"], Outputs = ["hub"] },
            ],
        };

        var cycle = new PipelineGraph(spec).FindTriggerCycle();

        Assert.Equal(["k0", "loop", "k0"], cycle);
    }

    // ---------------------------------------------------------------- validation errors of the graph

    [Fact]
    public void Validation_TwoKernelsWritingOneStream_ReportsTheSecondProducer()
    {
        var yaml = """
            shared_memory:
              - {name: a, shape: [4], dtype: float32}
              - {name: b, shape: [4], dtype: float32}
            kernels:
              - {name: one, kind: cpu.copy, input: a, output: b}
              - name: two
                kind: cpu.copy
                input: a
                output: b
            """;

        Docs.Single(yaml, "kernels[1].output", "stream 'b' already has a producer: 'one' and 'two' all write it; a stream has one producer", 9);
    }

    [Fact]
    public void Validation_SourceAndKernelWritingOneStream_ReportsTheKernel()
    {
        var yaml = """
            shared_memory:
              - {name: a, shape: [4], dtype: float32}
              - {name: b, shape: [4], dtype: float32}
            sources:
              - {name: cam, kind: synthetic.array, stream: b}
            kernels:
              - {name: copy, kind: cpu.copy, input: a, output: b}
            """;

        Docs.Single(yaml, "kernels[0].output", "stream 'b' already has a producer: 'cam' and 'copy' all write it", 7);
    }

    private static string CopyOf(string input, string output) => $"""
        shared_memory:
          - name: input_vector
            shape: [64]
            dtype: float32
          - name: output_vector
            shape: [64]
            dtype: float32
        kernels:
          - name: copy
            kind: cpu.copy
            input: {input}
            output: {output}
        """;

    [Theory]
    [InlineData("input_vectr", "output_vector", "kernels[0].input", "unknown stream 'input_vectr' (did you mean 'input_vector'?); streams are input_vector, output_vector", 11)]
    [InlineData("input_vector", "output_vectors", "kernels[0].output", "unknown stream 'output_vectors' (did you mean 'output_vector'?); streams are input_vector, output_vector", 12)]
    public void Validation_UnknownStream_SuggestsTheClosestName(string input, string output, string path, string text, int line) =>
        Docs.Single(CopyOf(input, output), path, text, line);

    [Fact]
    public void Validation_UnknownStreamFarFromEveryName_ListsTheStreamsWithoutASuggestion()
    {
        var error = Docs.Single(CopyOf("camera_frames", "output_vector"), "kernels[0].input", "unknown stream 'camera_frames'; streams are input_vector, output_vector", 11);

        Assert.DoesNotContain("did you mean", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validation_DuplicateStreamName_ReportsTheSecond()
    {
        var yaml = """
            shared_memory:
              - {name: a, shape: [4], dtype: float32}
              - {name: b, shape: [4], dtype: float32}
              - {name: a, shape: [8], dtype: float32}
            kernels:
              - {name: copy, kind: cpu.copy, input: a, output: b}
            """;

        Docs.Single(yaml, "shared_memory[2].name", "stream 'a' is declared twice (first at shared_memory[0]); stream names are unique", 4);
    }

    [Fact]
    public void Validation_DuplicateNodeNameAcrossSections_ReportsTheLater()
    {
        var yaml = """
            shared_memory:
              - {name: a, shape: [4], dtype: float32}
              - {name: b, shape: [4], dtype: float32}
            kernels:
              - {name: copy, kind: cpu.copy, input: a, output: b}
            sinks:
              - {name: copy, kind: null.sink, stream: b}
            """;

        Docs.Single(yaml, "sinks[0].name", "name 'copy' is already used by kernels[0]; kernels, sources and sinks need unique names", 7);
    }

    [Fact]
    public void Validation_DuplicateKernelNames_ReportsTheSecond()
    {
        var yaml = """
            shared_memory:
              - {name: a, shape: [4], dtype: float32}
              - {name: b, shape: [4], dtype: float32}
              - {name: c, shape: [4], dtype: float32}
            kernels:
              - {name: copy, kind: cpu.copy, input: a, output: b}
              - {name: copy, kind: cpu.copy, input: b, output: c}
            """;

        Docs.Single(yaml, "kernels[1].name", "name 'copy' is already used by kernels[0]", 7);
    }

    [Fact]
    public void Validation_StreamBothInputAndOutputOfANode_IsReported()
    {
        var yaml = """
            shared_memory:
              - {name: a, shape: [4], dtype: float32}
            kernels:
              - {name: loop, kind: cpu.copy, input: a, output: a}
            """;

        var errors = Docs.Errors(yaml);

        var error = Assert.Single(errors, e => e.Message.Contains("both a trigger input and an output", StringComparison.Ordinal));
        Assert.Equal("kernels[0]", error.Path);
        Assert.Contains("stream 'a' is both a trigger input and an output of 'loop'; a node cannot read and write the same stream", error.Message, StringComparison.Ordinal);
        Assert.Equal(4, error.Position.Line);
    }

    [Fact]
    public void Validation_StreamBothTriggerAndAuxiliaryInput_IsReported()
    {
        var yaml = """
            shared_memory:
              - {name: a, shape: [4], dtype: float32}
              - {name: b, shape: [4], dtype: float32}
            kernels:
              - {name: add, kind: cpu.elementwise_add, input: a, auxiliary: [a], output: b}
            """;

        Docs.Single(yaml, "kernels[0].auxiliary", "stream 'a' is both a trigger input and an auxiliary input of 'add'; use it once", 5);
    }

    [Theory]
    [InlineData("{name: k, kind: cpu.concatenate, inputs: [a], output: b}", "kernels[0].inputs", "cpu.concatenate takes at least 2 trigger inputs, not 1")]
    [InlineData("{name: k, kind: cpu.copy, inputs: [a, c], output: b}", "kernels[0].inputs", "cpu.copy takes exactly 1 trigger input, not 2")]
    [InlineData("{name: k, kind: cpu.copy, input: a, outputs: [b, c]}", "kernels[0].outputs", "cpu.copy takes exactly 1 output, not 2")]
    [InlineData("{name: k, kind: cpu.elementwise_add, input: a, output: b}", "kernels[0].auxiliary", "cpu.elementwise_add takes exactly 1 auxiliary input, not 0")]
    [InlineData("{name: k, kind: cpu.affine_transform, input: a, auxiliary: [c, d, e], output: b}", "kernels[0].auxiliary", "cpu.affine_transform takes 1 to 2 auxiliary inputs, not 3")]
    [InlineData("{name: k, kind: cpu.scale, input: a, auxiliary: [c], output: b, parameters: {factor: 1}}", "kernels[0].auxiliary", "cpu.scale takes no auxiliary inputs, not 1")]
    public void Validation_WrongNumberOfStreams_SaysHowManyTheKindTakes(string kernel, string path, string text)
    {
        var yaml = $$"""
            shared_memory:
              - {name: a, shape: [4], dtype: float32}
              - {name: b, shape: [4], dtype: float32}
              - {name: c, shape: [4], dtype: float32}
              - {name: d, shape: [4], dtype: float32}
              - {name: e, shape: [4], dtype: float32}
            kernels:
              - {{kernel}}
            """;

        Docs.Single(yaml, path, text, 8);
    }

    [Theory]
    [InlineData("[8]", "float32", "output 'b' is float32[8]; it must match 'a' (float32[4])")]
    [InlineData("[4]", "float64", "output 'b' is float64[4]; it must match 'a' (float32[4])")]
    [InlineData("[2, 2]", "float32", "output 'b' is float32[2, 2]; it must match 'a' (float32[4])")]
    [InlineData("[4]", "int32", "output 'b' is int32[4]; it must match 'a' (float32[4])")]
    public void Validation_ShapeOrDtypeMismatch_DescribesBothStreams(string shape, string dtype, string text)
    {
        var yaml = $$"""
            shared_memory:
              - {name: a, shape: [4], dtype: float32}
              - {name: b, shape: {{shape}}, dtype: {{dtype}}}
            kernels:
              - name: copy
                kind: cpu.copy
                input: a
                output: b
            """;

        Docs.Single(yaml, "kernels[0].output", text, 8);
    }

    [Fact]
    public void Validation_MatchingShapeAndDtype_IsValid() =>
        Assert.Empty(Docs.Errors("shared_memory:\n  - {name: a, shape: [2, 2], dtype: int16}\n  - {name: b, shape: [2, 2], dtype: '<i2'}\nkernels:\n  - {name: copy, kind: cpu.copy, input: a, output: b}\n"));

    [Fact]
    public void Validation_TriggerCycleOfKernels_IsReported()
    {
        var yaml = """
            shared_memory:
              - {name: a, shape: [4], dtype: float32}
              - {name: b, shape: [4], dtype: float32}
            kernels:
              - {name: ping, kind: cpu.copy, input: a, output: b}
              - {name: pong, kind: cpu.copy, input: b, output: a}
            """;

        Docs.Single(yaml, "kernels[0]", "the nodes 'ping' -> 'pong' -> 'ping' trigger each other in a cycle; break it, or make one of the links an auxiliary input (which never triggers)", 5);
    }

    [Fact]
    public void Validation_TriggerCycleThroughAStatefulSink_IsReported()
    {
        var yaml = """
            plugins: [plugins/Flowline.Tests.Plugin.dll]
            shared_memory:
              - {name: a, shape: [4], dtype: float32}
              - {name: b, shape: [4], dtype: float32}
            kernels:
              - {name: square, kind: test.square, input: a, output: b}
            sinks:
              - {name: rec, kind: test.recorder, stream: b, outputs: [a]}
            """;

        Docs.Single(yaml, "kernels[0]", "the nodes 'square' -> 'rec' -> 'square' trigger each other in a cycle", 6);
    }

    [Fact]
    public void Validation_CycleThroughAnAuxiliaryInput_IsNotAnError()
    {
        // integrate -> b -> remember -> state -(auxiliary)-> integrate, and integrate -> b -> square -> rec -> fb -(auxiliary)-> integrate.
        var yaml = """
            plugins: [plugins/Flowline.Tests.Plugin.dll]
            shared_memory:
              - {name: a, shape: [4], dtype: float32}
              - {name: b, shape: [4], dtype: float32}
              - {name: state, shape: [4], dtype: float32}
              - {name: squared, shape: [4], dtype: float32}
              - {name: fb, shape: [4], dtype: float32}
            kernels:
              - {name: integrate, kind: cpu.custom_operation, input: a, auxiliary: {s: state, f: fb}, output: b, operation: input + s + f}
              - {name: remember, kind: cpu.copy, input: b, output: state}
              - {name: square, kind: test.square, input: b, output: squared}
            sinks:
              - {name: rec, kind: test.recorder, stream: squared, outputs: [fb]}
            """;

        var check = PipelineDocument.Check(yaml, "graph.yaml", AppContext.BaseDirectory);

        Assert.True(check.IsValid, string.Join('\n', check.Errors));
        var graph = check.Pipeline!.Graph;
        Assert.Null(graph.FindTriggerCycle());
        Assert.Equal(["remember"], graph.UpstreamKernels("integrate"));
        Assert.Equal(["remember", "square"], graph.DownstreamKernels("integrate"));
        Assert.Equal(["integrate"], graph.DownstreamKernels("rec"));
    }

    [Theory]
    [InlineData("kernels", "{name: k, kind: cpu.cpy, input: a, output: b}", "kernels[0].kind", "unknown kernel kind 'cpu.cpy' (did you mean 'cpu.copy'?); kernel kinds are cpu.add_constant, cpu.affine_transform, cpu.centroid, cpu.concatenate, cpu.copy")]
    [InlineData("kernels", "{name: k, kind: fft, input: a, output: b}", "kernels[0].kind", "unknown kernel kind 'fft'; kernel kinds are cpu.add_constant")]
    [InlineData("sources", "{name: k, kind: camera, stream: a}", "sources[0].kind", "unknown source kind 'camera'; source kinds are python.source, synthetic.array, synthetic.frame_set")]
    [InlineData("sinks", "{name: k, kind: null.snk, stream: a}", "sinks[0].kind", "unknown sink kind 'null.snk' (did you mean 'null.sink'?); sink kinds are null.sink, python.sink")]
    [InlineData("kernels", "{name: k, kind: gpu.copy, input: a, output: b}", "kernels[0].kind", "kind 'gpu.copy' needs a GPU: no GPU backend in this build; use the cpu. kind of the same name")]
    [InlineData("kernels", "{name: k, kind: gpu.affine_transform, input: a, auxiliary: [c], output: b}", "kernels[0].kind", "kind 'gpu.affine_transform' needs a GPU")]
    [InlineData("kernels", "{name: k, kind: cpu.scale, input: a, output: b, parameters: {factr: 2}}", "kernels[0].parameters.factr", "unknown parameter 'factr' (did you mean 'factor'?); cpu.scale takes factor")]
    [InlineData("kernels", "{name: k, kind: cpu.leaky_integrator, input: a, output: b, parameters: {gian: 2}}", "kernels[0].parameters.gian", "(did you mean 'gain'?); cpu.leaky_integrator takes")]
    [InlineData("sinks", "{name: k, kind: null.sink, stream: a, parameters: {sample_windows: 2}}", "sinks[0].parameters.sample_windows", "unknown parameter 'sample_windows' (did you mean 'sample_window'?); null.sink takes device_delay_s, sample_window")]
    [InlineData("kernels", "{name: k, kind: cpu.scale, input: a, output: b, parameters: {factor: 2}, operation: input * 3}", "kernels[0].operation", "'operation' is only read by cpu.custom_operation; cpu.scale does not use it")]
    public void Validation_KindsAndParameters_NameWhatIsValid(string section, string node, string path, string text)
    {
        var yaml = $"shared_memory:\n  - {{name: a, shape: [4], dtype: float32}}\n  - {{name: b, shape: [4], dtype: float32}}\n  - {{name: c, shape: [4, 4], dtype: float32}}\n{section}:\n  - {node}\n";

        Docs.Single(yaml, path, text, 6);
    }
}
