using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Flowline.Coordinator;
using Flowline.Coordinator.Storage;

namespace Flowline.Cli.Commands;

/// <summary>
/// <c>flowline bench coordinator</c>: submissions per second and submit-to-running latency of real
/// coordinators (Kestrel on loopback ports, one or several on one store), with simulated agents that claim
/// over HTTP and report RUNNING then SUCCEEDED at once, so the figures are the coordinator's and its
/// store's, not a pipeline's start-up.
/// </summary>
internal static class BenchCoordinatorCommand
{
    // A minimal valid document (the release's content does not matter to the coordinator's path).
    private const string Document = """
        shared_memory:
          - {name: input_vector, shape: [64], dtype: float32}
          - {name: output_vector, shape: [64], dtype: float32}
        sources:
          - {name: camera, kind: synthetic.array, stream: input_vector, parameters: {pattern: random, rate_hz: 1000, seed: 1}}
        kernels:
          - {name: copy, kind: cpu.copy, input: input_vector, output: output_vector}
        sinks:
          - {name: sink, kind: null.sink, stream: output_vector}
        """;

    public static Command Create()
    {
        var store = new Option<string?>("--store") { Description = "A PostgreSQL database (postgres://... or a connection string; its tables are created if missing); default: SQLite in a temporary directory." };
        var coordinators = new Option<int>("--coordinators") { Description = "Coordinators on the one store (each a server of its own).", DefaultValueFactory = _ => 1 };
        var submissions = new Option<int>("--submissions") { Description = "Executions to submit.", DefaultValueFactory = _ => 2000 };
        var clients = new Option<int>("--clients") { Description = "Concurrent submitting clients.", DefaultValueFactory = _ => 8 };
        var agents = new Option<int>("--agents") { Description = "Simulated agents claiming concurrently.", DefaultValueFactory = _ => 4 };
        var command = new Command("coordinator", "Submissions per second and submit-to-running latency of real coordinators on SQLite or PostgreSQL, with simulated agents claiming over HTTP.")
        {
            store, coordinators, submissions, clients, agents,
        };
        command.SetAction(parse =>
        {
            var (n, m, c, a) = (parse.GetValue(coordinators), parse.GetValue(submissions), parse.GetValue(clients), parse.GetValue(agents));
            if (n < 1 || m < 1 || c < 1 || a < 1)
            {
                Console.Error.WriteLine("flowline bench coordinator: --coordinators, --submissions, --clients and --agents must be at least 1");
                return ExitCodes.Failed;
            }

            return RunAsync(parse.GetValue(store), n, m, c, a).GetAwaiter().GetResult();
        });
        return command;
    }

    private static async Task<int> RunAsync(string? storeText, int coordinatorCount, int submissions, int clientCount, int agentCount)
    {
        var directory = Path.Combine(Path.GetTempPath(), "flowline-bench-coord-" + Guid.NewGuid().ToString("N")[..10]);
        var servers = new List<CoordinatorServer>();
        var http = new List<HttpClient>();
        var tenant = "bench" + Guid.NewGuid().ToString("N")[..8];
        const string Admin = "bench-admin-token-000000001", Control = "bench-control-token-0000002", AgentToken = "bench-agent-token-000000003";
        try
        {
            var tokens = CoordinatorTokens.Of((Role.Admin, ["*"], Admin), (Role.ControlPlane, ["*"], Control), (Role.Agent, ["*"], AgentToken));
            for (var i = 0; i < coordinatorCount; i++)
            {
                ICoordinatorStore store = storeText is null ? new SqliteCoordinatorStore(Path.Combine(directory, "coordinator.db")) : new PostgresCoordinatorStore(storeText);
                servers.Add(await CoordinatorServer.StartAsync(store, new CoordinatorOptions { Port = 0, DataDirectory = directory, Tokens = tokens }).ConfigureAwait(false));
            }

            HttpClient Client(int i, string token)
            {
                var c = new HttpClient { BaseAddress = servers[i % servers.Count].Address, Timeout = TimeSpan.FromSeconds(60) };
                c.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
                http.Add(c);
                return c;
            }

            var pipelines = $"tpf/admin/tenants/{tenant}/pipelines/bench";
            var admin = Client(0, Admin);
            var register = new JsonObject
            {
                ["descriptor"] = new JsonObject
                {
                    ["schemaVersion"] = 1, ["pipelineId"] = "bench", ["contractVersion"] = "1", ["releaseVersion"] = "1.0.0",
                    ["artifacts"] = new JsonArray(new JsonObject
                    {
                        ["artifactId"] = "document", ["kind"] = "pipeline-document", ["uri"] = "pipeline.yaml",
                        ["digest"] = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Document))),
                    }),
                },
                ["artifacts"] = new JsonObject { ["document"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(Document)) },
            };
            await Post(admin, $"{pipelines}/releases/register", register).ConfigureAwait(false);
            await Post(admin, $"{pipelines}/releases/1.0.0/activate", null).ConfigureAwait(false);
            for (var a = 0; a < agentCount; a++)
            {
                await Post(Client(a, AgentToken), $"{pipelines}/workers/register", new JsonObject
                {
                    ["workerId"] = $"agent-{a}", ["protocol"] = "bench", ["contractVersion"] = "1", ["releaseVersion"] = "1.0.0",
                }).ConfigureAwait(false);
            }

            var submitted = new ConcurrentDictionary<string, long>();
            var running = new ConcurrentDictionary<string, long>();
            var clock = Stopwatch.StartNew();
            using var done = new CancellationTokenSource(TimeSpan.FromMinutes(10));
            var agentsTask = Task.WhenAll(Enumerable.Range(0, agentCount).Select(a => Task.Run(async () =>
            {
                var c = Client(a, AgentToken);
                var path = $"tpf/agent/tenants/{tenant}/pipelines/bench/workers/agent-{a}";
                while (running.Count < submissions && !done.IsCancellationRequested)
                {
                    var claim = await Post(c, $"{path}/claim", null).ConfigureAwait(false);
                    if (claim is null)
                    {
                        await Task.Delay(5).ConfigureAwait(false);
                        continue;
                    }

                    var id = (string)claim["executionId"]!;
                    var epoch = (long)claim["leaseEpoch"]!;
                    await Post(c, $"{path}/executions/{id}/report", new JsonObject { ["epoch"] = epoch, ["status"] = "RUNNING" }).ConfigureAwait(false);
                    running[id] = clock.ElapsedTicks;
                    await Post(c, $"{path}/executions/{id}/report", new JsonObject { ["epoch"] = epoch, ["status"] = "SUCCEEDED", ["result"] = new JsonObject() }).ConfigureAwait(false);
                }
            })));

            var next = -1;
            var submitStart = clock.Elapsed;
            await Task.WhenAll(Enumerable.Range(0, clientCount).Select(i => Task.Run(async () =>
            {
                var c = Client(i, Control);
                while (Interlocked.Increment(ref next) < submissions)
                {
                    var start = clock.ElapsedTicks;
                    var answer = await Post(c, $"tpf/control-plane/tenants/{tenant}/executions", new JsonObject { ["pipelineId"] = "bench", ["run"] = new JsonObject { ["frames"] = 1 } }).ConfigureAwait(false);
                    submitted[(string)answer!["executionId"]!] = start;
                }
            }))).ConfigureAwait(false);
            var submitSeconds = (clock.Elapsed - submitStart).TotalSeconds;
            await agentsTask.ConfigureAwait(false);
            var allSeconds = (clock.Elapsed - submitStart).TotalSeconds;

            var latencies = submitted.Select(s => (running[s.Key] - s.Value) * 1000.0 / Stopwatch.Frequency).Order().ToArray();
            double Q(double q) => latencies[Math.Min(latencies.Length - 1, (int)Math.Ceiling(q * latencies.Length) - 1)];
            Console.WriteLine($"store: {servers[0].Store.Description}; coordinators: {coordinatorCount}; clients: {clientCount}; agents: {agentCount}; executions: {submissions}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"submissions/s: {submissions / submitSeconds:F0} (all submitted in {submitSeconds:F2} s, each also claimed, reported RUNNING and SUCCEEDED by {allSeconds:F2} s)"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"submit-to-running latency, ms: p50 {Q(0.5):F1}  p90 {Q(0.9):F1}  p99 {Q(0.99):F1}  max {latencies[^1]:F1}"));
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is HttpRequestException or InvalidOperationException or IOException or ArgumentException or System.Data.Common.DbException or TaskCanceledException)
        {
            await Console.Error.WriteLineAsync($"flowline bench coordinator: {e.Message}").ConfigureAwait(false);
            return ExitCodes.Failed;
        }
        finally
        {
            foreach (var c in http)
            {
                c.Dispose();
            }

            foreach (var s in servers)
            {
                await s.DisposeAsync().ConfigureAwait(false);
            }

            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    /// <summary>POSTs JSON; null for 204; throws on an error status with the coordinator's detail.</summary>
    private static async Task<JsonObject?> Post(HttpClient client, string path, JsonNode? body)
    {
        using var content = new StringContent((body ?? new JsonObject()).ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await client.PostAsync(path, content).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"POST {path}: {(int)response.StatusCode} {text}");
        }

        return response.StatusCode == System.Net.HttpStatusCode.NoContent ? null : JsonNode.Parse(text)!.AsObject();
    }
}
