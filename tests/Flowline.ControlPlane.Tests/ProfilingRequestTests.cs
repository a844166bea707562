using System.Net;
using System.Text.Json.Nodes;

namespace Flowline.ControlPlane.Tests;

/// <summary>
/// Profiling joined with the process registry: <c>process_id</c> in <c>GET /profiling</c>, and the routed
/// operations <c>profiling_snapshot</c>, <c>set_profiling_trace</c> and <c>profiling_trace_batch</c> (decision 95),
/// against the served copy-64 example.
/// </summary>
public sealed class ProfilingRequestTests : ServerTest
{
    private async Task<(JsonArray Processes, string CopyId)> StartAsync()
    {
        await PostOkAsync("/commands/build");
        await PostOkAsync("/commands/start");
        await WaitUntilAsync(async () => (await FramesAsync("copy")) > 0, "copy computed a frame", 30);
        var processes = (await GetOkAsync("/processes"))["processes"]!.AsArray();
        var copy = processes.Single(p => p!["nodes"]!.AsArray().Any(n => (string?)n == "copy"))!;
        return (processes, (string)copy["id"]!);
    }

    [Fact]
    public async Task Profiling_EveryNodeWriterAndReader_HasTheProcessIdOfARegisteredProcess()
    {
        var (processes, copyId) = await StartAsync();
        JsonObject profiling = null!;
        await WaitUntilAsync(
            async () =>
            {
                profiling = await GetOkAsync("/profiling");
                return profiling["nodes"]!.AsArray().Any(n => (string?)n!["name"] == "copy" && n["compute"] is not null);
            },
            "copy's compute histogram appeared",
            30);

        var ids = processes.Select(p => (string)p!["id"]!).ToHashSet();
        var nodes = profiling["nodes"]!.AsArray();
        Assert.NotEmpty(nodes);
        Assert.All(nodes, n => Assert.Contains((string?)n!["process_id"] ?? "(null)", ids));
        Assert.Equal(copyId, (string?)nodes.Single(n => (string?)n!["name"] == "copy")!["process_id"]);

        var streams = profiling["streams"]!.AsArray();
        Assert.Equal(2, streams.Count);
        foreach (var stream in streams)
        {
            Assert.Contains((string?)stream!["writer"]!["process_id"] ?? "(null)", ids);
            Assert.NotEmpty(stream["readers"]!.AsArray());
            Assert.All(stream["readers"]!.AsArray(), r => Assert.Contains((string?)r!["process_id"] ?? "(null)", ids));
        }

        var output = streams.Single(s => (string?)s!["name"] == "output_vector")!;
        Assert.Equal(copyId, (string?)output["writer"]!["process_id"]);
        var input = streams.Single(s => (string?)s!["name"] == "input_vector")!;
        Assert.Equal(copyId, (string?)input["readers"]!.AsArray().Single(r => (string?)r!["node"] == "copy")!["process_id"]);
        await PostOkAsync("/commands/stop");
    }

    [Fact]
    public async Task ProfilingSnapshot_ByNodeAndByProcess_IsTheProcesssOwnFigures()
    {
        var (processes, copyId) = await StartAsync();
        var reply = await PostOkAsync("/nodes/copy/requests", new JsonObject { ["op"] = "profiling_snapshot" });
        Assert.Equal(copyId, (string?)reply["process_id"]);
        var result = reply["result"]!;
        Assert.Equal("copy", (string?)Assert.Single(result["nodes"]!.AsArray())!["name"]);
        var streams = result["streams"]!.AsArray();
        Assert.Equal(["input_vector", "output_vector"], streams.Select(s => (string)s!["name"]!).Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(copyId, (string?)streams.Single(s => (string?)s!["name"] == "output_vector")!["writer"]!["process_id"]);
        var readers = streams.Single(s => (string?)s!["name"] == "input_vector")!["readers"]!.AsArray();
        Assert.Equal(copyId, (string?)Assert.Single(readers)!["process_id"]);
        Assert.Empty(streams.Single(s => (string?)s!["name"] == "output_vector")!["readers"]!.AsArray()); // the sink's reader is another process's

        var byProcess = await PostOkAsync($"/processes/{copyId}/requests", new JsonObject { ["op"] = "profiling_snapshot" });
        Assert.Equal("copy", (string?)byProcess["result"]!["nodes"]![0]!["name"]);
        var managerId = (string)processes.Single(p => (string?)p!["role"] == "manager")!["id"]!;
        var manager = await PostOkAsync($"/processes/{managerId}/requests", new JsonObject { ["op"] = "profiling_snapshot" });
        Assert.Equal(managerId, (string?)manager["process_id"]);

        var bad = await PostAsync("/nodes/copy/requests", new JsonObject { ["op"] = "profiling_snapshot", ["args"] = new JsonObject { ["node"] = "copy" } });
        Assert.Equal("invalid_request", Code(bad, HttpStatusCode.BadRequest));
        await PostOkAsync("/commands/stop");
        Assert.Equal("process_exited", Code(await PostAsync($"/processes/{copyId}/requests", new JsonObject { ["op"] = "profiling_snapshot" }), HttpStatusCode.ServiceUnavailable));
    }

    [Fact]
    public async Task SetProfilingTrace_ThenTraceBatches_ReadTheSameRecordsForTwoReaders()
    {
        var (_, copyId) = await StartAsync();
        var set = await PostOkAsync($"/processes/{copyId}/requests", new JsonObject
        {
            ["op"] = "set_profiling_trace",
            ["args"] = new JsonObject { ["streams"] = new JsonArray("input_vector"), ["every"] = 2, ["seconds"] = 60 },
        });
        var state = set["result"]!;
        Assert.True((bool)state["enabled"]!);
        Assert.Equal(["copy"], state["nodes"]!.AsArray().Select(n => (string)n!).ToArray());
        Assert.Equal(2, (int)state["every"]!);
        var start = (long)state["cursor"]!;

        JsonNode batch = null!;
        await WaitUntilAsync(
            async () =>
            {
                batch = (await PostOkAsync("/nodes/copy/requests", new JsonObject { ["op"] = "profiling_trace_batch", ["args"] = new JsonObject { ["cursor"] = start } }))["result"]!;
                return batch["samples"]!.AsArray().Count > 0;
            },
            "copy wrote trace records",
            30);
        var samples = batch["samples"]!.AsArray();
        Assert.All(samples, s => Assert.Equal(("copy", "input_vector"), ((string?)s!["node"], (string?)s["stream"])));
        Assert.True((long)batch["cursor"]! >= start + samples.Count);

        // A second reader from the same cursor gets the same records: reading takes nothing.
        var again = (await PostOkAsync($"/processes/{copyId}/requests", new JsonObject { ["op"] = "profiling_trace_batch", ["args"] = new JsonObject { ["cursor"] = start } }))["result"]!;
        var first = samples[0]!;
        Assert.Contains(again["samples"]!.AsArray(), s => (long)s!["seq"]! == (long)first["seq"]! && (ulong)s["frame_id"]! == (ulong)first["frame_id"]!);

        var off = (await PostOkAsync("/nodes/copy/requests", new JsonObject { ["op"] = "set_profiling_trace", ["args"] = new JsonObject { ["enabled"] = false } }))["result"]!;
        Assert.False((bool)off["enabled"]!);

        var badSet = await PostAsync("/nodes/copy/requests", new JsonObject { ["op"] = "set_profiling_trace", ["args"] = new JsonObject { ["every"] = 0 } });
        Assert.Equal("invalid_request", Code(badSet, HttpStatusCode.BadRequest));
        Assert.Equal("every", (string?)badSet.Json["field"]);
        var badBatch = await PostAsync("/nodes/copy/requests", new JsonObject { ["op"] = "profiling_trace_batch", ["args"] = new JsonObject { ["cursor"] = -1 } });
        Assert.Equal("invalid_request", Code(badBatch, HttpStatusCode.BadRequest));
        Assert.Equal("cursor", (string?)badBatch.Json["field"]);
        Assert.Equal("no_handler", Code(await PostAsync("/nodes/camera/requests", new JsonObject { ["op"] = "profiling_trace_batch" }), HttpStatusCode.NotFound)); // a source reads nothing to trace
        var sinkBatch = (await PostOkAsync("/nodes/sink/requests", new JsonObject { ["op"] = "profiling_trace_batch" }))["result"]!; // sinks trace their input (decision 110)
        Assert.NotNull(sinkBatch["cursor"]);
        await PostOkAsync("/commands/stop");
    }

    [Fact]
    public async Task SetProfilingTrace_Routed_WakesTheTraceStream_AsPostProfilingTracesDoes()
    {
        var (_, copyId) = await StartAsync();
        var traces = Server.Service.Traces!;
        var before = traces.Wakes;
        await PostOkAsync("/profiling/traces", new JsonObject { ["seconds"] = 60 });
        Assert.Equal(before + 1, traces.Wakes); // the direct path

        await PostOkAsync($"/processes/{copyId}/requests", new JsonObject { ["op"] = "set_profiling_trace", ["args"] = new JsonObject { ["seconds"] = 60 } });
        Assert.Equal(before + 2, traces.Wakes);
        await PostOkAsync("/nodes/copy/requests", new JsonObject { ["op"] = "set_profiling_trace", ["args"] = new JsonObject { ["every"] = 2 } });
        Assert.Equal(before + 3, traces.Wakes);

        // Switching off, or a refused request, switches nothing on: no wake-up.
        await PostOkAsync("/nodes/copy/requests", new JsonObject { ["op"] = "set_profiling_trace", ["args"] = new JsonObject { ["enabled"] = false } });
        var refused = await PostAsync("/nodes/copy/requests", new JsonObject { ["op"] = "set_profiling_trace", ["args"] = new JsonObject { ["every"] = 0 } });
        Assert.Equal("invalid_request", Code(refused, HttpStatusCode.BadRequest));
        Assert.Equal(before + 3, traces.Wakes);
        await PostOkAsync("/commands/stop");
    }

    private static string? Code(Reply reply, HttpStatusCode status)
    {
        Assert.True(reply.Status == status, $"expected {(int)status}, got {(int)reply.Status}: {reply.Text}");
        return (string?)reply.Json["code"];
    }
}
