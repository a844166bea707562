using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Flowline.Coordinator.Storage;

namespace Flowline.Coordinator.Tests;

/// <summary>The CLI's coordinator verbs (<c>releases</c>, <c>executions</c>, <c>interactions</c>, <c>workers</c>) as child processes against a real coordinator.</summary>
public sealed class CoordinatorVerbTests : IAsyncLifetime
{
    private const string AdminToken = "admin-token-all-tenants-0001";
    private const string ControlToken = "control-plane-token-acme-002";

    private readonly string directory = Path.Combine(Path.GetTempPath(), "flowline-coord-verbs-" + Guid.NewGuid().ToString("N")[..10]);
    private CoordinatorServer server = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(Path.Combine(directory, "release"));
        File.WriteAllText(Path.Combine(directory, "admin.token"), AdminToken);
        File.WriteAllText(Path.Combine(directory, "control.token"), ControlToken);
        server = await CoordinatorServer.StartAsync(new SqliteCoordinatorStore(Path.Combine(directory, "coordinator.db")), new CoordinatorOptions
        {
            Port = 0,
            DataDirectory = Path.Combine(directory, "data"),
            Tokens = CoordinatorTokens.Of((Role.Admin, ["*"], AdminToken), (Role.ControlPlane, ["acme"], ControlToken)),
        }, Ct);
    }

    public async ValueTask DisposeAsync()
    {
        await server.DisposeAsync();
        Directory.Delete(directory, recursive: true);
    }

    private (int Exit, string Output, string Error) Flowline(bool admin, params string[] arguments)
    {
        var info = new ProcessStartInfo(global::Flowline.SharedMemory.Diagnostics.DotnetHost.Path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Flowline.Cli.dll"));
        foreach (var a in arguments.Concat(["--coordinator", server.Address.ToString(), "--tenant", "acme", "--token-file", Path.Combine(directory, admin ? "admin.token" : "control.token")]))
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync(Ct);
        var error = process.StandardError.ReadToEndAsync(Ct);
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"flowline {string.Join(' ', arguments)} did not finish within 60 s");
        }

        return (process.ExitCode, output.Result, error.Result);
    }

    [Fact]
    public async Task Releases_executions_interactions_and_workers_verbs_drive_the_coordinator()
    {
        var yaml = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "examples", "copy-64", "pipeline.yaml"));
        File.WriteAllText(Path.Combine(directory, "release", "pipeline.yaml"), yaml);
        var descriptor = Path.Combine(directory, "release", "pipeline-release.json");
        File.WriteAllText(descriptor, new JsonObject
        {
            ["schemaVersion"] = 1, ["pipelineId"] = "copy", ["contractVersion"] = "1", ["releaseVersion"] = "1.0.0",
            ["artifacts"] = new JsonArray(new JsonObject
            {
                ["artifactId"] = "document", ["kind"] = "pipeline-document", ["uri"] = "pipeline.yaml",
                ["digest"] = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(yaml))),
            }),
        }.ToJsonString());

        var registered = Flowline(true, "releases", "register", descriptor, "--pipeline", "copy", "--json");
        Assert.True(registered.Exit == 0, registered.Error);
        Assert.Equal("1.0.0", (string)JsonNode.Parse(registered.Output)!["releaseVersion"]!);
        Assert.Contains("activated 1.0.0", Flowline(true, "releases", "activate", "1.0.0", "--pipeline", "copy", "--reason", "first").Output, StringComparison.Ordinal);
        Assert.Contains("1.0.0  ACTIVE", Flowline(true, "releases", "list", "--pipeline", "copy").Output, StringComparison.Ordinal);

        // No agent yet: the submission is refused, with the coordinator's code, and exit code 1.
        var refused = Flowline(false, "executions", "submit", "--pipeline", "copy", "--frames", "10");
        Assert.Equal(1, refused.Exit);
        Assert.Contains("flowline executions submit: 503 NO_HEALTHY_WORKER", refused.Error, StringComparison.Ordinal);

        using (var http = new HttpClient { BaseAddress = server.Address })
        {
            http.DefaultRequestHeaders.Authorization = new("Bearer", AdminToken);
            Assert.True((await http.PostAsync("/tpf/admin/tenants/acme/pipelines/copy/workers/register",
                new StringContent("""{"workerId": "host-1", "protocol": "flowline-agent", "contractVersion": "1", "releaseVersion": "1.0.0"}""", Encoding.UTF8, "application/json"), Ct)).IsSuccessStatusCode);
        }

        Assert.Contains("host-1  HEALTHY", Flowline(true, "workers", "list", "--pipeline", "copy").Output, StringComparison.Ordinal);
        var submitted = Flowline(false, "executions", "submit", "--pipeline", "copy", "--duration", "5", "--gate", "approve=go?", "--idempotency-key", "k1", "--json");
        Assert.True(submitted.Exit == 0, submitted.Error);
        var id = (string)JsonNode.Parse(submitted.Output)!["executionId"]!;
        Assert.Contains("(duplicate", Flowline(false, "executions", "submit", "--pipeline", "copy", "--duration", "5", "--gate", "approve=go?", "--idempotency-key", "k1").Output, StringComparison.Ordinal);
        Assert.Contains($"{id}  QUEUED", Flowline(false, "executions", "status", id).Output, StringComparison.Ordinal);
        Assert.Contains("(none)", Flowline(false, "interactions", "pending").Output, StringComparison.Ordinal);
        Assert.Contains($"{id}  CANCELLED", Flowline(false, "executions", "cancel", id).Output, StringComparison.Ordinal);
        Assert.Contains($"{id}  CANCELLED", Flowline(false, "executions", "list", "--status", "CANCELLED").Output, StringComparison.Ordinal);
        Assert.Contains("host-1  DRAINING", Flowline(true, "workers", "drain", "host-1", "--pipeline", "copy").Output, StringComparison.Ordinal);
        Assert.Equal(1, Flowline(false, "interactions", "complete", Guid.NewGuid().ToString()).Exit);
    }
}
