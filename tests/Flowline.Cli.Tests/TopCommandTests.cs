using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Flowline.Cli.Commands;
using Flowline.Status;
using Spectre.Console.Testing;

namespace Flowline.Cli.Tests;

/// <summary>
/// <c>flowline top</c>: a known screen drawn into Spectre's test console, and the command itself under a
/// pseudo-terminal (<c>script</c>) and with <c>--json</c>, against a served pipeline.
/// </summary>
[Collection(nameof(ServeCommandTests))]
public sealed partial class TopCommandTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("flowline-cli-top-").FullName;
    private readonly string ns = $"cli-top-{Guid.NewGuid():N}"[..20];
    private readonly Dictionary<string, string> environment;
    private Process? server;

    public TopCommandTests()
    {
        var runtime = Directory.CreateDirectory(Path.Combine(directory, "runtime")).FullName;
        environment = new() { ["XDG_RUNTIME_DIR"] = runtime, ["FLOWLINE_URL"] = "", ["FLOWLINE_TOKEN"] = "", ["FLOWLINE_TOKEN_FILE"] = "" };
        File.Copy(Path.Combine(AppContext.BaseDirectory, "examples", "copy-64", "pipeline.yaml"), Path.Combine(directory, "pipeline.yaml"));
    }

    [Fact]
    public void TopView_DrawsAKnownScreen()
    {
        var latency = new HistogramSummary(1000, 12.5, 20, 31, 40, 55, 13);
        var compute = new HistogramSummary(1000, 1.2, 2, 3.4, 5, 250, 1.5);
        var model = new TopModel(
            "http://127.0.0.1:8765",
            "running",
            "demo",
            new DateTimeOffset(2026, 12, 6, 21, 0, 0, TimeSpan.Zero),
            [
                new TopWorker("camera", "source", 101, "active", 3.5, 50 * 1048576L, 1000, 12000, null),
                new TopWorker("copy", "kernel", 102, "active", 12.25, 60 * 1048576L, 999.5, 11990, compute),
            ],
            [
                new TopStream("input_vector", "camera", 1000, 256000, 0, 0.125, [new TopReader("copy", 999.5, 3, 0.75, 0.125, latency)]),
            ]);
        var console = new TestConsole().Width(150);
        console.Write(TopView.Render(model));
        var screen = string.Join('\n', console.Output.Split('\n').Select(l => l.TrimEnd()));
        const string Expected = """
            flowline top  http://127.0.0.1:8765  state running  namespace demo  21:00:00 UTC
                                                             workers

              worker   role     pid   health   cpu %   rss MiB   rate Hz   frames   compute p50 µs   p99 µs   max µs
            ──────────────────────────────────────────────────────────────────────────────────────────────────────────
              camera   source   101   active     3.5      50.0    1000.0    12000                -        -        -
              copy     kernel   102   active    12.2      60.0     999.5    11990              1.2      3.4      250

                                                     streams (rates over the last interval)

              stream / reader   writer   rate Hz   MB/s   blocked %   wait %   fill %   skipped   latency p50 µs   p99 µs   max µs
            ────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────
              input_vector      camera    1000.0   0.26         0.0                12
                └ copy                     999.5                        75.0       12         3             12.5     31.0     55.0
            """;
        Assert.Equal(Expected.Trim('\n'), screen.Trim('\n'));
    }

    [Fact]
    public void Top_UnderAPseudoTerminal_DrawsTheServedPipeline_AndJsonHasBothSnapshots()
    {
        var url = Serve();
        var start = Cli.Run(environment, "start", "--url", url);
        Assert.True(start.ExitCode == 0, start.Error);

        // Under a pseudo-terminal, as a person runs it: script(1) gives the command a tty of 160 columns.
        var command = $"stty cols 160 rows 50; exec {Cli.DotnetHost()} {Path.Combine(AppContext.BaseDirectory, "Flowline.Cli.dll")} top --once --interval 0.5 --url {url}";
        var watch = Stopwatch.StartNew();
        string screen;
        while (true)
        {
            var tty = RunScript(command);
            Assert.True(tty.ExitCode == 0, $"flowline top exited {tty.ExitCode}: {tty.Output}");
            screen = Ansi().Replace(tty.Output, "");
            if (Regex.IsMatch(screen, @"└ copy\s+\d+\.\d\s+\d+\.\d\s+\d+\s+\d+\s+\d+(\.\d)?\s+\d+(\.\d)?\s+\d+(\.\d)?"))
            {
                break; // the copy worker's latency histogram has been published (it is every 250 ms)
            }

            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60), $"the reader line of copy never showed latencies:\n{screen}");
        }

        Assert.Contains("flowline top", screen, StringComparison.Ordinal);
        Assert.Contains("state running", screen, StringComparison.Ordinal);
        Assert.Matches(@"copy\s+kernel\s+\d+\s+\w+", screen);
        Assert.Matches(@"input_vector\s+camera\s+\d+\.\d", screen);

        var json = Cli.Run(environment, "top", "--once", "--json", "--interval", "0.2", "--url", url);
        Assert.True(json.ExitCode == 0, json.Error);
        var sample = JsonNode.Parse(json.Output)!.AsObject();
        Assert.Equal("running", (string?)sample["status"]!["state"]);
        Assert.Contains(sample["profiling"]!["streams"]!.AsArray(), s => (string?)s!["name"] == "output_vector");

        Assert.Equal(0, Cli.Run(environment, "shutdown", "--url", url).ExitCode);
    }

    public void Dispose()
    {
        if (server is not null)
        {
            Served.Stop(server);
            Leftovers.AssertNothingLeft(ns);
        }

        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private string Serve()
    {
        (server, var url) = Served.Start(environment, Path.Combine(directory, "pipeline.yaml"), "--port", "0", "--namespace", ns);
        return url;
    }

    /// <summary>Runs <paramref name="command"/> under script(1)'s pseudo-terminal; its exit code and everything it drew.</summary>
    private Cli.Result RunScript(string command)
    {
        var info = Cli.UnderPseudoTerminal(environment, command);
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("flowline top under script did not exit within 60 s");
        }

        return new Cli.Result(process.ExitCode, output.Result, error.Result);
    }


    /// <summary>ANSI escape sequences (colours, cursor moves) and carriage returns.</summary>
    [GeneratedRegex(@"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")]
    private static partial Regex Ansi();
}
