using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Flowline.SharedMemory.Liveness;

namespace Flowline.ControlPlane;

/// <summary>How a control server may launch other local servers (<c>POST /servers</c>).</summary>
public sealed record ServerLaunchOptions
{
    /// <summary>The program and leading arguments that run the <c>flowline</c> command line (<c>serve ...</c> is appended).</summary>
    public IReadOnlyList<string> Command { get; init; } = [];

    /// <summary>Servers this server may have launched and running at once (default 4).</summary>
    public int MaxServers { get; init; } = 4;

    /// <summary>How long a launched server may take to listen (default 30 s).</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Launches <c>flowline serve</c> for a document on this host (loopback only, a free port, its own session,
/// registered in the same discovery directory, watching this server so that it stops when this one exits),
/// and stops local servers of the discovery directory with SIGTERM. Documents are taken only by path, under
/// the directories this server may load from; at most <see cref="ServerLaunchOptions.MaxServers"/> run at once.
/// </summary>
internal sealed class ServerLauncher(ServerLaunchOptions? options, ServerDirectory? directory, ControlService service) : IDisposable
{
    private readonly Lock gate = new();
    private readonly List<Process> launched = [];

    /// <summary>Launches a server for <paramref name="path"/> and waits until it is registered; its record.</summary>
    public async Task<JsonObject> LaunchAsync(string path, string? @namespace, CancellationToken cancellationToken)
    {
        if (options is not { Command.Count: > 0 } || directory is null)
        {
            throw new ControlException(501, "this server cannot launch servers (it was not started by the flowline command line, or it has no discovery directory)");
        }

        var real = service.AllowedDocument(path);
        if (@namespace is not null && (@namespace.Length is 0 or > 64 || !@namespace.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
        {
            throw new BadBodyException($"'namespace' must be 1 to 64 letters, digits, '-', '_' or '.', not '{@namespace}'");
        }

        Process process;
        lock (gate)
        {
            launched.RemoveAll(p => p.HasExited && Dispose(p));
            if (launched.Count >= options.MaxServers)
            {
                throw new ControlException(429, $"this server already runs {launched.Count} launched servers (at most {options.MaxServers}); kill one first");
            }

            directory.EnsureExists();
            var log = Path.Combine(directory.Path, $"serve-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Environment.ProcessId}-{launched.Count}.log");
            var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
            string[] serve = ["serve", real, "--host", "127.0.0.1", "--port", "0", "--discovery-dir", directory.Path,
                "--parent", Environment.ProcessId.ToString(CultureInfo.InvariantCulture)];
            foreach (var arg in (string[])["-c", "exec setsid \"$0\" \"$@\" >\"$FLOWLINE_SERVE_LOG\" 2>&1 </dev/null", .. options.Command, .. serve, .. (@namespace is null ? [] : (string[])["--namespace", @namespace])])
            {
                start.ArgumentList.Add(arg);
            }

            start.Environment["FLOWLINE_SERVE_LOG"] = log;
            start.Environment.Remove("FLOWLINE_TOKEN");
            start.Environment.Remove("FLOWLINE_TOKEN_FILE");
            process = Process.Start(start) ?? throw new ControlException(500, "could not start the server process");
            launched.Add(process);
        }

        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < options.StartTimeout)
        {
            if (directory.List().FirstOrDefault(r => r.Pid == process.Id) is { } record)
            {
                service.Events.Publish("server_launched", record.ToJson());
                return record.ToJson();
            }

            if (process.HasExited)
            {
                var output = ReadLog(process);
                throw new ControlException(422, $"the server for '{path}' exited with code {process.ExitCode}: {output}");
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }

        ThisProcess.SendSignal(process.Id, 15);
        throw new ControlException(504, $"the server for '{path}' did not listen within {options.StartTimeout.TotalSeconds} s; it was sent SIGTERM");
    }

    /// <summary>Stops the local server of the discovery directory with process id <paramref name="pid"/> (SIGTERM, then waits up to 20 s).</summary>
    public async Task<JsonObject> KillAsync(int pid, CancellationToken cancellationToken)
    {
        if (pid == Environment.ProcessId)
        {
            throw new ControlException(409, "this is the server you are talking to; use POST /commands/shutdown and stop it from where it was started");
        }

        if (directory is null)
        {
            throw new ControlException(501, "this server has no discovery directory: it knows no other server");
        }

        var record = directory.List().FirstOrDefault(r => r.Pid == pid)
            ?? throw new ControlException(404, $"no local server with pid {pid} is registered in {directory.Path}");
        var identity = record.PidStartTicks != 0 ? new ProcessIdentity(record.Pid, record.PidStartTicks) : ProcessIdentity.Of(record.Pid);
        ThisProcess.SendSignal(pid, 15);
        var clock = Stopwatch.StartNew();
        while (identity is { } alive && alive.IsAlive() && clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }

        if (identity is { } still && still.IsAlive())
        {
            throw new ControlException(504, $"the server at {record.Url} (pid {pid}) did not exit within 20 s of SIGTERM");
        }

        lock (gate)
        {
            launched.RemoveAll(p => p.HasExited && Dispose(p));
        }

        service.Events.Publish("server_stopped", record.ToJson());
        return new JsonObject { ["stopped"] = true, ["server"] = record.ToJson() };
    }

    private static string ReadLog(Process process)
    {
        try
        {
            var log = process.StartInfo.Environment["FLOWLINE_SERVE_LOG"]!;
            var text = File.Exists(log) ? File.ReadAllText(log).Trim() : "";
            return text.Length == 0 ? "(no output)" : text.Length > 2000 ? text[^2000..] : text;
        }
        catch (IOException e)
        {
            return $"(its log cannot be read: {e.Message})";
        }
    }

    private static bool Dispose(Process process)
    {
        process.Dispose();
        return true;
    }

    /// <summary>Stops the servers this one launched (SIGTERM; each stops its pipeline) and waits up to 10 s for them.</summary>
    public void Dispose()
    {
        List<Process> running;
        lock (gate)
        {
            running = [.. launched];
            launched.Clear();
        }

        foreach (var p in running.Where(p => !p.HasExited))
        {
            ThisProcess.SendSignal(p.Id, 15);
        }

        foreach (var p in running)
        {
            if (!p.WaitForExit(TimeSpan.FromSeconds(10)))
            {
                ThisProcess.SendSignal(p.Id, 9);
                p.WaitForExit(TimeSpan.FromSeconds(2));
            }

            p.Dispose();
        }
    }
}
