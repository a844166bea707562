using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.ControlPlane;
using Flowline.SharedMemory.Liveness;
using Spectre.Console;

namespace Flowline.Cli.Commands;

/// <summary><c>flowline servers</c>: list the local servers, launch one in the background, stop one.</summary>
internal static class ServersCommand
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print the records as JSON." };
        var list = new Command("list", "List the local servers (records of dead servers are pruned).") { json };
        list.SetAction(p => List(p.GetValue(json)));

        var file = new Argument<FileInfo>("file") { Description = "The pipeline document to serve." };
        var port = new Option<int>("--port") { Description = "Port (default 0: a free one).", DefaultValueFactory = _ => 0 };
        var host = new Option<string>("--host") { Description = "Address to listen on.", DefaultValueFactory = _ => "127.0.0.1" };
        var tokenFile = new Option<FileInfo?>("--token-file") { Description = "The server's token file." };
        var wait = new Option<double>("--wait") { Description = "Seconds to wait for the server to listen.", DefaultValueFactory = _ => 30 };
        var launch = new Command("launch", "Start `flowline serve` in the background (its own session; output in a log file beside its record).")
        {
            file, port, host, tokenFile, wait,
        };
        launch.SetAction(p => Launch(p.GetValue(file)!, p.GetValue(host)!, p.GetValue(port), p.GetValue(tokenFile), p.GetValue(wait)));

        var target = new Argument<string?>("server") { Description = "The server's pid, port or URL (default: the only one).", Arity = ArgumentArity.ZeroOrOne };
        var all = new Option<bool>("--all") { Description = "Stop every local server." };
        var kill = new Command("kill", "Stop a local server with SIGTERM (it shuts its pipeline down) and wait for it to exit.") { target, all };
        kill.SetAction(p => Kill(p.GetValue(target), p.GetValue(all)));

        return new Command("servers", "Local control-plane servers: list, launch, kill.") { list, launch, kill };
    }

    private static int List(bool json)
    {
        var servers = new ServerDirectory().List();
        if (json)
        {
            Console.WriteLine(new JsonArray([.. servers.Select(s => (JsonNode)s.ToJson())]).ToJsonString(Indented));
            return ExitCodes.Ok;
        }

        if (servers.Count == 0)
        {
            Console.WriteLine("no local servers");
            return ExitCodes.Ok;
        }

        var table = new Table().AddColumns("pid", "url", "token", "started", "document");
        foreach (var s in servers)
        {
            table.AddRow(
                s.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture),
                Markup.Escape(s.Url),
                s.TokenRequired ? "required" : "none",
                DateTimeOffset.FromUnixTimeMilliseconds((long)(s.StartedAt * 1000)).ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture),
                Markup.Escape(s.ConfigPath ?? ""));
        }

        AnsiConsole.Write(table);
        return ExitCodes.Ok;
    }

    private static int Launch(FileInfo file, string host, int port, FileInfo? tokenFile, double waitSeconds)
    {
        if (!file.Exists)
        {
            Console.Error.WriteLine($"no such file: '{file.FullName}'");
            return ExitCodes.Failed;
        }

        var directory = new ServerDirectory();
        try
        {
            directory.EnsureExists();
        }
        catch (InvalidOperationException e)
        {
            Console.Error.WriteLine(e.Message);
            return ExitCodes.Failed;
        }

        var log = Path.Combine(directory.Path, $"serve-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Environment.ProcessId}.log");
        var serve = new List<string> { "serve", file.FullName, "--host", host, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        if (tokenFile is not null)
        {
            serve.AddRange(["--token-file", tokenFile.FullName]);
        }

        // `flowline` runs either as an apphost or as `dotnet Flowline.Cli.dll`: start the same way.
        var host0 = Environment.ProcessPath!;
        var program = Path.GetFileNameWithoutExtension(host0) == "dotnet" ? [host0, typeof(ServersCommand).Assembly.Location] : new[] { host0 };
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        foreach (var arg in (string[])["-c", "exec setsid \"$0\" \"$@\" >\"$FLOWLINE_SERVE_LOG\" 2>&1 </dev/null", .. program, .. serve])
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["FLOWLINE_SERVE_LOG"] = log;
        using var process = Process.Start(start)!;
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed.TotalSeconds < waitSeconds)
        {
            if (directory.List().FirstOrDefault(r => r.Pid == process.Id) is { } record)
            {
                Console.WriteLine($"serving {file.FullName} at {record.Url} (pid {record.Pid}; log {log})");
                return ExitCodes.Ok;
            }

            if (process.WaitForExit(100))
            {
                Console.Error.WriteLine($"the server exited with code {process.ExitCode}:");
                Console.Error.WriteLine(File.Exists(log) ? File.ReadAllText(log).TrimEnd() : "(no output)");
                return ExitCodes.Failed;
            }
        }

        ThisProcess.SendSignal(process.Id, 15);
        var stopped = process.WaitForExit(TimeSpan.FromSeconds(10));
        Console.Error.WriteLine($"the server (pid {process.Id}) did not listen within {waitSeconds} s; it was {(stopped ? "stopped" : "sent SIGTERM but still runs")}. Log: {log}");
        return ExitCodes.Failed;
    }

    private static int Kill(string? target, bool all)
    {
        var servers = new ServerDirectory().List();
        var chosen = all ? servers : servers.Where(s => target is null || Matches(s, target)).ToList();
        if (chosen.Count == 0)
        {
            Console.Error.WriteLine(target is null ? "no local servers" : $"no local server matches '{target}'");
            return ExitCodes.Failed;
        }

        if (!all && target is null && chosen.Count > 1)
        {
            Console.Error.WriteLine($"{chosen.Count} servers run; name one by pid, port or URL, or give --all");
            return ExitCodes.Failed;
        }

        var failed = false;
        foreach (var s in chosen)
        {
            ThisProcess.SendSignal(s.Pid, 15);
            var identity = s.PidStartTicks != 0 ? new ProcessIdentity(s.Pid, s.PidStartTicks) : ProcessIdentity.Of(s.Pid);
            var clock = Stopwatch.StartNew();
            while (identity is { } alive && alive.IsAlive() && clock.Elapsed < TimeSpan.FromSeconds(20))
            {
                Thread.Sleep(50);
            }

            if (identity is not { } id || !id.IsAlive())
            {
                Console.WriteLine($"stopped the server at {s.Url} (pid {s.Pid})");
            }
            else
            {
                Console.Error.WriteLine($"the server at {s.Url} (pid {s.Pid}) did not exit within 20 s");
                failed = true;
            }
        }

        return failed ? ExitCodes.Failed : ExitCodes.Ok;
    }

    private static bool Matches(ServerRecord s, string target) =>
        target == s.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture)
        || target == s.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)
        || target.TrimEnd('/') == s.Url;
}
