using System.Diagnostics;
using System.Text.Json.Nodes;
using Flowline.Client;

namespace Flowline.ControlPlane.Tests;

/// <summary><c>GET /profiling</c> in the contract's shape, through the client, and the profiling series of <c>/metrics</c> (decision 90).</summary>
public sealed class ProfilingEndpointTests : ServerTest
{
    [Fact]
    public async Task Profiling_BeforeBuild_IsEmpty_AndWhileRunning_HasCountersAndHistograms()
    {
        var ct = TestContext.Current.CancellationToken;
        using var client = new RemoteManagerClient(Server.Address);
        var empty = await client.ProfilingAsync(ct);
        Assert.Empty(empty.Streams);
        Assert.All(empty.Nodes, n => Assert.Null(n.Compute)); // nodes are listed, with nothing measured yet

        await client.BuildAsync(cancellationToken: ct);
        await client.StartAsync(cancellationToken: ct);
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var snapshot = await client.ProfilingAsync(ct);
            if (snapshot.Nodes.SingleOrDefault(n => n.Name == "copy")?.Compute?.Count > 0
                && snapshot.Streams.Single(s => s.Name == "input_vector").Readers.Any(r => r.Node == "copy" && r.Latency is not null))
            {
                break;
            }

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), "the copy worker's histograms never appeared in GET /profiling");
            await Task.Delay(50, ct);
        }

        // The wire shape of docs/http-api.md (and the console's contract), field by field.
        using var response = await Http.GetAsync(new Uri("/profiling", UriKind.Relative), ct);
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!.AsObject();
        Assert.NotNull((string?)json["time"]);
        var input = json["streams"]!.AsArray().Single(s => (string?)s!["name"] == "input_vector")!.AsObject();
        var writer = input["writer"]!.AsObject();
        foreach (var field in new[] { "frames", "bytes", "blocked_seconds", "process_id", "node", "pid", "state", "space_waits" })
        {
            Assert.True(writer.ContainsKey(field), $"writer has no '{field}'");
        }

        Assert.Equal("camera", (string?)writer["node"]);
        var reader = input["readers"]!.AsArray().Single(r => (string?)r!["node"] == "copy")!.AsObject();
        foreach (var field in new[] { "node", "process_id", "frames", "bytes", "wait_seconds", "skipped", "fill", "latency", "pid", "delivery" })
        {
            Assert.True(reader.ContainsKey(field), $"reader has no '{field}'");
        }

        var latency = reader["latency"]!.AsObject();
        Assert.Equal(["count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us", "buckets"], latency.Select(p => p.Key).ToArray());
        Assert.True((long)latency["count"]! > 0);

        // Its buckets: {up_to_us, count}, bounds 1, 2, 4, ... µs from the first, the last one not empty, adding up to count.
        var buckets = latency["buckets"]!.AsArray().Select(b => b!.AsObject()).ToList();
        Assert.Equal(Enumerable.Range(0, buckets.Count).Select(i => Math.Pow(2, i)), buckets.Select(b => (double)b["up_to_us"]!));
        Assert.All(buckets, b => Assert.Equal(["up_to_us", "count"], b.Select(p => p.Key).ToArray()));
        Assert.Equal((long)latency["count"]!, buckets.Sum(b => (long)b["count"]!));
        Assert.True((long)buckets[^1]["count"]! > 0);
        // The median is in the bucket where the counts pass half of them (within the histograms' 1 %).
        var half = (long)latency["count"]! / 2.0;
        var running = 0L;
        var median = buckets.First(b => (running += (long)b["count"]!) >= half);
        Assert.InRange((double)latency["p50_us"]!, (double)median["up_to_us"]! / 2 * 0.99, (double)median["up_to_us"]! * 1.01);
        var node = json["nodes"]!.AsArray().Single(n => (string?)n!["name"] == "copy")!.AsObject();
        Assert.True((double)node["compute"]!["p50_us"]! <= (double)node["compute"]!["max_us"]!);

        // The same figures as Prometheus series.
        var metrics = await Http.GetStringAsync(new Uri("/metrics", UriKind.Relative), ct);
        Assert.Contains("flowline_node_compute_duration_p99_seconds{", metrics, StringComparison.Ordinal);
        Assert.Contains("flowline_stream_reader_latency_p50_seconds{", metrics, StringComparison.Ordinal);
        Assert.Contains("flowline_stream_reader_frames_total{", metrics, StringComparison.Ordinal);
        Assert.Contains("flowline_stream_reader_bytes_total{", metrics, StringComparison.Ordinal);
        Assert.Contains("flowline_stream_reader_wait_time_seconds_total{", metrics, StringComparison.Ordinal);
        Assert.Contains("flowline_stream_writer_blocked_time_seconds_total{", metrics, StringComparison.Ordinal);
        Assert.Contains("flowline_stream_bytes_published_bytes_total{", metrics, StringComparison.Ordinal);
        Assert.Contains("reader=\"copy\"", metrics, StringComparison.Ordinal);

        await client.StopAsync(cancellationToken: ct);
    }
}
