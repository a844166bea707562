using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Flowline.ControlPlane;
using Flowline.Documents;
using Flowline.Runtime;
using Flowline.SharedMemory;
using Flowline.Status;
using Spectre.Console;

namespace Flowline.Cli.Commands;

/// <summary><c>flowline run</c>: build and start a pipeline, show its workers live, and shut it down cleanly.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var file = new Argument<FileInfo>("file") { Description = "The pipeline document (YAML)." };
        var duration = new Option<double?>("--duration", "-d") { Description = "Seconds to run before shutting down (default: until Ctrl-C or SIGTERM)." };
        var jsonStatus = new Option<bool>("--json-status") { Description = "Print the final runtime snapshot as JSON on standard output instead of tables." };
        var placement = new Option<string>("--placement") { Description = "CPU placement: none (default) or round-robin.", DefaultValueFactory = _ => "none" };
        placement.AcceptOnlyFromAmong("none", "round-robin");
        var target = new Option<string?>("--latency-target")
        {
            Description = "P50,P99: the frame-in to command-out latency to compare with, in µs (e.g. 60,200); the summary prints each sink's end-to-end latency beside it.",
        };
        var startTimeout = new Option<double>("--start-timeout")
        {
            Description = "Seconds each worker may take to start (load its kind, attach its streams, get ready) before the start fails (default 10, shmpipeline's worker_start_timeout).",
            DefaultValueFactory = _ => 10,
        };
        var command = new Command("run", "Build and start a pipeline, show its workers live, and shut it down on Ctrl-C, SIGTERM or after --duration.")
        {
            file, duration, jsonStatus, placement,
        };
        command.Options.Add(target);
        command.Options.Add(startTimeout);
        command.SetAction(parse => Run(
            parse.GetValue(file)!.ToString(),
            parse.GetValue(duration),
            parse.GetValue(jsonStatus),
            parse.GetValue(placement) == "round-robin" ? PlacementPolicy.RoundRobin : PlacementPolicy.None,
            parse.GetValue(target),
            parse.GetValue(startTimeout)));
        return command;
    }

    private static int Run(string path, double? duration, bool json, PlacementPolicy placement, string? latencyTarget, double startTimeout)
    {
        if (duration is <= 0 or double.NaN)
        {
            Console.Error.WriteLine($"--duration must be a positive number of seconds, not {duration}");
            return ExitCodes.Failed;
        }

        if (!(startTimeout > 0) || startTimeout > 3600)
        {
            Console.Error.WriteLine($"--start-timeout must be a number of seconds above 0 and at most 3600, not {startTimeout}");
            return ExitCodes.Failed;
        }

        (double P50, double P99)? target = null;
        if (latencyTarget is not null)
        {
            var parts = latencyTarget.Split(',');
            if (parts.Length != 2 || !double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var p50) ||
                !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var p99) || p50 <= 0 || p99 < p50)
            {
                Console.Error.WriteLine($"--latency-target must be P50,P99 in µs with 0 < P50 <= P99 (e.g. 60,200), not '{latencyTarget}'");
                return ExitCodes.Failed;
            }

            target = (p50, p99);
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

        using var manager = new PipelineManager(pipeline, new PipelineManagerOptions { Placement = placement, StartTimeout = TimeSpan.FromSeconds(startTimeout) });

        // Disposed before the manager: the last export still finds its meter.
        using var telemetry = ControlTelemetry.StartOtlpExport();
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
        if (snapshot.State == "failed")
        {
            exit = ExitCodes.WorkerFailed;
            foreach (var failure in snapshot.Failures)
            {
                Console.Error.WriteLine($"{failure.ComponentType} '{failure.Kernel}' failed: {failure.Error}");
            }
        }

        manager.Shutdown(force: false);
        if (json)
        {
            Console.Out.WriteLine(StatusJson.SerializeIndented(snapshot));
        }
        else
        {
            AnsiConsole.Write(Summary(snapshot));
            WriteEndToEnd(snapshot, target);
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

    private static Table Table(PipelineStatus status, string path, string? title = null) =>
        WorkerTable.Of(status, title ?? $"{Markup.Escape(path)}: [bold]{status.State}[/] (namespace {Markup.Escape(status.Namespace)})");

    /// <summary>
    /// Each sink's end-to-end latency (from the frame's origin at its source to the sink: frame in to
    /// command out), beside the target if one was given, and the computations kernels threw away.
    /// </summary>
    private static void WriteEndToEnd(PipelineStatus snapshot, (double P50, double P99)? target)
    {
        foreach (var sink in snapshot.Sinks.Values.Where(s => s.HasFigures && s.LatencyUs is not null))
        {
            var l = sink.LatencyUs!;
            var line = $"frame in to command out (sink '{Markup.Escape(sink.Name)}'): p50 {Numbers.Format(l.P50)} µs, p99 {Numbers.Format(l.P99)} µs";
            if (target is { } t)
            {
                var met = l.P50 <= t.P50 && l.P99 <= t.P99;
                line += $"; target p50 <= {Numbers.Format(t.P50)} µs, p99 <= {Numbers.Format(t.P99)} µs: {(met ? "[green]met[/]" : "[red]missed[/]")}";
            }

            AnsiConsole.MarkupLine(line);
        }

        var discarded = snapshot.Workers.Values.Sum(w => w.DiscardedComputes);
        AnsiConsole.MarkupLine($"discarded computes (a latest input overwritten while a kernel computed): {discarded:N0}");
    }

    private static Table Summary(PipelineStatus snapshot)
    {
        var table = Table(snapshot, "", $"final figures ({snapshot.State} until shut down, namespace {Markup.Escape(snapshot.Namespace)})");
        var failures = snapshot.Failures.Count;
        table.Caption($"{failures} failure{(failures == 1 ? "" : "s")}");
        return table;
    }
}
