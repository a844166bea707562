using System.Globalization;
using Spectre.Console;

namespace Flowline.Cli.Bench;

/// <summary>Renders a <see cref="StreamBenchReport"/> as tables, each figure beside its target and the limit measured with it.</summary>
internal static class BenchTables
{
    public static void Render(StreamBenchReport report)
    {
        var console = AnsiConsole.Console;
        if (Console.IsOutputRedirected)
        {
            // No terminal to measure: use a width that keeps each row on one line in files and logs.
            console.Profile.Width = 160;
        }

        var m = report.Machine;
        console.MarkupLine($"[bold]{Escape(report.Command)}[/]  {Escape(m.Cpu)}, {m.LogicalCpus} CPUs, Linux {Escape(m.Kernel)}, {Escape(m.Runtime)}{(m.Pinned ? ", pinned" : "")}, hypervisor steal {m.StealPercent:0.0} % during the run");

        if (report.Limits is { } l)
        {
            var limits = new Table().Title("Physical limits (this run)").AddColumns("limit", "p50", "p99", "p99.9", "max");
            AddLatencyRow(limits, "ping-pong, spinning (one way)", l.SpinPingPongOneWay);
            AddLatencyRow(limits, "ping-pong, futex, one CPU (one way)", l.FutexPingPongSameCpuOneWay);
            AddLatencyRow(limits, "ping-pong, futex, two CPUs (one way)", l.FutexPingPongCrossCpuOneWay);
            AddLatencyRow(limits, $"futex wake-up at {l.FutexWakeRateHz:N0} Hz (one way)", l.FutexWakeOneWay);
            limits.AddRow("memcpy, 1 MiB blocks", Rate(l.MemcpyCacheBytesPerSecond), "", "", "");
            limits.AddRow("memcpy, 64 MiB blocks", Rate(l.MemcpyMemoryBytesPerSecond), "", "", "");
            console.Write(limits);
        }

        var latency = new Table().Title("One-way latency, 64 B frames, two processes").AddColumns("wait policy", "rate", "p50", "p90", "p99", "p99.9", "max", "target", "met");
        foreach (var c in report.Latency)
        {
            var (target, met) = LatencyTarget(c, report.Limits);
            latency.AddRow(c.Policy, $"{c.RateHz:N0} Hz", Ns(c.OneWay.P50Ns), Ns(c.OneWay.P90Ns), Ns(c.OneWay.P99Ns), Ns(c.OneWay.P999Ns), Ns(c.OneWay.MaxNs), target, Verdict(met));
        }

        console.Write(latency);

        var throughput = new Table().Title("Throughput, lossless, two processes").AddColumns("case", "frames/s", "bytes/s", "reader sleeps per 1M frames", "target", "met");
        foreach (var t in report.Throughput)
        {
            var smallZeroCopy = report.Throughput.FirstOrDefault(s => s.FrameBytes == 64 && s.CapacityFrames == t.CapacityFrames && s.Writer.StartsWith("look", StringComparison.Ordinal));
            var (target, met) = ThroughputTarget(t, smallZeroCopy, report.Limits);
            throughput.AddRow(Escape(t.Name), t.FramesPerSecond.ToString("N0", CultureInfo.InvariantCulture), Rate(t.BytesPerSecond), t.ReaderSleepsPerMillionFrames.ToString("N1", CultureInfo.InvariantCulture), target, Verdict(met));
        }

        console.Write(throughput);

        var idle = new Table().Title("CPU of a reader waiting on an idle stream").AddColumns("wait policy", "process CPU", "waiting thread CPU", "wake-ups/s", "target", "met");
        foreach (var i in report.IdleCpu)
        {
            idle.AddRow(i.Policy, $"{i.ProcessCpuPercent:0.000} %", $"{i.WaitingThreadCpuPercent:0.000} %", $"{i.WaitingThreadSleeps / i.Seconds:0.0}", "< 0.5 %", Verdict(i.ProcessCpuPercent < 0.5));
        }

        console.Write(idle);
    }

    private static (string Target, bool? Met) LatencyTarget(LatencyCase c, LimitsReport? limits) => c.Policy switch
    {
        "spin" => ("p50 ≤ 250 ns, p99 ≤ 2 µs", c.OneWay.P50Ns <= 250 && c.OneWay.P99Ns <= 2_000),
        "hybrid" when limits is not null && c.RateHz <= limits.FutexWakeRateHz => (
            $"p50 ≤ 1.5 × futex wake-up ({Ns((long)(1.5 * limits.FutexWakeOneWay.P50Ns))})",
            c.OneWay.P50Ns <= 1.5 * limits.FutexWakeOneWay.P50Ns),
        "predictive" => ("p50 ≤ 10 µs, p99 ≤ 50 µs", c.OneWay.P50Ns <= 10_000 && c.OneWay.P99Ns <= 50_000),
        _ => ("", null),
    };

    private static (string Target, bool? Met) ThroughputTarget(ThroughputCase t, ThroughputCase? smallZeroCopy, LimitsReport? limits)
    {
        if (t.FrameBytes > 64 && t.Writer.StartsWith("write", StringComparison.Ordinal) && t.Reader.StartsWith("read", StringComparison.Ordinal) && limits is not null)
        {
            return ($"≥ 0.5 × memcpy of 64 MiB blocks ({Rate(0.5 * limits.MemcpyMemoryBytesPerSecond)})", t.BytesPerSecond >= 0.5 * limits.MemcpyMemoryBytesPerSecond);
        }

        if (t.FrameBytes == 64 && t.Writer.StartsWith("write", StringComparison.Ordinal))
        {
            return ("≥ 10 M frames/s", t.FramesPerSecond >= 10e6);
        }

        if (t.FrameBytes > 64 && t.Writer.StartsWith("write", StringComparison.Ordinal) && t.Reader.StartsWith("look", StringComparison.Ordinal))
        {
            return ("≥ 5 GB/s", t.BytesPerSecond >= 5e9);
        }

        if (t.FrameBytes > 64 && t.Writer.StartsWith("look", StringComparison.Ordinal) && smallZeroCopy is not null)
        {
            return ("frames/s ≈ 64 B zero-copy, same slots", t.FramesPerSecond >= 0.5 * smallZeroCopy.FramesPerSecond);
        }

        return ("", null);
    }

    public static void Render(ControlBenchReport report)
    {
        var console = AnsiConsole.Console;
        var m = report.Machine;
        console.MarkupLine($"[bold]flowline bench control[/]  {Escape(report.Document)} ({report.Workers} workers running)  {Escape(m.Cpu)}, {m.LogicalCpus} CPUs, Linux {Escape(m.Kernel)}, {Escape(m.Runtime)}, hypervisor steal {m.StealPercent:0.0} %");
        var table = new Table().AddColumns("measurement", "rate", "p50", "p90", "p99", "p99.9", "max");
        var st = report.StatusLatency;
        table.AddRow($"GET /status, {report.Concurrency} concurrent clients", $"{report.StatusRequestsPerSecond:N0} req/s", Ns(st.P50Ns), Ns(st.P90Ns), Ns(st.P99Ns), Ns(st.P999Ns), Ns(st.MaxNs));
        var ev = report.EventDelay;
        table.AddRow(
            $"event delay to {report.Subscribers} subscribers",
            $"{report.EventsReceived:N0} of {(long)report.EventsPublished * report.Subscribers:N0} received, {report.SubscribersCutOff} cut off",
            Ns(ev.P50Ns), Ns(ev.P90Ns), Ns(ev.P99Ns), Ns(ev.P999Ns), Ns(ev.MaxNs));
        console.Write(table);
    }

    public static void Render(SoakReport report)
    {
        var console = AnsiConsole.Console;
        var m = report.Machine;
        console.MarkupLine($"[bold]{Escape(report.Command)}[/]  {Escape(report.Document)} ({report.Workers} workers, {report.Delivery} delivery{(report.RateHz is { } r ? $", sources at {r:0.#} Hz" : "")}) for {report.DurationS:0.#} s  {Escape(m.Cpu)}, {m.LogicalCpus} CPUs, Linux {Escape(m.Kernel)}, {Escape(m.Runtime)}, hypervisor steal {m.StealPercent:0.0} %");
        var c = report.Checks;
        var checks = new Table().Title("Must be zero").AddColumns("figure", "value", "zero");
        foreach (var (name, value) in new (string, long)[]
        {
            ("frames lost (lossless readers' gaps, pipeline lossless skips, sink vs its writer)", c.FramesLost),
            ("torn frames accepted", c.TornFramesAccepted),
            ("frames out of order", c.OutOfOrderFrames),
            ("reader errors", c.ReaderErrors),
            ("restarts failed", c.RestartsFailed),
            ("unexpected worker failures", c.UnexpectedFailures),
            ("GET /status errors", c.StatusErrors),
            ("leftovers (regions, processes, discovery records)", c.Leftovers),
        })
        {
            checks.AddRow(Escape(name), value.ToString("N0", CultureInfo.InvariantCulture), Verdict(value == 0));
        }

        console.Write(checks);

        var kills = new Table().Title($"Kills and restarts ({report.RestartsDone} restarts done)").AddColumns("at", "worker", "pid", "new pid", "failure seen", "restart", "flowing again", "error");
        foreach (var k in report.Kills)
        {
            kills.AddRow($"{k.AtS:0.0} s", Escape(k.Worker), k.Pid.ToString(CultureInfo.InvariantCulture), k.NewPid?.ToString(CultureInfo.InvariantCulture) ?? "", Ms(k.DetectedMs), Ms(k.RestartMs), Ms(k.ResumedMs), Escape(k.Error ?? ""));
        }

        console.Write(kills);

        var readers = new Table().Title("External readers (attached and left in a loop)").AddColumns("delivery", "sessions", "frames", "checked", "lost", "out of order", "torn accepted", "torn copies discarded", "skipped", "errors");
        foreach (var f in report.Readers)
        {
            readers.AddRow(f.Delivery, N(f.Sessions), N(f.Frames), N(f.FramesVerified), N(f.FramesLost), N(f.OutOfOrder), N(f.TornAccepted), N(f.TornCopiesDiscarded), N(f.FramesSkipped), N(f.Errors));
        }

        console.Write(readers);
        var checkedStreams = string.Join(", ", report.FrameChecks.Select(f => $"{f.Stream} ({f.Check}, {f.DistinctFrames} frames)"));
        console.MarkupLine($"payloads checked on: {Escape(checkedStreams.Length > 0 ? checkedStreams : "none")}; pipeline lossless readers' skips: {report.PipelineLosslessSkipped:N0}; copies the workers discarded as torn: {report.WorkerTornFramesDiscarded:N0}");
        if (report.SinkCount is { } sink)
        {
            console.MarkupLine($"sink '{Escape(sink.Sink)}': {sink.FramesConsumed:N0} frames consumed of {sink.FramesPublished:N0} published on '{Escape(sink.Stream)}' (after the sources were killed and the pipeline drained)");
        }

        var st = report.Status;
        console.MarkupLine($"GET /status: {st.Clients} clients, {st.Requests:N0} answers ({st.RequestsPerSecond:N0}/s), {st.Errors} errors, p50 {Ns(st.Latency.P50Ns)}, p99 {Ns(st.Latency.P99Ns)}, max {Ns(st.Latency.MaxNs)}");

        var memory = new Table().Title("Resident memory, sampled every second").AddColumns("process", "pid", "from", "to", "first", "after warm-up", "last", "max", "growth", "growth after warm-up");
        foreach (var p in report.Processes)
        {
            memory.AddRow(
                Escape(p.Name), p.Pid.ToString(CultureInfo.InvariantCulture), $"{p.FromS:0} s", $"{p.ToS:0} s", MiB(p.FirstBytes), p.WarmBytes is { } w ? MiB(w) : "",
                MiB(p.LastBytes), MiB(p.MaxBytes), MiB(p.GrowthBytes), p.GrowthAfterWarmupBytes is { } g ? MiB(g) : "");
        }

        console.Write(memory);
        console.MarkupLine($"server exit code: {report.ServerExitCode?.ToString(CultureInfo.InvariantCulture) ?? "none (still running)"}; leftovers: {(report.Leftovers.Count == 0 ? "none" : Escape(string.Join("; ", report.Leftovers)))}");
        foreach (var problem in report.Problems)
        {
            console.MarkupLine($"[red]{Escape(problem)}[/]");
        }

        console.MarkupLine(report.Passed ? "[green]passed[/]: every must-be-zero figure is zero" : $"[red]failed[/]: not zero: {Escape(string.Join(", ", report.NotZero))}");
    }

    private static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Ms(double? ms) => ms is { } v ? $"{v:N0} ms" : "";

    private static string MiB(long bytes) => $"{bytes / 1048576.0:N1} MiB";

    private static void AddLatencyRow(Table table, string name, LatencySummary s) =>
        table.AddRow(name, Ns(s.P50Ns), Ns(s.P99Ns), Ns(s.P999Ns), Ns(s.MaxNs));

    private static string Verdict(bool? met) => met switch
    {
        true => "[green]yes[/]",
        false => "[red]no[/]",
        null => "",
    };

    private static string Ns(long ns) => ns switch
    {
        < 10_000 => $"{ns:N0} ns",
        < 10_000_000 => $"{ns / 1e3:N1} µs",
        _ => $"{ns / 1e6:N1} ms",
    };

    private static string Rate(double bytesPerSecond) => $"{bytesPerSecond / 1e9:N2} GB/s";

    private static string Escape(string text) => Markup.Escape(text);
}
