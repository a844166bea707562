using System.Text.Json.Nodes;
using Flowline.Runtime;

namespace Flowline.Tests.Runtime;

/// <summary><c>flowline.gate</c>: frames are held back while closed and pass once its live setting <c>open</c> is changed.</summary>
public sealed class GateTests : RuntimeTest
{
    private const string GatedPipeline = """
        shared_memory:
          - {name: input, shape: [16], dtype: float32}
          - {name: gated, shape: [16], dtype: float32}
          - {name: output, shape: [16], dtype: float32}
        sources:
          - name: camera
            kind: synthetic.array
            stream: input
            parameters: {pattern: constant, constant: 1.0, rate_hz: 200, seed: 1}
        kernels:
          - {name: approve, kind: flowline.gate, input: input, output: gated, parameters: {question: close the loop?}}
          - {name: add, kind: cpu.add_constant, input: gated, output: output, parameters: {constant: 2.0}}
        sinks:
          - {name: sink, kind: null.sink, stream: output}
        """;

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task ClosedGate_HoldsEveryFrame_UntilItsOpenSettingChanges_ThenFramesPass()
    {
        var manager = Manager(GatedPipeline);
        manager.Build();
        manager.Start();

        JsonObject status = [];
        WaitUntil(() => (long)(status = Status(manager))["held"]! >= 20, "the closed gate has taken 20 frames");
        Assert.False((bool)status["open"]!);
        Assert.Equal(0, (long)status["passed"]!);
        Assert.Equal(0, Frames(manager, "add")); // nothing reached the stage behind the gate
        Assert.False(manager.RuntimeSnapshot().Metrics.TryGetValue("approve", out var held) && held.FramesProcessed > 0, "held frames count as processed");

        var opened = await manager.PatchSettingsAsync("approve", new JsonObject { ["open"] = true }, new ChangeSource("coordinator", "interaction-1"));
        Assert.Equal("live", opened.AppliedBy);
        WaitUntil(() => Frames(manager, "add") >= 20, "the stage behind the opened gate processed 20 frames");
        Assert.True((long)Status(manager)["passed"]! >= 20);

        // Closed again: it holds again, and what it held while closed stays counted.
        await manager.PatchSettingsAsync("approve", new JsonObject { ["open"] = false });
        var heldBefore = (long)Status(manager)["held"]!;
        WaitUntil(() => (long)Status(manager)["held"]! > heldBefore + 5, "the closed-again gate holds frames");
    }

    [Fact]
    public void Gate_ValidatesLikeACopy_AndDeclaresOpenLive()
    {
        var open = Assert.Single(Flowline.Plugins.KindRegistry.BuiltIn.Kernels["flowline.gate"].Parameters, p => p.Name == "open");
        Assert.True(open.Live);
        var errors = Docs.Errors(GatedPipeline.Replace("{name: gated, shape: [16]", "{name: gated, shape: [8]", StringComparison.Ordinal)
            .Replace("{name: output, shape: [16]", "{name: output, shape: [8]", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.ToString().Contains("kernels[0].output: output 'gated' is float32[8]", StringComparison.Ordinal));
        var notBoolean = Docs.Errors(GatedPipeline.Replace("question: close the loop?", "open: maybe", StringComparison.Ordinal));
        Assert.Contains(notBoolean, e => e.ToString().Contains("parameters.open", StringComparison.Ordinal));
    }

    private static JsonObject Status(PipelineManager manager) =>
        manager.RequestNodeAsync("approve", "gate_status", null, Timeout).GetAwaiter().GetResult().Result!.AsObject();
}
