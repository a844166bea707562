using System.Runtime.InteropServices;
using Flowline.Documents;
using Flowline.Kernels;
using Flowline.Plugins;

namespace Flowline.Tests.Plugins;

/// <summary>
/// A kind whose name clashes with a built-in one. It is public so that listing this test assembly as a plugin
/// offers it as a kind, as a third-party assembly would.
/// </summary>
public sealed class ClashingCopyDefinition : KernelDefinition
{
    public override string Kind => "cpu.copy";

    public override string Description => "a plugin kind that clashes with the built-in cpu.copy";

    public override IKernel Create(KernelContext context) => throw new NotSupportedException("never created");
}

/// <summary>Plugin assemblies listed under <c>plugins:</c>: loading, their kinds, and the errors of unusable ones.</summary>
public sealed class PluginTests
{
    private const string PluginRelativePath = "plugins/Flowline.Tests.Plugin.dll";

    private static readonly string PluginFullPath = Path.Combine(AppContext.BaseDirectory, "plugins", "Flowline.Tests.Plugin.dll");

    /// <summary>A pipeline of the three plugin kinds: test.counter -> test.square -> test.recorder, with built-ins around them.</summary>
    private const string PluginPipeline = """
        plugins:
          - plugins/Flowline.Tests.Plugin.dll
        shared_memory:
          - {name: counts, shape: [4], dtype: float32}
          - {name: squares, shape: [4], dtype: float32}
          - {name: copies, shape: [4], dtype: float32}
          - {name: feedback, shape: [4], dtype: float32}
        sources:
          - {name: counter, kind: test.counter, stream: counts, parameters: {start: 10}}
        kernels:
          - {name: square, kind: test.square, input: counts, output: squares, parameters: {offset: 0.5}}
          - {name: copy, kind: cpu.copy, input: squares, output: copies}
        sinks:
          - {name: recorder, kind: test.recorder, stream: copies, outputs: [feedback]}
        """;

    private static string[] BuiltInKinds =>
    [
        "cpu.add_constant", "cpu.affine_transform", "cpu.centroid", "cpu.concatenate", "cpu.copy", "cpu.custom_operation",
        "cpu.elementwise_add", "cpu.elementwise_divide", "cpu.elementwise_multiply", "cpu.elementwise_subtract", "cpu.flatten",
        "cpu.leaky_integrator", "cpu.raise_error", "cpu.reduce", "cpu.scale", "cpu.scale_offset", "cpu.shack_hartmann_centroid",
        "cpu.spot_centroid", "cpu.tip_tilt_controller", "cpu.tomographic_controller", "flowline.gate", "null.sink", "python.kernel", "python.sink",
        "python.source", "synthetic.array", "synthetic.frame_set",
    ];

    private static string TemporaryDirectory()
    {
        var directory = Path.Combine(Path.GetTempPath(), "flowline-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        return directory;
    }

    private static IReadOnlyList<SpecError> Errors(string yaml, string baseDirectory) =>
        PipelineDocument.Check(yaml, "plugins.yaml", baseDirectory).Errors;

    // ---------------------------------------------------------------- the built-in kinds

    [Fact]
    public void BuiltIn_ListsEveryBuiltInKind()
    {
        var kinds = KindRegistry.BuiltIn;

        Assert.Equal(BuiltInKinds, kinds.AllKinds);
        Assert.Equal(["python.source", "synthetic.array", "synthetic.frame_set"], kinds.Sources.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["null.sink", "python.sink"], kinds.Sinks.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(BuiltInKinds.Where(k => k.StartsWith("cpu.", StringComparison.Ordinal)).Append("flowline.gate").Append("python.kernel"), kinds.Kernels.Keys.Order(StringComparer.Ordinal));
        Assert.All(kinds.Origins.Values, origin => Assert.Equal("built-in", origin));
        Assert.All(kinds.Kernels, p => Assert.Equal(p.Key, p.Value.Kind));
        Assert.All(kinds.Kernels.Values.Cast<KindDefinition>().Concat(kinds.Sources.Values).Concat(kinds.Sinks.Values), d => Assert.False(string.IsNullOrWhiteSpace(d.Description)));
    }

    [Fact]
    public void BuiltIn_WithAKindOfABuiltInName_Throws()
    {
        var e = Assert.Throws<InvalidOperationException>(() => KindRegistry.BuiltIn.With([new ClashingCopyDefinition()], "my-plugin.dll"));

        Assert.Equal("kind 'cpu.copy' from my-plugin.dll is already defined by built-in; give it another name", e.Message);
        Assert.DoesNotContain("my-plugin.dll", KindRegistry.BuiltIn.Origins.Values);
    }

    // ---------------------------------------------------------------- a document with a plugin

    [Fact]
    public void Document_ListingThePlugin_ValidatesAndUsesItsKinds()
    {
        var check = PipelineDocument.Check(PluginPipeline, "plugins.yaml", AppContext.BaseDirectory);

        Assert.True(check.IsValid, string.Join('\n', check.Errors));
        var pipeline = check.Pipeline!;
        Assert.Equal([PluginRelativePath], pipeline.Spec.Plugins);
        Assert.Contains("test.square", pipeline.Kinds.Kernels.Keys);
        Assert.Contains("test.counter", pipeline.Kinds.Sources.Keys);
        Assert.Contains("test.recorder", pipeline.Kinds.Sinks.Keys);
        Assert.Equal(PluginFullPath, pipeline.Kinds.Origins["test.square"]);
        Assert.Equal("built-in", pipeline.Kinds.Origins["cpu.copy"]);
        Assert.Superset(new HashSet<string>(BuiltInKinds), new HashSet<string>(pipeline.Kinds.AllKinds));
        Assert.Equal(["recorder"], pipeline.Graph.ProducersOf("feedback"));
    }

    [Fact]
    public void Document_ListingThePlugin_DoesNotChangeTheBuiltInRegistry()
    {
        PipelineDocument.Parse(PluginPipeline, "plugins.yaml", AppContext.BaseDirectory);

        Assert.DoesNotContain("test.square", KindRegistry.BuiltIn.Kernels.Keys);
        Assert.Equal(BuiltInKinds, KindRegistry.BuiltIn.AllKinds);
        Docs.Single(PluginPipeline.Replace("plugins:\n  - plugins/Flowline.Tests.Plugin.dll\n", "", StringComparison.Ordinal), "kernels[0].kind", "unknown kernel kind 'test.square'", 9);
    }

    [Fact]
    public void Document_PluginPathIsRelativeToTheDocumentsDirectory()
    {
        var directory = TemporaryDirectory();
        try
        {
            Directory.CreateDirectory(Path.Combine(directory, "lib"));
            File.Copy(PluginFullPath, Path.Combine(directory, "lib", "Flowline.Tests.Plugin.dll"));
            var path = Path.Combine(directory, "pipeline.yaml");
            File.WriteAllText(path, PluginPipeline.Replace(PluginRelativePath, "lib/Flowline.Tests.Plugin.dll", StringComparison.Ordinal));

            var pipeline = PipelineDocument.Load(path);

            Assert.Equal(Path.Combine(directory, "lib", "Flowline.Tests.Plugin.dll"), pipeline.Kinds.Origins["test.square"]);
            Assert.Equal(directory, pipeline.Spec.BaseDirectory);

            // The same document elsewhere looks for the plugin beside itself, and does not find it.
            var elsewhere = Path.Combine(directory, "elsewhere");
            Directory.CreateDirectory(elsewhere);
            File.Copy(path, Path.Combine(elsewhere, "pipeline.yaml"));
            var errors = PipelineDocument.CheckFile(Path.Combine(elsewhere, "pipeline.yaml")).Errors;
            var error = Assert.Single(errors, e => e.Path == "plugins[0]");
            Assert.Contains(Path.Combine(elsewhere, "lib", "Flowline.Tests.Plugin.dll"), error.Message, StringComparison.Ordinal);
            Assert.Equal(2, error.Position.Line);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Document_PluginKindsAreValidated_LikeBuiltInOnes()
    {
        var yaml = """
            plugins: [plugins/Flowline.Tests.Plugin.dll]
            shared_memory:
              - {name: counts, shape: [4], dtype: int32}
              - {name: squares, shape: [4], dtype: float32}
              - {name: feedback, shape: [4], dtype: float32}
            sources:
              - {name: counter, kind: test.counter, stream: counts}
            kernels:
              - {name: square, kind: test.square, input: counts, output: squares, parameters: {ofset: 1}}
            sinks:
              - {name: recorder, kind: test.recorder, stream: squares}
            """;

        var errors = Errors(yaml, AppContext.BaseDirectory);

        // The unknown parameter does not hide the kind's own checks of the kernel's streams.
        Assert.Equal(["sources[0].parameters.start", "kernels[0].input", "kernels[0].output", "kernels[0].parameters.ofset", "sinks[0].outputs"], errors.Select(e => e.Path));
        Assert.Equal("missing required parameter 'start' (an integer)", errors[0].Message);
        Assert.Equal(7, errors[0].Position.Line);
        Assert.Equal("stream 'counts' is int32; test.square works on float32", errors[1].Message);
        Assert.Equal("unknown parameter 'ofset' (did you mean 'offset'?); test.square takes offset", errors[3].Message);
        Assert.Equal(9, errors[3].Position.Line);
        Assert.Equal("test.recorder takes exactly 1 feedback output, not 0", errors[4].Message);
        Assert.Equal(11, errors[4].Position.Line);
    }

    [Fact]
    public void Document_PluginKernelOfTheWrongDtype_IsReportedByThePluginsValidate()
    {
        var yaml = """
            plugins: [plugins/Flowline.Tests.Plugin.dll]
            shared_memory:
              - {name: counts, shape: [4], dtype: int32}
              - {name: squares, shape: [4], dtype: int32}
            kernels:
              - {name: square, kind: test.square, input: counts, output: squares}
            """;

        var error = Assert.Single(Errors(yaml, AppContext.BaseDirectory));

        Assert.Equal("kernels[0].input", error.Path);
        Assert.Equal("stream 'counts' is int32; test.square works on float32", error.Message);
        Assert.Equal(6, error.Position.Line);
    }

    // ---------------------------------------------------------------- unusable plugins

    [Fact]
    public void Document_MissingPluginFile_IsReportedAtItsEntry()
    {
        var yaml = "plugins:\n  - plugins/Flowline.Tests.Plugin.dll\n  - plugins/absent.dll\n" + Docs.Minimal;

        var error = Docs.Single(yaml, "plugins[1]", "cannot find plugin assembly", 3);

        Assert.Contains(Path.Combine(AppContext.BaseDirectory, "plugins", "absent.dll"), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Document_PluginFileThatIsNotAnAssembly_IsReportedAtItsEntry()
    {
        var directory = TemporaryDirectory();
        try
        {
            var bogus = Path.Combine(directory, "bogus.dll");
            File.WriteAllText(bogus, "this is not a portable executable");

            var errors = Errors("plugins: [bogus.dll]\n" + Docs.Minimal, directory);

            var error = Assert.Single(errors);
            Assert.Equal("plugins[0]", error.Path);
            Assert.Equal($"'{bogus}' is not a .NET assembly", error.Message);
            Assert.Equal(1, error.Position.Line);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Document_PluginKindClashingWithABuiltIn_IsReportedAtItsEntry()
    {
        // This test assembly defines a public cpu.copy (ClashingCopyDefinition), so as a plugin it clashes with the built-in.
        var yaml = "plugins:\n  - plugins/Flowline.Tests.Plugin.dll\n  - Flowline.Tests.dll\n" + Docs.Minimal;

        var error = Docs.Single(yaml, "plugins[1]", "kind 'cpu.copy' from", 3);

        Assert.Equal($"kind 'cpu.copy' from {Path.Combine(AppContext.BaseDirectory, "Flowline.Tests.dll")} is already defined by built-in; give it another name", error.Message);
    }

    [Fact]
    public void Document_TwoPluginsDefiningOneKind_IsReportedAtTheSecond()
    {
        var directory = TemporaryDirectory();
        try
        {
            File.Copy(PluginFullPath, Path.Combine(directory, "Copy.dll"));
            var yaml = $"plugins:\n  - '{PluginFullPath}'\n  - Copy.dll\n" + Docs.Minimal;

            var errors = Errors(yaml, directory);

            var error = Assert.Single(errors);
            Assert.Equal("plugins[1]", error.Path);
            Assert.StartsWith("kind '", error.Message, StringComparison.Ordinal);
            Assert.Contains($"from {Path.Combine(directory, "Copy.dll")} is already defined by {PluginFullPath}; give it another name", error.Message, StringComparison.Ordinal);
            Assert.Equal(3, error.Position.Line);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void PluginLoader_MissingFile_ThrowsAPluginLoadException()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "plugins", "also-absent.dll");

        var e = Assert.Throws<PluginLoadException>(() => PluginLoader.Load(path));

        Assert.Equal($"cannot find plugin assembly '{path}'", e.Message);
    }

    [Fact]
    public void PluginLoader_TestPlugin_DefinesItsKinds()
    {
        var kinds = PluginLoader.Load(PluginFullPath);

        Assert.Equal(
            ["test.capture", "test.counter", "test.fail_create", "test.frame_ids", "test.hang", "test.recorder", "test.slow_create", "test.square", "test.sum"],
            kinds.Select(k => k.Kind).Order(StringComparer.Ordinal));
        Assert.Same(kinds, PluginLoader.Load(PluginFullPath));
        Assert.IsAssignableFrom<KernelDefinition>(Assert.Single(kinds, k => k.Kind == "test.square"));
        Assert.IsAssignableFrom<SourceDefinition>(Assert.Single(kinds, k => k.Kind == "test.counter"));
        Assert.IsAssignableFrom<SinkDefinition>(Assert.Single(kinds, k => k.Kind == "test.recorder"));
    }

    // ---------------------------------------------------------------- running a plugin kernel

    [Theory]
    [InlineData(0.5)]
    [InlineData(0)]
    [InlineData(-3.25)]
    public void PluginKernel_CreatedFromTheDocument_ComputesItsFunction(double offset)
    {
        var yaml = PluginPipeline.Replace("{offset: 0.5}", $"{{offset: {offset.ToString(System.Globalization.CultureInfo.InvariantCulture)}}}", StringComparison.Ordinal);
        var pipeline = PipelineDocument.Parse(yaml, "plugins.yaml", AppContext.BaseDirectory);
        var spec = pipeline.Spec.Kernels.Single(k => k.Name == "square");
        var context = new KernelContext(spec, [pipeline.Spec.FindStream("counts")!], [], [pipeline.Spec.FindStream("squares")!]);
        var kernel = pipeline.Kinds.Kernels["test.square"].Create(context);

        float[] input = [1.5f, -2f, 0f, 3f];
        var output = new byte[4 * sizeof(float)];
        var io = new KernelIo(1, 0, 1);
        io.SetInput(0, new ReadOnlyMemory<byte>(MemoryMarshal.AsBytes(input.AsSpan()).ToArray()));
        io.SetOutput(0, new Memory<byte>(output));
        kernel.Compute(io);

        var result = MemoryMarshal.Cast<byte, float>(output).ToArray();
        Assert.Equal(input.Select(x => (float)((x * x) + offset)), result);
    }

    [Fact]
    public void PluginKernel_ComputesAgainOnNewInput()
    {
        var pipeline = PipelineDocument.Parse(PluginPipeline, "plugins.yaml", AppContext.BaseDirectory);
        var spec = pipeline.Spec.Kernels[0];
        var kernel = pipeline.Kinds.Kernels[spec.Kind].Create(new KernelContext(spec, [pipeline.Spec.FindStream("counts")!], [], [pipeline.Spec.FindStream("squares")!]));
        var input = new float[4];
        var output = new float[4];
        var io = new KernelIo(1, 0, 1);

        for (var frame = 0; frame < 3; frame++)
        {
            input.AsSpan().Fill(frame);
            io.SetInput(0, MemoryMarshal.AsBytes(input.AsSpan()).ToArray());
            var bytes = new byte[16];
            io.SetOutput(0, bytes);
            kernel.Compute(io);
            MemoryMarshal.Cast<byte, float>(bytes).CopyTo(output);

            Assert.All(output, y => Assert.Equal((frame * frame) + 0.5f, y));
        }
    }
}
