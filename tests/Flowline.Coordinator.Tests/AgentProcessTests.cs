using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using Flowline.Coordinator.Storage;

namespace Flowline.Coordinator.Tests;

/// <summary>
/// <c>flowline agent</c> as a child process against an in-process coordinator on SQLite: a release of
/// examples/ao-basic runs end to end with an interaction; an agent killed with SIGKILL is detected; a
/// coordinator restarted mid-run loses nothing; a cancel reaches the running pipeline. Every wait is bounded;
/// teardown stops the agents and removes what a killed one left in /dev/shm/flowline.
/// </summary>
public sealed class AgentProcessTests : IAsyncLifetime
{
    private const string AdminToken = "admin-token-all-tenants-0001";
    private const string ControlToken = "control-plane-token-acme-002";
    private const string AgentToken = "agent-token-acme-0000000004";
    private const string Tenant = "/tpf/control-plane/tenants/acme";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);

    private readonly string directory = Path.Combine(Path.GetTempPath(), "flowline-coord-agent-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly List<(Process Process, StringBuilder Output)> agents = [];
    private readonly List<string> executions = [];
    private readonly List<HttpClient> clients = [];
    private CoordinatorServer? server;
    private int port;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string Database => Path.Combine(directory, "coordinator.db");

    public async ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "agent.token"), AgentToken + "\n");
        await StartServerAsync();
        await ReleaseAsync();
    }

    private async Task StartServerAsync()
    {
        server = await CoordinatorServer.StartAsync(new SqliteCoordinatorStore(Database), new CoordinatorOptions
        {
            Port = port,
            DataDirectory = directory,
            StaleAfter = TimeSpan.FromSeconds(3),
            SweepInterval = TimeSpan.FromMilliseconds(250),
            Tokens = CoordinatorTokens.Of((Role.Admin, ["*"], AdminToken), (Role.ControlPlane, ["acme"], ControlToken), (Role.Agent, ["acme"], AgentToken)),
        }, Ct);
        port = server.Address.Port;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var (process, _) in agents)
        {
            if (!process.HasExited)
            {
                Signal(process, 15);
                if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
                {
                    process.Kill(entireProcessTree: true);
                    process.WaitForExit(TimeSpan.FromSeconds(10));
                }
            }

            process.Dispose();
        }

        // A killed agent's workers exit by themselves when their manager dies; its regions stay: remove them.
        foreach (var ns in executions.Select(Namespace))
        {
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (WorkerProcesses(ns).Count > 0 && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(100);
            }

            foreach (var pid in WorkerProcesses(ns))
            {
                Signal(pid, 9);
            }

            foreach (var dir in new[] { Path.Combine(ShmRoot, ns), Path.Combine(ShmRoot, ns + ".control") })
            {
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir, recursive: true);
                }
            }
        }

        foreach (var c in clients)
        {
            c.Dispose();
        }

        if (server is not null)
        {
            await server.DisposeAsync();
        }

        Directory.Delete(directory, recursive: true);
    }

    private const string ShmRoot = "/dev/shm/flowline";

    private static string Namespace(string executionId) => "agent-" + executionId[..8];

    private HttpClient Client(string token)
    {
        var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        clients.Add(client);
        return client;
    }

    /// <summary>Registers and activates release 1.0.0 of examples/ao-basic, uploaded in the body.</summary>
    private async Task ReleaseAsync()
    {
        var body = InlineRelease.Body("ao-basic", "1.0.0", InlineRelease.Example("ao-basic"));
        var admin = Client(AdminToken);
        Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync("/tpf/admin/tenants/acme/pipelines/ao-basic/releases/register", body, Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync("/tpf/admin/tenants/acme/pipelines/ao-basic/releases/1.0.0/activate", null, Ct)).StatusCode);
    }

    private (Process Process, StringBuilder Output) StartAgent(string id, string pipeline = "ao-basic", params string[] extra)
    {
        var info = new ProcessStartInfo(Flowline.SharedMemory.Diagnostics.DotnetHost.Path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        foreach (var a in new[]
        {
            Path.Combine(AppContext.BaseDirectory, "Flowline.Cli.dll"), "agent", "--coordinator", $"http://127.0.0.1:{port}", "--token-file", Path.Combine(directory, "agent.token"),
            "--tenant", "acme", "--pipeline", pipeline, "--id", id, "--heartbeat", "0.5", "--poll", "0.2", "--work-dir", Path.Combine(directory, "work-" + id),
        }.Concat(extra))
        {
            info.ArgumentList.Add(a);
        }

        var output = new StringBuilder();
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var agent = (process, output);
        agents.Add(agent);
        return agent;
    }

    private static string Text(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    /// <summary>Waits (bounded) until the agent is registered and HEALTHY.</summary>
    private async Task WaitRegisteredAsync((Process Process, StringBuilder Output) agent, string id, string pipeline = "ao-basic") =>
        await WaitAsync(async () =>
        {
            Assert.False(agent.Process.HasExited, "the agent exited: " + Text(agent.Output));
            var response = await Client(AdminToken).GetAsync($"/tpf/admin/tenants/acme/pipelines/{pipeline}/workers", Ct);
            var items = JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!["items"]!.AsArray();
            return items.Any(w => (string?)w!["workerId"] == id && (string?)w["state"] == "HEALTHY");
        }, () => "the agent did not register: " + Text(agent.Output));

    private async Task<string> SubmitAsync(object run, string pipeline = "ao-basic")
    {
        var response = await Client(ControlToken).PostAsJsonAsync($"{Tenant}/executions", new { pipelineId = pipeline, run }, Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, text);
        var id = (string)JsonNode.Parse(text)!["executionId"]!;
        executions.Add(id);
        return id;
    }

    private async Task<JsonObject> StatusAsync(string executionId)
    {
        try
        {
            return JsonNode.Parse(await Client(ControlToken).GetStringAsync($"{Tenant}/executions/{executionId}", Ct))!.AsObject();
        }
        catch (HttpRequestException)
        {
            return new JsonObject { ["status"] = "(unreachable)" };
        }
    }

    private async Task<JsonObject> WaitStatusAsync(string executionId, string status, (Process Process, StringBuilder Output) agent)
    {
        JsonObject last = [];
        await WaitAsync(async () => (string?)(last = await StatusAsync(executionId))["status"] == status,
            () => $"execution {executionId} did not become {status} (last: {last.ToJsonString()}); agent: {Text(agent.Output)}");
        return last;
    }

    private static async Task WaitAsync(Func<Task<bool>> done, Func<string> why)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (!await done())
        {
            Assert.True(DateTime.UtcNow < deadline, why());
            await Task.Delay(100, Ct);
        }
    }

    private async Task<JsonObject> ResultAsync(string executionId) =>
        JsonNode.Parse(await Client(ControlToken).GetStringAsync($"{Tenant}/executions/{executionId}/result", Ct))!["result"]!.AsObject();

    [Fact]
    public async Task A_release_of_ao_basic_runs_end_to_end_through_an_interaction()
    {
        var agent = StartAgent("host-1");
        await WaitRegisteredAsync(agent, "host-1");
        var id = await SubmitAsync(new { durationSeconds = 1, gates = new[] { new { gateId = "close-loop", question = "approve the new reconstructor before closing the loop?" } } });

        await WaitStatusAsync(id, "AWAITING_INTERACTION", agent);
        var pending = JsonNode.Parse(await Client(ControlToken).GetStringAsync($"{Tenant}/interactions/pending?executionId={id}", Ct))!["items"]!.AsArray();
        var interactionId = (string)Assert.Single(pending)!["interactionId"]!;
        var completed = await Client(ControlToken).PostAsJsonAsync($"{Tenant}/interactions/complete", new { interactionId, responsePayload = new { approved = true } }, Ct);
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);

        var done = await WaitStatusAsync(id, "SUCCEEDED", agent);
        Assert.Equal(1L, (long)done["attempts"]!);
        var result = await ResultAsync(id);
        Assert.Equal("duration", (string)result["stopReason"]!);
        Assert.True((long)result["frames"]! > 0, result.ToJsonString());
        Assert.True((double)result["endToEndLatencyUs"]!["p99"]! > 0, result.ToJsonString());
        Assert.Empty(result["failures"]!.AsArray());
        Assert.Equal(["centroid", "clip", "flatten", "integrate", "reconstruct"], result["workers"]!.AsObject().Select(w => w.Key).Order());
        Assert.True((bool)result["interactions"]![0]!["answer"]!["approved"]!);

        // SIGTERM: the agent stops tidily; nothing of the run is left.
        Signal(agent.Process, 15);
        Assert.True(agent.Process.WaitForExit(TimeSpan.FromSeconds(30)), Text(agent.Output));
        Assert.Equal(0, agent.Process.ExitCode);
        Assert.False(Directory.Exists(Path.Combine(ShmRoot, Namespace(id))));
        Assert.Empty(WorkerProcesses(Namespace(id)));
    }

    [Fact]
    public async Task An_agent_killed_mid_run_is_detected_and_its_execution_fails_instead_of_running_forever()
    {
        var agent = StartAgent("host-1");
        await WaitRegisteredAsync(agent, "host-1");
        var id = await SubmitAsync(new { }); // until stopped
        await WaitStatusAsync(id, "RUNNING", agent);

        Signal(agent.Process, 9);
        Assert.True(agent.Process.WaitForExit(TimeSpan.FromSeconds(10)));
        var failed = await WaitStatusAsync(id, "FAILED", agent);
        Assert.Equal("AGENT_LOST", (string)failed["errorCode"]!);
        Assert.Contains("host-1", (string)failed["errorMessage"]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_coordinator_restarted_mid_run_loses_nothing()
    {
        var agent = StartAgent("host-1");
        await WaitRegisteredAsync(agent, "host-1");
        var id = await SubmitAsync(new { durationSeconds = 3 });
        await WaitStatusAsync(id, "RUNNING", agent);

        await server!.DisposeAsync();
        server = null;
        await Task.Delay(1000, Ct);
        await StartServerAsync();

        var done = await WaitStatusAsync(id, "SUCCEEDED", agent);
        Assert.Equal((1L, 1L), ((long)done["attempts"]!, (long)done["leaseEpoch"]!));
        Assert.True((long)(await ResultAsync(id))["frames"]! > 0);
    }

    [Fact]
    public async Task A_cancel_reaches_the_running_pipeline_and_a_rejected_gate_ends_the_run()
    {
        var agent = StartAgent("host-1");
        await WaitRegisteredAsync(agent, "host-1");
        var id = await SubmitAsync(new { });
        await WaitStatusAsync(id, "RUNNING", agent);
        Assert.Equal(HttpStatusCode.OK, (await Client(ControlToken).PostAsync($"{Tenant}/executions/{id}/cancel", null, Ct)).StatusCode);
        await WaitStatusAsync(id, "CANCELLED", agent);
        Assert.Equal("cancelled", (string)(await ResultAsync(id))["stopReason"]!);

        var gated = await SubmitAsync(new { gates = new[] { new { gateId = "approve" } } });
        await WaitStatusAsync(gated, "AWAITING_INTERACTION", agent);
        var interactionId = (string)JsonNode.Parse(await Client(ControlToken).GetStringAsync($"{Tenant}/interactions/pending?executionId={gated}", Ct))!["items"]![0]!["interactionId"]!;
        await Client(ControlToken).PostAsJsonAsync($"{Tenant}/interactions/complete", new { interactionId, responsePayload = new { approved = false } }, Ct);
        var rejected = await WaitStatusAsync(gated, "CANCELLED", agent);
        Assert.Equal("GATE_REJECTED", (string)rejected["errorCode"]!);
    }

    /// <summary>A pipeline whose stage behind a <c>flowline.gate</c> gets nothing until the gate's interaction is approved.</summary>
    private const string GatedPipeline = """
        shared_memory:
          - {name: raw, shape: [16], dtype: float32}
          - {name: gated, shape: [16], dtype: float32}
          - {name: doubled, shape: [16], dtype: float32}
        sources:
          - name: camera
            kind: synthetic.array
            stream: raw
            parameters: {pattern: constant, constant: 1.0, rate_hz: 200}
        kernels:
          - name: close-loop
            kind: flowline.gate
            input: raw
            output: gated
            parameters: {question: approve the new reconstructor before closing the loop?}
          - {name: double, kind: cpu.scale, input: gated, output: doubled, parameters: {factor: 2.0}}
        sinks:
          - {name: sink, kind: null.sink, stream: doubled}
        """;

    [Fact]
    public async Task A_gate_in_the_document_holds_the_pipeline_until_the_operators_answer_reaches_the_agent()
    {
        var admin = Client(AdminToken);
        Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync("/tpf/admin/tenants/acme/pipelines/gated/releases/register", InlineRelease.Body("gated", "1.0.0", GatedPipeline), Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync("/tpf/admin/tenants/acme/pipelines/gated/releases/1.0.0/activate", null, Ct)).StatusCode);
        var agent = StartAgent("host-g", "gated");
        await WaitRegisteredAsync(agent, "host-g", "gated");
        var id = await SubmitAsync(new { frames = 40 }, "gated"); // no gate in the request: the document's gate asks

        await WaitStatusAsync(id, "AWAITING_INTERACTION", agent);
        var pending = Assert.Single(JsonNode.Parse(await Client(ControlToken).GetStringAsync($"{Tenant}/interactions/pending?executionId={id}", Ct))!["items"]!.AsArray())!;
        Assert.Equal("close-loop", (string)pending["stepId"]!);
        Assert.Equal("approve the new reconstructor before closing the loop?", (string)pending["requestPayload"]!["question"]!);
        Assert.Equal("document", (string)pending["requestPayload"]!["source"]!);
        var interactionId = (string)pending["interactionId"]!;
        var completed = await Client(ControlToken).PostAsJsonAsync($"{Tenant}/interactions/complete", new { interactionId, responsePayload = new { approved = true }, actor = "ops on call" }, Ct);
        Assert.Equal(HttpStatusCode.OK, completed.StatusCode);

        await WaitStatusAsync(id, "SUCCEEDED", agent);
        var result = await ResultAsync(id);
        Assert.Equal("frames", (string)result["stopReason"]!);
        var gate = Assert.Single(result["interactions"]!.AsArray())!;
        Assert.Equal(("close-loop", "close-loop", interactionId), ((string)gate["gateId"]!, (string)gate["node"]!, (string)gate["interactionId"]!));
        Assert.Equal(0L, (long)gate["passedBeforeOpen"]!); // closed, it let nothing through
        Assert.True((long)result["workers"]!["double"]!["frames_processed"]! >= 40, result.ToJsonString());
        Assert.Contains("gate 'close-loop' opened", Text(agent.Output), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_agent_with_max_executions_runs_two_at_once_and_claims_no_third()
    {
        var agent = StartAgent("host-2", "ao-basic", "--max-executions", "2");
        await WaitRegisteredAsync(agent, "host-2");
        var worker = JsonNode.Parse(await Client(AdminToken).GetStringAsync("/tpf/admin/tenants/acme/pipelines/ao-basic/workers", Ct))!["items"]![0]!;
        Assert.Equal(2, (int)worker["maxExecutions"]!);
        var first = await SubmitAsync(new { });
        var second = await SubmitAsync(new { });
        var third = await SubmitAsync(new { });
        await WaitStatusAsync(first, "RUNNING", agent);
        await WaitStatusAsync(second, "RUNNING", agent); // both at once, each its own pipeline
        Assert.Equal("QUEUED", (string)(await StatusAsync(third))["status"]!);

        // One ends: the agent takes the third.
        Assert.Equal(HttpStatusCode.OK, (await Client(ControlToken).PostAsync($"{Tenant}/executions/{first}/cancel", null, Ct)).StatusCode);
        await WaitStatusAsync(first, "CANCELLED", agent);
        await WaitStatusAsync(third, "RUNNING", agent);
        Assert.Equal("RUNNING", (string)(await StatusAsync(second))["status"]!);
        Assert.Equal("host-2", (string)(await StatusAsync(third))["workerId"]!);

        // SIGTERM stops both runs, each reported, and leaves nothing.
        Signal(agent.Process, 15);
        Assert.True(agent.Process.WaitForExit(TimeSpan.FromSeconds(60)), Text(agent.Output));
        Assert.Equal(0, agent.Process.ExitCode);
        foreach (var id in new[] { second, third })
        {
            Assert.Equal("AGENT_STOPPED", (string)(await StatusAsync(id))["errorCode"]!);
            Assert.False(Directory.Exists(Path.Combine(ShmRoot, Namespace(id))));
            Assert.Empty(WorkerProcesses(Namespace(id)));
        }
    }

    private static void Signal(Process process, int signal) => Signal(process.Id, signal);

    private static void Signal(int pid, int signal) => _ = Kill(pid, signal);

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    /// <summary>Live worker processes whose command line names <paramref name="ns"/>.</summary>
    private static List<int> WorkerProcesses(string ns)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
                var arguments = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                if (state != "Z" && arguments.Any(a => a.EndsWith("Flowline.Worker.dll", StringComparison.Ordinal)) && arguments.Contains(ns))
                {
                    found.Add(pid);
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return found;
    }
}
