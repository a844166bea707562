using System.Net;
using System.Text.Json.Nodes;

namespace Flowline.ControlPlane.Tests;

/// <summary>The shape of every read endpoint's response, and the request-body errors (422).</summary>
public sealed class EndpointTests : ServerTest
{
    private static void AssertKeys(JsonObject body, params string[] keys)
    {
        foreach (var key in keys)
        {
            Assert.True(body.ContainsKey(key), $"'{key}' is missing from {body.ToJsonString()}");
        }
    }

    private static List<string?> Strings(JsonNode? array) => [.. array!.AsArray().Select(n => (string?)n)];

    [Fact]
    public async Task Health_Initialized_HasOkStateAndRevisionOnly()
    {
        var reply = await GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.StartsWith("application/json", reply.Response.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal);
        var body = reply.Json;
        Assert.Equal(["document_revision", "ok", "state"], body.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.True((bool)body["ok"]!);
        Assert.Equal("initialized", (string?)body["state"]);
        Assert.Equal(1, (long)body["document_revision"]!);
    }

    [Fact]
    public async Task Info_Initialized_ListsPathsStateCommandsKindsAndPatterns()
    {
        var info = await GetOkAsync("/info");
        AssertKeys(info, "config_path", "config_base_path", "state", "commands", "kernel_kinds", "source_kinds", "sink_kinds", "synthetic_patterns", "document_revision");
        Assert.Equal(ConfigPath, (string?)info["config_path"]);
        Assert.Equal(Path.GetDirectoryName(ConfigPath), (string?)info["config_base_path"]);
        Assert.Equal("initialized", (string?)info["state"]);
        Assert.Equal(["build", "start", "pause", "resume", "stop", "shutdown", "restart"], Strings(info["commands"]));
        Assert.Contains("cpu.copy", Strings(info["kernel_kinds"]));
        Assert.DoesNotContain("synthetic.array", Strings(info["kernel_kinds"]));
        Assert.Contains("synthetic.array", Strings(info["source_kinds"]));
        Assert.Contains("null.sink", Strings(info["sink_kinds"]));
        Assert.Equal(["constant", "random", "ramp", "sine", "impulse", "checkerboard"], Strings(info["synthetic_patterns"]));
        Assert.Equal(1, (long)info["document_revision"]!);
        Assert.Equal(Namespace, (string?)info["namespace"]);
    }

    [Fact]
    public async Task Document_Initialized_HasPathsRevisionAndTheDocument()
    {
        var body = await GetOkAsync("/document");
        Assert.Equal(["config_base_path", "config_path", "document", "revision"], body.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Equal(ConfigPath, (string?)body["config_path"]);
        Assert.Equal(Path.GetDirectoryName(ConfigPath), (string?)body["config_base_path"]);
        Assert.Equal(1, (long)body["revision"]!);
        var document = body["document"]!.AsObject();
        Assert.Equal(["input_vector", "output_vector"], document["shared_memory"]!.AsArray().Select(s => (string?)s!["name"]));
        Assert.Equal("cpu.copy", (string?)document["kernels"]![0]!["kind"]);
        Assert.Equal("camera", (string?)document["sources"]![0]!["name"]);
        Assert.Equal("sink", (string?)document["sinks"]![0]!["name"]);
    }

    [Fact]
    public async Task Status_Initialized_HasManagerStatusPlusRevisionAndPaths()
    {
        var status = await GetOkAsync("/status");
        AssertKeys(status, "state", "workers", "sources", "sinks", "failures", "metrics", "synthetic_sources", "summary", "document_revision", "config_path", "config_base_path");
        Assert.Equal("initialized", (string?)status["state"]);
        Assert.True(status["workers"]!.AsObject().ContainsKey("copy"));
        Assert.True(status["sources"]!.AsObject().ContainsKey("camera"));
        Assert.True(status["sinks"]!.AsObject().ContainsKey("sink"));
        Assert.Empty(status["failures"]!.AsArray());
        Assert.Empty(status["synthetic_sources"]!.AsObject());
        Assert.Equal(1, (int)status["summary"]!["workers_total"]!);
        Assert.Equal(1, (int)status["summary"]!["sources_total"]!);
        Assert.Equal(1, (int)status["summary"]!["sinks_total"]!);
        Assert.Equal(1, (long)status["document_revision"]!);
        Assert.Equal(ConfigPath, (string?)status["config_path"]);
        Assert.Equal(Path.GetDirectoryName(ConfigPath), (string?)status["config_base_path"]);
        Assert.False(status.ContainsKey("timestamp"));
    }

    [Fact]
    public async Task Snapshot_Initialized_IsStatusPlusTimestampGraphRevisionAndPath()
    {
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        var snapshot = await GetOkAsync("/snapshot");
        AssertKeys(snapshot, "state", "workers", "sources", "sinks", "failures", "metrics", "synthetic_sources", "summary", "timestamp", "graph", "document_revision", "config_path");
        var timestamp = (double)snapshot["timestamp"]!;
        Assert.InRange(timestamp, before - 5, before + 60);
        Assert.Equal(1, (long)snapshot["document_revision"]!);
        Assert.Equal(ConfigPath, (string?)snapshot["config_path"]);
        Assert.True(JsonNode.DeepEquals(await GetOkAsync("/graph"), snapshot["graph"]), "the snapshot's graph is /graph");
    }

    [Fact]
    public async Task Graph_Example_ListsStreamsWithProducersAndConsumers()
    {
        var graph = await GetOkAsync("/graph");
        AssertKeys(graph, "shared_memory", "sources", "kernels", "sinks");
        var input = graph["shared_memory"]!.AsArray().Single(s => (string?)s!["name"] == "input_vector")!;
        Assert.Equal(["camera"], Strings(input["producers"]));
        Assert.Equal(["copy"], Strings(input["consumers"]));
        Assert.Equal("float32", (string?)input["dtype"]);
        Assert.Equal([64], input["shape"]!.AsArray().Select(d => (int)d!));
        var output = graph["shared_memory"]!.AsArray().Single(s => (string?)s!["name"] == "output_vector")!;
        Assert.Equal(["copy"], Strings(output["producers"]));
        Assert.Equal(["sink"], Strings(output["consumers"]));
        Assert.Equal("copy", (string?)graph["kernels"]![0]!["name"]);
    }

    [Fact]
    public async Task Validate_NoBody_ChecksTheCurrentDocument()
    {
        var body = await PostOkAsync("/document/validate");
        Assert.True((bool)body["valid"]!);
        Assert.Empty(body["errors"]!.AsArray());
        Assert.True(JsonNode.DeepEquals(await GetOkAsync("/graph"), body["graph"]));
    }

    [Fact]
    public async Task Validate_ValidDocument_ReturnsItsGraph_AndChangesNothing()
    {
        var document = (await GetOkAsync("/document"))["document"]!.AsObject();
        document["kernels"]![0]!["name"] = "renamed";
        var body = await PostOkAsync("/document/validate", document);
        Assert.True((bool)body["valid"]!, body.ToJsonString());
        Assert.Empty(body["errors"]!.AsArray());
        Assert.Equal("renamed", (string?)body["graph"]!["kernels"]![0]!["name"]);
        Assert.Equal(1, (long)(await GetOkAsync("/health"))["document_revision"]!);
        Assert.Equal("copy", (string?)(await GetOkAsync("/graph"))["kernels"]![0]!["name"]);
    }

    [Fact]
    public async Task Validate_AndPut_AcceptTheDocumentWrappedAsGetReturnsIt()
    {
        var document = (await GetOkAsync("/document"))["document"]!.AsObject();
        document["kernels"]![0]!["name"] = "wrapped";
        var validated = await PostOkAsync("/document/validate", new JsonObject { ["document"] = document.DeepClone() });
        Assert.Equal("wrapped", (string?)validated["graph"]!["kernels"]![0]!["name"]);
        var put = await PutAsync("/document", new JsonObject { ["document"] = document.DeepClone() });
        Assert.Equal(HttpStatusCode.OK, put.Status);
        Assert.Equal("wrapped", (string?)(await GetOkAsync("/graph"))["kernels"]![0]!["name"]);
    }

    [Fact]
    public async Task Validate_InvalidDocument_Is200WithValidFalseAndErrors()
    {
        var document = (await GetOkAsync("/document"))["document"]!.AsObject();
        document["kernels"]![0]!["input"] = "nope";
        var body = await PostOkAsync("/document/validate", document);
        Assert.False((bool)body["valid"]!);
        var errors = Strings(body["errors"]);
        Assert.NotEmpty(errors);
        Assert.Contains(errors, e => e!.Contains("nope", StringComparison.Ordinal));
        Assert.Null(body["graph"]);
    }

    [Fact]
    public async Task Validate_BodyIsAnArray_Is422()
    {
        var reply = await PostAsync("/document/validate", "[1, 2]");
        Assert.Contains("JSON object", AssertError(reply, HttpStatusCode.UnprocessableEntity), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stop_MalformedJson_Is422WithDetail()
    {
        var reply = await PostAsync("/commands/stop", "{\"timeout\": ");
        Assert.Contains("not valid JSON", AssertError(reply, HttpStatusCode.UnprocessableEntity), StringComparison.Ordinal);
        Assert.Equal("initialized", await StateAsync());
    }

    [Fact]
    public async Task Stop_TimeoutIsAString_Is422NamingTheField()
    {
        var reply = await PostAsync("/commands/stop", "{\"timeout\": \"x\"}");
        Assert.Contains("'timeout'", AssertError(reply, HttpStatusCode.UnprocessableEntity), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stop_NegativeTimeout_Is422()
    {
        var reply = await PostAsync("/commands/stop", "{\"timeout\": -1}");
        Assert.Contains("'timeout'", AssertError(reply, HttpStatusCode.UnprocessableEntity), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Shutdown_UnlinkIsANumber_Is422()
    {
        var reply = await PostAsync("/commands/shutdown", "{\"unlink\": 1}");
        Assert.Contains("'unlink'", AssertError(reply, HttpStatusCode.UnprocessableEntity), StringComparison.Ordinal);
        Assert.Equal("initialized", await StateAsync());
    }

    [Fact]
    public async Task SyntheticStart_NoStreamName_Is422()
    {
        var reply = await PostAsync("/synthetic/start", "{\"pattern\": \"ramp\"}");
        Assert.Contains("stream_name", AssertError(reply, HttpStatusCode.UnprocessableEntity), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownPath_Is404()
    {
        var reply = await GetAsync("/nope");
        Assert.Equal(HttpStatusCode.NotFound, reply.Status);
    }

    [Fact]
    public async Task WrongMethod_Is405()
    {
        var reply = await PostAsync("/health");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, reply.Status);
    }

    [Fact]
    public async Task UnknownPathAndWrongMethod_AreJsonWithADetail()
    {
        // shmpipeline (FastAPI) answers {"detail": "Not Found"} and {"detail": "Method Not Allowed"}.
        AssertError(await GetAsync("/nope"), HttpStatusCode.NotFound);
        AssertError(await PostAsync("/health"), HttpStatusCode.MethodNotAllowed);
    }
}
