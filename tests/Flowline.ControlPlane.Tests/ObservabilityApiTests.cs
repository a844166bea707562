using System.Net;
using System.Text.Json.Nodes;

namespace Flowline.ControlPlane.Tests;

/// <summary>Issue 12's endpoints: processes, routed requests, settings and topology.</summary>
public sealed class ObservabilityApiTests : ServerTest
{
    private static JsonObject AddDocument() => new()
    {
        ["shared_memory"] = new JsonArray(
            new JsonObject { ["name"] = "input", ["shape"] = new JsonArray(8), ["dtype"] = "float32" },
            new JsonObject { ["name"] = "output", ["shape"] = new JsonArray(8), ["dtype"] = "float32" }),
        ["sources"] = new JsonArray(new JsonObject
        {
            ["name"] = "camera",
            ["kind"] = "synthetic.array",
            ["stream"] = "input",
            ["parameters"] = new JsonObject { ["pattern"] = "constant", ["constant"] = 1.0, ["rate_hz"] = 200 },
        }),
        ["kernels"] = new JsonArray(new JsonObject
        {
            ["name"] = "add",
            ["kind"] = "cpu.add_constant",
            ["input"] = "input",
            ["output"] = "output",
            ["parameters"] = new JsonObject { ["constant"] = 2.0 },
        }),
        ["sinks"] = new JsonArray(new JsonObject { ["name"] = "sink", ["kind"] = "null.sink", ["stream"] = "output" }),
    };

    private async Task StartAddPipelineAsync()
    {
        var reply = await PutAsync("/document", AddDocument());
        Assert.True(reply.Status == HttpStatusCode.OK, reply.Text);
        await PostOkAsync("/commands/build");
        await PostOkAsync("/commands/start");
    }

    [Fact]
    public async Task Processes_AndRequests_ByNodeAndByProcess_WithTypedErrors()
    {
        await StartAddPipelineAsync();
        var processes = (await GetOkAsync("/processes"))["processes"]!.AsArray();
        Assert.Equal("manager", (string?)processes[0]!["role"]);
        var add = processes.Single(p => p!["nodes"]!.AsArray().Any(n => (string?)n == "add"))!;
        Assert.Equal("worker", (string?)add["role"]);

        var ping = await PostOkAsync("/nodes/add/requests", new JsonObject { ["op"] = "ping", ["timeout_ms"] = 5000 });
        Assert.True((bool)ping["ok"]!);
        Assert.Equal("add", (string?)ping["result"]!["node"]);
        Assert.Equal((string?)add["id"], (string?)ping["process_id"]);
        var stats = await PostOkAsync($"/processes/{(string?)add["id"]}/requests", new JsonObject { ["op"] = "process_stats" });
        Assert.Equal((int)add["pid"]!, (int)stats["result"]!["pid"]!);

        Assert.Equal("unknown_target", Code(await PostAsync("/nodes/nope/requests", new JsonObject { ["op"] = "ping" }), HttpStatusCode.NotFound));
        Assert.Equal("no_handler", Code(await PostAsync("/nodes/add/requests", new JsonObject { ["op"] = "frobnicate" }), HttpStatusCode.NotFound));
        Assert.Equal("invalid_request", Code(await PostAsync("/nodes/add/requests", new JsonObject { ["args"] = new JsonObject() }), HttpStatusCode.UnprocessableEntity));
        Assert.Equal("invalid_request", Code(await PostAsync("/nodes/add/requests", new JsonObject { ["op"] = "ping", ["timeout_ms"] = 0 }), HttpStatusCode.UnprocessableEntity));
        Assert.Equal("handler_error", Code(await PostAsync("/nodes/add/requests", new JsonObject { ["op"] = "update_setting", ["args"] = new JsonObject { ["values"] = new JsonObject { ["constant"] = "x" } } }), HttpStatusCode.InternalServerError));

        await PostOkAsync("/commands/stop");
        Assert.Equal("process_exited", Code(await PostAsync($"/processes/{(string?)add["id"]}/requests", new JsonObject { ["op"] = "ping" }), HttpStatusCode.ServiceUnavailable));
    }

    [Fact]
    public async Task Settings_SchemaSnapshotPatchEventsAndDocument()
    {
        await StartAddPipelineAsync();
        var schema = (await GetOkAsync("/settings/schema"))["nodes"]!["add"]!;
        Assert.Equal("cpu.add_constant", (string?)schema["kind"]);
        var field = schema["fields"]!.AsArray().Single()!;
        Assert.Equal(("constant", "number", true), ((string?)field["name"], (string?)field["type"], (bool)field["live"]!));

        var before = await GetOkAsync("/settings");
        Assert.Equal(0, (long)before["seq"]!);
        Assert.Equal(2.0, (double)before["nodes"]!["add"]!["constant"]!);

        var bad = await SendAsync(Http, HttpMethod.Patch, "/settings/add", """{"constant": "high"}""");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, bad.Status);
        Assert.Equal("constant", (string?)bad.Body!["field"]);
        Assert.Equal(0, (long)(await GetOkAsync("/settings"))["seq"]!);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(Http, HttpMethod.Patch, "/settings/nope", """{"constant": 1}""")).Status);

        var ok = await SendAsync(Http, HttpMethod.Patch, "/settings/add", """{"constant": 4.5}""");
        Assert.True(ok.Status == HttpStatusCode.OK, ok.Text);
        Assert.True((bool)ok.Body!["applied"]!);
        Assert.Equal(1, (long)ok.Body!["seq"]!);
        Assert.Equal(4.5, (double)ok.Body!["values"]!["constant"]!);

        var events = (await GetOkAsync("/settings/events?after_seq=0"))["events"]!.AsArray();
        var e = Assert.Single(events)!;
        Assert.Equal(("add", "constant", 2.0, 4.5), ((string?)e["node"], (string?)e["field"], (double)e["old"]!, (double)e["new"]!));
        Assert.Empty((await GetOkAsync("/settings/events?after_seq=1"))["events"]!.AsArray());

        var document = (await GetOkAsync("/document"))["document"]!;
        Assert.Equal(4.5, (double)document["kernels"]![0]!["parameters"]!["constant"]!);
        Assert.Equal(4.5, (double)(await GetOkAsync("/settings"))["nodes"]!["add"]!["constant"]!);
    }

    [Fact]
    public async Task SettingsEvents_AsServerSentEvents_ResumeWithLastEventId()
    {
        await StartAddPipelineAsync();
        foreach (var value in new[] { 3.0, 4.0, 5.0 })
        {
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(Http, HttpMethod.Patch, "/settings/add", $$"""{"constant": {{value}}}""")).Status);
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, "/settings/events");
        request.Headers.Accept.ParseAdd("text/event-stream");
        request.Headers.Add("Last-Event-ID", "1");
        using var cancel = new CancellationTokenSource(RequestTimeout);
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel.Token));
        var ids = new List<string>();
        while (ids.Count < 2 && await reader.ReadLineAsync(cancel.Token) is { } line)
        {
            if (line.StartsWith("id: ", StringComparison.Ordinal))
            {
                ids.Add(line[4..]);
            }
        }

        Assert.Equal(["2", "3"], ids);
    }

    [Fact]
    public async Task Topology_NodesEdgesAndOwners()
    {
        await StartAddPipelineAsync();
        var topology = await GetOkAsync("/topology");
        Assert.Equal(3, topology["nodes"]!.AsArray().Count);
        Assert.Contains(topology["edges"]!.AsArray(), e => (string?)e!["from"] == "add" && (string?)e["to"] == "sink" && (string?)e["stream"] == "output");
        Assert.All(topology["nodes"]!.AsArray(), n => Assert.NotNull((string?)n!["process_id"]));
        var events = (await GetOkAsync("/topology/events?after_seq=0"))["events"]!.AsArray();
        Assert.Contains(events, e => (string?)e!["type"] == "process_registered");
    }

    private static string? Code(Reply reply, HttpStatusCode status)
    {
        Assert.True(reply.Status == status, $"{reply.Status}: {reply.Text}");
        return (string?)reply.Body!["code"];
    }
}
