using System.Text.Json.Nodes;
using Flowline.Runtime;

namespace Flowline.Tests.Runtime;

/// <summary>
/// The README's loop with an unpaced camera (examples/ao-basic-unpaced), run by real worker processes: the
/// camera laps the ring while the centroid stage computes in place on the latest frame it holds, and no
/// computation is thrown away (decision 100).
/// </summary>
public sealed class LatestHoldPipelineTests : RuntimeTest
{
    [Fact]
    public void AoBasicUnpaced_CentroidStage_SkipsFramesButDiscardsNoComputation()
    {
        var example = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "examples", "ao-basic-unpaced", "pipeline.yaml"));
        Assert.DoesNotContain("rate_hz:", example, StringComparison.Ordinal);
        var manager = Manager(example);
        manager.Build();
        manager.Start();
        WaitUntil(() => Frames(manager, "centroid") > 3000 && Skipped(manager) > 0, "the centroid stage computes 3,000 frames while the camera laps it", seconds: 60);
        var status = manager.Status().Json();
        manager.Stop();

        var workers = status["workers"]!.AsObject();
        foreach (var (name, worker) in workers)
        {
            Assert.True(worker!["discarded_computes"] is not null, $"worker '{name}' has no discarded_computes in its status");
            Assert.Equal(0L, (long)worker["discarded_computes"]!);
            Assert.Equal(0L, (long)worker["torn_frames"]!);
        }

        Assert.Contains("centroid", workers.Select(w => w.Key));
    }

    /// <summary>Camera frames the centroid stage skipped (latest delivery): proof that the camera lapped it.</summary>
    private static long Skipped(PipelineManager manager) =>
        manager.Status().Json()["workers"]!["centroid"]!["skipped_per_input"] is JsonObject skipped ? skipped.Sum(p => (long?)p.Value ?? 0) : 0;
}
