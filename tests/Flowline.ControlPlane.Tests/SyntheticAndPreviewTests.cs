using System.Net;
using System.Text.Json.Nodes;

namespace Flowline.ControlPlane.Tests;

/// <summary><c>/synthetic/start</c>, <c>/synthetic/stop</c> and <c>/streams/{name}/latest</c>.</summary>
public sealed class SyntheticAndPreviewTests : ServerTest
{
    private async Task ServeSourcelessAsync()
    {
        var document = (await GetOkAsync("/document"))["document"]!.AsObject();
        var reply = await PutAsync("/document", SourcelessDocument(document));
        Assert.True(reply.Status == HttpStatusCode.OK, reply.Text);
    }

    private async Task<long> SinkConsumedAsync() => (long?)(await GetOkAsync("/status"))["sinks"]!["sink"]!["frames_consumed"] ?? 0;

    [Fact]
    public async Task SyntheticStart_StreamWithAConfiguredSource_Is400()
    {
        await PostOkAsync("/commands/start");
        var reply = await PostAsync("/synthetic/start", new JsonObject { ["stream_name"] = "input_vector", ["pattern"] = "ramp" });
        var detail = AssertError(reply, HttpStatusCode.BadRequest);
        Assert.Contains("camera", detail, StringComparison.Ordinal);
        Assert.Empty((await GetOkAsync("/status"))["synthetic_sources"]!.AsObject());
    }

    [Fact]
    public async Task SyntheticStart_UnknownStream_Is404()
    {
        await PostOkAsync("/commands/build");
        var reply = await PostAsync("/synthetic/start", new JsonObject { ["stream_name"] = "nope" });
        Assert.Contains("nope", AssertError(reply, HttpStatusCode.NotFound), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SyntheticStart_WhenInitialized_Is409()
    {
        await ServeSourcelessAsync();
        var reply = await PostAsync("/synthetic/start", new JsonObject { ["stream_name"] = "input_vector" });
        Assert.Contains("initialized", AssertError(reply, HttpStatusCode.Conflict), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SyntheticStart_UnknownPattern_Is400()
    {
        await ServeSourcelessAsync();
        await PostOkAsync("/commands/build");
        var reply = await PostAsync("/synthetic/start", new JsonObject { ["stream_name"] = "input_vector", ["pattern"] = "zigzag" });
        Assert.Contains("zigzag", AssertError(reply, HttpStatusCode.BadRequest), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SyntheticStop_NoSyntheticInput_Is404()
    {
        await PostOkAsync("/commands/build");
        var reply = await PostAsync("/synthetic/stop", new JsonObject { ["stream_name"] = "input_vector" });
        AssertError(reply, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Synthetic_RampOnASourcelessStream_FramesFlowToTheSink_ThenStops()
    {
        await ServeSourcelessAsync();
        await PostOkAsync("/commands/build");
        var started = await PostOkAsync("/synthetic/start", new JsonObject { ["stream_name"] = "input_vector", ["pattern"] = "ramp", ["rate_hz"] = 200 });
        Assert.Equal(["snapshot", "synthetic_source"], started.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Equal("input_vector", (string?)started["synthetic_source"]!["stream_name"]);
        Assert.Equal("ramp", (string?)started["synthetic_source"]!["pattern"]);
        Assert.Equal(200.0, (double)started["synthetic_source"]!["rate_hz"]!);
        Assert.Equal("built", (string?)started["snapshot"]!["state"]);
        Assert.NotNull(started["snapshot"]!["synthetic_sources"]!["input_vector"]);

        await PostOkAsync("/commands/start");
        await WaitUntilAsync(async () => await SinkConsumedAsync() > 10, "the sink consumes frames of the synthetic input");

        JsonObject latest = null!;
        await WaitUntilAsync(
            async () => (bool?)(latest = await GetOkAsync("/streams/output_vector/latest"))["available"] == true,
            "output_vector has a frame");
        Assert.Equal("output_vector", (string?)latest["stream"]);
        Assert.Equal("float32", (string?)latest["dtype"]);
        Assert.Equal([64], latest["shape"]!.AsArray().Select(d => (int)d!));
        Assert.False((bool)latest["truncated"]!);
        var values = latest["data"]!.AsArray().Select(v => (double)v!).ToList();
        Assert.Equal(64, values.Count);

        // A ramp of period 64 and amplitude 1: frame k holds ((i + k) mod 64) / 64, so the frame is a
        // rotation of 0, 1/64, ..., 63/64 (copied unchanged by the kernel).
        Assert.Equal(Enumerable.Range(0, 64).Select(i => i / 64.0), values.Order());
        var k = (int)Math.Round(values[0] * 64);
        Assert.Equal(Enumerable.Range(0, 64).Select(i => ((i + k) % 64) / 64.0), values);

        var consumed = await SinkConsumedAsync();
        await WaitUntilAsync(async () => await SinkConsumedAsync() > consumed + 5, "the sink's frames_consumed grows");

        var stopped = await PostOkAsync("/synthetic/stop", new JsonObject { ["stream_name"] = "input_vector" });
        Assert.Equal(["snapshot", "stream_name"], stopped.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Equal("input_vector", (string?)stopped["stream_name"]);
        Assert.Empty(stopped["snapshot"]!["synthetic_sources"]!.AsObject());
        Assert.Empty((await GetOkAsync("/status"))["synthetic_sources"]!.AsObject());
    }

    [Fact]
    public async Task Latest_UnknownStream_Is404()
    {
        await PostOkAsync("/commands/build");
        Assert.Contains("nope", AssertError(await GetAsync("/streams/nope/latest"), HttpStatusCode.NotFound), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Latest_BeforeBuild_Is409()
    {
        Assert.Contains("initialized", AssertError(await GetAsync("/streams/input_vector/latest"), HttpStatusCode.Conflict), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Latest_BuiltWithNoFrame_IsNotAvailable()
    {
        await PostOkAsync("/commands/build");
        var latest = await GetOkAsync("/streams/output_vector/latest");
        Assert.False((bool)latest["available"]!);
        Assert.Null(latest["data"]);
    }

    [Fact]
    public async Task Latest_AfterShutdown_Is409()
    {
        await PostOkAsync("/commands/build");
        await PostOkAsync("/commands/shutdown");
        AssertError(await GetAsync("/streams/input_vector/latest"), HttpStatusCode.Conflict);
    }
}
