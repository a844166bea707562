using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.Cli.Bench;
using Flowline.Documents;
using Flowline.Runtime;
using Flowline.SharedMemory;
using Flowline.Status;
using Spectre.Console;

namespace Flowline.Cli.Commands;

/// <summary><c>flowline benchmark</c>: run a pipeline and measure it at an output stream.</summary>
internal static class BenchmarkCommand
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Create()
    {
        var file = new Argument<FileInfo>("file") { Description = "The pipeline document (YAML)." };
        var duration = new Option<double>("--duration", "-d") { Description = "Seconds to measure (default 5).", DefaultValueFactory = _ => 5 };
        var warmup = new Option<double>("--warmup") { Description = "Seconds to run before measuring (default 1).", DefaultValueFactory = _ => 1 };
        var sources = new Option<string[]>("--source")
        {
            Description = "Drive a stream nothing writes with a synthetic input: STREAM:PATTERN[:RATE_HZ] (repeatable; no rate = as fast as possible).",
            AllowMultipleArgumentsPerToken = false,
        };
        var output = new Option<string?>("--output-stream") { Description = "The stream to measure at (default: the first sink's stream, else the last kernel's output)." };
        var without = new Option<bool>("--without-sources") { Description = "Leave the document's sources out, to drive their streams with --source or --lockstep." };
        var withoutSinks = new Option<bool>("--without-sinks") { Description = "Leave the document's sinks out: the benchmark's reader is then the only reader of the output stream, not one more process competing for the CPUs." };
        var lockstep = new Option<string?>("--lockstep") { Description = "Write this stream from the benchmark, one frame at a time, each after the previous came out (frame in to frame out, lock-step)." };
        var lossless = new Option<bool>("--lossless") { Description = "Make every stream lossless: an unthrottled source then runs at the pace of the slowest stage instead of overwriting frames." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (progress goes to standard error)." };
        var firstFrames = new Option<int>("--first-frames")
        {
            Description = "Also report the latency of the first N frames after the start (warm-up included: JIT compilation and tiering), apart from the steady state (default 0: not reported).",
            DefaultValueFactory = _ => 0,
        };
        var placement = new Option<string>("--placement") { Description = "CPU placement: none (default) or round-robin.", DefaultValueFactory = _ => "none" };
        placement.AcceptOnlyFromAmong("none", "round-robin");
        var tracePoll = new Option<int>("--trace-poll-ms") { Description = "Trace every frame of every kernel and sink while measuring, read every this many ms (the server reads every 100); report records read and lost. 0 (default): no traces." };
        var traceAdaptive = new Option<bool>("--trace-adaptive") { Description = "Trace every frame of every kernel and sink while measuring and read them as the server's trace stream does (every 100 ms, down to every 5 ms as traffic rises); report records read and lost." };
        var wait = new Option<string?>("--wait") { Description = "Make every stream wait with this policy: hybrid, spin, block or predictive (default: what the document says)." };
        wait.AcceptOnlyFromAmong("hybrid", "spin", "block", "predictive");
        var onThreads = new Option<bool>("--on-threads") { Description = "Run every source, kernel and sink on a thread of the benchmark's process (placement: thread) instead of a worker process of its own: no process switch per hop, no isolation." };
        var command = new Command("benchmark", "Run a pipeline and measure throughput, inter-arrival times and true end-to-end latency at an output stream, with every worker's figures.")
        {
            file, duration, warmup, sources, output, without, withoutSinks, lockstep, lossless, json, placement, wait, firstFrames, tracePoll, traceAdaptive, onThreads,
        };
        command.SetAction((parse, cancellation) =>
        {
            var asJson = parse.GetValue(json);
            var progress = asJson ? Console.Error : Console.Out;
            if (parse.GetValue(firstFrames) < 0)
            {
                Console.Error.WriteLine("flowline benchmark: --first-frames must be at least 0");
                return Task.FromResult(ExitCodes.Failed);
            }

            if (parse.GetValue(tracePoll) is < 0 or > 10_000)
            {
                Console.Error.WriteLine("flowline benchmark: --trace-poll-ms must be from 0 to 10000");
                return Task.FromResult(ExitCodes.Failed);
            }

            if (parse.GetValue(traceAdaptive) && parse.GetValue(tracePoll) > 0)
            {
                Console.Error.WriteLine("flowline benchmark: give --trace-poll-ms or --trace-adaptive, not both");
                return Task.FromResult(ExitCodes.Failed);
            }

            if (!(parse.GetValue(duration) > 0) || !(parse.GetValue(warmup) >= 0))
            {
                Console.Error.WriteLine("flowline benchmark: --duration must be greater than 0 and --warmup at least 0");
                return Task.FromResult(ExitCodes.Failed);
            }

            try
            {
                var options = new PipelineBenchOptions(
                    TimeSpan.FromSeconds(parse.GetValue(duration)),
                    TimeSpan.FromSeconds(parse.GetValue(warmup)),
                    parse.GetValue(output),
                    [.. (parse.GetValue(sources) ?? []).Select(BenchSource.Parse)],
                    parse.GetValue(placement) == "round-robin" ? PlacementPolicy.RoundRobin : PlacementPolicy.None,
                    parse.GetValue(without),
                    parse.GetValue(lockstep),
                    parse.GetValue(lossless),
                    parse.GetValue(withoutSinks),
                    parse.GetValue(wait) is { } w ? Enum.Parse<WaitPolicy>(w, ignoreCase: true) : null,
                    parse.GetValue(firstFrames),
                    parse.GetValue(tracePoll),
                    parse.GetValue(traceAdaptive),
                    parse.GetValue(onThreads));
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
                using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
                {
                    c.Cancel = true;
                    stop.Cancel();
                });
                var report = new PipelineBenchmark(parse.GetValue(file)!.ToString(), options, progress).Run(stop.Token);
                if (asJson)
                {
                    Console.Out.WriteLine(report.ToJsonString(Indented));
                }
                else
                {
                    Render(report);
                }

                return Task.FromResult((string?)report["state"] == "ok" ? ExitCodes.Ok : ExitCodes.WorkerFailed);
            }
            catch (DocumentValidationException e)
            {
                Console.Error.WriteLine(e.Message);
                return Task.FromResult(ExitCodes.Failed);
            }
            catch (FormatException e)
            {
                Console.Error.WriteLine($"flowline benchmark: {e.Message}");
                return Task.FromResult(ExitCodes.Failed);
            }
            catch (Exception e) when (e is InvalidOperationException or WorkerFailedException or TimeoutException or SharedMemoryException or KeyNotFoundException or ArgumentException or IOException)
            {
                Console.Error.WriteLine($"flowline benchmark: {e.Message}");
                return Task.FromResult(ExitCodes.StartFailed);
            }
        });
        return command;
    }

    private static void Render(JsonObject report)
    {
        static string F(JsonNode? v, string format = "0.0") => Numbers.Format(v, format);
        var machine = report["machine"]!;
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape((string)report["pipeline"]!)}[/] measured at '{Markup.Escape((string)report["output_stream"]!)}'");
        AnsiConsole.MarkupLine($"{Markup.Escape((string)machine["cpu"]!)}, {machine["logical_cpus"]} CPUs, Linux {Markup.Escape((string)machine["kernel"]!)}, {Markup.Escape((string)report["runtime"]!)}, steal {F(machine["steal_percent"], "0.00")} %");
        var summary = new Table().AddColumns("figure", "value");
        summary.AddRow("build, start", $"{Numbers.Format(Numbers.Value(report["build_s"]) * 1e3)} ms, {Numbers.Format(Numbers.Value(report["start_s"]) * 1e3)} ms");
        summary.AddRow("frames (skipped by the reader)", $"{report["frames"]} ({report["frames_skipped"]})");
        summary.AddRow("throughput", $"{F(report["throughput_hz"])} Hz");
        foreach (var (label, key) in new[] { ("end-to-end latency µs", "latency_us"), ("inter-arrival µs", "inter_arrival_us") })
        {
            var s = report[key]!;
            summary.AddRow(label, $"p50 {F(s["p50"])}  p90 {F(s["p90"])}  p99 {F(s["p99"])}  p99.9 {F(s["p99_9"])}  max {F(s["max"])}  (std {F(s["std"])})");
        }

        if (report["first_frames"] is JsonObject first)
        {
            var s = first["latency_us"]!;
            summary.AddRow($"first {first["frames"]} frames µs", $"p50 {F(s["p50"])}  p90 {F(s["p90"])}  p99 {F(s["p99"])}  p99.9 {F(s["p99_9"])}  max {F(s["max"])}  (over {F(Numbers.Value(first["span_s"]) * 1e3)} ms)");
        }

        if (report["worker_pss_mb"] is JsonObject { Count: > 0 } pss)
        {
            var values = pss.Select(p => Numbers.Value(p.Value)).ToArray();
            summary.AddRow("worker PSS", $"{Numbers.Format(values.Min())} to {Numbers.Format(values.Max())} MB ({values.Length} workers)");
        }

        if (report["worker_ready_s"] is JsonObject { Count: > 0 } ready)
        {
            var values = ready.Select(p => Numbers.Value(p.Value)).ToArray();
            summary.AddRow("worker ready after start", $"{Numbers.Format(values.Min() * 1e3, "0")} to {Numbers.Format(values.Max() * 1e3, "0")} ms");
        }

        if (report["traces"] is JsonObject t)
        {
            summary.AddRow("traces (every frame)", $"{t["records_read"]} read, {t["records_lost"]} lost ({F(t["lost_percent"], "0.###")} %), {F(t["records_per_s"], "0")} records/s, read every {t["poll_ms"]} ms");
        }

        summary.AddRow("profiling histograms", (bool?)report["profiling"] == false ? "off (FLOWLINE_PROFILING=0)" : "on");
        summary.AddRow("worker CPU, total", $"{F(report["worker_cpu_percent_total"])} % of one core");
        AnsiConsole.Write(summary);
        // The report keeps the status's worker entries as they were at the end of the run; CPU is over the measurement.
        var status = StatusJson.Deserialize<PipelineStatus>(new JsonObject
        {
            ["workers"] = report["workers"]?.DeepClone(),
            ["sources"] = report["sources"]?.DeepClone(),
            ["sinks"] = report["sinks"]?.DeepClone(),
        });
        // A paced source's pacer (decision 161): how often it woke its readers before their frame, and why not.
        var pacers = new Table().AddColumns("paced source", "early wake-ups", "skipped by the share bound", "late", "overdue", "missed", "timer lateness µs");
        foreach (var (name, source) in status.Sources)
        {
            if (source.Pacer is { Intervals: > 0 } p)
            {
                pacers.AddRow(
                    Markup.Escape(name),
                    $"{p.EarlyWakes} of {p.Intervals} intervals ({Numbers.Format(100.0 * p.EarlyWakes / p.Intervals)} %)",
                    $"{p.BoundSkips}",
                    $"{p.LateWakes}",
                    $"{p.Overdue}",
                    $"{p.Missed}",
                    Numbers.Format(p.TimerLatenessUs));
            }
        }

        if (pacers.Rows.Count > 0)
        {
            AnsiConsole.Write(pacers);
        }

        var cpu = report["worker_cpu_percent"]!.AsObject();
        AnsiConsole.Write(WorkerTable.Of(status, "workers", w => cpu[w.Name] is { } c ? Numbers.Value(c) : null));
        if (report["failures"] is JsonArray { Count: > 0 } failures)
        {
            foreach (var failure in failures)
            {
                Console.Error.WriteLine($"{failure!["component_type"]} '{failure["kernel"]}' failed: {failure["error"]}");
            }
        }
    }
}
