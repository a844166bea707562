using Flowline.Documents;
using Flowline.Kernels;
using Flowline.Plugins;
using Flowline.SharedMemory;

namespace Flowline.Tests.Documents;

/// <summary>
/// Every field of a pipeline document, one valid and at least one invalid value each: the error's path,
/// its message naming what would be valid, and its line.
/// </summary>
public sealed class DocumentFieldTests
{
    /// <summary>Five streams on lines 2 to 6; a node section added after them starts on line 7, its first field on line 8.</summary>
    private const string FiveStreams = """
        shared_memory:
          - {name: a, shape: [4], dtype: float32}
          - {name: b, shape: [4], dtype: float32}
          - {name: c, shape: [4], dtype: float32}
          - {name: d, shape: [4], dtype: float32}
          - {name: e, shape: [8], dtype: float32}
        """;

    /// <summary>What follows the stream under test (which is shared_memory[0], fields from line 2).</summary>
    private const string AfterStream = """
          - {name: a, shape: [4], dtype: float32}
          - {name: b, shape: [4], dtype: float32}
        kernels:
          - {name: copy, kind: cpu.copy, input: a, output: b}
        """;

    private const string PluginPath = "plugins/Flowline.Tests.Plugin.dll";

    private static readonly string[] StreamDefaults = ["name: s", "shape: [2, 2]", "dtype: float32"];
    private static readonly string[] KernelDefaults = ["name: k", "kind: cpu.copy", "input: a", "output: b"];
    private static readonly string[] SourceDefaults = ["name: src", "kind: synthetic.array", "stream: a"];
    private static readonly string[] SinkDefaults = ["name: out", "kind: null.sink", "stream: a"];

    // ---------------------------------------------------------------- document builders

    /// <summary>
    /// The body of one list item: the defaults, with each entry of <paramref name="fields"/> replacing the
    /// default of the same key in place, or appended after them; "-key" removes a default. An entry may span
    /// lines (its further lines indented relative to it).
    /// </summary>
    private static string Item(string[] defaults, string fields)
    {
        var entries = new List<string>(defaults);
        foreach (var entry in Entries(fields))
        {
            if (entry.StartsWith('-'))
            {
                entries.RemoveAll(e => Key(e) == entry[1..]);
                continue;
            }

            var at = entries.FindIndex(e => Key(e) == Key(entry));
            if (at >= 0)
            {
                entries[at] = entry;
            }
            else
            {
                entries.Add(entry);
            }
        }

        return string.Join('\n', entries.SelectMany(e => e.Split('\n')).Select((line, i) => (i == 0 ? "  - " : "    ") + line));
    }

    private static IEnumerable<string> Entries(string fields)
    {
        var current = new List<string>();
        foreach (var line in fields.Split('\n'))
        {
            if (line.Length > 0 && line[0] != ' ' && current.Count > 0)
            {
                yield return string.Join('\n', current);
                current.Clear();
            }

            if (line.Length > 0)
            {
                current.Add(line);
            }
        }

        if (current.Count > 0)
        {
            yield return string.Join('\n', current);
        }
    }

    private static string Key(string entry) => entry.Split(':')[0];

    /// <summary>A document whose first stream is name: s (line 2), shape: [2, 2] (line 3), dtype: float32 (line 4), then <paramref name="fields"/> (line 5 on).</summary>
    private static string Stream(string fields) => $"shared_memory:\n{Item(StreamDefaults, fields)}\n{AfterStream}\n";

    /// <summary>A document with one kernel: name: k (line 8), kind: cpu.copy (9), input: a (10), output: b (11), then <paramref name="fields"/> (12 on).</summary>
    private static string Kernel(string fields) => $"{FiveStreams}\nkernels:\n{Item(KernelDefaults, fields)}\n";

    /// <summary>A document with one source: name: src (line 8), kind: synthetic.array (9), stream: a (10), then <paramref name="fields"/> (11 on).</summary>
    private static string Source(string fields) => $"{FiveStreams}\nsources:\n{Item(SourceDefaults, fields)}\n";

    /// <summary>A document with one sink: name: out (line 8), kind: null.sink (9), stream: a (10), then <paramref name="fields"/> (11 on).</summary>
    private static string Sink(string fields) => $"{FiveStreams}\nsinks:\n{Item(SinkDefaults, fields)}\n";

    private static void Valid(string yaml)
    {
        var errors = Docs.Errors(yaml);
        Assert.True(errors.Count == 0, $"expected no errors, got:\n{string.Join('\n', errors)}\nin:\n{yaml}");
    }

    private static PipelineSpec Spec(string yaml, KindRegistry? kinds = null) =>
        PipelineDocument.Parse(yaml, "test.yaml", AppContext.BaseDirectory, kinds).Spec;

    /// <summary>A source kind taking any auxiliary inputs and any parameters, for the fields no built-in source uses.</summary>
    private sealed class OpenSource : SourceDefinition
    {
        public override string Kind => "tests.open_source";

        public override string Description => "accepts auxiliary inputs";

        public override Arity Streams => Arity.AtLeast(1);

        public override Arity Auxiliary => Arity.AtLeast(0);

        public override bool AcceptsUndeclaredParameters => true;

        public override ISource Create(SourceContext context) => throw new NotSupportedException("validation only");
    }

    /// <summary>A sink kind taking any auxiliary inputs and up to two feedback outputs.</summary>
    private sealed class OpenSink : SinkDefinition
    {
        public override string Kind => "tests.open_sink";

        public override string Description => "accepts auxiliary inputs and outputs";

        public override Arity Auxiliary => Arity.AtLeast(0);

        public override Arity Outputs => Arity.Between(0, 2);

        public override ISink Create(SinkContext context) => throw new NotSupportedException("validation only");
    }

    private static readonly KindRegistry OpenKinds = KindRegistry.BuiltIn.With([new OpenSource(), new OpenSink()], "tests");

    // ---------------------------------------------------------------- the builders themselves

    [Fact]
    public void Builders_DefaultDocuments_AreValid()
    {
        Valid(Stream(""));
        Valid(Kernel(""));
        Valid(Source(""));
        Valid(Sink(""));
    }

    // ---------------------------------------------------------------- streams

    [Theory]
    [InlineData("name: s.1_x-Y")]
    [InlineData("shape: [3]")]
    [InlineData("shape: [1, 1, 1, 1, 1, 1, 1, 2]")]
    [InlineData("dtype: uint16")]
    [InlineData("storage: cpu")]
    [InlineData("notify: true")]
    [InlineData("notify: False")]
    [InlineData("mode: create_or_attach")]
    [InlineData("mode: create")]
    [InlineData("mode: attach")]
    [InlineData("mode: replace")]
    [InlineData("depth: 2")]
    [InlineData("depth: 1048576")]
    [InlineData("delivery: lossless")]
    [InlineData("delivery: latest")]
    [InlineData("wait: hybrid")]
    [InlineData("wait: spin")]
    [InlineData("wait: block")]
    [InlineData("wait: predictive")]
    [InlineData("wait: predictive\nspin_budget: 0.05")]
    [InlineData("spin_budget: 1")]
    [InlineData("initial: {pattern: constant, value: -1.5}")]
    [InlineData("initial: {pattern: normal}")]
    [InlineData("initial: {pattern: normal, seed: 7, mean: 1, std: 0}")]
    [InlineData("dtype: float64\ninitial: {pattern: normal, std: 2}")]
    [InlineData("initial: {pattern: values, values: [[1, 2], [3, 4]]}")]
    [InlineData("initial:\n  pattern: values\n  values:\n    - [1, 2.5]\n    - [-3, .inf]")]
    [InlineData("initial: {pattern: identity}")]
    [InlineData("initial: {pattern: identity, scale: 0.5}")]
    public void StreamField_ValidValue_HasNoErrors(string field) => Valid(Stream(field));

    [Theory]
    [InlineData("float32", ElementType.Float32)]
    [InlineData("'<f4'", ElementType.Float32)]
    [InlineData("f4", ElementType.Float32)]
    [InlineData("float64", ElementType.Float64)]
    [InlineData("'<f8'", ElementType.Float64)]
    [InlineData("double", ElementType.Float64)]
    [InlineData("int8", ElementType.Int8)]
    [InlineData("'|i1'", ElementType.Int8)]
    [InlineData("'<i2'", ElementType.Int16)]
    [InlineData("'=i4'", ElementType.Int32)]
    [InlineData("'<i8'", ElementType.Int64)]
    [InlineData("'|u1'", ElementType.UInt8)]
    [InlineData("uint8", ElementType.UInt8)]
    [InlineData("'<u2'", ElementType.UInt16)]
    [InlineData("'<u4'", ElementType.UInt32)]
    [InlineData("'<u8'", ElementType.UInt64)]
    [InlineData("bool", ElementType.Bool)]
    [InlineData("'?'", ElementType.Bool)]
    [InlineData("'|b1'", ElementType.Bool)]
    [InlineData("complex64", ElementType.Complex64)]
    [InlineData("'<c8'", ElementType.Complex64)]
    [InlineData("'<c16'", ElementType.Complex128)]
    public void StreamDtype_NumPyNameOrCode_BindsTheElementType(string dtype, ElementType expected)
    {
        var spec = Spec(Stream($"dtype: {dtype}"));

        Assert.Equal(expected, spec.Streams[0].Dtype);
    }

    [Fact]
    public void Stream_OfAnotherNamespace_BindsItAndRoundTrips()
    {
        var spec = Spec(Stream("mode: attach\nnamespace: camera-host"));
        Assert.Equal("camera-host", spec.Streams[0].Namespace);
        Assert.Contains("namespace: camera-host", PipelineDocument.ToYaml(spec), StringComparison.Ordinal);
    }

    [Fact]
    public void Stream_EveryOptionalField_BindsItsValue()
    {
        var spec = Spec(Stream("storage: cpu\nnotify: false\nmode: attach\ndepth: 16\ndelivery: latest\nwait: spin\ninitial: {pattern: constant, value: 2.5}"));

        var s = spec.Streams[0];
        Assert.Equal("s", s.Name);
        Assert.Equal([2, 2], s.Shape);
        Assert.Equal("cpu", s.Storage);
        Assert.False(s.Notify);
        Assert.Equal(RegionMode.Attach, s.Mode);
        Assert.Equal(16, s.Depth);
        Assert.Equal(Delivery.Latest, s.Delivery);
        Assert.Equal(WaitPolicy.Spin, s.Wait);
        Assert.Equal(new ConstantInitial(2.5), s.Initial);
        Assert.Null(s.Namespace);
    }

    [Fact]
    public void Stream_OptionalFieldsLeftOut_AreNull()
    {
        var s = Spec(Stream("")).Streams[0];

        Assert.Null(s.Storage);
        Assert.Null(s.Notify);
        Assert.Null(s.Mode);
        Assert.Null(s.Depth);
        Assert.Null(s.Delivery);
        Assert.Null(s.Wait);
        Assert.Null(s.Initial);
    }

    [Fact]
    public void StreamInitial_EachPattern_BindsItsValues()
    {
        var yaml = """
            shared_memory:
              - {name: c, shape: [2, 2], dtype: float32, initial: {pattern: constant, value: 3}}
              - {name: n, shape: [2, 2], dtype: float64, initial: {pattern: normal, seed: 7, mean: 1, std: 0.5}}
              - {name: v, shape: [2, 2], dtype: int32, initial: {pattern: values, values: [[1, 2], [3, 4]]}}
              - {name: i, shape: [2, 2], dtype: float32, initial: {pattern: identity, scale: 3}}
              - {name: a, shape: [4], dtype: float32}
              - {name: b, shape: [4], dtype: float32}
            kernels:
              - {name: copy, kind: cpu.copy, input: a, output: b}
            """;

        var streams = Spec(yaml).Streams;

        Assert.Equal(new ConstantInitial(3), streams[0].Initial);
        Assert.Equal(new NormalInitial(7, 1, 0.5), streams[1].Initial);
        Assert.Equal(new ValuesInitial([1, 2, 3, 4]), streams[2].Initial);
        Assert.Equal(new IdentityInitial(3), streams[3].Initial);
        Assert.Equal(["constant", "normal", "values", "identity"], streams.Take(4).Select(s => s.Initial!.Pattern));
    }

    [Theory]
    [InlineData("name: a/b", "shared_memory[0].name", "use letters, digits, '_', '-' and '.'", 2)]
    [InlineData("name: [s]", "shared_memory[0].name", "must be a stream name, not a list", 2)]
    [InlineData("shape: []", "shared_memory[0].shape", "must be a list of 1 to 8 positive integers", 3)]
    [InlineData("shape: 4", "shared_memory[0].shape", "must be a list of 1 to 8 positive integers", 3)]
    [InlineData("shape: [1, 1, 1, 1, 1, 1, 1, 1, 1]", "shared_memory[0].shape", "a list of 1 to 8 positive integers", 3)]
    [InlineData("shape: [2, 0]", "shared_memory[0].shape[1]", "must be a positive integer; the shape must be a list of 1 to 8 positive integers", 3)]
    [InlineData("shape: [2, x]", "shared_memory[0].shape[1]", "must be a positive integer", 3)]
    [InlineData("shape: [65536, 65536]", "shared_memory[0].shape", "is larger than the largest frame", 3)]
    [InlineData("dtype: float16", "shared_memory[0].dtype", "unknown element type 'float16'; valid types are float32, float64, int8", 4)]
    [InlineData("dtype: '>f4'", "shared_memory[0].dtype", "valid types are float32, float64", 4)]
    [InlineData("dtype: [float32]", "shared_memory[0].dtype", "must be an element type, not a list", 4)]
    [InlineData("storage: gpu", "shared_memory[0].storage", "no GPU backend in this build; use storage: cpu", 5)]
    [InlineData("storage: disk", "shared_memory[0].storage", "unknown storage 'disk'; valid storages are cpu", 5)]
    [InlineData("gpu_device: 0", "shared_memory[0].gpu_device", "use storage: cpu", 5)]
    [InlineData("cpu_mirror: true", "shared_memory[0].cpu_mirror", "use storage: cpu", 5)]
    [InlineData("notify: sometimes", "shared_memory[0].notify", "must be true or false, not 'sometimes'", 5)]
    [InlineData("mode: open", "shared_memory[0].mode", "unknown mode 'open'; valid modes are create_or_attach, create, attach, replace", 5)]
    [InlineData("depth: 3", "shared_memory[0].depth", "depth 3 is not valid; it must be a power of two from 2 to 1,048,576", 5)]
    [InlineData("depth: 1", "shared_memory[0].depth", "a power of two from 2 to 1,048,576", 5)]
    [InlineData("depth: 2097152", "shared_memory[0].depth", "a power of two from 2 to 1,048,576", 5)]
    [InlineData("depth: many", "shared_memory[0].depth", "must be a power of two from 2 to 1,048,576, not 'many'", 5)]
    [InlineData("delivery: losless", "shared_memory[0].delivery", "valid values are lossless, latest (did you mean 'lossless'?)", 5)]
    [InlineData("wait: sleep", "shared_memory[0].wait", "unknown value 'sleep'; valid values are hybrid, spin, block, predictive", 5)]
    [InlineData("spin_budget: 0", "shared_memory[0].spin_budget", "0 is not valid; the spin budget is a fraction of a core (of the frame interval), above 0 and at most 1", 5)]
    [InlineData("spin_budget: 1.5", "shared_memory[0].spin_budget", "1.5 is not valid; the spin budget is a fraction of a core", 5)]
    [InlineData("spin_budget: lots", "shared_memory[0].spin_budget", "must be a fraction of a core, not 'lots'", 5)]
    [InlineData("depht: 4", "shared_memory[0].depht", "unknown key 'depht' (did you mean 'depth'?); valid keys are name, shape, dtype, storage, gpu_device, cpu_mirror, notify, mode, namespace, initial, depth, delivery, wait, spin_budget, remote", 5)]
    [InlineData("mode: attach\nnamespace: ../camera", "shared_memory[0].namespace", "namespace '../camera' is not valid: it starts with '.'", 6)]
    [InlineData("namespace: camera", "shared_memory[0].namespace", "belongs to the pipeline that creates it: give it mode: attach", 5)]
    [InlineData("mode: attach\nnamespace: camera\ninitial: {pattern: constant, value: 1}", "shared_memory[0].namespace", "cannot write initial values into it", 6)]
    public void StreamField_InvalidValue_ReportsPathValidValuesAndLine(string field, string path, string text, int line) =>
        Docs.Single(Stream(field), path, text, line);

    [Theory]
    [InlineData("name")]
    [InlineData("shape")]
    [InlineData("dtype")]
    public void StreamField_RequiredKeyMissing_ReportsTheStream(string key) =>
        Docs.Single(Stream($"-{key}"), "shared_memory[0]", $"missing required key '{key}'", 2);

    [Theory]
    [InlineData("initial: 0", "shared_memory[0].initial", "must be a mapping with a pattern: constant, normal, values or identity", 5)]
    [InlineData("initial: {value: 1}", "shared_memory[0].initial", "missing required key 'pattern'", 5)]
    [InlineData("initial: {pattern: zeros}", "shared_memory[0].initial.pattern", "unknown pattern 'zeros'; valid patterns are constant, normal, values, identity", 5)]
    [InlineData("initial:\n  pattern: zeros", "shared_memory[0].initial.pattern", "valid patterns are constant, normal, values, identity", 6)]
    [InlineData("initial: {pattern: constant}", "shared_memory[0].initial", "missing required key 'value'", 5)]
    [InlineData("initial: {pattern: constant, value: high}", "shared_memory[0].initial.value", "must be a number, not 'high'", 5)]
    [InlineData("initial: {pattern: constant, value: 1, seed: 2}", "shared_memory[0].initial.seed", "unknown key 'seed'; valid keys are pattern, value", 5)]
    [InlineData("dtype: int32\ninitial: {pattern: normal}", "shared_memory[0].initial.pattern", "pattern normal needs a float dtype (float32 or float64), not int32", 5)]
    [InlineData("dtype: uint8\ninitial:\n  pattern: normal\n  std: 1", "shared_memory[0].initial.pattern", "needs a float dtype (float32 or float64), not uint8", 6)]
    [InlineData("initial: {pattern: normal, std: -1}", "shared_memory[0].initial.std", "std must be at least 0, not -1", 5)]
    [InlineData("initial:\n  pattern: normal\n  mean: 2\n  std: -0.5", "shared_memory[0].initial.std", "std must be at least 0, not -0.5", 8)]
    [InlineData("initial: {pattern: normal, seed: 1.5}", "shared_memory[0].initial.seed", "must be an integer, not '1.5'", 5)]
    [InlineData("initial: {pattern: normal, scale: 1}", "shared_memory[0].initial.scale", "valid keys are pattern, seed, mean, std", 5)]
    [InlineData("initial: {pattern: values}", "shared_memory[0].initial", "missing required key 'values'", 5)]
    [InlineData("initial:\n  pattern: values\n  values:\n    - [1, 2]\n    - [3]", "shared_memory[0].initial.values[1]", "is ragged: a list of 1 where the others at this depth hold 2", 9)]
    [InlineData("initial: {pattern: values, values: [[1, 2], 3]}", "shared_memory[0].initial.values[1]", "is ragged: a number where the others at this depth are lists", 5)]
    [InlineData("initial: {pattern: values, values: [1, 2, 3, 4]}", "shared_memory[0].initial.values", "values have shape [4]; the stream's shape is [2, 2]", 5)]
    [InlineData("initial: {pattern: values, values: [[1, 2, 3], [4, 5, 6]]}", "shared_memory[0].initial.values", "values have shape [2, 3]; the stream's shape is [2, 2]", 5)]
    [InlineData("initial: {pattern: values, values: [[1, x], [3, 4]]}", "shared_memory[0].initial.values[0][1]", "must be a number, not 'x'", 5)]
    [InlineData("initial: {pattern: values, values: [[1, 2], [3, 4]], seed: 1}", "shared_memory[0].initial.seed", "valid keys are pattern, values", 5)]
    [InlineData("shape: [4]\ninitial: {pattern: identity}", "shared_memory[0].initial.pattern", "pattern identity needs a 2-D stream; this one has shape [4]", 5)]
    [InlineData("shape: [2, 2, 2]\ninitial: {pattern: identity}", "shared_memory[0].initial.pattern", "needs a 2-D stream; this one has shape [2, 2, 2]", 5)]
    [InlineData("initial: {pattern: identity, scale: big}", "shared_memory[0].initial.scale", "must be a number, not 'big'", 5)]
    [InlineData("initial: {pattern: identity, value: 1}", "shared_memory[0].initial.value", "valid keys are pattern, scale", 5)]
    public void StreamInitial_InvalidValue_ReportsPathValidValuesAndLine(string field, string path, string text, int line) =>
        Docs.Single(Stream(field), path, text, line);

    /// <summary>PRODUCT BUG: a number before a list at one depth is not seen as ragged, and three values are accepted for four elements.</summary>
    [Fact]
    public void StreamInitial_NumberBeforeListAtOneDepth_IsRagged()
    {
        var errors = Docs.Errors(Stream("initial: {pattern: values, values: [1, [2, 3]]}"));

        var error = Assert.Single(errors);
        Assert.StartsWith("shared_memory[0].initial.values", error.Path, StringComparison.Ordinal);
        Assert.Contains("ragged", error.Message, StringComparison.Ordinal);
        Assert.Equal(5, error.Position.Line);
    }

    /// <summary>PRODUCT BUG: the frame-size limit is in bytes, but the binder compares the element count with it.</summary>
    [Fact]
    public void StreamShape_FrameOfMoreBytesThanTheLargestFrame_IsAnError()
    {
        // 2^30 float32 elements: 4 GiB, twice the largest frame, though the element count is under the limit.
        var yaml = Stream("shape: [1024, 1024, 1024]");

        Docs.Single(yaml, "shared_memory[0].shape", "larger than the largest frame", 3);
    }

    [Fact]
    public void StreamShape_LargestFrameOfBytes_IsValid()
    {
        // 2^30 one-byte elements: 1 GiB, under the largest frame.
        var spec = Spec(Stream("shape: [1024, 1024, 1024]\ndtype: uint8"));

        Assert.Equal(1 << 30, spec.Streams[0].Format.FrameBytes);
    }

    [Fact]
    public void StreamField_BrokenStream_IsNotReportedAgainWhereItIsUsed()
    {
        var yaml = """
            shared_memory:
              - {name: a, shape: [4], dtype: float99}
              - {name: b, shape: [4], dtype: float32}
            kernels:
              - {name: copy, kind: cpu.copy, input: a, output: b}
            """;

        var error = Assert.Single(Docs.Errors(yaml));
        Assert.Equal("shared_memory[0].dtype", error.Path);
        Assert.Equal(2, error.Position.Line);
    }

    // ---------------------------------------------------------------- kernels

    [Theory]
    [InlineData("-input\ninputs: [a]")]
    [InlineData("-output\noutputs: [b]")]
    [InlineData("auxiliary: []")]
    [InlineData("parameters: {}")]
    [InlineData("parameters:")]
    [InlineData("read_timeout: 2.5")]
    [InlineData("pause_sleep: 0")]
    [InlineData("pause_sleep: 0.02")]
    [InlineData("poll_interval: 1e-5")]
    [InlineData("trigger_policy: any_new")]
    [InlineData("trigger_policy: all_new")]
    [InlineData("synchronization: {mode: count, on_skew: drop_older, max_skew_generations: 2, max_wait_s: 0.5}")]
    [InlineData("synchronization:\n  timeout: 0.25")]
    [InlineData("propagate_frame_id: true")]
    [InlineData("propagate_frame_id: false")]
    [InlineData("delivery: latest")]
    [InlineData("delivery: {a: lossless}")]
    [InlineData("wait: spin")]
    [InlineData("wait: {a: block}")]
    [InlineData("placement: thread")]
    [InlineData("placement: process")]
    [InlineData("cpu: 0")]
    [InlineData("cpu: 3")]
    [InlineData("kind: cpu.scale\nparameters: {factor: 2}")]
    [InlineData("kind: cpu.custom_operation\noperation: input * 2")]
    [InlineData("kind: cpu.custom_operation\noperation: input + c\nauxiliary: [c]")]
    [InlineData("kind: cpu.custom_operation\noperation: input + offset\nauxiliary: {offset: c}")]
    [InlineData("kind: cpu.custom_operation\noperation: input + offset\nauxiliary: {offset: c}\ndelivery: {a: latest, offset: lossless}\nwait: {c: spin}")]
    [InlineData("kind: cpu.concatenate\n-input\ninputs: [a, b]\noutput: e\nsynchronization: {mode: matching_frame_id, on_skew: drop_older, max_skew_generations: 4, max_wait_s: 0.5}")]
    [InlineData("kind: cpu.concatenate\n-input\ninputs: [a, b]\noutput: e\ntrigger_policy: all_new\nsynchronization: {mode: matching_frame_id}")]
    public void KernelField_ValidValue_HasNoErrors(string field) => Valid(Kernel(field));

    [Fact]
    public void Kernel_EveryOptionalField_BindsItsValue()
    {
        var yaml = Kernel("""
            kind: cpu.concatenate
            -input
            inputs: [a, b]
            -output
            outputs: [e]
            parameters: {axis: 0}
            read_timeout: 0.5
            pause_sleep: 0
            poll_interval: 0.001
            trigger_policy: all_new
            synchronization: {mode: matching_frame_id, on_skew: drop_older, max_skew_generations: 3, timeout: 0.2}
            propagate_frame_id: true
            delivery: {a: latest, b: lossless}
            wait: block
            placement: thread
            cpu: 1
            """);

        var k = Spec(yaml).Kernels[0];

        Assert.Equal(["a", "b"], k.Inputs);
        Assert.True(k.InputsAsList);
        Assert.Equal(["e"], k.Outputs);
        Assert.True(k.OutputsAsList);
        Assert.True(k.Parameters.TryGetLong("axis", out var axis));
        Assert.Equal(0L, axis);
        Assert.Equal(0.5, k.ReadTimeout);
        Assert.Equal(0.0, k.PauseSleep);
        Assert.Equal(0.001, k.PollInterval);
        Assert.Equal(TriggerPolicy.AllNew, k.TriggerPolicy);
        var sync = Assert.IsType<SynchronizationSpec>(k.Synchronization);
        Assert.Equal(SynchronizationMode.MatchingFrameId, sync.Mode);
        Assert.Equal("drop_older", sync.OnSkew);
        Assert.Equal(3, sync.MaxSkewGenerations);
        Assert.Equal(0.2, sync.MaxWaitS);
        Assert.True(sync.MaxWaitSpelledTimeout);
        Assert.True(k.PropagateFrameId);
        Assert.NotNull(k.Delivery);
        Assert.Null(k.Delivery.All);
        Assert.Equal(Delivery.Latest, k.Delivery.For("a"));
        Assert.Equal(Delivery.Lossless, k.Delivery.For("b"));
        Assert.NotNull(k.Wait);
        Assert.Equal(WaitPolicy.Block, k.Wait.All);
        Assert.Equal(WaitPolicy.Block, k.Wait.For("b"));
        Assert.Equal(WorkerPlacement.Thread, k.Placement);
        Assert.Equal(1, k.Cpu);
    }

    [Fact]
    public void Kernel_OptionalFieldsLeftOut_AreNullAndTriggerPolicyDefaultsByInputCount()
    {
        var one = Spec(Kernel("")).Kernels[0];
        var two = Spec(Kernel("kind: cpu.concatenate\n-input\ninputs: [a, b]\noutput: e")).Kernels[0];

        Assert.False(one.InputsAsList);
        Assert.False(one.OutputsAsList);
        Assert.Null(one.TriggerPolicy);
        Assert.Null(one.Synchronization);
        Assert.Null(one.Delivery);
        Assert.Null(one.Wait);
        Assert.Null(one.Placement);
        Assert.Null(one.Cpu);
        Assert.Null(one.Operation);
        Assert.Equal(0, one.Parameters.Count);
        Assert.Equal(TriggerPolicy.AnyNew, one.EffectiveTriggerPolicy);
        Assert.Equal(TriggerPolicy.AllNew, two.EffectiveTriggerPolicy);
    }

    [Fact]
    public void KernelAuxiliary_ListAndMapping_BindAliases()
    {
        var list = Spec(Kernel("kind: cpu.custom_operation\noperation: input + c + d\nauxiliary: [c, d]")).Kernels[0];
        var mapping = Spec(Kernel("kind: cpu.custom_operation\noperation: input + x + y\nauxiliary: {x: c, y: d}")).Kernels[0];

        Assert.False(list.AuxiliaryAsMapping);
        Assert.Equal([new AuxiliaryBinding("c", "c"), new AuxiliaryBinding("d", "d")], list.Auxiliary);
        Assert.True(mapping.AuxiliaryAsMapping);
        Assert.Equal([new AuxiliaryBinding("x", "c"), new AuxiliaryBinding("y", "d")], mapping.Auxiliary);
        Assert.Equal("input + x + y", mapping.Operation);
    }

    [Theory]
    [InlineData("-name", "kernels[0]", "missing required key 'name'", 8)]
    [InlineData("name: ' '", "kernels[0].name", "must be a non-empty name without control characters", 8)]
    [InlineData("name: [k]", "kernels[0].name", "must be a name, not a list", 8)]
    [InlineData("-kind", "kernels[0]", "missing required key 'kind'", 8)]
    [InlineData("kind: cpu.cpy", "kernels[0].kind", "unknown kernel kind 'cpu.cpy' (did you mean 'cpu.copy'?); kernel kinds are cpu.add_constant, cpu.affine_transform", 9)]
    [InlineData("kind: gpu.copy", "kernels[0].kind", "no GPU backend in this build; use the cpu. kind of the same name", 9)]
    [InlineData("-input", "kernels[0]", "missing 'input' (one stream) or 'inputs' (a list of streams)", 8)]
    [InlineData("input: [a]", "kernels[0].input", "must be a stream name, not a list", 10)]
    [InlineData("input: zz", "kernels[0].input", "unknown stream 'zz'; streams are a, b, c, d, e", 10)]
    [InlineData("inputs: [a]", "kernels[0].inputs", "give 'input' or 'inputs', not both", 12)]
    [InlineData("-input\ninputs: []", "kernels[0].inputs", "must list at least one stream", 11)]
    [InlineData("-input\ninputs: a", "kernels[0].inputs", "must be a non-empty list of stream names, not 'a'", 11)]
    [InlineData("-input\ninputs: [a, b]", "kernels[0].inputs", "cpu.copy takes exactly 1 trigger input, not 2", 11)]
    [InlineData("-input\ninputs: [a, zz]", "kernels[0].inputs[1]", "unknown stream 'zz'", 11)]
    [InlineData("-output", "kernels[0]", "missing 'output' (one stream) or 'outputs' (a list of streams)", 8)]
    [InlineData("output: [b]", "kernels[0].output", "must be a stream name, not a list", 11)]
    [InlineData("output: bb", "kernels[0].output", "unknown stream 'bb' (did you mean 'b'?); streams are a, b, c, d, e", 11)]
    [InlineData("outputs: [b]", "kernels[0].outputs", "give 'output' or 'outputs', not both", 12)]
    [InlineData("-output\noutputs: [b, c]", "kernels[0].outputs", "cpu.copy takes exactly 1 output, not 2", 11)]
    [InlineData("auxiliary: c", "kernels[0].auxiliary", "must be a list of stream names, or a mapping of alias to stream, not 'c'", 12)]
    [InlineData("auxiliary: [c]", "kernels[0].auxiliary", "cpu.copy takes no auxiliary inputs, not 1", 12)]
    [InlineData("auxiliary: [zz]", "kernels[0].auxiliary[0]", "unknown stream 'zz'; streams are a, b, c, d, e", 12)]
    [InlineData("auxiliary: {m: [c]}", "kernels[0].auxiliary.m", "must be a stream name, not a list", 12)]
    [InlineData("kind: cpu.custom_operation\noperation: input + m\nauxiliary: {m: zz}", "kernels[0].auxiliary.m", "unknown stream 'zz'; streams are a, b, c, d, e", 13)]
    [InlineData("kind: cpu.elementwise_add\nauxiliary: [c, d]", "kernels[0].auxiliary", "cpu.elementwise_add takes exactly 1 auxiliary input, not 2", 12)]
    [InlineData("operation: input * 2", "kernels[0].operation", "'operation' is only read by cpu.custom_operation; cpu.copy does not use it", 12)]
    [InlineData("operation: [x]", "kernels[0].operation", "must be an expression such as 'input * 2', not a list", 12)]
    [InlineData("parameters: [1]", "kernels[0].parameters", "must be a mapping of parameter names to values, not a list", 12)]
    [InlineData("parameters: {gain: 1}", "kernels[0].parameters.gain", "unknown parameter 'gain'; cpu.copy takes no parameters", 12)]
    [InlineData("kind: cpu.scale\nparameters: {factr: 2}", "kernels[0].parameters.factr", "unknown parameter 'factr' (did you mean 'factor'?); cpu.scale takes factor", 12)]
    [InlineData("read_timeout: 0", "kernels[0].read_timeout", "0 is not valid; it must be a positive finite number of seconds", 12)]
    [InlineData("read_timeout: .inf", "kernels[0].read_timeout", "it must be a positive finite number of seconds", 12)]
    [InlineData("read_timeout: soon", "kernels[0].read_timeout", "must be a number of seconds, not 'soon'", 12)]
    [InlineData("pause_sleep: -0.5", "kernels[0].pause_sleep", "-0.5 is not valid; it must be a non-negative finite number of seconds", 12)]
    [InlineData("poll_interval: 0", "kernels[0].poll_interval", "it must be a positive finite number of seconds", 12)]
    [InlineData("trigger_policy: any-new", "kernels[0].trigger_policy", "valid values are any_new, all_new (did you mean 'any_new'?)", 12)]
    [InlineData("synchronization: count", "kernels[0].synchronization", "must be a mapping with mode, on_skew, max_skew_generations and max_wait_s", 12)]
    [InlineData("synchronization: {mode: exact}", "kernels[0].synchronization.mode", "unknown value 'exact'; valid values are count, matching_frame_id", 12)]
    [InlineData("synchronization:\n  on_skew: drop_newer", "kernels[0].synchronization.on_skew", "unknown on_skew 'drop_newer'; the only valid value is drop_older", 13)]
    [InlineData("synchronization: {max_skew_generations: 0}", "kernels[0].synchronization.max_skew_generations", "must be at least 1, not 0", 12)]
    [InlineData("synchronization: {max_skew_generations: two}", "kernels[0].synchronization.max_skew_generations", "must be an integer of at least 1, not 'two'", 12)]
    [InlineData("synchronization: {max_wait_s: -1}", "kernels[0].synchronization.max_wait_s", "it must be a positive finite number of seconds", 12)]
    [InlineData("synchronization: {timeout: 0}", "kernels[0].synchronization.timeout", "it must be a positive finite number of seconds", 12)]
    [InlineData("synchronization:\n  max_wait_s: 1\n  timeout: 1", "kernels[0].synchronization.timeout", "give max_wait_s or its alias timeout, not both", 14)]
    [InlineData("synchronization: {max_wait: 1}", "kernels[0].synchronization.max_wait", "unknown key 'max_wait' (did you mean 'max_wait_s'?); valid keys are mode, on_skew, max_skew_generations, max_wait_s, timeout", 12)]
    [InlineData("synchronization: {mode: matching_frame_id}", "kernels[0].synchronization.mode", "matching_frame_id needs trigger_policy: all_new", 12)]
    [InlineData("kind: cpu.concatenate\n-input\ninputs: [a, b]\noutput: e\ntrigger_policy: any_new\nsynchronization: {mode: matching_frame_id}", "kernels[0].synchronization.mode", "matching_frame_id needs trigger_policy: all_new", 13)]
    [InlineData("propagate_frame_id: yes", "kernels[0].propagate_frame_id", "must be true or false, not 'yes'", 12)]
    [InlineData("delivery: fast", "kernels[0].delivery", "unknown value 'fast'; valid values are lossless, latest", 12)]
    [InlineData("delivery: {a: fast}", "kernels[0].delivery.a", "valid values are lossless, latest", 12)]
    [InlineData("delivery:\n  a: latest\n  c: latest", "kernels[0].delivery.c", "'c' is not an input of 'k'; its inputs are a", 14)]
    [InlineData("wait: doze", "kernels[0].wait", "unknown value 'doze'; valid values are hybrid, spin, block", 12)]
    [InlineData("wait: {a: doze}", "kernels[0].wait.a", "valid values are hybrid, spin, block", 12)]
    [InlineData("wait: {zz: spin}", "kernels[0].wait.zz", "'zz' is not an input of 'k'; its inputs are a", 12)]
    [InlineData("placement: cluster", "kernels[0].placement", "unknown value 'cluster'; valid values are process, thread", 12)]
    [InlineData("cpu: -1", "kernels[0].cpu", "CPU -1 is not valid; CPUs are numbered from 0", 12)]
    [InlineData("cpu: first", "kernels[0].cpu", "must be a CPU number (0, 1, ...), not 'first'", 12)]
    [InlineData("priority: 1", "kernels[0].priority", "unknown key 'priority'; valid keys are name, kind, input, inputs, output, outputs, auxiliary, operation, parameters, read_timeout, pause_sleep, poll_interval, trigger_policy, synchronization, propagate_frame_id, delivery, wait, placement, cpu", 12)]
    public void KernelField_InvalidValue_ReportsPathValidValuesAndLine(string field, string path, string text, int line) =>
        Docs.Single(Kernel(field), path, text, line);

    [Fact]
    public void KernelField_NotAMapping_ReportsTheItem()
    {
        var yaml = FiveStreams + "\nkernels:\n  - cpu.copy\n";

        Docs.Single(yaml, "kernels[0]", "must be a kernel: a mapping with name, kind, input and output, not 'cpu.copy'", 8);
    }

    // ---------------------------------------------------------------- sources

    [Theory]
    [InlineData("parameters: {pattern: sine, rate_hz: 100, seed: 3, amplitude: 2, offset: 1, period: 16}")]
    [InlineData("parameters: {rate_hz: null}")]
    [InlineData("poll_interval: 0.5")]
    [InlineData("read_timeout: 3")]
    [InlineData("placement: thread")]
    [InlineData("cpu: 2")]
    [InlineData("auxiliary: []")]
    [InlineData("-stream\nstreams: [a]")]
    [InlineData("kind: synthetic.frame_set\n-stream\nstreams: [a, b]\nparameters: {assign_frame_id: false, jitter_us: 5, drop_probability: 0.5}")]
    public void SourceField_ValidValue_HasNoErrors(string field) => Valid(Source(field));

    [Fact]
    public void Source_EveryField_BindsItsValue()
    {
        var yaml = Source("-stream\nstreams: [a, b]\nkind: tests.open_source\nauxiliary: {gain: c, dark: d}\nparameters: {anything: [1, 2]}\npoll_interval: 0.25\nread_timeout: 4\nplacement: thread\ncpu: 3");

        var s = Spec(yaml, OpenKinds).Sources[0];

        Assert.Equal(["a", "b"], s.Streams);
        Assert.True(s.StreamsAsList);
        Assert.True(s.AuxiliaryAsMapping);
        Assert.Equal([new AuxiliaryBinding("gain", "c"), new AuxiliaryBinding("dark", "d")], s.Auxiliary);
        Assert.Equal("[1,2]", s.Parameters.Get("anything")!.ToJsonString());
        Assert.Equal(0.25, s.PollInterval);
        Assert.Equal(4.0, s.ReadTimeout);
        Assert.Equal(WorkerPlacement.Thread, s.Placement);
        Assert.Equal(3, s.Cpu);
    }

    [Fact]
    public void SourceAuxiliary_AsList_BindsStreamNamesAsAliases()
    {
        var s = Spec(Source("kind: tests.open_source\nauxiliary: [c, d]"), OpenKinds).Sources[0];

        Assert.False(s.AuxiliaryAsMapping);
        Assert.Equal([new AuxiliaryBinding("c", "c"), new AuxiliaryBinding("d", "d")], s.Auxiliary);
        Assert.False(s.StreamsAsList);
    }

    [Theory]
    [InlineData("streams: [a]", "sources[0].streams", "give 'stream' or 'streams', not both", 11)]
    [InlineData("-stream", "sources[0]", "missing 'stream' (one stream) or 'streams' (a list of streams)", 8)]
    [InlineData("-stream\nstreams: []", "sources[0].streams", "must list at least one stream", 10)]
    [InlineData("stream: zz", "sources[0].stream", "unknown stream 'zz'; streams are a, b, c, d, e", 10)]
    [InlineData("kind: synthetic.frame_set\n-stream\nstreams: [a, zz]", "sources[0].streams[1]", "unknown stream 'zz'", 10)]
    [InlineData("kind: synthetic.frame_set", "sources[0].stream", "synthetic.frame_set takes at least 2 streams, not 1", 10)]
    [InlineData("kind: synthetic.arr", "sources[0].kind", "unknown source kind 'synthetic.arr' (did you mean 'synthetic.array'?); source kinds are python.source, synthetic.array, synthetic.frame_set", 9)]
    [InlineData("auxiliary: 3", "sources[0].auxiliary", "must be a list of stream names, or a mapping of alias to stream, not '3'", 11)]
    [InlineData("auxiliary: [c]", "sources[0].auxiliary", "synthetic.array takes no auxiliary inputs, not 1", 11)]
    [InlineData("parameters: {pattern: wave}", "sources[0].parameters.pattern", "must be one of constant, random, ramp, sine, impulse, checkerboard, not \"wave\"", 11)]
    [InlineData("parameters: {patern: sine}", "sources[0].parameters.patern", "unknown parameter 'patern' (did you mean 'pattern'?); synthetic.array takes pattern, rate_hz, seed", 11)]
    [InlineData("parameters:\n  rate_hz: 0", "sources[0].parameters.rate_hz", "0 is out of range; it must be at least 1E-06", 12)]
    [InlineData("parameters: 5", "sources[0].parameters", "must be a mapping of parameter names to values, not '5'", 11)]
    [InlineData("poll_interval: 0", "sources[0].poll_interval", "it must be a positive finite number of seconds", 11)]
    [InlineData("read_timeout: -2", "sources[0].read_timeout", "it must be a positive finite number of seconds", 11)]
    [InlineData("placement: remote", "sources[0].placement", "valid values are process, thread", 11)]
    [InlineData("cpu: 5000", "sources[0].cpu", "CPU 5000 is not valid; CPUs are numbered from 0", 11)]
    [InlineData("delivery: latest", "sources[0].delivery", "unknown key 'delivery'; valid keys are name, kind, stream, streams, auxiliary, parameters, poll_interval, read_timeout, placement, cpu", 11)]
    public void SourceField_InvalidValue_ReportsPathValidValuesAndLine(string field, string path, string text, int line) =>
        Docs.Single(Source(field), path, text, line);

    // ---------------------------------------------------------------- sinks

    [Theory]
    [InlineData("parameters: {device_delay_s: 0.001, sample_window: 16}")]
    [InlineData("read_timeout: 2")]
    [InlineData("pause_sleep: 0")]
    [InlineData("consume_timeout: 0.5")]
    [InlineData("delivery: latest")]
    [InlineData("wait: block")]
    [InlineData("placement: thread")]
    [InlineData("cpu: 1")]
    [InlineData("outputs: []")]
    [InlineData("auxiliary: {}")]
    public void SinkField_ValidValue_HasNoErrors(string field) => Valid(Sink(field));

    [Fact]
    public void Sink_EveryField_BindsItsValue()
    {
        var yaml = Sink("kind: tests.open_sink\noutputs: [b, c]\nauxiliary: [d]\nparameters: {}\nread_timeout: 1.5\npause_sleep: 0.25\nconsume_timeout: 3\ndelivery: lossless\nwait: hybrid\nplacement: process\ncpu: 0");

        var s = Spec(yaml, OpenKinds).Sinks[0];

        Assert.Equal("a", s.Stream);
        Assert.Equal(["b", "c"], s.Outputs);
        Assert.False(s.AuxiliaryAsMapping);
        Assert.Equal([new AuxiliaryBinding("d", "d")], s.Auxiliary);
        Assert.Equal(1.5, s.ReadTimeout);
        Assert.Equal(0.25, s.PauseSleep);
        Assert.Equal(3.0, s.ConsumeTimeout);
        Assert.Equal(Delivery.Lossless, s.Delivery);
        Assert.Equal(WaitPolicy.Hybrid, s.Wait);
        Assert.Equal(WorkerPlacement.Process, s.Placement);
        Assert.Equal(0, s.Cpu);
    }

    [Fact]
    public void SinkOutputsAndAuxiliaryMapping_OfAStatefulPluginSink_AreValid()
    {
        var yaml = $"plugins: [{PluginPath}]\n" + Sink("kind: test.recorder\noutputs: [b]");
        var open = Sink("kind: tests.open_sink\nauxiliary: {dark: c}");

        var sink = Spec(yaml).Sinks[0];
        var aux = Spec(open, OpenKinds).Sinks[0];

        Assert.Equal(["b"], sink.Outputs);
        Assert.True(aux.AuxiliaryAsMapping);
        Assert.Equal([new AuxiliaryBinding("dark", "c")], aux.Auxiliary);
    }

    [Theory]
    [InlineData("-stream", "sinks[0]", "missing required key 'stream'", 8)]
    [InlineData("stream: [a]", "sinks[0].stream", "must be the stream it consumes, not a list", 10)]
    [InlineData("stream: zz", "sinks[0].stream", "unknown stream 'zz'; streams are a, b, c, d, e", 10)]
    [InlineData("kind: null.snk", "sinks[0].kind", "unknown sink kind 'null.snk' (did you mean 'null.sink'?); sink kinds are null.sink, python.sink", 9)]
    [InlineData("outputs: b", "sinks[0].outputs", "must be a list of stream names, not 'b'", 11)]
    [InlineData("outputs: [b]", "sinks[0].outputs", "null.sink takes no feedback outputs, not 1", 11)]
    [InlineData("outputs: [zz]", "sinks[0].outputs[0]", "unknown stream 'zz'", 11)]
    [InlineData("auxiliary: [c]", "sinks[0].auxiliary", "null.sink takes no auxiliary inputs, not 1", 11)]
    [InlineData("auxiliary: c", "sinks[0].auxiliary", "must be a list of stream names, or a mapping of alias to stream, not 'c'", 11)]
    [InlineData("parameters: {sample_window: 0}", "sinks[0].parameters.sample_window", "0 is out of range; it must be from 1 to 10000000", 11)]
    [InlineData("parameters: {delay: 1}", "sinks[0].parameters.delay", "unknown parameter 'delay'; null.sink takes device_delay_s, sample_window", 11)]
    [InlineData("parameters: [delay]", "sinks[0].parameters", "must be a mapping of parameter names to values, not a list", 11)]
    [InlineData("read_timeout: 0", "sinks[0].read_timeout", "it must be a positive finite number of seconds", 11)]
    [InlineData("pause_sleep: -1", "sinks[0].pause_sleep", "it must be a non-negative finite number of seconds", 11)]
    [InlineData("consume_timeout: 0", "sinks[0].consume_timeout", "it must be a positive finite number of seconds", 11)]
    [InlineData("delivery: all", "sinks[0].delivery", "unknown value 'all'; valid values are lossless, latest", 11)]
    [InlineData("wait: {a: spin}", "sinks[0].wait", "must be hybrid, spin, block, predictive, not a mapping", 11)]
    [InlineData("wait: nap", "sinks[0].wait", "valid values are hybrid, spin, block", 11)]
    [InlineData("placement: gpu", "sinks[0].placement", "valid values are process, thread", 11)]
    [InlineData("cpu: -3", "sinks[0].cpu", "CPUs are numbered from 0", 11)]
    [InlineData("trigger_policy: any_new", "sinks[0].trigger_policy", "unknown key 'trigger_policy'; valid keys are name, kind, stream, outputs, auxiliary, parameters, read_timeout, pause_sleep, consume_timeout, delivery, wait, placement, cpu", 11)]
    public void SinkField_InvalidValue_ReportsPathValidValuesAndLine(string field, string path, string text, int line) =>
        Docs.Single(Sink(field), path, text, line);

    // ---------------------------------------------------------------- top level

    [Theory]
    [InlineData("namespace: my-pipeline_1.v2", "my-pipeline_1.v2")]
    [InlineData("namespace: 'quoted'", "quoted")]
    public void Namespace_ValidName_IsBound(string line, string expected)
    {
        var spec = Spec(line + "\n" + Docs.Minimal);

        Assert.Equal(expected, spec.Namespace);
    }

    [Fact]
    public void Namespace_LeftOut_IsNull() => Assert.Null(Spec(Docs.Minimal).Namespace);

    [Theory]
    [InlineData("namespace: a/b", "'a/b' cannot name a namespace: character '/' is not allowed; use letters, digits, '_', '-' and '.'")]
    [InlineData("namespace: 'a b'", "character ' ' is not allowed; use letters, digits, '_', '-' and '.'")]
    [InlineData("namespace: .hidden", "'.hidden' cannot name a namespace: it starts with '.'")]
    [InlineData("namespace: [x]", "must be a name of letters, digits, '_', '-' and '.', not a list")]
    [InlineData("namespace: ''", "must be a name of letters, digits, '_', '-' and '.'")]
    [InlineData("namespace:", "must be a name of letters, digits, '_', '-' and '.', not null")]
    public void Namespace_InvalidName_ReportsPathValidCharactersAndLine(string line, string text) =>
        Docs.Single(Docs.Minimal + "\n" + line + "\n", "namespace", text, 13);

    [Fact]
    public void Namespace_LongerThanTheLimit_ReportsTheLimit() =>
        Docs.Single($"namespace: {new string('n', 129)}\n{Docs.Minimal}", "namespace", "it has 129 characters; the limit is 128", 1);

    [Theory]
    [InlineData("plugins: []")]
    [InlineData("plugins:")]
    [InlineData($"plugins: [{PluginPath}]")]
    [InlineData($"plugins:\n  - {PluginPath}")]
    public void Plugins_ValidList_HasNoErrors(string line) => Valid(line + "\n" + Docs.Minimal);

    [Theory]
    [InlineData("plugins: plugins/x.dll", "plugins", "must be a list, not 'plugins/x.dll'", 1)]
    [InlineData("plugins: {a: x.dll}", "plugins", "must be a list, not a mapping", 1)]
    [InlineData("plugins:\n  - [x.dll]", "plugins[0]", "must be a path to a .dll file, not a list", 2)]
    [InlineData("plugins:\n  - plugins/Flowline.Tests.Plugin.dll\n  - plugins/absent.dll", "plugins[1]", "cannot find plugin assembly", 3)]
    public void Plugins_InvalidList_ReportsPathValidValuesAndLine(string lines, string path, string text, int line) =>
        Docs.Single(lines + "\n" + Docs.Minimal, path, text, line);

    [Theory]
    [InlineData("spin_budget: 0.05", 0.05)]
    [InlineData("spin_budget: 1", 1.0)]
    public void TopLevel_SpinBudget_IsBound(string line, double expected) =>
        Assert.Equal(expected, PipelineDocument.Check(line + "\n" + Docs.Minimal).Pipeline!.Spec.SpinBudget);

    [Theory]
    [InlineData("spin_budget: 0", "the spin budget is a fraction of a core (of the frame interval), above 0 and at most 1")]
    [InlineData("spin_budget: -0.5", "-0.5 is not valid")]
    [InlineData("spin_budget: [0.1]", "must be a fraction of a core, not a list")]
    public void TopLevel_SpinBudgetOutOfRange_ReportsFieldAndLine(string line, string text) =>
        Docs.Single(line + "\n" + Docs.Minimal, "spin_budget", text, 1);

    [Theory]
    [InlineData("kernel: []", "kernel", "unknown key 'kernel' (did you mean 'kernels'?); valid keys are shared_memory, kernels, sources, sinks, namespace, plugins")]
    [InlineData("sink: []", "sink", "(did you mean 'sinks'?)")]
    [InlineData("version: 2", "version", "unknown key 'version'; valid keys are shared_memory, kernels, sources, sinks, namespace, plugins")]
    public void TopLevel_UnknownKey_ReportsKeyValidKeysAndLine(string line, string path, string text) =>
        Docs.Single(Docs.Minimal + "\n" + line + "\n", path, text, 13);

    [Theory]
    [InlineData("", 0)]
    [InlineData("# only a comment\n", 0)]
    [InlineData("~\n", 1)]
    [InlineData("null\n", 1)]
    public void Document_Empty_SaysWhatAPipelineNeeds(string yaml, int line) =>
        Docs.Single(yaml, "", "the document is empty; a pipeline needs at least 'shared_memory' and one of 'kernels', 'sources' or 'sinks'", line);

    [Theory]
    [InlineData("- shared_memory\n- kernels\n")]
    [InlineData("just some text\n")]
    [InlineData("42\n")]
    public void Document_NotAMapping_NamesTheKeysOfAPipeline(string yaml) =>
        Docs.Single(yaml, "", "the document must be a mapping with the keys shared_memory, kernels, sources, sinks, namespace and plugins", 1);

    [Fact]
    public void SharedMemory_Missing_IsReported()
    {
        var yaml = """
            namespace: x
            kernels:
              - {name: copy, kind: cpu.copy, input: a, output: b}
            """;

        Docs.Single(yaml, "", "missing required key 'shared_memory'", 1);
    }

    [Theory]
    [InlineData("shared_memory: []", "must list at least one entry")]
    [InlineData("shared_memory:", "must be a list, not null")]
    [InlineData("shared_memory: {a: 1}", "must be a list, not a mapping")]
    public void SharedMemory_EmptyOrNotAList_IsReported(string line, string text)
    {
        var yaml = line + "\nsources:\n  - {name: src, kind: synthetic.array, stream: a}\n";

        Docs.Single(yaml, "shared_memory", text, 1);
    }

    [Fact]
    public void SharedMemory_ItemNotAMapping_ReportsTheItem() =>
        Docs.Single("shared_memory:\n  - a\n" + "sinks:\n  - {name: out, kind: null.sink, stream: a}\n", "shared_memory[0]", "must be a stream: a mapping with name, shape and dtype, not 'a'", 2);

    [Theory]
    [InlineData("")]
    [InlineData("kernels: []\n")]
    [InlineData("sources:\nsinks:\n")]
    [InlineData("kernels: []\nsources: []\nsinks: []\n")]
    public void Document_NoKernelsSourcesOrSinks_AsksForOne(string rest)
    {
        var yaml = "shared_memory:\n  - {name: a, shape: [4], dtype: float32}\n" + rest;

        Docs.Single(yaml, "", "the pipeline has no kernels, sources or sinks; give at least one", 1);
    }

    [Theory]
    [InlineData("kernels:\n  - {name: copy, kind: cpu.copy, input: a, output: b}\n")]
    [InlineData("sources:\n  - {name: src, kind: synthetic.array, stream: a}\n")]
    [InlineData("sinks:\n  - {name: out, kind: null.sink, stream: a}\n")]
    public void Document_AnyOneOfKernelsSourcesOrSinks_IsEnough(string rest) =>
        Valid("shared_memory:\n  - {name: a, shape: [4], dtype: float32}\n  - {name: b, shape: [4], dtype: float32}\n" + rest);

    /// <summary>An unknown parameter is reported beside, not instead of, the kind's checks of the node's other parameters.</summary>
    [Theory]
    [InlineData("kind: cpu.scale\nparameters: {factor: fast, bogus: 1}", "kernels[0]", "factor", "must be a number, not \"fast\"")]
    [InlineData("parameters: {pattern: wave, bogus: 1}", "sources[0]", "pattern", "must be one of constant, random, ramp, sine, impulse, checkerboard, not \"wave\"")]
    [InlineData("parameters: {sample_window: 0, bogus: 1}", "sinks[0]", "sample_window", "0 is out of range; it must be from 1 to 10000000")]
    public void Parameters_AnUnknownOne_DoesNotHideTheErrorsOfTheOthers(string fields, string node, string parameter, string text)
    {
        var yaml = node switch
        {
            "kernels[0]" => Kernel(fields),
            "sources[0]" => Source(fields),
            _ => Sink(fields),
        };

        var errors = Docs.Errors(yaml);

        Assert.Equal([$"{node}.parameters.{parameter}", $"{node}.parameters.bogus"], errors.Select(e => e.Path));
        Assert.Contains(text, errors[0].Message, StringComparison.Ordinal);
        Assert.StartsWith("unknown parameter 'bogus'", errors[1].Message, StringComparison.Ordinal);
        Assert.Equal(errors[0].Position.Line, errors[1].Position.Line);
        Assert.True(errors[0].Position.Column < errors[1].Position.Column, string.Join('\n', errors));
    }

    /// <summary>
    /// PRODUCT BUG (possibly): the YAML parser rejects a duplicate key as a syntax error before the binder can report
    /// it with its path ("key 'name' is given twice; give it once"), so the error has no path.
    /// </summary>
    [Fact]
    public void DuplicateKey_InAStream_IsReportedWithItsPathAndLine()
    {
        var yaml = """
            shared_memory:
              - name: a
                shape: [64]
                name: c
                dtype: float32
              - name: b
                shape: [64]
                dtype: float32
            kernels:
              - {name: copy, kind: cpu.copy, input: a, output: b}
            """;

        Docs.Single(yaml, "shared_memory[0].name", "key 'name' is given twice; give it once", 4);
    }

    [Fact]
    public void DuplicateKey_AtTopLevel_IsReportedOnItsLine()
    {
        var yaml = Docs.Minimal + "\nkernels:\n  - {name: copy2, kind: cpu.copy, input: a, output: b}\n";

        var error = Assert.Single(Docs.Errors(yaml));

        Assert.Equal(13, error.Position.Line);
        Assert.Contains("kernels", error.Message, StringComparison.Ordinal);
        Assert.Contains("key", error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void DuplicateKey_DistinctKeys_AreValid() => Valid(Docs.Minimal);

    /// <summary>An unclosed '[' or '{' is reported where it opens.</summary>
    [Theory]
    [InlineData("shared_memory:\n  - name: 'a\n", 2)]
    [InlineData("shared_memory:\n  - name: a\n   shape: [64]\n", 3)]
    [InlineData("shared_memory:\n  - name: a\n    shape: [64]\n  dtype: float32\n", 4)]
    [InlineData("a: [1\n", 1)]
    [InlineData("shared_memory:\n  - {name: a, shape: [4]\n", 2)]
    [InlineData("shared_memory:\n  - name: a\n    shape: [64\n", 3)]
    public void Yaml_SyntaxError_IsReportedWithItsLine(string yaml, int line)
    {
        var error = Assert.Single(Docs.Errors(yaml));

        Assert.Equal("", error.Path);
        Assert.StartsWith("YAML syntax error: ", error.Message, StringComparison.Ordinal);
        Assert.True(error.Message.Length > "YAML syntax error: ".Length);
        Assert.Equal(line, error.Position.Line);
        Assert.Equal("test.yaml", error.File);
        Assert.StartsWith($"test.yaml:{line}:", error.ToString(), StringComparison.Ordinal);
    }

    /// <summary>YamlDotNet throws a bare InvalidOperationException here; the error is where the list opens.</summary>
    [Theory]
    [InlineData("shared_memory:\n  - name: a\n    shape: [64\n    dtype: float32\n", 3)]
    [InlineData("shared_memory: [a, b\nkernels: []\n", 1)]
    public void Yaml_UnclosedFlowSequenceBeforeMoreLines_IsASyntaxErrorWithALine(string yaml, int bracketLine)
    {
        var errors = Docs.Errors(yaml);

        var error = Assert.Single(errors);
        Assert.Equal("", error.Path);
        Assert.StartsWith("YAML syntax error: the list opened here with '[' is not closed", error.Message, StringComparison.Ordinal);
        Assert.Equal(bracketLine, error.Position.Line);
    }

    [Fact]
    public void Yaml_SyntaxError_ParseThrowsWithTheError()
    {
        var e = Assert.ThrowsAny<DocumentValidationException>(() => PipelineDocument.Parse("a: [1\n", "bad.yaml"));

        var error = Assert.Single(e.Errors);
        Assert.Equal("bad.yaml", error.File);
        Assert.Contains("YAML syntax error", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Yaml_MoreThanOneDocument_IsReportedAtTheSecond()
    {
        var yaml = Docs.Minimal + "\n---\n" + Docs.Minimal + "\n";

        Docs.Single(yaml, "", "the file holds more than one YAML document; a pipeline is one document", 14);
    }

    [Fact]
    public void Yaml_OneDocumentWithExplicitMarkers_IsValid() => Valid("---\n" + Docs.Minimal + "\n...\n");

    [Fact]
    public void SpecError_ToString_GivesFileLineColumnPathAndMessage()
    {
        var error = Docs.Single(Stream("mode: open"), "shared_memory[0].mode", "valid modes are", 5);

        Assert.Equal($"test.yaml:5:{error.Position.Column}: shared_memory[0].mode: {error.Message}", error.ToString());
        Assert.Equal(11, error.Position.Column);
    }
}
