using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Flowline.Cli.Tests;

/// <summary>
/// <c>flowline serve</c> as a child process driven by the client verbs, each run as a process too, with
/// discovery isolated in a temporary <c>XDG_RUNTIME_DIR</c>. Every test checks that the server's
/// namespace and workers are gone at the end.
/// </summary>
[Collection(nameof(ServeCommandTests))]
[CollectionDefinition(nameof(ServeCommandTests), DisableParallelization = true)]
public sealed partial class ServeCommandTests : IDisposable
{
    private const int SigTerm = 15;
    private readonly string directory = Directory.CreateTempSubdirectory("flowline-cli-serve-").FullName;
    private readonly string ns = $"cli-serve-{Guid.NewGuid():N}"[..20];
    private readonly Dictionary<string, string> environment;
    private readonly List<Process> servers = [];

    public ServeCommandTests()
    {
        var runtime = Directory.CreateDirectory(Path.Combine(directory, "runtime")).FullName;
        environment = new() { ["XDG_RUNTIME_DIR"] = runtime, ["FLOWLINE_URL"] = "", ["FLOWLINE_TOKEN"] = "", ["FLOWLINE_TOKEN_FILE"] = "" };
        File.Copy(Path.Combine(AppContext.BaseDirectory, "examples", "copy-64", "pipeline.yaml"), Document);
    }

    private string Document => Path.Combine(directory, "pipeline.yaml");

    [Fact]
    public void Serve_DrivenByTheClientVerbs_RunsThePipeline_AndLeavesNothingWhenTerminated()
    {
        var tokens = Path.Combine(directory, "tokens");
        File.WriteAllText(tokens, "# scoped tokens\nread: r-token\ncontrol: c-token\nadmin: a-token\n");
        var admin = Path.Combine(directory, "admin");
        File.WriteAllText(admin, "a-token\n");
        var reader = Path.Combine(directory, "reader");
        File.WriteAllText(reader, "read: r-token\n");
        var (server, url) = Serve("--token-file", tokens);

        var status = Client("status", "--url", url, "--token-file", admin, "--json");
        AssertExit(0, status);
        Assert.Equal("initialized", (string?)JsonNode.Parse(status.Output)!["state"]);

        var refused = Client("start", "--url", url, "--token-file", reader);
        AssertExit(1, refused);
        Assert.Contains("403", refused.Error, StringComparison.Ordinal);

        var noToken = Client("status", "--url", url);
        AssertExit(1, noToken);
        Assert.Contains("401", noToken.Error, StringComparison.Ordinal);

        var start = Client("start", "--url", url, "--token-file", admin);
        AssertExit(0, start);
        Assert.Equal("state: running", start.Output.Trim());

        var wrongStream = Client("synthetic", "start", "nowhere", "--url", url, "--token-file", admin);
        AssertExit(1, wrongStream);
        Assert.Contains("404", wrongStream.Error, StringComparison.Ordinal);
        Assert.Contains("nowhere", wrongStream.Error, StringComparison.Ordinal);

        var events = Client("events", "-n", "2", "--url", url, "--token-file", admin, "--json");
        AssertExit(0, events);
        var lines = events.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        var first = JsonNode.Parse(lines[0])!;
        Assert.Equal("snapshot", (string?)first["event"]);
        Assert.Equal("initial", (string?)first["data"]!["reason"]);
        Assert.Equal("running", (string?)first["data"]!["snapshot"]!["state"]);

        var document = Client("document", "get", "--url", url, "--token-file", admin);
        AssertExit(0, document);
        Assert.Equal(1, (long?)JsonNode.Parse(document.Output)!["revision"]);

        var table = Client("status", "--url", url, "--token-file", admin);
        AssertExit(0, table);
        Assert.Contains("state running", table.Output, StringComparison.Ordinal);
        Assert.Contains("copy", table.Output, StringComparison.Ordinal);

        AssertExit(0, Client("pause", "--url", url, "--token-file", admin));
        AssertExit(0, Client("resume", "--url", url, "--token-file", admin));
        var stop = Client("stop", "--url", url, "--token-file", admin);
        AssertExit(0, stop);
        Assert.Equal("state: built", stop.Output.Trim());

        Terminate(server);
        Leftovers.AssertNothingLeft(ns);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(environment["XDG_RUNTIME_DIR"], "flowline", "servers"), "*.json"));
    }

    [Fact]
    public void Document_PutAnInvalidYaml_IsRefused_AndThenAValidOneRaisesTheRevision()
    {
        var (server, url) = Serve();
        var invalid = Path.Combine(directory, "invalid.yaml");
        File.WriteAllText(invalid, File.ReadAllText(Document).Replace("cpu.copy", "cpu.nope", StringComparison.Ordinal));
        var refused = Client("document", "put", invalid, "--url", url);
        AssertExit(1, refused);
        Assert.Contains("cpu.nope", refused.Error, StringComparison.Ordinal);

        var validated = Client("document", "validate", "--url", url);
        AssertExit(0, validated);
        Assert.StartsWith("valid", validated.Output, StringComparison.Ordinal);

        var put = Client("document", "put", Document, "--url", url);
        AssertExit(0, put);
        Assert.Contains("revision 2", put.Output, StringComparison.Ordinal);

        Terminate(server);
        Leftovers.AssertNothingLeft(ns);
    }

    [Fact]
    public void Serve_MaxDocumentBytes_BoundsTheDocumentsItAccepts()
    {
        var (server, url) = Serve("--max-document-bytes", "100");
        var refused = Client("document", "put", Document, "--url", url);
        AssertExit(1, refused);
        Assert.Contains("413", refused.Error, StringComparison.Ordinal);
        Assert.Contains("100-byte limit", refused.Error, StringComparison.Ordinal);

        Terminate(server);
        Leftovers.AssertNothingLeft(ns);
        var zero = Cli.Run(environment, "serve", Document, "--port", "0", "--max-document-bytes", "0");
        Assert.Equal(1, zero.ExitCode);
        Assert.Contains("--max-document-bytes must be at least 1", zero.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Servers_ListShowsTheServer_AndKillStopsIt()
    {
        var (server, url) = Serve();
        var list = Client("servers", "list", "--json");
        AssertExit(0, list);
        var records = JsonNode.Parse(list.Output)!.AsArray();
        var record = Assert.Single(records);
        Assert.Equal(server.Id, (int?)record!["pid"]);
        Assert.Equal(url, (string?)record["url"]);
        Assert.Equal(Document, (string?)record["config_path"]);
        Assert.False((bool?)record["token_required"]);

        // Without --url a client verb finds the only local server.
        var status = Client("status", "--json");
        AssertExit(0, status);
        Assert.Equal(ns, (string?)JsonNode.Parse(status.Output)!["namespace"]);

        var kill = Client("servers", "kill", server.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        AssertExit(0, kill);
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, server.ExitCode);
        Assert.Contains("no local servers", Client("servers", "list").Output, StringComparison.Ordinal);
        Leftovers.AssertNothingLeft(ns);
    }

    [Fact]
    public void Servers_Launch_StartsABackgroundServer_ThatKillStops()
    {
        var launch = Client("servers", "launch", Document);
        AssertExit(0, launch);
        var match = LaunchedLine().Match(launch.Output);
        Assert.True(match.Success, $"unexpected output: {launch.Output}");
        var pid = int.Parse(match.Groups["pid"].Value, System.Globalization.CultureInfo.InvariantCulture);
        var server = Process.GetProcessById(pid);
        servers.Add(server);

        var status = Client("status", "--url", match.Groups["url"].Value, "--json");
        AssertExit(0, status);
        Assert.Equal("initialized", (string?)JsonNode.Parse(status.Output)!["state"]);

        AssertExit(0, Client("servers", "kill", "--all"));
        Assert.True(SpinWait.SpinUntil(() => server.HasExited, TimeSpan.FromSeconds(20)), "the launched server did not exit");
        Assert.Contains("no local servers", Client("servers", "list").Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Serve_OnAnyAddressWithoutAToken_IsRefused()
    {
        var result = Cli.Run(environment, "serve", Document, "--host", "0.0.0.0", "--port", "0");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("refusing to listen on '0.0.0.0' without a token", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void ClientVerb_WithNoServer_ExitsOneNamingTheAddress()
    {
        var result = Client("status", "--url", "http://127.0.0.1:9");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("127.0.0.1:9", result.Error, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        // A test that failed before its Terminate: the server is asked to stop as a user would (it removes its
        // regions and workers), killed only if it does not, and whatever it still left is collected, so that a
        // failure is reported once and leaves nothing behind for the next test.
        foreach (var server in servers)
        {
            Served.Stop(server);
        }

        Leftovers.Collect(ns);

        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private (Process Server, string Url) Serve(params string[] options)
    {
        var (server, url) = Served.Start(environment, [Document, "--port", "0", "--namespace", ns, .. options]);
        servers.Add(server);
        return (server, url);
    }

    private static void Terminate(Process server)
    {
        Assert.Equal(0, Kill(server.Id, SigTerm));
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)), "flowline serve did not exit within 20 s of SIGTERM");
        Assert.Equal(0, server.ExitCode);
    }

    private Cli.Result Client(params string[] arguments) => Cli.Run(environment, arguments);

    private static void AssertExit(int expected, Cli.Result result)
    {
        if (result.ExitCode != expected)
        {
            Assert.Fail($"exit code {result.ExitCode}, expected {expected}\nstderr:\n{result.Error}\nstdout:\n{result.Output}");
        }
    }

    private static int Kill(int pid, int signal) => Signals.Kill(pid, signal);

    [GeneratedRegex(@"^serving .* at (?<url>http://\S+) \(pid (?<pid>\d+);")]
    private static partial Regex LaunchedLine();
}
