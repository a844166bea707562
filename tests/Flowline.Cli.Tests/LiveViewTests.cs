using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace Flowline.Cli.Tests;

/// <summary>
/// The live views <c>flowline settings --watch</c> and <c>flowline topology --watch</c> under a
/// pseudo-terminal (script(1)) against a real <c>flowline serve</c>: a known frame of the screen, then
/// the change made meanwhile (a settings PATCH, a stop and start) drawn as it happens.
/// </summary>
[Collection(nameof(ServeCommandTests))]
public sealed partial class LiveViewTests : IDisposable
{
    private const string Document = """
        shared_memory:
          - {name: raw, shape: [16], dtype: float32}
          - {name: added, shape: [16], dtype: float32}
        sources:
          - {name: camera, kind: synthetic.array, stream: raw, parameters: {pattern: sine, rate_hz: 200}}
        kernels:
          - {name: add, kind: cpu.add_constant, input: raw, output: added, parameters: {constant: 2.0}}
        sinks:
          - {name: sink, kind: null.sink, stream: added}
        """;

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly string directory = Directory.CreateTempSubdirectory("flowline-cli-live-").FullName;
    private readonly string ns = $"cli-live-{Guid.NewGuid():N}"[..20];
    private readonly Dictionary<string, string> environment;
    private Process? server;

    public LiveViewTests()
    {
        var runtime = Directory.CreateDirectory(Path.Combine(directory, "runtime")).FullName;
        environment = new() { ["XDG_RUNTIME_DIR"] = runtime, ["FLOWLINE_URL"] = "", ["FLOWLINE_TOKEN"] = "", ["FLOWLINE_TOKEN_FILE"] = "" };
        File.WriteAllText(Path.Combine(directory, "pipeline.yaml"), Document);
    }

    [Fact]
    public void SettingsWatch_UnderAPseudoTerminal_ShowsTheValues_ThenAChangeAsItHappens()
    {
        var url = Serve();
        Assert.Equal(0, Cli.Run(environment, "start", "--url", url).ExitCode);
        using var view = new TerminalView(environment, $"settings --watch --url {url}");

        // The first frame: the node, its kind, the field, its value and that it is live.
        view.WaitFor(@"add \(cpu\.add_constant\)\n\s+constant\s+2(\.0)?\s+live", "the settings of node add");
        Assert.Matches(@"seq \d+", view.Screen);

        var patch = Cli.Run(environment, "settings", "add", "--set", "constant=4.5", "--url", url);
        Assert.True(patch.ExitCode == 0, patch.Error);
        view.WaitFor(@"#\d+ add\.constant: 2(\.0)? -> 4\.5 by \S+", "the change drawn by the live view");

        // A second look shows the new value in the table.
        var again = RunOnce($"settings add --url {url}");
        Assert.Matches(@"constant\s+4\.5\s+live", again);
        Assert.Equal(0, Cli.Run(environment, "shutdown", "--url", url).ExitCode);
    }

    [Fact]
    public void TopologyWatch_UnderAPseudoTerminal_ShowsTheGraph_ThenProcessesExitingAndComingBack()
    {
        var url = Serve();
        Assert.Equal(0, Cli.Run(environment, "start", "--url", url).ExitCode);
        using var view = new TerminalView(environment, $"topology --watch --url {url}");

        // The first frame: each node with its owning process, and the edges.
        view.WaitFor(@"add \(cpu\.add_constant\) process [0-9a-f-]{36}: raw -> added", "node add and its process");
        view.WaitFor(@"camera -\[raw\]-> add", "the edge camera to add");
        view.WaitFor(@"add -\[added\]-> sink", "the edge add to sink");
        var seen = view.Screen.Length;

        Assert.Equal(0, Cli.Run(environment, "stop", "--url", url).ExitCode);
        view.WaitFor(@"#\d+ process_exited process [0-9a-f-]{36} nodes \[add\]", "the add worker's exit", after: seen);
        seen = view.Screen.Length;
        Assert.Equal(0, Cli.Run(environment, "start", "--url", url).ExitCode);
        view.WaitFor(@"#\d+ process_registered process [0-9a-f-]{36} nodes \[add\] streams \[added\]", "the add worker's new launch", after: seen);
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

    /// <summary>Runs a command that ends by itself under a pseudo-terminal; what it drew.</summary>
    private string RunOnce(string arguments)
    {
        using var view = new TerminalView(environment, arguments);
        if (!view.Process.WaitForExit(Patience))
        {
            Assert.Fail($"flowline {arguments} did not exit within {Patience.TotalSeconds} s:\n{view.Screen}");
        }

        view.Process.WaitForExit(); // the output is read to its end
        Assert.True(view.Process.ExitCode == 0, $"flowline {arguments} exited {view.Process.ExitCode}:\n{view.Screen}");
        return view.Screen;
    }


    /// <summary>
    /// The flowline command under script(1)'s pseudo-terminal (160 columns), its screen read as it is drawn;
    /// disposing kills it and its children (a view that watches never ends by itself).
    /// </summary>
    private sealed partial class TerminalView : IDisposable
    {
        private readonly StringBuilder output = new();

        public TerminalView(IReadOnlyDictionary<string, string> environment, string arguments)
        {
            var command = $"stty cols 160 rows 50; exec {Cli.DotnetHost()} {Path.Combine(AppContext.BaseDirectory, "Flowline.Cli.dll")} {arguments}";
            var info = Cli.UnderPseudoTerminal(environment, command);
            Process = new Process { StartInfo = info };
            Process.OutputDataReceived += (_, e) => Append(e.Data);
            Process.ErrorDataReceived += (_, e) => Append(e.Data);
            Process.Start();
            Process.BeginOutputReadLine();
            Process.BeginErrorReadLine();
        }

        public Process Process { get; }

        /// <summary>What was drawn so far, without escape sequences and carriage returns.</summary>
        public string Screen
        {
            get
            {
                lock (output)
                {
                    return Ansi().Replace(output.ToString(), "");
                }
            }
        }

        /// <summary>Waits until the screen (from character <paramref name="after"/>) matches <paramref name="pattern"/>.</summary>
        public void WaitFor(string pattern, string what, int after = 0)
        {
            var watch = Stopwatch.StartNew();
            while (!Regex.IsMatch(Screen[Math.Min(after, Screen.Length)..], pattern))
            {
                if (watch.Elapsed > Patience || Process.HasExited)
                {
                    Assert.Fail($"{what} never showed ({(Process.HasExited ? $"exited {Process.ExitCode}" : $"{Patience.TotalSeconds} s")}); the screen:\n{Screen}");
                }

                Thread.Sleep(50);
            }
        }

        public void Dispose()
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                Process.WaitForExit(TimeSpan.FromSeconds(10));
            }

            Process.Dispose();
        }

        private void Append(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (output)
            {
                output.Append(line).Append('\n');
            }
        }

        /// <summary>ANSI escape sequences (colours, cursor moves) and carriage returns.</summary>
        [GeneratedRegex(@"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")]
        private static partial Regex Ansi();
    }
}
