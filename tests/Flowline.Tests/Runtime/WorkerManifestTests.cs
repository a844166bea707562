using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Plugins;
using Flowline.Runtime;

namespace Flowline.Tests.Runtime;

/// <summary>What a worker process is sent: the plan of its own node, not the pipeline (issue 11).</summary>
public sealed class WorkerManifestTests
{
    private const string Pipeline = """
        plugins: [plugins/Flowline.Tests.Plugin.dll]
        shared_memory:
          - {name: input, shape: [16], dtype: float32}
          - {name: gain, shape: [16, 16], dtype: float32, initial: {pattern: identity, scale: 2}}
          - {name: a, shape: [16], dtype: float32}
          - {name: b, shape: [16], dtype: float32, wait: spin}
        sources:
          - {name: camera, kind: synthetic.array, stream: input, parameters: {pattern: sine, rate_hz: 300}}
        kernels:
          - {name: square, kind: test.square, input: input, output: a}
          - {name: project, kind: cpu.affine_transform, input: input, auxiliary: [gain], output: b}
        sinks:
          - {name: sink_a, kind: null.sink, stream: a}
        """;

    private static PipelinePlan Plan(string yaml, PlacementPolicy placement = PlacementPolicy.None) =>
        new(PipelineDocument.Parse(yaml, "manifest-test.yaml", AppContext.BaseDirectory), placement, "manifest-test");

    [Fact]
    public void Manifest_HoldsItsNodeAndTheStreamsItUses_WithoutInitialValuesOrPlugins()
    {
        var plan = Plan(Pipeline);
        var worker = plan.Workers.Single(w => w.Name == "project");

        var manifest = WorkerManifest.Parse(WorkerManifest.For(plan, worker).ToJson());

        var document = manifest.Document;
        Assert.Equal(["project"], document["kernels"]!.AsArray().Select(k => (string)k!["name"]!));
        Assert.Null(document["sources"]);
        Assert.Null(document["sinks"]);
        Assert.Null(document["plugins"]);
        var streams = document["shared_memory"]!.AsArray().Select(s => s!.AsObject()).ToList();
        Assert.Equal(["input", "gain", "b"], streams.Select(s => (string)s["name"]!));
        Assert.All(streams, s => Assert.Null(s["initial"]));
        Assert.Equal("spin", (string?)streams.Single(s => (string)s["name"]! == "b")["wait"]);
        Assert.Empty(manifest.Assemblies);
        Assert.Equal("project", manifest.Node);
        Assert.Equal(worker.ControlName, manifest.ControlName);
    }

    [Fact]
    public void Manifest_OfAPluginKind_NamesThePluginAssembly_AndBindsIntoAPlanOfThatNodeAlone()
    {
        var plan = Plan(Pipeline, PlacementPolicy.RoundRobin);
        var worker = plan.Workers.Single(w => w.Name == "square");
        var pluginPath = Path.Combine(AppContext.BaseDirectory, "plugins", "Flowline.Tests.Plugin.dll");

        var manifest = WorkerManifest.Parse(WorkerManifest.For(plan, worker).ToJson());
        var kinds = KindRegistry.BuiltIn.With(PluginLoader.Load(manifest.Assemblies.Single()), manifest.Assemblies.Single());
        var alone = PipelineDocument.BindNode(manifest.Document, manifest.BaseDirectory, kinds, [], []);

        Assert.Equal([pluginPath], manifest.Assemblies);
        Assert.Equal(worker.Cpu, manifest.Cpu);
        var single = Assert.Single(new PipelinePlan(alone, PlacementPolicy.None, manifest.Namespace).Workers);
        Assert.Equal("square", single.Name);
        Assert.True(JsonNode.DeepEquals(manifest.Document, PipelineDocument.ToJson(alone.Spec)), "the node's document reads back as it was written");
        Assert.Equal(["a", "input"], alone.Spec.Streams.Select(s => s.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void BindNode_WithoutTheAssemblyOfItsKind_SaysWhichKindIsMissing()
    {
        var plan = Plan(Pipeline);
        var manifest = WorkerManifest.For(plan, plan.Workers.Single(w => w.Name == "square"));

        var e = Assert.Throws<InvalidOperationException>(() => PipelineDocument.BindNode(manifest.Document, manifest.BaseDirectory, KindRegistry.BuiltIn, [], []));

        Assert.Contains("'square' is of kind 'test.square'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BindNode_RefusesADocumentThatDoesNotBind()
    {
        var broken = new JsonObject { ["shared_memory"] = new JsonArray(new JsonObject { ["name"] = "x", ["shape"] = "not a shape", ["dtype"] = "float32" }) };

        Assert.Throws<DocumentValidationException>(() => PipelineDocument.BindNode(broken, null, KindRegistry.BuiltIn, [], []));
    }
}

/// <summary>A kind registered in code, not named by the document's plugins, reaches its worker process through its assembly.</summary>
public sealed class CodeKindWorkerTests : RuntimeTest
{
    [Fact]
    public void KernelOfAKindRegisteredInCode_RunsInAWorkerProcess()
    {
        var pluginPath = Path.Combine(AppContext.BaseDirectory, "plugins", "Flowline.Tests.Plugin.dll");
        var kinds = KindRegistry.BuiltIn.With(PluginLoader.Load(pluginPath), pluginPath);
        var pipeline = PipelineDocument.Parse(
            """
            shared_memory:
              - {name: input, shape: [16], dtype: float32}
              - {name: squared, shape: [16], dtype: float32}
            sources:
              - {name: camera, kind: synthetic.array, stream: input, parameters: {pattern: sine, rate_hz: 300}}
            kernels:
              - {name: square, kind: test.square, input: input, output: squared}
            sinks:
              - {name: sink, kind: null.sink, stream: squared}
            """,
            "code-kind.yaml",
            AppContext.BaseDirectory,
            kinds);
        var manager = Manager(pipeline);

        manager.Build();
        manager.Start();

        Assert.Equal(WorkerPlacement.Process, manager.Plan.Workers.Single(w => w.Name == "square").Placement);
        WaitUntil(() => Frames(manager, "sink") > 20, "frames flow through the kernel of the code-registered kind");
        Assert.Equal(PipelineState.Running, manager.State);
    }
}
