using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Flowline.Coordinator.Storage;

namespace Flowline.Coordinator.Tests;

/// <summary>Two coordinators (two servers, two connection pools) on one real PostgreSQL database, raced over HTTP.</summary>
public sealed class TwoCoordinatorTests(PostgresServer postgres) : IAsyncLifetime
{
    private const string AdminToken = "admin-token-all-tenants-0001";
    private const string ControlToken = "control-plane-token-acme-002";
    private const string AgentToken = "agent-token-acme-0000000004";

    private readonly string directory = Path.Combine(Path.GetTempPath(), "flowline-coord-two-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly List<CoordinatorServer> servers = [];
    private readonly List<HttpClient> clients = [];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        var connection = await postgres.CreateDatabaseAsync();
        var tokens = CoordinatorTokens.Of((Role.Admin, ["*"], AdminToken), (Role.ControlPlane, ["acme"], ControlToken), (Role.Agent, ["acme"], AgentToken));
        for (var i = 0; i < 2; i++)
        {
            servers.Add(await CoordinatorServer.StartAsync(new PostgresCoordinatorStore(connection), new CoordinatorOptions { Port = 0, DataDirectory = directory, Tokens = tokens }, Ct));
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var c in clients)
        {
            c.Dispose();
        }

        foreach (var s in servers)
        {
            await s.DisposeAsync();
        }

        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private HttpClient Client(int coordinator, string token)
    {
        var client = new HttpClient { BaseAddress = servers[coordinator % 2].Address, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        clients.Add(client);
        return client;
    }

    [Fact]
    public async Task Agents_racing_through_two_coordinators_claim_each_execution_exactly_once()
    {
        var register = InlineRelease.Body("copy", "1.0.0", InlineRelease.Example("copy-64"));
        Assert.Equal(HttpStatusCode.Created, (await Client(0, AdminToken).PostAsJsonAsync("/tpf/admin/tenants/acme/pipelines/copy/releases/register", register, Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Client(1, AdminToken).PostAsync("/tpf/admin/tenants/acme/pipelines/copy/releases/1.0.0/activate", null, Ct)).StatusCode);

        const int Agents = 6, Executions = 30;
        for (var a = 0; a < Agents; a++)
        {
            Assert.Equal(HttpStatusCode.OK, (await Client(a, AgentToken).PostAsJsonAsync("/tpf/admin/tenants/acme/pipelines/copy/workers/register",
                new { workerId = $"agent-{a}", protocol = "flowline-agent", contractVersion = "1", releaseVersion = "1.0.0", maxExecutions = Executions + 1 }, Ct)).StatusCode);
        }

        // Submissions through both coordinators while agents claim through both.
        var claims = new ConcurrentBag<(string Execution, string Agent)>();
        var submitted = new ConcurrentBag<string>();
        var submitting = Task.WhenAll(Enumerable.Range(0, 2).Select(c => Task.Run(async () =>
        {
            var client = Client(c, ControlToken);
            for (var i = 0; i < Executions / 2; i++)
            {
                var response = await client.PostAsJsonAsync("/tpf/control-plane/tenants/acme/executions", new { pipelineId = "copy" }, Ct);
                Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
                submitted.Add((string)JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!["executionId"]!);
            }
        }, Ct)));
        var claiming = Task.WhenAll(Enumerable.Range(0, Agents).Select(a => Task.Run(async () =>
        {
            var client = Client(a, AgentToken);
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (claims.Count < Executions && DateTime.UtcNow < deadline)
            {
                var response = await client.PostAsync($"/tpf/agent/tenants/acme/pipelines/copy/workers/agent-{a}/claim", null, Ct);
                if (response.StatusCode == HttpStatusCode.NoContent)
                {
                    await Task.Delay(10, Ct);
                    continue;
                }

                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                claims.Add(((string)JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!["executionId"]!, $"agent-{a}"));
            }
        }, Ct)));
        await Task.WhenAll(submitting, claiming);

        Assert.Equal(Executions, claims.Count);
        Assert.Equal(submitted.Order(), claims.Select(c => c.Execution).Order());
        foreach (var (execution, agent) in claims)
        {
            var status = JsonNode.Parse(await Client(0, ControlToken).GetStringAsync($"/tpf/control-plane/tenants/acme/executions/{execution}", Ct))!;
            Assert.Equal(("DISPATCHED", agent, 1L), ((string)status["status"]!, (string)status["workerId"]!, (long)status["leaseEpoch"]!));
        }
    }
}
