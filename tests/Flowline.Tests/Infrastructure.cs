using Flowline.Documents;

namespace Flowline.Tests;

/// <summary>Helpers shared by the document tests.</summary>
internal static class Docs
{
    /// <summary>A minimal valid document with one 64-element float32 copy stage, for tests to extend.</summary>
    public const string Minimal = """
        shared_memory:
          - name: a
            shape: [64]
            dtype: float32
          - name: b
            shape: [64]
            dtype: float32
        kernels:
          - name: copy
            kind: cpu.copy
            input: a
            output: b
        """;

    /// <summary>The errors of a document (empty when valid).</summary>
    public static IReadOnlyList<SpecError> Errors(string yaml, string file = "test.yaml", string? baseDirectory = null) =>
        PipelineDocument.Check(yaml, file, baseDirectory ?? AppContext.BaseDirectory).Errors;

    /// <summary>Asserts the document has exactly one error at <paramref name="path"/> whose message contains <paramref name="text"/>, on <paramref name="line"/>.</summary>
    public static SpecError Single(string yaml, string path, string text, int? line = null)
    {
        var errors = Errors(yaml);
        var error = Assert.Single(errors, e => e.Path == path);
        Assert.Contains(text, error.Message, StringComparison.Ordinal);
        if (line is { } l)
        {
            Assert.Equal(l, error.Position.Line);
        }

        Assert.Equal("test.yaml", error.File);
        return error;
    }
}
