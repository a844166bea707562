using Flowline.Documents;
using Flowline.Python;

namespace Flowline.Tests.Documents;

/// <summary>python.kernel, python.source and python.sink check their settings where they can: errors name the field, file and line.</summary>
public sealed class PythonKindTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("flowline-pykind-").FullName;

    public PythonKindTests()
    {
        File.WriteAllText(Path.Combine(directory, "mykernels.py"), "def scale(inputs, outputs, parameters):\n    outputs[0][:] = inputs[0]\n");
        Directory.CreateDirectory(Path.Combine(directory, "lib", "pkg"));
        File.WriteAllText(Path.Combine(directory, "lib", "pkg", "__init__.py"), "def produce(outputs, parameters):\n    return None\n");
    }

    private static string Doc(string node) => $"""
        shared_memory:
          - {"{"}name: a, shape: [4], dtype: float32{"}"}
          - {"{"}name: b, shape: [4], dtype: float32{"}"}
        {node}
        """;

    /// <summary>A python.kernel from a to b with these parameters (on line 9, or 10 after <paramref name="field"/>).</summary>
    private static string Kernel(string parameters, string? field = null) => Doc($"""
        kernels:
          - name: k
            kind: python.kernel
            input: a
            output: b
        {(field is null ? "" : $"    {field}\n")}    parameters: {parameters}
        """);

    private IReadOnlyList<SpecError> Errors(string yaml) => PipelineDocument.Check(yaml, "py.yaml", directory).Errors;

    private SpecError Single(string yaml, string path, string text, int line)
    {
        var errors = Errors(yaml);
        var error = Assert.Single(errors);
        Assert.Equal(path, error.Path);
        Assert.Contains(text, error.Message, StringComparison.Ordinal);
        Assert.Equal("py.yaml", error.File);
        Assert.Equal(line, error.Position.Line);
        return error;
    }

    [Fact]
    public void ValidNodes_ResolveTheirModuleBesideTheDocument_AndKeepTheirOwnParameters()
    {
        var yaml = Doc("""
            sources:
              - name: gen
                kind: python.source
                stream: a
                parameters: {module: pkg, function: produce, path: [lib], rate_hz: 100, amplitude: 2}
            kernels:
              - name: k
                kind: python.kernel
                input: a
                output: b
                parameters: {module: mykernels, function: scale, interpreter: /bin/sh, factor: 3}
            sinks:
              - {name: s, kind: python.sink, stream: b, parameters: {module: mykernels, function: scale}}
            """);
        Assert.Empty(Errors(yaml));
        var pipeline = PipelineDocument.Parse(yaml, "py.yaml", directory);
        var kernel = PythonSettings.Of(pipeline.Spec.Kernels[0], directory);
        Assert.Equal("/bin/sh", kernel.Interpreter);
        Assert.Equal([directory], kernel.SearchPath);
        Assert.Equal("""{"factor":3}""", kernel.Arguments.ToJsonString());
        var source = PythonSettings.Of(pipeline.Spec.Sources[0], directory);
        Assert.Equal([Path.Combine(directory, "lib")], source.SearchPath);
        Assert.Equal("""{"amplitude":2}""", source.Arguments.ToJsonString());
    }

    [Fact]
    public void MissingModule_IsNamedWithItsLine() =>
        Single(Kernel("{function: scale}"), "kernels[0].parameters.module", "missing required parameter 'module'", 9);

    [Fact]
    public void FunctionTheModuleFileDoesNotDefine_IsAnError() =>
        Single(Kernel("{module: mykernels, function: sharpen}"), "kernels[0].parameters.function", "does not define 'sharpen'", 9);

    [Fact]
    public void MissingSearchDirectory_IsAnError() =>
        Single(Doc("""
            sinks:
              - name: s
                kind: python.sink
                stream: a
                parameters:
                  module: mykernels
                  function: scale
                  path: [., nowhere]
            """), "sinks[0].parameters.path[1]", $"the directory '{Path.Combine(directory, "nowhere")}' does not exist", 11);

    [Fact]
    public void InterpreterThatIsNotThere_IsAnError()
    {
        Single(Kernel("{module: mykernels, function: scale, interpreter: python-that-is-not-installed}"), "kernels[0].parameters.interpreter", "is not on PATH", 9);
        Single(Kernel("{module: mykernels, function: scale, interpreter: venv/bin/python}"), "kernels[0].parameters.interpreter", $"'venv/bin/python' is not an executable file (relative to {directory})", 9);
    }

    [Fact]
    public void ThreadPlacement_IsRefused() =>
        Single(Kernel("{module: mykernels, function: scale}", "placement: thread"), "kernels[0].placement", "runs in a Python worker process", 9);

    public void Dispose() => Directory.Delete(directory, recursive: true);
}
