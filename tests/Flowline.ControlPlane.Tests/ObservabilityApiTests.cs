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

    /// <summary>
    /// An invalid routed request that names no field (a body that is not JSON or not an object, an argument
    /// missing that the handler needs) is a 422, as docs/http-api.md's errors say; a bad value of a named
    /// argument is a 400 with its <c>field</c>; a body not sent as JSON keeps its 415.
    /// </summary>
    [Fact]
    public async Task InvalidRoutedRequests_WithoutAField_Are422_AndABadNamedArgument_Is400WithTheField()
    {
        await StartAddPipelineAsync();
        var notJson = await PostAsync("/nodes/add/requests", "{\"op\": ");
        Assert.Equal("invalid_request", Code(notJson, HttpStatusCode.UnprocessableEntity));
        Assert.Null(notJson.Json["field"]);
        Assert.Equal("invalid_request", Code(await PostAsync("/nodes/add/requests", "[\"ping\"]"), HttpStatusCode.UnprocessableEntity));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, (await SendAsync(Http, HttpMethod.Post, "/nodes/add/requests", "{\"op\": \"ping\"}", "text/plain")).Status);

        // The worker refuses an update_setting without 'values' (no field named): 422.
        var noValues = await PostAsync("/nodes/add/requests", new JsonObject { ["op"] = "update_setting", ["args"] = new JsonObject() });
        Assert.Equal("invalid_request", Code(noValues, HttpStatusCode.UnprocessableEntity));
        Assert.Null(noValues.Json["field"]);

        // An unknown argument is named: 400 with the field.
        var unknown = await PostAsync("/nodes/add/requests", new JsonObject { ["op"] = "profiling_snapshot", ["args"] = new JsonObject { ["node"] = "add" } });
        Assert.Equal("invalid_request", Code(unknown, HttpStatusCode.BadRequest));
        Assert.Equal("node", (string?)unknown.Json["field"]);
        await PostOkAsync("/commands/stop");
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
        var start = (long)before["seq"]!; // the document_replaced of the PUT /document above
        Assert.Equal(1, start);
        Assert.Equal(2.0, (double)before["nodes"]!["add"]!["constant"]!);

        var bad = await SendAsync(Http, HttpMethod.Patch, "/settings/add", """{"constant": "high"}""");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, bad.Status);
        Assert.Equal("constant", (string?)bad.Body!["field"]);
        Assert.Equal(start, (long)(await GetOkAsync("/settings"))["seq"]!);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(Http, HttpMethod.Patch, "/settings/nope", """{"constant": 1}""")).Status);

        var ok = await SendAsync(Http, HttpMethod.Patch, "/settings/add", """{"constant": 4.5}""");
        Assert.True(ok.Status == HttpStatusCode.OK, ok.Text);
        Assert.True((bool)ok.Body!["applied"]!);
        Assert.Equal(start + 1, (long)ok.Body!["seq"]!);
        Assert.Equal(4.5, (double)ok.Body!["values"]!["constant"]!);

        var events = (await GetOkAsync($"/settings/events?after_seq={start}"))["events"]!.AsArray();
        var e = Assert.Single(events)!;
        Assert.Equal(("changed", "add", "constant", 2.0, 4.5), ((string?)e["type"], (string?)e["node"], (string?)e["field"], (double)e["old"]!, (double)e["new"]!));
        Assert.Empty((await GetOkAsync($"/settings/events?after_seq={start + 1}"))["events"]!.AsArray());

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

    /// <summary>
    /// The settings and topology logs belong to the service, not to one manager: a document replaced goes on
    /// numbering them, a subscriber connected before stays on them and gets <c>event: document_replaced</c>, and
    /// live changes survive a stop and start of the same document.
    /// </summary>
    [Fact]
    public async Task DocumentReplaced_LogsGoOn_SubscribersGetTheEvent_AndAStopStartKeepsLiveChanges()
    {
        await StartAddPipelineAsync();
        var changed = await SendAsync(Http, HttpMethod.Patch, "/settings/add", """{"constant": 4.5}""");
        Assert.True(changed.Status == HttpStatusCode.OK, changed.Text);
        var seq = (long)changed.Body!["seq"]!;

        // A stop and a start renew the manager of the same document: the change is kept.
        await PostOkAsync("/commands/stop");
        await PostOkAsync("/commands/start");
        Assert.Equal(4.5, (double)(await GetOkAsync("/settings"))["nodes"]!["add"]!["constant"]!);
        Assert.Equal(4.5, (double)(await GetOkAsync("/document"))["document"]!["kernels"]![0]!["parameters"]!["constant"]!);
        Assert.Equal(seq, (long)(await GetOkAsync("/settings"))["seq"]!);
        var topologySeq = (long)(await GetOkAsync("/topology"))["seq"]!;

        using var cancel = new CancellationTokenSource(RequestTimeout * 2);
        using var settings = await SubscribeAsync("/settings/events", seq, cancel.Token);
        using var topology = await SubscribeAsync("/topology/events", topologySeq, cancel.Token);

        await PostOkAsync("/commands/stop");
        var replaced = AddDocument();
        replaced["kernels"]![0]!["parameters"]!["constant"] = 3.0;
        var put = await PutAsync("/document", replaced);
        Assert.True(put.Status == HttpStatusCode.OK, put.Text);
        var revision = (long)put.Body!["revision"]!;

        var (type, id, data) = await NextEventAsync(settings, cancel.Token);
        Assert.Equal(("document_replaced", seq + 1), (type, id));
        Assert.Equal(("document_replaced", revision), ((string?)data["type"], (long)data["revision"]!));
        var snapshot = await GetOkAsync("/settings");
        Assert.Equal(seq + 1, (long)snapshot["seq"]!);
        Assert.Equal(3.0, (double)snapshot["nodes"]!["add"]!["constant"]!);
        var log = (await GetOkAsync("/settings/events?after_seq=0"))["events"]!.AsArray();
        Assert.Equal(["document_replaced", "changed", "document_replaced"], log.Select(e => (string?)e!["type"]));

        // The topology subscriber's next document_replaced is this one (process events of the stop come before it).
        while (true)
        {
            var (t, tid, tdata) = await NextEventAsync(topology, cancel.Token);
            Assert.True(tid > topologySeq);
            if (t == "document_replaced")
            {
                Assert.Equal(revision, (long)tdata["revision"]!);
                Assert.Contains("add", tdata["nodes"]!.AsArray().Select(n => (string?)n));
                break;
            }
        }

        // The same subscriber gets the changes made under the new document's manager.
        await PostOkAsync("/commands/start");
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(Http, HttpMethod.Patch, "/settings/add", """{"constant": 5.0}""")).Status);
        var (next, nextId, nextData) = await NextEventAsync(settings, cancel.Token);
        Assert.Equal(("setting", seq + 2, 5.0), (next, nextId, (double)nextData["new"]!));
    }

    private async Task<StreamReader> SubscribeAsync(string path, long after, CancellationToken cancel)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.ParseAdd("text/event-stream");
        request.Headers.Add("Last-Event-ID", after.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return new StreamReader(await response.Content.ReadAsStreamAsync(cancel));
    }

    /// <summary>The next SSE event (its name, id and data); keepalives are skipped.</summary>
    private static async Task<(string Type, long Id, JsonObject Data)> NextEventAsync(StreamReader reader, CancellationToken cancel)
    {
        string? type = null, data = null;
        long id = 0;
        while (await reader.ReadLineAsync(cancel) is { } line)
        {
            if (line.Length == 0 && data is not null)
            {
                return (type ?? "message", id, JsonNode.Parse(data)!.AsObject());
            }

            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                type = line[7..];
            }
            else if (line.StartsWith("id: ", StringComparison.Ordinal))
            {
                id = long.Parse(line[4..], System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                data = line[6..];
            }
        }

        throw new Xunit.Sdk.XunitException("the event stream ended");
    }

    private static string? Code(Reply reply, HttpStatusCode status)
    {
        Assert.True(reply.Status == status, $"{reply.Status}: {reply.Text}");
        return (string?)reply.Body!["code"];
    }
}
