using System.Text.Json;
using System.Text.Json.Nodes;

namespace Flowline.Tests.Runtime;

/// <summary>The status and snapshot keep shmpipeline's wire format: every field name and JSON type, before and while running.</summary>
public sealed class StatusWireFormatTests : RuntimeTest
{
    private const string Pipeline = """
        shared_memory:
          - {name: input, shape: [64], dtype: float32}
          - {name: output, shape: [64], dtype: float32}
          - {name: extra, shape: [4], dtype: float32}
          - {name: extra_out, shape: [4], dtype: float32}
        sources:
          - name: camera
            kind: synthetic.array
            stream: input
            parameters: {pattern: ramp, rate_hz: 500, seed: 1}
        kernels:
          - {name: copy, kind: cpu.copy, input: input, output: output}
          - {name: copy_extra, kind: cpu.copy, input: extra, output: extra_out}
        sinks:
          - {name: sink, kind: null.sink, stream: output}
        """;

    /// <summary>The expected shapes by state (initialized, built, running), from the file beside the tests.</summary>
    private static Dictionary<string, List<string>> Expected()
    {
        var result = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        List<string>? current = null;
        foreach (var line in File.ReadLines(Path.Combine(AppContext.BaseDirectory, "Runtime", "StatusWireFormat.expected.txt")))
        {
            if (line.StartsWith("## ", StringComparison.Ordinal))
            {
                result[line[3..]] = current = [];
            }
            else if (line.Length > 0 && !line.StartsWith('#'))
            {
                current!.Add(line);
            }
        }

        return result;
    }

    private static void AssertSameShape(List<string> expected, PipelineStatus status, string state)
    {
        var actual = Shape(StatusJson.ToJsonObject(status)).Split('\n').Where(l => !l.StartsWith("$.graph.", StringComparison.Ordinal)).ToList();
        var missing = expected.Except(actual).ToList();
        var extra = actual.Except(expected).ToList();
        Assert.True(missing.Count == 0 && extra.Count == 0, $"{state}: missing {string.Join(", ", missing)}; not expected {string.Join(", ", extra)}");
    }

    [Fact]
    public void StatusAndSnapshot_InitializedBuiltAndRunning_KeepEveryFieldNameAndType()
    {
        var expected = Expected();
        Assert.Equal(["built", "initialized", "running"], expected.Keys.Order(StringComparer.Ordinal));
        var manager = Manager(Pipeline);
        AssertSameShape(expected["initialized"], manager.Status(), "initialized");
        manager.Build();
        AssertSameShape(expected["built"], manager.RuntimeSnapshot(), "built");
        manager.StartSyntheticInput("extra", new SyntheticSettings { Pattern = "constant", RateHz = 200 });
        manager.Start();
        WaitUntil(() => Frames(manager, "sink") > 100 && Frames(manager, "copy_extra") > 20, "frames flow through both kernels");
        var snapshot = manager.RuntimeSnapshot();
        AssertSameShape(expected["running"], snapshot, "running");

        // The figures are the same numbers in the typed record and on the wire, and they move.
        var wire = StatusJson.ToJsonObject(snapshot);
        Assert.Equal(snapshot.Workers["copy"].FramesProcessed, (long)wire["workers"]!["copy"]!["frames_processed"]!);
        Assert.Equal(snapshot.Sinks["sink"].FramesConsumed, (long)wire["sinks"]!["sink"]!["frames_consumed"]!);
        Assert.True(snapshot.Workers["copy"].FramesProcessed > 0);
        Assert.Equal(snapshot.Workers["copy"].FramesProcessed, snapshot.Metrics["copy"].FramesProcessed);
    }

    [Fact]
    public void Snapshot_ReadBackFromItsJson_HasTheSameFigures()
    {
        var manager = Manager(Pipeline);
        manager.Build();
        manager.StartSyntheticInput("extra", new SyntheticSettings { Pattern = "sine", RateHz = 100 });
        manager.Start();
        WaitUntil(() => Frames(manager, "sink") > 20, "frames flow");
        var snapshot = manager.RuntimeSnapshot();
        var back = StatusJson.Deserialize<PipelineStatus>(StatusJson.Serialize(snapshot));
        Assert.Equal(snapshot.State, back.State);
        Assert.Equal(snapshot.Workers["copy"] with { LatencyUs = null, SkippedPerInput = null }, back.Workers["copy"] with { LatencyUs = null, SkippedPerInput = null });
        Assert.Equal(snapshot.Workers["copy"].LatencyUs, back.Workers["copy"].LatencyUs);
        Assert.Equal(snapshot.Summary, back.Summary);
        Assert.Equal(snapshot.Streams["input"], back.Streams["input"]);
        Assert.Equal(snapshot.SyntheticSources["extra"], back.SyntheticSources["extra"]);
        Assert.Equal(snapshot.Sinks["sink"].FramesConsumed, back.Sinks["sink"].FramesConsumed);
        Assert.Equal(snapshot.Sources["camera"].Streams, back.Sources["camera"].Streams);
    }

    /// <summary>Every path of <paramref name="node"/> with its JSON type, one per line, sorted; an array is described by its first element.</summary>
    internal static string Shape(JsonNode? node)
    {
        var lines = new List<string>();
        void Walk(string path, JsonNode? n)
        {
            switch (n)
            {
                case JsonObject o:
                    lines.Add($"{path}: object");
                    foreach (var (key, value) in o)
                    {
                        Walk($"{path}.{key}", value);
                    }

                    break;
                case JsonArray a:
                    lines.Add($"{path}: array");
                    if (a.Count > 0)
                    {
                        Walk($"{path}[]", a[0]);
                    }

                    break;
                case null:
                    lines.Add($"{path}: null");
                    break;
                default:
                    lines.Add($"{path}: {n.GetValueKind() switch { JsonValueKind.True or JsonValueKind.False => "boolean", var k => k.ToString().ToLowerInvariant() }}");
                    break;
            }
        }

        Walk("$", node);
        lines.Sort(StringComparer.Ordinal);
        return string.Join('\n', lines);
    }
}
