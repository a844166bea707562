using Flowline.Documents;
using Flowline.Pipelines;
using Flowline.Runtime;
using Flowline.Tests.Runtime;

namespace Flowline.Tests.Documents;

/// <summary>
/// A latest reader holds the slot it reads (decision 100), so a stream with a writer needs at least latest
/// readers + 2 slots: a smaller <c>depth</c> (or <c>frames</c> in the Pipeline API) is refused at build
/// with the field, file and line; a stream without depth gets enough.
/// </summary>
public sealed class LatestDepthTests : RuntimeTest
{
    /// <summary>Stream a (line 2, its depth on line 3) written by source src and read by <paramref name="readers"/> cpu.copy kernels, each into a stream of its own.</summary>
    private static string Document(string depth, int readers, string delivery = "")
    {
        var outputs = string.Concat(Enumerable.Range(0, readers).Select(i => $"  - {{name: o{i}, shape: [4], dtype: float32}}\n"));
        var kernels = string.Concat(Enumerable.Range(0, readers).Select(i => $"  - {{name: k{i}, kind: cpu.copy, input: a, output: o{i}{delivery}}}\n"));
        return $"shared_memory:\n  - name: a\n    {depth}\n    shape: [4]\n    dtype: float32\n{outputs}sources:\n  - {{name: src, kind: synthetic.array, stream: a}}\nkernels:\n{kernels}";
    }

    [Fact]
    public void Depth2_WithOneLatestReader_IsRefused_NamingTheFieldTheReaderAndTheLeastDepth()
    {
        var error = Docs.Single(Document("depth: 2", 1), "shared_memory[0].depth", "depth 2 is too small for stream 'a': its latest reader (kernel 'k0') holds the slot it reads", 3);
        Assert.Contains("give depth: 4 or more (latest readers + 2, a power of two), or read it with delivery: lossless", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Depth4_WithThreeLatestReaders_IsRefused_AndAsksFor8()
    {
        var error = Docs.Single(Document("depth: 4", 3), "shared_memory[0].depth", "its 3 latest readers (kernel 'k0', kernel 'k1', kernel 'k2') each hold", 3);
        Assert.Contains("give depth: 8 or more", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("depth: 4", 2, "")]
    [InlineData("depth: 8", 6, "")]
    [InlineData("depth: 2", 3, ", delivery: lossless")]
    [InlineData("notify: true", 7, "")]
    public void EnoughSlots_OrLosslessReaders_OrNoDepth_AreValid(string depth, int readers, string delivery) =>
        Assert.Empty(Docs.Errors(Document(depth, readers, delivery)));

    /// <summary>Stream a (line 2, depth on line 3) written by src, read by one latest kernel, published over NATS with <paramref name="delivery"/>.</summary>
    private static string RemoteDocument(string depth, string delivery = "") =>
        $"shared_memory:\n  - name: a\n    {depth}\n    shape: [4]\n    dtype: float32\n    remote: {{nats: 'nats://127.0.0.1:4222', subject: rig1.a{delivery}}}\n" +
        "  - {name: o0, shape: [4], dtype: float32}\n" +
        "sources:\n  - {name: src, kind: synthetic.array, stream: a}\n" +
        "kernels:\n  - {name: k0, kind: cpu.copy, input: a, output: o0}\n";

    [Fact]
    public void APublishedRemoteStream_CountsItsLatestNatsBridge_AndADepthTooSmallForBothIsRefused()
    {
        // The bridge copies each frame out of a slot it holds (decision 157): kernel k0 and the bridge need 2 + 2 slots.
        var error = Docs.Single(RemoteDocument("depth: 2"), "shared_memory[0].depth", "depth 2 is too small for stream 'a': its 2 latest readers (kernel 'k0', the NATS bridge publishing it to subject 'rig1.a' (remote)) each hold", 3);
        Assert.Contains("give depth: 4 or more", error.Message, StringComparison.Ordinal);
        Assert.Contains("(remote: delivery: lossless for the bridge)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void APublishedRemoteStream_WithoutDepth_GetsASlotForItsBridge_AndALosslessBridgeNeedsNone()
    {
        Assert.Empty(Docs.Errors(RemoteDocument("depth: 4")));
        Assert.Empty(Docs.Errors(RemoteDocument("depth: 2", ", delivery: lossless").Replace("output: o0}", "output: o0, delivery: lossless}", StringComparison.Ordinal)));

        // Six latest kernels and the bridge hold 7 slots: 7 + 2 = 9, rounded up to 16 (without the bridge, 6 + 2 = 8).
        var kernels = string.Concat(Enumerable.Range(1, 5).Select(i => $"  - {{name: k{i}, kind: cpu.copy, input: a, output: o{i}}}\n"));
        var outputs = string.Concat(Enumerable.Range(1, 5).Select(i => $"  - {{name: o{i}, shape: [4], dtype: float32}}\n"));
        var yaml = RemoteDocument("notify: true").Replace("sources:", outputs.TrimEnd('\n') + "\nsources:", StringComparison.Ordinal) + kernels;
        var plan = new PipelinePlan(PipelineDocument.Parse(yaml, "test.yaml", AppContext.BaseDirectory));
        Assert.Equal(16, plan.OptionsOf("a").CapacityFrames);

        var lossless = new PipelinePlan(PipelineDocument.Parse(yaml.Replace("subject: rig1.a}", "subject: rig1.a, delivery: lossless}", StringComparison.Ordinal), "test.yaml", AppContext.BaseDirectory));
        Assert.Equal(8, lossless.OptionsOf("a").CapacityFrames);
    }

    [Fact]
    public void AStreamWithoutDepth_GetsLatestReadersPlusTwoSlots_RoundedUpToAPowerOfTwo()
    {
        var pipeline = PipelineDocument.Parse(Document("notify: true", 7), "test.yaml", AppContext.BaseDirectory);
        var plan = new PipelinePlan(pipeline);
        Assert.Equal(16, plan.OptionsOf("a").CapacityFrames);
        Assert.Equal(PipelinePlan.DefaultDepth, plan.OptionsOf("o0").CapacityFrames);
    }

    [Fact]
    public void PipelineApi_ATerminatorOnATwoSlotStream_IsRefusedAtCompile_NamingTheStreamAndFrames()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("samples", [4], frames: 2);
        pipe.AddTask("produce", (TaskWriter<float> output) => { }, writes: new() { ["output"] = "samples" });
        pipe.AddTerminator("end", new() { ["samples"] = "samples" });
        var e = Assert.Throws<ArgumentException>(pipe.Compile);
        Assert.Contains("stream 'samples': frames 2 is too small for its latest reader (terminator 'end')", e.Message, StringComparison.Ordinal);
        Assert.Contains("declare it with frames: 4 or more", e.Message, StringComparison.Ordinal);
        Assert.False(pipe.IsCompiled);
    }
}
