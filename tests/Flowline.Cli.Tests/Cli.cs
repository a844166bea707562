using System.Diagnostics;
using System.Text.RegularExpressions;
using System.Runtime.InteropServices;

namespace Flowline.Cli.Tests;

/// <summary>Runs the flowline command as a child process and captures what it prints.</summary>
internal static class Cli
{
    public sealed record Result(int ExitCode, string Output, string Error);

    public static Result Run(params string[] arguments) => Run(null, arguments);

    /// <summary>Runs the command with extra environment variables.</summary>
    public static Result Run(IReadOnlyDictionary<string, string>? environment, params string[] arguments) =>
        RunWithin(TimeSpan.FromSeconds(60), environment, arguments);

    /// <summary>Runs the command, failing (and killing it with its children) if it takes longer than <paramref name="limit"/>.</summary>
    public static Result RunWithin(TimeSpan limit, IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        using var process = Start(environment, arguments);
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"flowline {string.Join(' ', arguments)} did not finish within {limit.TotalSeconds:0} s");
        }

        return new Result(process.ExitCode, output.Result, error.Result);
    }

    /// <summary>
    /// A start of <paramref name="command"/> (a shell command line) under script(1)'s pseudo-terminal, with
    /// <paramref name="environment"/> and <c>TERM=xterm-256color</c>, its output and error redirected.
    /// </summary>
    public static ProcessStartInfo UnderPseudoTerminal(IReadOnlyDictionary<string, string> environment, string command)
    {
        var info = new ProcessStartInfo("script")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "-q", "-e", "-c", command, "/dev/null" })
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        info.Environment["TERM"] = "xterm-256color";
        return info;
    }

    /// <summary>Starts the command with its output redirected.</summary>
    public static Process Start(IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        var info = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Flowline.Cli.dll"));
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        return Process.Start(info)!;
    }

    public static string DotnetHost() => Flowline.SharedMemory.Diagnostics.DotnetHost.Path;
}

/// <summary>What a test checks was left behind: shared-memory namespaces and worker processes (<see cref="Flowline.Testing.Leftovers"/>).</summary>
internal static class Leftovers
{
    private const string ShmRoot = "/dev/shm/flowline";

    /// <summary>After the CLI exited: no region directory and no control directory of the namespaces (not even empty ones), and no worker of them alive.</summary>
    public static void AssertNothingLeft(params string[] namespaces)
    {
        foreach (var ns in namespaces)
        {
            Assert.False(Directory.Exists(Path.Combine(ShmRoot, ns)), $"namespace {ns} was left in {ShmRoot}");
            Assert.False(Directory.Exists(Path.Combine(ShmRoot, ns + ".control")), $"namespace {ns}.control was left in {ShmRoot}");
        }

        Flowline.Testing.Leftovers.AssertNothingLeft(TimeSpan.Zero, namespaces);
    }

    /// <summary>
    /// Teardown after a failed test: kills the workers of <paramref name="namespaces"/> still alive and removes
    /// their region and control directories (what <c>flowline gc</c> would do for a dead server).
    /// </summary>
    public static void Collect(params string[] namespaces)
    {
        foreach (var pid in WorkerProcesses(namespaces))
        {
            try
            {
                using var worker = System.Diagnostics.Process.GetProcessById(pid);
                worker.Kill();
                worker.WaitForExit(TimeSpan.FromSeconds(10));
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // It exited meanwhile.
            }
        }

        foreach (var ns in namespaces)
        {
            foreach (var dir in new[] { Path.Combine(ShmRoot, ns), Path.Combine(ShmRoot, ns + ".control") })
            {
                try
                {
                    Directory.Delete(dir, recursive: true);
                }
                catch (DirectoryNotFoundException)
                {
                }
            }
        }
    }

    /// <summary>Live (not zombie) worker processes of one of <paramref name="namespaces"/>.</summary>
    public static List<int> WorkerProcesses(IEnumerable<string> namespaces) => [.. Flowline.Testing.Leftovers.WorkerProcesses(namespaces)];
}

/// <summary>Signals sent to child processes.</summary>
internal static class Signals
{
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static extern int Kill(int pid, int signal);
}

/// <summary><c>flowline serve</c> as a child process of a test: started until it prints its address, and stopped as a user would stop it.</summary>
internal static partial class Served
{
    /// <summary>Starts <c>flowline serve</c> with <paramref name="arguments"/> and returns it with the URL it prints (failing the test if it prints none within 30 s).</summary>
    public static (Process Server, string Url) Start(IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        var server = Cli.Start(environment, ["serve", .. arguments]);
        var line = server.StandardOutput.ReadLineAsync();
        if (!line.Wait(TimeSpan.FromSeconds(30)) || line.Result is null)
        {
            server.Kill(entireProcessTree: true);
            Assert.Fail($"flowline serve did not report its address within 30 s: {server.StandardError.ReadToEnd()}");
        }

        var match = ServingLine().Match(line.Result!);
        Assert.True(match.Success, $"unexpected first line: {line.Result}");
        return (server, match.Groups["url"].Value.TrimEnd('/'));
    }

    /// <summary>
    /// Teardown: a server still running (its test failed before stopping it) gets SIGTERM, so that it removes its
    /// regions and workers, and is killed with its children only if it does not exit within 20 s.
    /// </summary>
    public static void Stop(Process server)
    {
        if (!server.HasExited)
        {
            _ = Signals.Kill(server.Id, 15);
            if (!server.WaitForExit(TimeSpan.FromSeconds(20)))
            {
                server.Kill(entireProcessTree: true);
                server.WaitForExit(TimeSpan.FromSeconds(10));
            }
        }

        server.Dispose();
    }

    /// <summary>The line <c>flowline serve</c> prints first.</summary>
    [GeneratedRegex(@"^serving .* at (?<url>http://\S+) \(")]
    public static partial Regex ServingLine();
}
