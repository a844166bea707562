using Flowline.Runtime;
using Flowline.SharedMemory;
using HdrHistogram.Utilities;

namespace Flowline.Tests.Runtime;

/// <summary>Profiling (decision 90): histograms as workers encode them, and the manager's snapshot of a running pipeline.</summary>
public sealed class ProfilingTests : RuntimeTest
{
    [Fact]
    public void AHistogramEncodedIntoAPreallocatedBuffer_DecodesToTheSameFigures()
    {
        var histogram = ProfileHistograms.Create();
        for (var i = 1; i <= 1000; i++)
        {
            ProfileHistograms.Record(histogram, i * 1000L); // 1 µs .. 1 ms
        }

        ProfileHistograms.Record(histogram, -5); // clamped to 1 ns, not thrown
        ProfileHistograms.Record(histogram, long.MaxValue); // clamped to an hour

        // What WorkerProfiler does: one buffer and one array for the life of the worker.
        var bytes = new byte[64 * 1024];
        var buffer = ByteBuffer.Allocate(bytes.Length);
        var length = ProfileHistograms.Encode(histogram, buffer, bytes);
        Assert.InRange(length, 1, ProfileBlock.EncodedCapacity);

        var decoded = ProfileHistograms.Decode(bytes.AsSpan(0, length).ToArray());
        var summary = ProfileHistograms.Summarize(decoded);
        Assert.NotNull(summary);
        Assert.Equal(1002, summary.Count);
        Assert.InRange(summary.P50Us, 495, 505); // 2 significant digits: within 1 %
        Assert.InRange(summary.MaxUs, ProfileHistograms.HighestNs / 1000 * 0.99, ProfileHistograms.HighestNs / 1000 * 1.01);
        Assert.Null(ProfileHistograms.Summarize(ProfileHistograms.Create()));
        Assert.Null(ProfileHistograms.Decode([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40]));
    }

    [Fact]
    public void ASummarysBuckets_ArePowersOfTwoMicroseconds_FromOneMicrosecondToTheLastNonEmpty()
    {
        var histogram = ProfileHistograms.Create();
        ProfileHistograms.Record(histogram, 300); // 0.3 µs: the first bucket (up to 1 µs)
        ProfileHistograms.Record(histogram, 1000); // 1 µs exactly: still the first
        for (var i = 0; i < 3; i++)
        {
            ProfileHistograms.Record(histogram, 3_000); // 3 µs: (2, 4]
        }

        ProfileHistograms.Record(histogram, 4_000); // 4 µs exactly: (2, 4]
        ProfileHistograms.Record(histogram, 5_000); // (4, 8]
        ProfileHistograms.Record(histogram, 100_000); // 100 µs: (64, 128]

        var summary = ProfileHistograms.Summarize(histogram)!;
        Assert.NotNull(summary.Buckets);
        Assert.Equal([1.0, 2, 4, 8, 16, 32, 64, 128], summary.Buckets.Select(b => b.UpToUs));
        Assert.Equal([2L, 0, 4, 1, 0, 0, 0, 1], summary.Buckets.Select(b => b.Count));
        Assert.Equal(summary.Count, summary.Buckets.Sum(b => b.Count));

        // The JSON names of the wire format (docs/http-api.md), which Python workers' summaries share.
        var json = System.Text.Json.Nodes.JsonNode.Parse(Flowline.Status.StatusJson.Serialize(new Flowline.Status.NodeProfile("n", summary)))!;
        Assert.Equal(4.0, (double)json["compute"]!["buckets"]![2]!["up_to_us"]!);
        Assert.Equal(4L, (long)json["compute"]!["buckets"]![2]!["count"]!);

        // Only values above 1 µs: the list still starts at the first bucket; a value of an hour ends it at 2^32 µs.
        var slow = ProfileHistograms.Create();
        ProfileHistograms.Record(slow, 10_000);
        ProfileHistograms.Record(slow, ProfileHistograms.HighestNs);
        var buckets = ProfileHistograms.Summarize(slow)!.Buckets!;
        Assert.Equal(33, buckets.Count);
        Assert.Equal(Math.Pow(2, 32), buckets[^1].UpToUs);
        Assert.Equal([0L, 0, 0, 0, 1], buckets.Take(5).Select(b => b.Count));
        Assert.Equal(2, buckets.Sum(b => b.Count));
    }

    [Fact]
    public void ARunningPipeline_HasCountersAndHistograms_MatchedToItsNodes()
    {
        var manager = Manager(PipelineManagerTests.CopyPipeline);
        manager.Build();
        manager.Start();
        WaitUntil(() => Frames(manager, "sink") > 30, "frames reach the sink");
        WaitUntil(
            () => manager.Profiling().Nodes.SingleOrDefault(n => n.Name == "copy")?.Compute?.Count > 0
                && manager.Profiling().Streams.Single(s => s.Name == "input").Readers.Any(r => r.Node == "copy" && r.Latency?.Count > 0)
                && manager.Profiling().Streams.Single(s => s.Name == "output").Readers.Any(r => r.Node == "sink" && r.Latency?.Count > 0)
                && manager.Profiling().Nodes.All(n => n.Compute?.Count > 0),
            "every worker (source, kernel, sink) published its histograms");

        var running = manager.Profiling();
        Assert.False(running.Stale);
        var copy = running.Nodes.Single(n => n.Name == "copy");
        Assert.NotNull(copy.Pid);
        Assert.True(copy.Compute!.P50Us <= copy.Compute.MaxUs);
        var input = running.Streams.Single(s => s.Name == "input");
        Assert.Equal("camera", input.Writer.Node);
        Assert.Equal(input.Writer.Frames * 64 * sizeof(float), input.Writer.Bytes);
        var reader = input.Readers.Single(r => r.Node == "copy");
        Assert.Equal(copy.Pid, reader.Pid);
        Assert.True(reader.Latency!.P50Us > 0);
        Assert.Equal(reader.Frames * 256, reader.Bytes);
        // Sources and sinks keep histograms too (decision 110): the sink's reader is matched to its node, with its latency.
        var sinkReader = Assert.Single(running.Streams.Single(s => s.Name == "output").Readers);
        Assert.Equal("sink", sinkReader.Node);
        Assert.True(sinkReader.Latency!.P50Us > 0);
        Assert.Equal(["camera", "copy", "sink"], running.Nodes.Select(n => n.Name).Order(StringComparer.Ordinal));
        Assert.Equal(running.Nodes.Single(n => n.Name == "sink").Pid, sinkReader.Pid);

        manager.Stop();
        var stopped = manager.Profiling();
        var copyRead = stopped.Streams.Single(s => s.Name == "input").Readers;
        var output = stopped.Streams.Single(s => s.Name == "output");

        // Readers left their entries when their workers stopped; the writer's counters stay with the stream.
        Assert.Empty(copyRead);
        Assert.True(output.Writer.Frames > 30);
        Assert.DoesNotContain(stopped.Nodes, n => n.Compute is not null); // profile blocks go with the workers
    }
}
