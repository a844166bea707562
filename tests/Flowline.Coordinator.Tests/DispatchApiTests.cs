using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Flowline.Coordinator.Storage;

namespace Flowline.Coordinator.Tests;

/// <summary>Claims, reports, cancel, interactions and artifact downloads over HTTP, on SQLite.</summary>
public sealed class DispatchApiTests : IAsyncLifetime
{
    private const string AdminToken = "admin-token-all-tenants-0001";
    private const string ControlToken = "control-plane-token-acme-002";
    private const string GlobexToken = "control-plane-token-globex-3";
    private const string AgentToken = "agent-token-acme-0000000004";

    private const string Tenant = "/tpf/control-plane/tenants/acme";
    private const string Agent = "/tpf/agent/tenants/acme/pipelines/copy/workers/host-1";

    private readonly string directory = Path.Combine(Path.GetTempPath(), "flowline-coord-dispatch-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly List<HttpClient> clients = [];
    private CoordinatorServer server = null!;
    private string yaml = "";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        server = await CoordinatorServer.StartAsync(new SqliteCoordinatorStore(Path.Combine(directory, "coordinator.db")), new CoordinatorOptions
        {
            Port = 0,
            DataDirectory = directory,
            Tokens = CoordinatorTokens.Of(
                (Role.Admin, ["*"], AdminToken), (Role.ControlPlane, ["acme"], ControlToken), (Role.ControlPlane, ["globex"], GlobexToken), (Role.Agent, ["acme"], AgentToken)),
        }, Ct);

        yaml = InlineRelease.Example("copy-64");
        var body = InlineRelease.Body("copy", "1.0.0", yaml);
        var admin = Client(AdminToken);
        Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync("/tpf/admin/tenants/acme/pipelines/copy/releases/register", body, Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync("/tpf/admin/tenants/acme/pipelines/copy/releases/1.0.0/activate", null, Ct)).StatusCode);

        // The agent registers itself with its own token.
        Assert.Equal(HttpStatusCode.OK, (await Client(AgentToken).PostAsJsonAsync("/tpf/admin/tenants/acme/pipelines/copy/workers/register",
            new { workerId = "host-1", protocol = "flowline-agent", contractVersion = "1", releaseVersion = "1.0.0", maxExecutions = 2 }, Ct)).StatusCode);
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

    private static string Digest(string text) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    private HttpClient Client(string token)
    {
        var client = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        clients.Add(client);
        return client;
    }

    private static async Task<JsonObject> Json(HttpResponseMessage response, HttpStatusCode status = HttpStatusCode.OK)
    {
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        return JsonNode.Parse(text)!.AsObject();
    }

    private static async Task Problem(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        var body = await Json(response, status);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(code, (string?)body["code"]);
    }

    private async Task<string> SubmitAsync(object? run = null) =>
        (string)(await Json(await Client(ControlToken).PostAsJsonAsync($"{Tenant}/executions", new { pipelineId = "copy", run = run ?? new { frames = 10 } }, Ct), HttpStatusCode.Accepted))["executionId"]!;

    private async Task<JsonObject> ClaimAsync() => await Json(await Client(AgentToken).PostAsync($"{Agent}/claim", null, Ct));

    private async Task<HttpResponseMessage> ReportAsync(string executionId, long epoch, string status, object? result = null) =>
        await Client(AgentToken).PostAsJsonAsync($"{Agent}/executions/{executionId}/report", new { epoch, status, result }, Ct);

    [Fact]
    public async Task An_agent_claims_reports_with_its_epoch_and_a_stale_epoch_is_409()
    {
        var id = await SubmitAsync();
        var claim = await ClaimAsync();
        Assert.Equal((id, "DISPATCHED", 1L, "host-1"), ((string)claim["executionId"]!, (string)claim["status"]!, (long)claim["leaseEpoch"]!, (string)claim["workerId"]!));
        Assert.Equal(10, (int)claim["request"]!["run"]!["frames"]!);
        Assert.Equal("document", (string)claim["artifacts"]![0]!["artifactId"]!);
        Assert.Equal(HttpStatusCode.NoContent, (await Client(AgentToken).PostAsync($"{Agent}/claim", null, Ct)).StatusCode);

        await Problem(await ReportAsync(id, 2, "RUNNING"), HttpStatusCode.Conflict, "STALE_EPOCH");
        await Problem(await ReportAsync(id, 1, "AWAITING_INTERACTION"), HttpStatusCode.BadRequest, "INVALID_REQUEST");
        Assert.Equal("RUNNING", (string)(await Json(await ReportAsync(id, 1, "RUNNING")))["status"]!);
        Assert.Equal("RUNNING", (string)(await Json(await Client(ControlToken).GetAsync($"{Tenant}/executions/{id}", Ct)))["status"]!);

        Assert.Equal("SUCCEEDED", (string)(await Json(await ReportAsync(id, 1, "SUCCEEDED", new { frames = 10 })))["status"]!);
        var result = await Json(await Client(ControlToken).GetAsync($"{Tenant}/executions/{id}/result", Ct));
        Assert.Equal(10, (int)result["result"]!["frames"]!);
        await Problem(await ReportAsync(id, 1, "FAILED"), HttpStatusCode.Conflict, "EXECUTION_TERMINAL");

        // Roles: a control-plane token cannot act as an agent, an agent token cannot submit or drain.
        await Problem(await Client(ControlToken).PostAsync($"{Agent}/claim", null, Ct), HttpStatusCode.Forbidden, "ROLE_NOT_ALLOWED");
        await Problem(await Client(AgentToken).GetAsync($"{Tenant}/executions/{id}", Ct), HttpStatusCode.Forbidden, "ROLE_NOT_ALLOWED");
        await Problem(await Client(AgentToken).PostAsync("/tpf/admin/tenants/acme/pipelines/copy/workers/host-1/drain", null, Ct), HttpStatusCode.Forbidden, "ROLE_NOT_ALLOWED");
        await Problem(await Client(AgentToken).PostAsync("/tpf/agent/tenants/globex/pipelines/copy/workers/host-1/claim", null, Ct), HttpStatusCode.Forbidden, "TENANT_NOT_ALLOWED");
    }

    [Fact]
    public async Task A_drained_agent_claims_nothing_until_undrained()
    {
        await SubmitAsync();
        var admin = Client(AdminToken);
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync("/tpf/admin/tenants/acme/pipelines/copy/workers/host-1/drain", null, Ct)).StatusCode);
        await Problem(await Client(AgentToken).PostAsync($"{Agent}/claim", null, Ct), HttpStatusCode.Conflict, "WORKER_NOT_HEALTHY");
        await Problem(await Client(AgentToken).PostAsync("/tpf/agent/tenants/acme/pipelines/copy/workers/nobody/claim", null, Ct), HttpStatusCode.NotFound, "WORKER_NOT_FOUND");
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync("/tpf/admin/tenants/acme/pipelines/copy/workers/host-1/undrain", null, Ct)).StatusCode);
        Assert.Equal("DISPATCHED", (string)(await ClaimAsync())["status"]!);
    }

    [Fact]
    public async Task Cancel_ends_a_queued_execution_and_an_ended_one_is_409()
    {
        var queued = await SubmitAsync();
        var control = Client(ControlToken);
        Assert.Equal("CANCELLED", (string)(await Json(await control.PostAsync($"{Tenant}/executions/{queued}/cancel", null, Ct)))["status"]!);
        Assert.Equal("CANCELLED", (string)(await Json(await control.PostAsync($"{Tenant}/executions/{queued}/cancel", null, Ct)))["status"]!);
        await Problem(await Client(GlobexToken).PostAsync($"/tpf/control-plane/tenants/globex/executions/{queued}/cancel", null, Ct), HttpStatusCode.NotFound, "EXECUTION_NOT_FOUND");
        Assert.Equal(HttpStatusCode.NoContent, (await Client(AgentToken).PostAsync($"{Agent}/claim", null, Ct)).StatusCode);

        var running = await SubmitAsync();
        await ClaimAsync();
        await Json(await ReportAsync(running, 1, "RUNNING"));
        var asked = await Json(await control.PostAsync($"{Tenant}/executions/{running}/cancel", null, Ct));
        Assert.Equal(("RUNNING", true), ((string)asked["status"]!, (bool)asked["cancelRequested"]!));
        Assert.True((bool)(await Json(await ReportAsync(running, 1, "RUNNING")))["cancelRequested"]!);
        await Json(await ReportAsync(running, 1, "CANCELLED"));

        var done = await SubmitAsync();
        await ClaimAsync();
        await Json(await ReportAsync(done, 1, "SUCCEEDED"));
        await Problem(await control.PostAsync($"{Tenant}/executions/{done}/cancel", null, Ct), HttpStatusCode.Conflict, "EXECUTION_TERMINAL");

        var listed = await Json(await control.GetAsync($"{Tenant}/executions?status=CANCELLED", Ct));
        Assert.Equal(2, listed["items"]!.AsArray().Count);
    }

    [Fact]
    public async Task Interactions_are_listed_per_tenant_and_completed_once()
    {
        var id = await SubmitAsync();
        await ClaimAsync();
        await Json(await ReportAsync(id, 1, "RUNNING"));
        var agent = Client(AgentToken);
        await Problem(await agent.PostAsJsonAsync($"{Agent}/executions/{id}/interactions", new { epoch = 7, gateId = "approve" }, Ct), HttpStatusCode.Conflict, "STALE_EPOCH");
        var asked = await Json(await agent.PostAsJsonAsync($"{Agent}/executions/{id}/interactions", new { epoch = 1, gateId = "approve", request = new { question = "close the loop?" } }, Ct));
        var interactionId = (string)asked["interactionId"]!;
        Assert.Equal("AWAITING_INTERACTION", (string)(await Json(await Client(ControlToken).GetAsync($"{Tenant}/executions/{id}", Ct)))["status"]!);

        var pending = await Json(await Client(ControlToken).GetAsync($"{Tenant}/interactions/pending", Ct));
        var item = Assert.Single(pending["items"]!.AsArray())!;
        Assert.Equal((interactionId, "approve", "close the loop?"), ((string)item["interactionId"]!, (string)item["stepId"]!, (string)item["requestPayload"]!["question"]!));
        Assert.Empty((await Json(await Client(GlobexToken).GetAsync("/tpf/control-plane/tenants/globex/interactions/pending", Ct)))["items"]!.AsArray());
        await Problem(await Client(GlobexToken).PostAsJsonAsync("/tpf/control-plane/tenants/globex/interactions/complete", new { interactionId, responsePayload = new { approved = true } }, Ct), HttpStatusCode.NotFound, "INTERACTION_NOT_FOUND");

        var control = Client(ControlToken);
        var first = await Json(await control.PostAsJsonAsync($"{Tenant}/interactions/complete", new { interactionId, responsePayload = new { approved = true } }, Ct));
        Assert.Equal(("COMPLETED", false), ((string)first["status"]!, (bool)first["duplicate"]!));
        var again = await Json(await control.PostAsJsonAsync($"{Tenant}/interactions/complete", new { interactionId, responsePayload = new { approved = true } }, Ct));
        Assert.True((bool)again["duplicate"]!);
        await Problem(await control.PostAsJsonAsync($"{Tenant}/interactions/complete", new { interactionId, responsePayload = new { approved = false } }, Ct), HttpStatusCode.Conflict, "INTERACTION_TERMINAL");
        await Problem(await control.PostAsJsonAsync($"{Tenant}/interactions/complete", new { interactionId }, Ct), HttpStatusCode.BadRequest, "INVALID_REQUEST");

        // The agent sees the answer; the execution runs again.
        var seen = await Json(await agent.GetAsync($"{Agent}/interactions/{interactionId}", Ct));
        Assert.True((bool)seen["responsePayload"]!["approved"]!);
        Assert.Equal("RUNNING", (string)(await Json(await Client(ControlToken).GetAsync($"{Tenant}/executions/{id}", Ct)))["status"]!);

        // After the execution ended, a question left open is refused.
        var second = (string)(await Json(await agent.PostAsJsonAsync($"{Agent}/executions/{id}/interactions", new { epoch = 1, gateId = "second" }, Ct)))["interactionId"]!;
        await Json(await ReportAsync(id, 1, "FAILED"));
        await Problem(await control.PostAsJsonAsync($"{Tenant}/interactions/complete", new { interactionId = second, responsePayload = new { approved = true } }, Ct), HttpStatusCode.Conflict, "INTERACTION_TERMINAL");
    }

    [Fact]
    public async Task Agents_download_a_release_artifact_with_its_digest()
    {
        var response = await Client(AgentToken).GetAsync($"{Agent}/releases/1.0.0/artifacts/document", Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(Digest(yaml), response.Headers.GetValues("Flowline-Artifact-Digest").Single());
        Assert.Equal(yaml, await response.Content.ReadAsStringAsync(Ct));
        await Problem(await Client(AgentToken).GetAsync($"{Agent}/releases/1.0.0/artifacts/nothing", Ct), HttpStatusCode.NotFound, "ARTIFACT_NOT_FOUND");
        await Problem(await Client(AgentToken).GetAsync($"{Agent}/releases/9.9.9/artifacts/document", Ct), HttpStatusCode.NotFound, "RELEASE_NOT_FOUND");
        var active = await Json(await Client(AgentToken).GetAsync("/tpf/agent/tenants/acme/pipelines/copy/releases/active", Ct));
        Assert.Equal("1.0.0", (string)active["releaseVersion"]!);
    }

    [Fact]
    public async Task The_openapi_document_lists_the_endpoints_for_any_token()
    {
        var document = await Json(await Client(AgentToken).GetAsync("/tpf/openapi/v1.json", Ct));
        var paths = document["paths"]!.AsObject();
        foreach (var path in new[]
        {
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases/register", "/tpf/control-plane/tenants/{tenantId}/executions",
            "/tpf/control-plane/tenants/{tenantId}/interactions/complete", "/tpf/agent/tenants/{tenantId}/pipelines/{pipelineId}/workers/{workerId}/claim",
        })
        {
            Assert.True(paths.ContainsKey(path), path);
        }

        using var anonymous = new HttpClient { BaseAddress = server.Address };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/tpf/openapi/v1.json", Ct)).StatusCode);
    }

    [Fact]
    public async Task Register_by_path_is_refused_without_a_release_root()
    {
        var path = Path.Combine(directory, "pipeline-release.json");
        File.WriteAllText(path, "{}");
        await Problem(await Client(AdminToken).PostAsJsonAsync("/tpf/admin/tenants/acme/pipelines/copy/releases/register", new { releaseDescriptorPath = "/etc/passwd" }, Ct), HttpStatusCode.Forbidden, "PATH_NOT_ALLOWED");
        await Problem(await Client(AdminToken).PostAsJsonAsync("/tpf/admin/tenants/acme/pipelines/copy/releases/register", new { releaseDescriptorPath = path }, Ct), HttpStatusCode.Forbidden, "PATH_NOT_ALLOWED");
    }
}
