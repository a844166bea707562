using Flowline.Client;
using Flowline.Status;

namespace Flowline.ControlPlane.Tests;

/// <summary>
/// What a client following <c>GET /events</c> gets without polling <c>/status</c> (the console's runtime tables):
/// <c>worker_metrics</c> with health, CPU and memory, also when only the health changed, and <c>stream_metrics</c>
/// with the streams' figures.
/// </summary>
public sealed class RuntimeFeedTests : ServerTest
{
    [Fact]
    public async Task Events_PushWorkerHealthCpuMemory_AndStreamFigures()
    {
        using var events = await EventStreamReader.OpenAsync(Http);
        Assert.Equal("initial", (string?)(await events.NextAsync()).Json["reason"]);
        await PostOkAsync("/commands/build");
        await PostOkAsync("/commands/start");

        var metrics = await events.WaitForEventAsync("worker_metrics", d => (string?)d["kernel"] == "copy" && (string?)d["health"] == "active", 30);
        Assert.NotNull(metrics.Json["cpu_percent"]);
        Assert.True((long)metrics.Json["rss_bytes"]! > 0, metrics.Raw);
        Assert.True((long)metrics.Json["frames_processed"]! > 0, metrics.Raw);

        // The streams' figures, as /status has them, read with the typed model.
        var frame = await events.WaitForEventAsync("stream_metrics", d => (long?)d["streams"]?["output_vector"]?["frames_published"] > 0, 30);
        var streams = StatusJson.Deserialize<StreamMetricsEvent>(frame.Json).Streams;
        Assert.Equal(["input_vector", "output_vector"], streams.Keys.Order(StringComparer.Ordinal));
        Assert.InRange(streams["output_vector"].Fill, 0, 1);
        Assert.True(streams["output_vector"].Capacity > 0);
        Assert.Equal(1, streams["output_vector"].Readers);

        // A change of health alone (no new frames) is pushed too.
        await PostOkAsync("/commands/pause");
        await events.WaitForEventAsync("worker_metrics", d => (string?)d["kernel"] == "copy" && (string?)d["health"] == "paused", 30);
        await PostOkAsync("/commands/stop");
    }

    [Fact]
    public async Task Client_ReadsTheStreamMetricsEvent_Typed()
    {
        using var client = new RemoteManagerClient(Server.Address);
        Assert.Equal("built", (await client.BuildAsync()).State);
        Assert.Equal("running", (await client.StartAsync()).State);
        using var follow = new CancellationTokenSource(TimeSpan.FromSeconds(60)); // a bound: no event in time fails the test
        StreamStatus? output = null;
        await foreach (var e in client.EventsAsync(cancellationToken: follow.Token))
        {
            if (e.Type != RemoteEvent.StreamMetricsType)
            {
                Assert.Null(e.AsStreamMetrics());
                continue;
            }

            if (e.AsStreamMetrics()!.Streams.TryGetValue("output_vector", out var s) && s.FramesPublished > 0)
            {
                output = s;
                break;
            }
        }

        Assert.NotNull(output);
        Assert.True(output.Capacity > 0);
        Assert.Equal("attached", output.WriterState);
    }
}
