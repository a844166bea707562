using Flowline.Documents;
using Flowline.Graph;
using Flowline.SharedMemory;
using Flowline.Tests.Runtime;

namespace Flowline.Tests.Documents;

/// <summary>
/// A document whose streams would not fit in <c>/dev/shm</c> fails validation (and so <c>flowline validate</c>),
/// not only a run; the bytes counted are the bytes a build creates.
/// </summary>
public sealed class SharedMemoryCapacityTests : RuntimeTest
{
    /// <summary>A stream of 2 GiB frames, 2^20 of them: about 2 PiB, more than any machine's /dev/shm.</summary>
    private const string Huge = """
        shared_memory:
          - {name: a, shape: [4], dtype: float32}
          - {name: b, shape: [4], dtype: float32}
          - {name: huge, shape: [1024, 1024, 511], dtype: float32, depth: 1048576}
        kernels:
          - {name: copy, kind: cpu.copy, input: a, output: b}
        """;

    /// <summary>The huge pipeline, validated without its size (as a depth of 2, then made deep).</summary>
    private static ValidatedPipeline HugePipeline()
    {
        var shallow = Parse(Huge.Replace("depth: 1048576", "depth: 2", StringComparison.Ordinal));
        var spec = shallow.Spec with { Streams = [.. shallow.Spec.Streams.Select(s => s.Name == "huge" ? s with { Depth = 1 << 20 } : s)] };
        return shallow with { Spec = spec, Graph = new PipelineGraph(spec) };
    }

    [Fact]
    public void Document_LargerThanSharedMemory_FailsValidationWithTheSizes()
    {
        var needed = SharedMemoryCapacity.NeededBytes(HugePipeline());

        var error = Assert.Single(PipelineDocument.Check(Huge, "huge.yaml").Errors);

        Assert.Equal("shared_memory", error.Path);
        Assert.Equal(2, error.Position.Line);
        Assert.StartsWith($"the streams need {SharedMemoryCapacity.Size(needed)} of shared memory and /dev/shm has ", error.Message, StringComparison.Ordinal);
        Assert.Matches(@" has [0-9.]+ [KMGTPE]iB \([0-9,]+ bytes\) free; ", error.Message);
        Assert.StartsWith("2.0 PiB", SharedMemoryCapacity.Size(needed), StringComparison.Ordinal);
    }

    [Fact]
    public void Document_LargerThanSharedMemory_FailsAsJsonAndAsAFile()
    {
        var json = PipelineDocument.ToJson(HugePipeline().Spec);
        Assert.Contains(PipelineDocument.CheckJson(json).Errors, e => e.Path == "shared_memory" && e.Message.Contains("of shared memory and /dev/shm has", StringComparison.Ordinal));
        Assert.Throws<DocumentValidationException>(() => PipelineDocument.Validate(HugePipeline().Spec));

        var path = Path.Combine(Path.GetTempPath(), $"flowline-huge-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, Huge);
        try
        {
            var e = Assert.Throws<DocumentValidationException>(() => PipelineDocument.Load(path));
            Assert.Contains("of shared memory and /dev/shm has", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Streams_OnlyAttachedTo_DoNotCount()
    {
        var yaml = Huge.Replace("depth: 1048576}", "depth: 1048576, mode: attach}", StringComparison.Ordinal);

        Assert.Empty(Docs.Errors(yaml));
    }

    [Fact]
    public void Runtime_CheckingItsPipelineAgain_DoesNotCountSharedMemory()
    {
        // A manager and its workers check the pipeline again once its streams exist: that check leaves /dev/shm out.
        Assert.True(PipelineDocument.CheckWithTasks(PipelineDocument.ToJson(HugePipeline().Spec), null, null, [], []).IsValid);
    }

    [Fact]
    public void NeededBytes_AreTheBytesABuildCreates_AndNothingOnceBuilt()
    {
        var yaml = $"""
            namespace: {Namespace}
            shared_memory:
              - {"{"}name: a, shape: [64], dtype: float32{"}"}
              - {"{"}name: b, shape: [64], dtype: float32, depth: 16, delivery: lossless{"}"}
              - {"{"}name: c, shape: [5, 7], dtype: float64, depth: 2{"}"}
            kernels:
              - {"{"}name: copy, kind: cpu.copy, input: a, output: b{"}"}
            sinks:
              - {"{"}name: out, kind: null.sink, stream: b{"}"}
            """;
        var pipeline = Parse(yaml);
        var needed = SharedMemoryCapacity.NeededBytes(pipeline);

        var manager = Manager(yaml);
        manager.Build();
        var created = SharedMemoryNamespace.List(Namespace).Sum(name => new FileInfo(SharedMemoryNamespace.PathOf(Namespace, name)).Length); // regions, not the lease

        Assert.Equal(created, needed);
        Assert.Equal(0, SharedMemoryCapacity.NeededBytes(pipeline));
    }

    [Fact]
    public void Problem_NamesTheSizeNeededAndTheSizeAvailable()
    {
        Assert.Null(SharedMemoryCapacity.Problem(1 << 30, 1 << 30));
        Assert.Equal(
            "the streams need 3.0 GiB (3,221,225,472 bytes) of shared memory and /dev/shm has 1.5 GiB (1,610,612,736 bytes) free; " +
            "make the frames smaller or the rings shallower (depth), or make /dev/shm larger",
            SharedMemoryCapacity.Problem(3L << 30, 3L << 29));
        Assert.Equal("512 bytes", SharedMemoryCapacity.Size(512));
    }
}
