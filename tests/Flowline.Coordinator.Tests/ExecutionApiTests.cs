using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Flowline.Coordinator.Storage;

namespace Flowline.Coordinator.Tests;

/// <summary>Submitting executions and reading their status over HTTP, on SQLite.</summary>
public sealed class ExecutionApiTests : IAsyncLifetime
{
    private const string AdminToken = "admin-token-all-tenants-0001";
    private const string ControlToken = "control-plane-token-acme-002";
    private const string GlobexToken = "control-plane-token-globex-3";

    private readonly string directory = Path.Combine(Path.GetTempPath(), "flowline-coord-exec-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly List<HttpClient> clients = [];
    private CoordinatorServer server = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string Executions = "/tpf/control-plane/tenants/acme/executions";

    public async ValueTask InitializeAsync()
    {
        server = await CoordinatorServer.StartAsync(new SqliteCoordinatorStore(Path.Combine(directory, "coordinator.db")), new CoordinatorOptions
        {
            Port = 0,
            DataDirectory = directory,
            Tokens = CoordinatorTokens.Of((Role.Admin, ["*"], AdminToken), (Role.ControlPlane, ["acme"], ControlToken), (Role.ControlPlane, ["globex"], GlobexToken)),
        }, Ct);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var c in clients)
        {
            c.Dispose();
        }

        await server.DisposeAsync();
        Directory.Delete(directory, recursive: true);
    }

    private HttpClient Client(string token)
    {
        var client = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        clients.Add(client);
        return client;
    }

    /// <summary>Registers (and activates) release 1.0.0 of pipeline 'copy' for acme, through the admin endpoints.</summary>
    private async Task ReleaseAsync(bool activate)
    {
        var body = InlineRelease.Body("copy", "1.0.0", InlineRelease.Example("copy-64"));
        var admin = Client(AdminToken);
        Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync("/tpf/admin/tenants/acme/pipelines/copy/releases/register", body, Ct)).StatusCode);
        if (activate)
        {
            Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync("/tpf/admin/tenants/acme/pipelines/copy/releases/1.0.0/activate", null, Ct)).StatusCode);
        }
    }

    /// <summary>Registers a worker running release 1.0.0 of 'copy' for acme.</summary>
    private async Task WorkerAsync(string workerId = "host-1") =>
        Assert.Equal(HttpStatusCode.OK, (await Client(AdminToken).PostAsJsonAsync("/tpf/admin/tenants/acme/pipelines/copy/workers/register",
            new { workerId, protocol = "flowline", contractVersion = "1", releaseVersion = "1.0.0" }, Ct)).StatusCode);

    private static async Task<JsonObject> Problem(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var body = JsonNode.Parse(text)!.AsObject();
        Assert.Equal(code, (string?)body["code"]);
        return body;
    }

    private static HttpRequestMessage Submit(object body, string? key = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, Executions) { Content = JsonContent.Create(body) };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }

        return request;
    }

    [Fact]
    public async Task Submit_is_202_with_a_location_to_the_status_of_an_execution_pinned_to_the_active_release()
    {
        var client = Client(ControlToken);
        await Problem(await client.SendAsync(Submit(new { pipelineId = "copy" }), Ct), HttpStatusCode.Conflict, ProblemCodes.NoActiveRelease);
        await ReleaseAsync(activate: true);

        // Only a HEALTHY worker of the release admits executions: none registered, then the only one drained.
        var none = await client.SendAsync(Submit(new { pipelineId = "copy" }), Ct);
        await Problem(none, HttpStatusCode.ServiceUnavailable, ProblemCodes.NoHealthyWorker);
        Assert.NotNull(none.Headers.RetryAfter);
        await WorkerAsync();
        Assert.Equal(HttpStatusCode.OK, (await Client(AdminToken).PostAsync("/tpf/admin/tenants/acme/pipelines/copy/workers/host-1/drain", null, Ct)).StatusCode);
        var drained = await Problem(await client.SendAsync(Submit(new { pipelineId = "copy" }), Ct), HttpStatusCode.ServiceUnavailable, ProblemCodes.NoHealthyWorker);
        Assert.Contains("host-1=DRAINING", (string?)drained["detail"], StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await Client(AdminToken).PostAsync("/tpf/admin/tenants/acme/pipelines/copy/workers/host-1/undrain", null, Ct)).StatusCode);
        Assert.Equal(0, await server.Store.PendingDispatchCountAsync(Ct));

        var accepted = await client.SendAsync(Submit(new { pipelineId = "copy", run = new { frames = 100 } }), Ct);
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var body = (await accepted.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        Assert.Equal("1.0.0", (string?)body["releaseVersion"]);
        Assert.False((bool)body["duplicate"]!);
        var location = accepted.Headers.Location!.OriginalString;
        Assert.Equal($"{Executions}/{(string?)body["executionId"]}", location);

        var status = (await client.GetFromJsonAsync<JsonObject>(location, Ct))!;
        Assert.Equal("QUEUED", (string?)status["status"]);
        Assert.Equal("control-plane/", ((string?)status["submittedBy"])![..14]);
        var result = (await client.GetFromJsonAsync<JsonObject>($"{location}/result", Ct))!;
        Assert.Equal("QUEUED", (string?)result["status"]);
        Assert.Null(result["result"]);

        // Another tenant neither reads it nor may submit to acme.
        var globex = Client(GlobexToken);
        await Problem(await globex.GetAsync(location.Replace("/acme/", "/globex/", StringComparison.Ordinal), Ct), HttpStatusCode.NotFound, ProblemCodes.ExecutionNotFound);
        await Problem(await globex.GetAsync(location, Ct), HttpStatusCode.Forbidden, ProblemCodes.TenantNotAllowed);
        await Problem(await Client(AdminToken).GetAsync(location, Ct), HttpStatusCode.Forbidden, ProblemCodes.RoleNotAllowed);
    }

    [Fact]
    public async Task An_idempotency_key_returns_the_first_execution_and_refuses_another_body()
    {
        await ReleaseAsync(activate: false);
        await WorkerAsync();
        var client = Client(ControlToken);
        var first = await client.SendAsync(Submit(new { pipelineId = "copy", releaseVersion = "1.0.0", run = new { frames = 10 } }, "order-42"), Ct);
        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        var id = (string?)(await first.Content.ReadFromJsonAsync<JsonObject>(Ct))!["executionId"];

        // The same request, its members in another order and the key in the body (TPF's form): the same execution.
        var again = await client.PostAsync(Executions, new StringContent("{\"run\":{\"frames\":10},\"idempotencyKey\":\"order-42\",\"releaseVersion\":\"1.0.0\",\"pipelineId\":\"copy\"}", Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.Accepted, again.StatusCode);
        var body = (await again.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        Assert.Equal(id, (string?)body["executionId"]);
        Assert.True((bool)body["duplicate"]!);

        var conflict = await Problem(await client.SendAsync(Submit(new { pipelineId = "copy", releaseVersion = "1.0.0", run = new { frames = 11 } }, "order-42"), Ct), HttpStatusCode.Conflict, ProblemCodes.IdempotencyConflict);
        Assert.Equal(id, (string?)conflict["executionId"]);
        Assert.Equal(1, await server.Store.PendingDispatchCountAsync(Ct));

        await Problem(await client.SendAsync(Submit(new { pipelineId = "copy", releaseVersion = "9.9.9" }), Ct), HttpStatusCode.NotFound, ProblemCodes.ReleaseNotFound);
        await Problem(await client.SendAsync(Submit(new { pipelineId = "copy", colour = "red" }), Ct), HttpStatusCode.BadRequest, ProblemCodes.InvalidRequest);
        await Problem(await client.SendAsync(Submit(new { releaseVersion = "1.0.0" }), Ct), HttpStatusCode.BadRequest, ProblemCodes.InvalidRequest);
    }

    [Fact]
    public async Task The_executions_listing_pages_with_a_cursor_and_refuses_bad_ones()
    {
        await ReleaseAsync(activate: true);
        await WorkerAsync();
        var control = Client(ControlToken);
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            var submitted = await control.PostAsJsonAsync(Executions, new { pipelineId = "copy" }, Ct);
            ids.Add((string)JsonNode.Parse(await submitted.Content.ReadAsStringAsync(Ct))!["executionId"]!);
        }

        var seen = new List<string>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var page = JsonNode.Parse(await control.GetStringAsync($"{Executions}?limit=2&pipelineId=copy" + (cursor is null ? "" : $"&cursor={cursor}"), Ct))!;
            seen.AddRange(page["items"]!.AsArray().Select(e => (string)e!["executionId"]!));
            cursor = (string?)page["nextCursor"];
            pages++;
        }
        while (cursor is not null && pages < 10);

        Assert.Equal(3, pages);
        Assert.Equal(ids.Order(), seen.Order());
        Assert.Equal(5, seen.Distinct().Count());

        // A cursor of another listing, a forged one, garbage: 400 naming the cursor; a bad status or limit: 400 too.
        var workersCursor = Convert.ToBase64String(Encoding.UTF8.GetBytes("w:host-1")).TrimEnd('=');
        foreach (var bad in new[] { workersCursor, "not-a-cursor", Convert.ToBase64String(Encoding.UTF8.GetBytes("x:abc:id")).TrimEnd('=') })
        {
            var refused = await Problem(await control.GetAsync($"{Executions}?cursor={bad}", Ct), HttpStatusCode.BadRequest, "INVALID_REQUEST");
            Assert.Contains("cursor", (string)refused["detail"]!, StringComparison.Ordinal);
        }

        Assert.Contains("status", (string)(await Problem(await control.GetAsync($"{Executions}?status=DONE", Ct), HttpStatusCode.BadRequest, "INVALID_REQUEST"))["detail"]!, StringComparison.Ordinal);
        await Problem(await control.GetAsync($"{Executions}?limit=0", Ct), HttpStatusCode.BadRequest, "INVALID_REQUEST");
    }

    [Fact]
    public async Task A_worker_registers_its_capacity_and_a_bad_one_is_refused()
    {
        await ReleaseAsync(activate: true);
        var admin = Client(AdminToken);
        var ok = await admin.PostAsJsonAsync("/tpf/admin/tenants/acme/pipelines/copy/workers/register",
            new { workerId = "host-2", protocol = "flowline", contractVersion = "1", releaseVersion = "1.0.0", maxExecutions = 4 }, Ct);
        Assert.Equal(4, (int)JsonNode.Parse(await ok.Content.ReadAsStringAsync(Ct))!["maxExecutions"]!);
        foreach (var bad in new JsonNode[] { 0, 257, 1.5, "2" })
        {
            var body = new JsonObject { ["workerId"] = "host-3", ["protocol"] = "flowline", ["contractVersion"] = "1", ["releaseVersion"] = "1.0.0", ["maxExecutions"] = bad };
            var refused = await Problem(await admin.PostAsJsonAsync("/tpf/admin/tenants/acme/pipelines/copy/workers/register", body, Ct), HttpStatusCode.BadRequest, "INVALID_REQUEST");
            Assert.Contains("maxExecutions", refused.ToJsonString(), StringComparison.Ordinal);
        }
    }
}
