using System.Text.Json.Nodes;

namespace Flowline.Cli.Tests;

/// <summary>
/// <c>flowline bench soak</c> run as a child process: a real server (its child), worker processes killed
/// and restarted, readers coming and going; and a bad option refused before anything starts.
/// </summary>
public sealed class BenchSoakTests
{
    private static readonly string AoBasic = Path.Combine("examples", "ao-basic", "pipeline.yaml");

    [Fact]
    public void Soak_AoBasicWithKills_PassesReportsEveryFigureAndLeavesNothing()
    {
        // Paced sources: the run shares 2 cores with the other test classes.
        var result = Cli.Run("bench", "soak", "--document", AoBasic, "--duration", "4", "--kill-interval", "1.5", "--readers", "2", "--rate", "500", "--json");

        Assert.True(result.ExitCode == 0, $"exit code {result.ExitCode}\nstderr:\n{result.Error}\nstdout:\n{result.Output}");
        var report = JsonNode.Parse(result.Output)!.AsObject();
        Assert.True((bool?)report["passed"]);
        Assert.Empty(report["not_zero"]!.AsArray());
        Assert.Equal(
            ["frames_lost", "torn_frames_accepted", "out_of_order_frames", "reader_errors", "restarts_failed", "unexpected_failures", "status_errors", "leftovers"],
            report["checks"]!.AsObject().Select(p => p.Key));
        Assert.All(report["checks"]!.AsObject(), p => Assert.Equal(0, (long?)p.Value));

        // Every kill was seen, restarted with a new process, and frames went through it again.
        var kills = report["kills"]!.AsArray();
        Assert.NotEmpty(kills);
        Assert.Equal(kills.Count, (int?)report["restarts_done"]);
        Assert.Equal("wfs_camera", (string?)kills[0]!["worker"]); // sources first
        Assert.All(kills, k =>
        {
            Assert.Null((string?)k!["error"]);
            Assert.NotEqual((int?)k["pid"], (int?)k["new_pid"]);
            Assert.NotNull((double?)k["resumed_ms"]);
        });

        // Both deliveries read frames, and payloads were checked on the source's stream by frame id.
        var readers = report["readers"]!.AsArray();
        Assert.Equal(["lossless", "latest"], readers.Select(r => (string?)r!["delivery"]));
        Assert.All(readers, r => Assert.True((long?)r!["frames"] > 0, r!.ToJsonString()));
        Assert.Contains(report["frame_checks"]!.AsArray(), c => (string?)c!["stream"] == "wfs_image" && (string?)c["check"] == "frame_id");

        // The sink (never killed) consumed every frame its writer published.
        var sink = report["sink_count"]!;
        Assert.Equal("deformable_mirror", (string?)sink["sink"]);
        Assert.True((long?)sink["frames_published"] > 0);
        Assert.Equal((long?)sink["frames_published"], (long?)sink["frames_consumed"]);

        Assert.True((long?)report["status"]!["requests"] > 0);
        var processes = report["processes"]!.AsArray().Select(p => (string?)p!["name"]).ToHashSet();
        Assert.Superset(new HashSet<string?> { "server", "soak", "wfs_camera", "centroid", "flatten", "reconstruct", "integrate", "clip", "deformable_mirror" }, processes);
        var server = report["processes"]!.AsArray().Single(p => (string?)p!["name"] == "server")!;
        Assert.True((long?)server["max_bytes"] >= (long?)server["first_bytes"]);
        Assert.NotNull((long?)server["warm_bytes"]); // it ran the whole soak, longer than the warm-up (1 s here)
        Assert.Equal(0, (int?)report["server_exit_code"]);
        Assert.Empty(report["leftovers"]!.AsArray());
        Leftovers.AssertNothingLeft((string)report["namespace"]!);
    }

    [Fact]
    public void Soak_UnknownWorkerToKill_IsRefusedBeforeAnythingStarts()
    {
        var result = Cli.Run("bench", "soak", "--document", AoBasic, "--kill", "centroid", "nosuch");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("--kill: the pipeline has no source, kernel or sink 'nosuch'; it has wfs_camera, centroid,", result.Error, StringComparison.Ordinal);
        Assert.Equal("", result.Output);
    }
}
