using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Runtime;
using Flowline.SharedMemory;
using Spectre.Console;

namespace Flowline.Cli.Commands;

/// <summary><c>flowline run</c>: build and start a pipeline, show its workers live, and shut it down cleanly.</summary>
internal static class RunCommand
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Create()
    {
        var file = new Argument<FileInfo>("file") { Description = "The pipeline document (YAML)." };
        var duration = new Option<double?>("--duration", "-d") { Description = "Seconds to run before shutting down (default: until Ctrl-C or SIGTERM)." };
        var jsonStatus = new Option<bool>("--json-status") { Description = "Print the final runtime snapshot as JSON on standard output instead of tables." };
        var placement = new Option<string>("--placement") { Description = "CPU placement: none (default) or round-robin.", DefaultValueFactory = _ => "none" };
        placement.AcceptOnlyFromAmong("none", "round-robin");
        var command = new Command("run", "Build and start a pipeline, show its workers live, and shut it down on Ctrl-C, SIGTERM or after --duration.")
        {
            file, duration, jsonStatus, placement,
        };
        command.SetAction(parse => Run(
            parse.GetValue(file)!.ToString(),
            parse.GetValue(duration),
            parse.GetValue(jsonStatus),
            parse.GetValue(placement) == "round-robin" ? PlacementPolicy.RoundRobin : PlacementPolicy.None));
        return command;
    }

    private static int Run(string path, double? duration, bool json, PlacementPolicy placement)
    {
        if (duration is <= 0 or double.NaN)
        {
            Console.Error.WriteLine($"--duration must be a positive number of seconds, not {duration}");
            return ExitCodes.Failed;
        }

        var check = PipelineDocument.CheckFile(path);
        if (check.Pipeline is not { } pipeline)
        {
            DocumentCommands.WriteErrors(check);
            return ExitCodes.Failed;
        }

        using var stop = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
        void Cancel(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }

        using var manager = new PipelineManager(pipeline, new PipelineManagerOptions { Placement = placement });
        var exit = ExitCodes.Ok;
        try
        {
            manager.Build();
            manager.Start();
        }
        catch (Exception e) when (e is InvalidOperationException or WorkerFailedException or TimeoutException or DocumentValidationException or IOException or SharedMemoryException)
        {
            Console.Error.WriteLine($"{path}: cannot start: {e.Message}");
            return ExitCodes.StartFailed;
        }

        var live = !json && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
        var until = duration is { } d ? DateTime.UtcNow.AddSeconds(d) : DateTime.MaxValue;
        if (live)
        {
            AnsiConsole.Live(Table(manager.Status(), path)).AutoClear(false).Start(context =>
            {
                while (Wait(manager, stop.Token, until))
                {
                    context.UpdateTarget(Table(manager.Status(), path));
                }

                context.UpdateTarget(Table(manager.Status(), path));
            });
        }
        else
        {
            while (Wait(manager, stop.Token, until))
            {
            }
        }

        var snapshot = manager.RuntimeSnapshot();
        if ((string?)snapshot["state"] == "failed")
        {
            exit = ExitCodes.WorkerFailed;
            foreach (var failure in snapshot["failures"]!.AsArray())
            {
                Console.Error.WriteLine($"{failure!["component_type"]} '{failure["kernel"]}' failed: {failure["error"]}");
            }
        }

        manager.Shutdown(force: false);
        if (json)
        {
            Console.Out.WriteLine(snapshot.ToJsonString(Indented));
        }
        else
        {
            AnsiConsole.Write(Summary(snapshot));
        }

        return exit;
    }

    /// <summary>Waits half a second; false when it is time to stop (signal, duration, failure).</summary>
    private static bool Wait(PipelineManager manager, CancellationToken stop, DateTime until)
    {
        var left = until - DateTime.UtcNow;
        if (left <= TimeSpan.Zero || stop.IsCancellationRequested || manager.State == PipelineState.Failed)
        {
            return false;
        }

        stop.WaitHandle.WaitOne(left < TimeSpan.FromMilliseconds(500) ? left : TimeSpan.FromMilliseconds(500));
        return !stop.IsCancellationRequested && DateTime.UtcNow < until && manager.State != PipelineState.Failed;
    }

    private static Table Table(JsonObject status, string path, string? title = null)
    {
        var table = new Table()
            .Title(title ?? $"{Markup.Escape(path)}: [bold]{status["state"]}[/] (namespace {Markup.Escape((string?)status["namespace"] ?? "")})")
            .AddColumns("worker", "role", "health", "frames", "Hz", "exec µs", "jitter µs", "latency p50/p99 µs", "CPU %");
        foreach (var (group, role) in new[] { ("sources", "source"), ("workers", "kernel"), ("sinks", "sink") })
        {
            foreach (var (name, node) in status[group]!.AsObject())
            {
                var w = node!.AsObject();
                var frames = w["frames_processed"] ?? w["frames_written"] ?? w["frames_consumed"];
                var latency = w["latency_us"] is JsonObject l && role != "source" ? $"{F(l["p50"])} / {F(l["p99"])}" : "";
                table.AddRow(
                    Markup.Escape(name),
                    role,
                    Markup.Escape((string?)w["health"] ?? ""),
                    F(frames, "0"),
                    F(w["throughput_hz"], "0.0"),
                    F(w["avg_exec_us"]),
                    F(w["jitter_us_rms"]),
                    latency,
                    F(w["cpu_percent"], "0.0"));
            }
        }

        return table;
    }

    private static Table Summary(JsonObject snapshot)
    {
        var table = Table(snapshot, "", $"final figures ({snapshot["state"]} until shut down, namespace {Markup.Escape((string?)snapshot["namespace"] ?? "")})");
        var failures = snapshot["failures"]!.AsArray().Count;
        table.Caption($"{failures} failure{(failures == 1 ? "" : "s")}");
        return table;
    }

    private static string F(JsonNode? value, string format = "0.0") => Numbers.Format(value, format);
}
