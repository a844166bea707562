using System.Text.Json.Nodes;

namespace Flowline.Cli.Tests;

public sealed class DocumentCommandTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("flowline-cli-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Theory]
    [InlineData("copy-64")]
    [InlineData("affine")]
    [InlineData("ao-basic")]
    [InlineData("ao-observatory")]
    [InlineData("tomographic-ao-stress")]
    public void Validate_AnExample_SaysValidAndExitsZero(string example)
    {
        var result = Cli.Run("validate", Path.Combine("examples", example, "pipeline.yaml"));
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("valid (", result.Output, StringComparison.Ordinal);
        Assert.Equal("", result.Error);
    }

    [Fact]
    public void Validate_AnInvalidDocument_ListsEveryProblemWithItsLine_AndExitsOne()
    {
        var file = Path.Combine(directory, "bad.yaml");
        File.WriteAllText(file, """
            shared_memory:
              - {name: a, shape: [4], dtype: float33}
              - {name: b, shape: [4], dtype: float32}
            kernels:
              - {name: k, kind: cpu.scal, input: b, output: c}
            """);
        var result = Cli.Run("validate", file);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"{file}:2:", result.Error, StringComparison.Ordinal);
        Assert.Contains("unknown element type 'float33'", result.Error, StringComparison.Ordinal);
        Assert.Contains($"{file}:5:", result.Error, StringComparison.Ordinal);
        Assert.Contains("did you mean 'cpu.scale'?", result.Error, StringComparison.Ordinal);
        Assert.Contains("unknown stream 'c'", result.Error, StringComparison.Ordinal);
        Assert.Contains("3 problems", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_Json_GivesTheErrorsAsJson()
    {
        var file = Path.Combine(directory, "bad.yaml");
        File.WriteAllText(file, "shared_memory: []\n");
        var result = Cli.Run("validate", file, "--json");
        Assert.Equal(1, result.ExitCode);
        var json = JsonNode.Parse(result.Output)!;
        Assert.False(json["valid"]!.GetValue<bool>());
        var errors = json["errors"]!.AsArray();
        Assert.NotEmpty(errors);
        Assert.All(errors, e => Assert.NotNull(e!["message"]));
        Assert.Contains(errors, e => e!["path"]!.GetValue<string>() == "shared_memory" && e["line"]!.GetValue<int>() == 1);
    }

    [Theory]
    [InlineData("shared_memory:\n  - name: a\n    shape: [4\n    dtype: float32\n", ":3:12: YAML syntax error: the list opened here with '[' is not closed")]
    [InlineData("shared_memory:\n  - name: a\n\tshape: [4]\n", ":3:1: YAML syntax error: a tab indents this line")]
    public void Validate_ASyntaxError_SaysWhatAndWhereInPlainWords(string yaml, string expected)
    {
        var file = Path.Combine(directory, "syntax.yaml");
        File.WriteAllText(file, yaml);

        var result = Cli.Run("validate", file);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(file + expected, result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("Operation is not valid", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ManyProblems_ListsTheFirstHundredAndCountsThemAll()
    {
        var file = Path.Combine(directory, "many.yaml");
        File.WriteAllText(file, "shared_memory:\n" + string.Concat(Enumerable.Range(0, 150).Select(i => $"  - {{name: s{i}, shape: [4], dtype: float33}}\n")));

        var result = Cli.Run("validate", file);
        var json = JsonNode.Parse(Cli.Run("validate", file, "--json").Output)!;

        Assert.Equal(1, result.ExitCode);
        // The pipeline has no nodes (line 1), and each stream an unknown type: 151 problems, of which the first 100 are listed.
        Assert.Equal(100, result.Error.Split('\n').Count(l => l.StartsWith(file + ":", StringComparison.Ordinal) && char.IsAsciiDigit(l[file.Length + 1])));
        Assert.Contains($"{file}:100:", result.Error, StringComparison.Ordinal);
        Assert.DoesNotContain($"{file}:101:", result.Error, StringComparison.Ordinal);
        Assert.Contains("... and 51 more", result.Error, StringComparison.Ordinal);
        Assert.Contains($"{file}: 151 problems", result.Error, StringComparison.Ordinal);
        Assert.Equal(100, json["errors"]!.AsArray().Count);
        Assert.Equal(151, json["total_errors"]!.GetValue<int>());
    }

    [Fact]
    public void Validate_StreamsLargerThanSharedMemory_AreAProblem()
    {
        var file = Path.Combine(directory, "huge.yaml");
        File.WriteAllText(file, """
            shared_memory:
              - {name: a, shape: [1024, 1024, 511], dtype: float32, depth: 1048576}
            sinks:
              - {name: out, kind: null.sink, stream: a}
            """);

        var result = Cli.Run("validate", file);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"{file}:2:3: shared_memory: the streams need 2.0 PiB", result.Error, StringComparison.Ordinal);
        Assert.Contains("of shared memory and /dev/shm has", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_AMissingFile_SaysSoAndExitsOne()
    {
        var result = Cli.Run("validate", Path.Combine(directory, "nothing.yaml"));
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("cannot read the document", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Describe_ShowsStreamsWithRolesAndNodes()
    {
        var result = Cli.Run("describe", Path.Combine("examples", "ao-basic", "pipeline.yaml"));
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("wfs_image", result.Output, StringComparison.Ordinal);
        Assert.Contains("intermediate", result.Output, StringComparison.Ordinal);
        Assert.Contains("cpu.shack_hartmann_centroid", result.Output, StringComparison.Ordinal);
        Assert.Contains("deformable_mirror", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Describe_Json_IsTheGraphInShmpipelinesShape()
    {
        var result = Cli.Run("describe", Path.Combine("examples", "copy-64", "pipeline.yaml"), "--json");
        Assert.Equal(0, result.ExitCode);
        var graph = JsonNode.Parse(result.Output)!.AsObject();
        Assert.Equal(
            ["shared_memory", "sources", "kernels", "sinks", "edges", "source_streams", "sink_streams", "orphaned_streams"],
            graph.Select(p => p.Key));
        Assert.Equal("source", graph["shared_memory"]![0]!["role"]!.GetValue<string>());
        Assert.Equal(["input_vector"], graph["source_streams"]!.AsArray().Select(n => n!.GetValue<string>()));
    }

    [Fact]
    public void UnknownCommand_ExitsNonZeroWithAMessage()
    {
        var result = Cli.Run("frobnicate");
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("frobnicate", result.Error, StringComparison.Ordinal);
    }
}
