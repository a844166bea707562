using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Flowline.Status;

namespace Flowline.Client.Tests;

/// <summary>
/// Each call of the client against a fake handler: method, path, headers and body exactly as
/// shmpipeline's API has them; errors mapped to <see cref="RemoteManagerException"/>; per-call time limits.
/// </summary>
public sealed class RemoteManagerClientTests
{
    private static readonly Uri Base = new("http://127.0.0.1:8765");

    private static RemoteManagerClient Client(FakeHandler handler, string? token = null) => new(Base, token, handler);

    private static Task Call(RemoteManagerClient client, string call) => call switch
    {
        "health" => client.HealthAsync(),
        "info" => client.InfoAsync(),
        "document" => client.DocumentAsync(),
        "status" => client.StatusAsync(),
        "snapshot" => client.SnapshotAsync(),
        "graph" => client.GraphAsync(),
        "latest" => client.LatestFrameAsync("wfs"),
        "metrics" => client.MetricsTextAsync(),
        "validate" => client.ValidateDocumentAsync(),
        "build" => client.BuildAsync(),
        "start" => client.StartAsync(),
        "pause" => client.PauseAsync(),
        "resume" => client.ResumeAsync(),
        "stop" => client.StopAsync(),
        "stop-3s" => client.StopAsync(3),
        "shutdown" => client.ShutdownAsync(),
        "restart" => client.RestartAsync(),
        "restart-2s" => client.RestartAsync(2),
        "synthetic-start" => client.StartSyntheticInputAsync(new SyntheticInputRequest { StreamName = "wfs" }),
        "synthetic-stop" => client.StopSyntheticInputAsync("wfs"),
        "synthetic-stop-30s" => client.StopSyntheticInputAsync("wfs", 30),
        "update" => client.UpdateDocumentAsync(new JsonObject()),
        "load" => client.LoadDocumentAsync("/p.yaml"),
        _ => throw new ArgumentOutOfRangeException(nameof(call), call, null),
    };

    private static void AssertJsonBody(RecordedRequest request, string expectedJson)
    {
        Assert.Equal("application/json", request.ContentType);
        var actual = JsonNode.Parse(request.Body!);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expectedJson), actual), $"body {request.Body} is not {expectedJson}");
    }

    // ---------------------------------------------------------------- requests

    [Theory]
    [InlineData("health", "GET", "/health")]
    [InlineData("info", "GET", "/info")]
    [InlineData("document", "GET", "/document")]
    [InlineData("status", "GET", "/status")]
    [InlineData("snapshot", "GET", "/snapshot")]
    [InlineData("graph", "GET", "/graph")]
    [InlineData("latest", "GET", "/streams/wfs/latest")]
    [InlineData("validate", "POST", "/document/validate")]
    [InlineData("build", "POST", "/commands/build")]
    [InlineData("start", "POST", "/commands/start")]
    [InlineData("pause", "POST", "/commands/pause")]
    [InlineData("resume", "POST", "/commands/resume")]
    [InlineData("restart", "POST", "/commands/restart")]
    public async Task Call_WithoutBody_SendsMethodAndPathAndNoBody(string call, string method, string path)
    {
        var handler = FakeHandler.Json("""{"ok": true}""");
        using var client = Client(handler);

        await Call(client, call);

        var request = handler.Single;
        Assert.Equal(method, request.Method);
        Assert.Equal(path, request.Path);
        Assert.Null(request.Body);
        Assert.Equal("application/json", request.Accept);
    }

    [Fact]
    public async Task HealthAsync_JsonAnswer_ReturnsTheTypedReply()
    {
        using var client = Client(FakeHandler.Json("""{"ok": true, "state": "running", "document_revision": 3}"""));

        var health = await client.HealthAsync();

        Assert.True(health.Ok);
        Assert.Equal("running", health.State);
        Assert.Equal(3, health.DocumentRevision);
    }

    [Fact]
    public async Task HealthAsync_WithToken_SendsBearer()
    {
        var handler = FakeHandler.Json("{}");
        using var client = Client(handler, "s3cr3t-token");

        await client.HealthAsync();

        Assert.Equal("Bearer s3cr3t-token", handler.Single.Authorization);
    }

    [Fact]
    public async Task HealthAsync_WithoutToken_SendsNoAuthorization()
    {
        var handler = FakeHandler.Json("{}");
        using var client = Client(handler);

        await client.HealthAsync();

        Assert.Null(handler.Single.Authorization);
    }

    [Theory]
    [InlineData("sec ret")]
    [InlineData("sec\nret")]
    [InlineData("")]
    [InlineData("sécret")]
    public void Constructor_MalformedToken_ThrowsWithoutQuotingIt(string token)
    {
        var e = Assert.Throws<ArgumentException>(() => new RemoteManagerClient(Base, token, FakeHandler.Json("{}")));

        Assert.Equal("token", e.ParamName);
        if (token.Length > 0)
        {
            Assert.DoesNotContain("ret", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task HealthAsync_BaseAddressWithPath_KeepsThePathAsPrefix()
    {
        var handler = FakeHandler.Json("{}");
        using var client = new RemoteManagerClient(new Uri("http://127.0.0.1:8765/flowline"), null, handler);

        await client.HealthAsync();

        Assert.Equal("/flowline/health", handler.Single.Path);
    }

    [Theory]
    [InlineData("127.0.0.1:8765", "http://127.0.0.1:8765/")]
    [InlineData("http://localhost:9000", "http://localhost:9000/")]
    [InlineData("https://control.example:443/api/", "https://control.example/api/")]
    public void Constructor_Url_NormalisesTheBaseAddress(string url, string expected)
    {
        using var client = new RemoteManagerClient(url);

        Assert.Equal(expected, client.BaseAddress.ToString());
    }

    [Fact]
    public void Constructor_NotHttp_Throws()
    {
        var e = Assert.Throws<ArgumentException>(() => new RemoteManagerClient(new Uri("ftp://host/"), null, FakeHandler.Json("{}")));

        Assert.Contains("http", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LatestFrameAsync_NameWithReservedCharacters_EscapesIt()
    {
        var handler = FakeHandler.Json("{}");
        using var client = Client(handler);

        await client.LatestFrameAsync("a b/c?d");

        Assert.Equal("/streams/a%20b%2Fc%3Fd/latest", handler.Single.Path);
    }

    [Fact]
    public async Task MetricsTextAsync_PrometheusText_ReturnsItAsIs()
    {
        const string Metrics = "# TYPE flowline_frames_total counter\nflowline_frames_total{node=\"copy\"} 42\n";
        var handler = new FakeHandler((_, _) => Task.FromResult(FakeHandler.Response(HttpStatusCode.OK, Metrics, "text/plain")));
        using var client = Client(handler);

        var text = await client.MetricsTextAsync();

        Assert.Equal(Metrics, text);
        Assert.Equal("GET", handler.Single.Method);
        Assert.Equal("/metrics", handler.Single.Path);
        Assert.Equal("text/plain", handler.Single.Accept);
    }

    // ---------------------------------------------------------------- bodies

    [Fact]
    public async Task UpdateDocumentAsync_Document_PutsTheMappingItself()
    {
        var handler = FakeHandler.Json("""{"revision": 2}""");
        using var client = Client(handler);
        var document = new JsonObject { ["shared_memory"] = new JsonArray(new JsonObject { ["name"] = "a" }) };

        await client.UpdateDocumentAsync(document);

        Assert.Equal("PUT", handler.Single.Method);
        Assert.Equal("/document", handler.Single.Path);
        AssertJsonBody(handler.Single, """{"shared_memory": [{"name": "a"}]}""");
    }

    [Fact]
    public async Task UpdateDocumentYamlAsync_PutsTheTextAsYaml_AndDocumentYamlAsyncGetsIt()
    {
        var handler = FakeHandler.Json("""{"revision": 3}""");
        using var client = Client(handler);
        const string Yaml = "# a comment\nshared_memory: []\n";

        var reply = await client.UpdateDocumentYamlAsync(Yaml);

        Assert.Equal(3, reply.Revision);
        Assert.Equal("PUT", handler.Single.Method);
        Assert.Equal("/document", handler.Single.Path);
        Assert.Equal("application/yaml", handler.Single.ContentType);
        Assert.Equal(Yaml, handler.Single.Body);
    }

    [Fact]
    public async Task ValidateDocumentAsync_Document_PostsIt()
    {
        var handler = FakeHandler.Json("""{"valid": true, "errors": []}""");
        using var client = Client(handler);

        var result = await client.ValidateDocumentAsync(new JsonObject { ["kernels"] = new JsonArray() });

        Assert.Equal("/document/validate", handler.Single.Path);
        AssertJsonBody(handler.Single, """{"kernels": []}""");
        Assert.True(result.Valid);
    }

    [Fact]
    public async Task LoadDocumentAsync_Path_PostsPath()
    {
        var handler = FakeHandler.Json("{}");
        using var client = Client(handler);

        await client.LoadDocumentAsync("/srv/pipelines/ao.yaml");

        Assert.Equal("POST", handler.Single.Method);
        Assert.Equal("/document/load", handler.Single.Path);
        AssertJsonBody(handler.Single, """{"path": "/srv/pipelines/ao.yaml"}""");
    }

    [Fact]
    public async Task StopAsync_Defaults_SendsTimeoutFiveAndNoForce()
    {
        var handler = FakeHandler.Json("{}");
        using var client = Client(handler);

        await client.StopAsync();

        Assert.Equal("/commands/stop", handler.Single.Path);
        AssertJsonBody(handler.Single, """{"timeout": 5.0, "force": false}""");
    }

    [Fact]
    public async Task StopAsync_Arguments_SendsThem()
    {
        var handler = FakeHandler.Json("{}");
        using var client = Client(handler);

        await client.StopAsync(1.5, force: true);

        AssertJsonBody(handler.Single, """{"timeout": 1.5, "force": true}""");
    }

    [Fact]
    public async Task ShutdownAsync_Defaults_SendsUnlinkOnly()
    {
        var handler = FakeHandler.Json("{}");
        using var client = Client(handler);

        await client.ShutdownAsync();

        Assert.Equal("POST", handler.Single.Method);
        Assert.Equal("/commands/shutdown", handler.Single.Path);
        AssertJsonBody(handler.Single, """{"unlink": true, "unlink_external": false, "force": false}""");
    }

    [Fact]
    public async Task ShutdownAsync_Arguments_SendsThemSnakeCase()
    {
        var handler = FakeHandler.Json("{}");
        using var client = Client(handler);

        await client.ShutdownAsync(unlink: false, unlinkExternal: true, force: true);

        AssertJsonBody(handler.Single, """{"unlink": false, "unlink_external": true, "force": true}""");
    }

    [Fact]
    public async Task RestartAsync_Timeout_SendsIt()
    {
        var handler = FakeHandler.Json("{}");
        using var client = Client(handler);

        await client.RestartAsync(2.5);

        Assert.Equal("/commands/restart", handler.Single.Path);
        AssertJsonBody(handler.Single, """{"timeout": 2.5}""");
    }

    [Fact]
    public async Task StartSyntheticInputAsync_Defaults_SendsShmpipelinesDefaults()
    {
        var handler = FakeHandler.Json("""{"synthetic_source": {}, "snapshot": {}}""");
        using var client = Client(handler);

        await client.StartSyntheticInputAsync(new SyntheticInputRequest { StreamName = "wfs" });

        Assert.Equal("POST", handler.Single.Method);
        Assert.Equal("/synthetic/start", handler.Single.Path);
        AssertJsonBody(handler.Single, """
            {"stream_name": "wfs", "pattern": "random", "rate_hz": null, "seed": 0, "amplitude": 1.0,
             "offset": 0.0, "period": 64.0, "constant": 0.0, "impulse_interval": 64}
            """);
    }

    [Fact]
    public async Task StartSyntheticInputAsync_EveryField_SendsThemSnakeCase()
    {
        var handler = FakeHandler.Json("{}");
        using var client = Client(handler);
        var request = new SyntheticInputRequest
        {
            StreamName = "dm",
            Pattern = "sine",
            RateHz = 500,
            Seed = 7,
            Amplitude = 2.5,
            Offset = -1,
            Period = 32,
            Constant = 0.25,
            ImpulseInterval = 10,
        };

        await client.StartSyntheticInputAsync(request);

        AssertJsonBody(handler.Single, """
            {"stream_name": "dm", "pattern": "sine", "rate_hz": 500, "seed": 7, "amplitude": 2.5,
             "offset": -1, "period": 32, "constant": 0.25, "impulse_interval": 10}
            """);
    }

    [Fact]
    public async Task StopSyntheticInputAsync_Defaults_SendsStreamAndTimeoutTwo()
    {
        var handler = FakeHandler.Json("""{"stream_name": "wfs", "snapshot": {}}""");
        using var client = Client(handler);

        await client.StopSyntheticInputAsync("wfs");

        Assert.Equal("POST", handler.Single.Method);
        Assert.Equal("/synthetic/stop", handler.Single.Path);
        AssertJsonBody(handler.Single, """{"stream_name": "wfs", "timeout": 2.0}""");
    }

    [Theory]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public async Task StopAsync_BadTimeout_ThrowsBeforeSending(double timeoutSeconds)
    {
        var handler = FakeHandler.Json("{}");
        using var client = Client(handler);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.StopAsync(timeoutSeconds));

        Assert.Empty(handler.Requests);
    }

    // ---------------------------------------------------------------- errors

    [Fact]
    public async Task StartAsync_ConflictWithDetail_ThrowsWithStatusAndDetail()
    {
        using var client = Client(FakeHandler.Json("""{"detail": "cannot start: the pipeline is running"}""", HttpStatusCode.Conflict));

        var e = await Assert.ThrowsAsync<RemoteManagerException>(() => client.StartAsync());

        Assert.Equal(409, e.StatusCode);
        Assert.Equal("cannot start: the pipeline is running", e.Detail);
        Assert.Equal("POST /commands/start: 409 cannot start: the pipeline is running", e.Message);
    }

    [Fact]
    public async Task HealthAsync_ErrorWithTextBody_DetailIsTheText()
    {
        var handler = new FakeHandler((_, _) => Task.FromResult(
            FakeHandler.Response(HttpStatusCode.InternalServerError, "worker copy failed: boom\n", "text/plain")));
        using var client = Client(handler);

        var e = await Assert.ThrowsAsync<RemoteManagerException>(() => client.HealthAsync());

        Assert.Equal(500, e.StatusCode);
        Assert.Equal("worker copy failed: boom", e.Detail);
        Assert.Equal("GET /health: 500 worker copy failed: boom", e.Message);
    }

    [Fact]
    public async Task UpdateDocumentAsync_DetailNotAString_DetailIsTheBody()
    {
        const string Body = """{"detail":[{"loc":["body"],"msg":"field required"}]}""";
        using var client = Client(FakeHandler.Json(Body, HttpStatusCode.UnprocessableEntity));

        var e = await Assert.ThrowsAsync<RemoteManagerException>(() => client.UpdateDocumentAsync(new JsonObject()));

        Assert.Equal(422, e.StatusCode);
        Assert.Equal(Body, e.Detail);
        Assert.StartsWith("PUT /document: 422 ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LatestFrameAsync_ErrorWithoutBody_DetailIsTheReasonPhrase()
    {
        var handler = new FakeHandler((_, _) => Task.FromResult(new HttpResponseMessage(HttpStatusCode.NotFound)));
        using var client = Client(handler);

        var e = await Assert.ThrowsAsync<RemoteManagerException>(() => client.LatestFrameAsync("nope"));

        Assert.Equal(404, e.StatusCode);
        Assert.Equal("Not Found", e.Detail);
        Assert.Equal("GET /streams/nope/latest: 404 Not Found", e.Message);
    }

    [Fact]
    public async Task StatusAsync_SuccessNotAnObject_Throws()
    {
        using var client = Client(FakeHandler.Json("[1, 2]"));

        var e = await Assert.ThrowsAsync<RemoteManagerException>(() => client.StatusAsync());

        Assert.Equal(200, e.StatusCode);
        Assert.Contains("not a JSON object", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HealthAsync_ConnectionRefused_ThrowsStatusZeroNamingTheUrl()
    {
        // A port that was free a moment ago: nothing listens there.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var client = new RemoteManagerClient($"http://127.0.0.1:{port}", "s3cr3t-token");

        var e = await Assert.ThrowsAsync<RemoteManagerException>(() => client.HealthAsync());

        Assert.Equal(0, e.StatusCode);
        Assert.Contains($"http://127.0.0.1:{port}/health", e.Message, StringComparison.Ordinal);
        Assert.StartsWith("GET /health: cannot reach", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3t", e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task BuildAsync_HandlerFails_ThrowsStatusZero()
    {
        var handler = new FakeHandler((_, _) => throw new HttpRequestException("Connection reset by peer"));
        using var client = Client(handler);

        var e = await Assert.ThrowsAsync<RemoteManagerException>(() => client.BuildAsync());

        Assert.Equal(0, e.StatusCode);
        Assert.Equal("Connection reset by peer", e.Detail);
        Assert.IsType<HttpRequestException>(e.InnerException);
    }

    // ---------------------------------------------------------------- time limits

    [Theory]
    [InlineData("health", 10)]
    [InlineData("metrics", 10)]
    [InlineData("latest", 10)]
    [InlineData("validate", 15)]
    [InlineData("update", 15)]
    [InlineData("load", 15)]
    [InlineData("build", 60)]
    [InlineData("start", 60)]
    [InlineData("pause", 15)]
    [InlineData("resume", 15)]
    [InlineData("shutdown", 15)]
    [InlineData("stop", 10)]
    [InlineData("stop-3s", 8)]
    [InlineData("restart", 70)]
    [InlineData("restart-2s", 67)]
    [InlineData("synthetic-start", 15)]
    [InlineData("synthetic-stop", 15)]
    [InlineData("synthetic-stop-30s", 35)]
    public async Task Call_Any_UsesItsTimeLimit(string call, double expectedSeconds)
    {
        var time = new RecordingTimeProvider();
        using var client = Client(FakeHandler.Json("{}"));
        client.Time = time;

        await Call(client, call);

        Assert.NotEmpty(time.DueTimes);
        Assert.All(time.DueTimes, due => Assert.Equal(TimeSpan.FromSeconds(expectedSeconds), due));
    }

    [Fact]
    public async Task StartAsync_NoAnswerInTime_ThrowsStatusZeroNamingTheLimit()
    {
        var handler = new FakeHandler(async (_, cancellationToken) =>
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return new HttpResponseMessage(HttpStatusCode.OK);
        });
        using var client = Client(handler);
        client.Time = new RecordingTimeProvider(fireAfter: TimeSpan.FromMilliseconds(50));

        var e = await Assert.ThrowsAsync<RemoteManagerException>(() => client.StartAsync());

        Assert.Equal(0, e.StatusCode);
        Assert.Equal("POST /commands/start: no answer from http://127.0.0.1:8765/commands/start within 60 s", e.Message);
        Assert.IsType<TimeoutException>(e.InnerException);
    }

    [Fact]
    public async Task HealthAsync_CancelledByCaller_ThrowsOperationCanceled()
    {
        var handler = new FakeHandler(async (_, cancellationToken) =>
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return new HttpResponseMessage(HttpStatusCode.OK);
        });
        using var client = Client(handler);
        using var cancellation = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.HealthAsync(cancellation.Token));
    }

    [Fact]
    public async Task Dispose_GivenHandler_LeavesItUsable()
    {
        var handler = FakeHandler.Json("{}");
        new RemoteManagerClient(Base, null, handler).Dispose();

        using var client = Client(handler);
        await client.HealthAsync();

        Assert.Single(handler.Requests);
    }
}
