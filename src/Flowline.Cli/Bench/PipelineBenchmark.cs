using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Runtime;
using Flowline.SharedMemory;
using Flowline.SharedMemory.Liveness;

namespace Flowline.Cli.Bench;

/// <summary>A synthetic input a benchmark starts: <c>STREAM:PATTERN[:RATE_HZ]</c>.</summary>
internal sealed record BenchSource(string Stream, string Pattern, double? RateHz)
{
    /// <summary>Parses <c>STREAM:PATTERN[:RATE_HZ]</c>; throws <see cref="FormatException"/> with what is wrong.</summary>
    public static BenchSource Parse(string text)
    {
        var parts = text.Split(':');
        if (parts.Length is < 2 or > 3 || parts[0].Length == 0)
        {
            throw new FormatException($"--source '{text}' must be STREAM:PATTERN or STREAM:PATTERN:RATE_HZ");
        }

        if (!SyntheticSettings.Patterns.Contains(parts[1]))
        {
            throw new FormatException($"--source '{text}': unknown pattern '{parts[1]}'; patterns are {string.Join(", ", SyntheticSettings.Patterns)}");
        }

        double? rate = null;
        if (parts.Length == 3)
        {
            if (!double.TryParse(parts[2], NumberStyles.Float, CultureInfo.InvariantCulture, out var r) || !(r > 0) || double.IsInfinity(r))
            {
                throw new FormatException($"--source '{text}': the rate must be a positive number of hertz, not '{parts[2]}'");
            }

            rate = r;
        }

        return new BenchSource(parts[0], parts[1], rate);
    }
}

/// <summary>How <c>flowline benchmark</c> runs.</summary>
internal sealed record PipelineBenchOptions(TimeSpan Duration, TimeSpan Warmup, string? OutputStream, IReadOnlyList<BenchSource> Sources, PlacementPolicy Placement);

/// <summary>
/// Runs a pipeline and measures it at an output stream from a reader of the benchmark's own:
/// throughput, inter-arrival times, and the true end-to-end latency of every frame (now minus the
/// origin timestamp the frame carries from the pipeline's entry point), with the workers' own figures,
/// their CPU use over the measurement, the time to build and start, and the machine.
/// </summary>
internal sealed class PipelineBenchmark(string path, PipelineBenchOptions options, TextWriter progress)
{
    public JsonObject Run(CancellationToken cancellation)
    {
        var pipeline = PipelineDocument.Load(path);
        var output = options.OutputStream ?? DefaultOutput(pipeline)
            ?? throw new InvalidOperationException("the pipeline has no sink or kernel output to measure at; name one with --output-stream");
        if (pipeline.Spec.FindStream(output) is null)
        {
            throw new InvalidOperationException($"--output-stream: the pipeline has no stream '{output}'");
        }

        var cpuBefore = CpuTimes.Read();
        using var manager = new PipelineManager(pipeline, new PipelineManagerOptions { Placement = options.Placement, Namespace = $"bench-{Environment.ProcessId}" });
        var watch = Stopwatch.StartNew();
        manager.Build();
        var buildS = watch.Elapsed.TotalSeconds;
        watch.Restart();
        manager.Start();
        var startS = watch.Elapsed.TotalSeconds;
        progress.WriteLine($"built in {buildS * 1e3:0.0} ms, started in {startS * 1e3:0.0} ms");
        foreach (var source in options.Sources)
        {
            manager.StartSyntheticInput(source.Stream, new SyntheticSettings { Pattern = source.Pattern, RateHz = source.RateHz });
        }

        using var stream = SharedStream.Attach(manager.Namespace, output);
        using var reader = stream.OpenReader<byte>(new ReaderOptions { Delivery = Delivery.Latest, WaitPolicy = pipeline.Spec.FindStream(output)!.Wait ?? WaitPolicy.Hybrid });
        progress.WriteLine($"warming up for {options.Warmup.TotalSeconds:0.#} s, then measuring '{output}' for {options.Duration.TotalSeconds:0.#} s");
        Consume(reader, MonotonicClock.NowNs() + Ns(options.Warmup), null, cancellation);

        var pids = Pids(manager.Status());
        var cpuAtStart = pids.ToDictionary(p => p.Key, p => ThisProcess.TryReadUsage(p.Value, out var cpu, out _) ? cpu : TimeSpan.Zero);
        var skippedBefore = reader.FramesSkipped;
        var samples = new Samples();
        var measureStart = MonotonicClock.NowNs();
        Consume(reader, measureStart + Ns(options.Duration), samples, cancellation);
        var measured = (MonotonicClock.NowNs() - measureStart) / 1e9;
        var cpuPercent = new JsonObject();
        var cpuTotal = 0.0;
        foreach (var (name, pid) in pids)
        {
            if (ThisProcess.TryReadUsage(pid, out var cpu, out _))
            {
                var percent = (cpu - cpuAtStart[name]).TotalSeconds / measured * 100;
                cpuPercent[name] = Math.Round(percent, 2);
                cpuTotal += percent;
            }
        }

        var snapshot = manager.Status();
        var failed = manager.State == PipelineState.Failed;
        manager.Shutdown(force: true);
        var machine = Machine.Describe(options.Placement == PlacementPolicy.RoundRobin, CpuTimes.Read().StealPercentSince(cpuBefore));
        return new JsonObject
        {
            ["pipeline"] = Path.GetFullPath(path),
            ["output_stream"] = output,
            ["state"] = failed ? "failed" : "ok",
            ["failures"] = snapshot["failures"]?.DeepClone(),
            ["warmup_s"] = options.Warmup.TotalSeconds,
            ["duration_s"] = Math.Round(measured, 3),
            ["build_s"] = Math.Round(buildS, 4),
            ["start_s"] = Math.Round(startS, 4),
            ["frames"] = samples.Count,
            ["frames_skipped"] = reader.FramesSkipped - skippedBefore,
            ["throughput_hz"] = samples.Count > 1 ? Math.Round((samples.Count - 1) / ((samples.LastArrival - samples.FirstArrival) / 1e9), 2) : 0,
            ["inter_arrival_us"] = Summary(samples.InterArrivals()),
            ["latency_us"] = Summary(samples.Latencies()),
            ["worker_cpu_percent"] = cpuPercent,
            ["worker_cpu_percent_total"] = Math.Round(cpuTotal, 2),
            ["workers"] = snapshot["workers"]?.DeepClone(),
            ["sources"] = snapshot["sources"]?.DeepClone(),
            ["sinks"] = snapshot["sinks"]?.DeepClone(),
            ["synthetic_sources"] = snapshot["synthetic_sources"]?.DeepClone(),
            ["machine"] = new JsonObject
            {
                ["cpu"] = machine.Cpu,
                ["logical_cpus"] = machine.LogicalCpus,
                ["kernel"] = machine.Kernel,
                ["steal_percent"] = Math.Round(machine.StealPercent, 2),
            },
            ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
            ["runtime"] = machine.Runtime,
            ["flowline_version"] = typeof(PipelineManager).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown",
            ["timestamp"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
        };
    }

    private static string? DefaultOutput(ValidatedPipeline pipeline) =>
        pipeline.Spec.Sinks.Select(s => s.Stream).FirstOrDefault() ?? pipeline.Spec.Kernels.LastOrDefault()?.Outputs.FirstOrDefault();

    private static long Ns(TimeSpan span) => span.Ticks * 100;

    private static Dictionary<string, int> Pids(JsonObject status)
    {
        var pids = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var group in new[] { "sources", "workers", "sinks" })
        {
            foreach (var (name, node) in status[group]!.AsObject())
            {
                if ((string?)node!["placement"] == "process" && (int?)node["pid"] is { } pid)
                {
                    pids[name] = pid;
                }
            }
        }

        return pids;
    }

    /// <summary>Reads frames until <paramref name="untilNs"/>, recording arrival and origin when <paramref name="samples"/> is given.</summary>
    private static void Consume(StreamReader<byte> reader, long untilNs, Samples? samples, CancellationToken cancellation)
    {
        while (!cancellation.IsCancellationRequested)
        {
            var left = untilNs - MonotonicClock.NowNs();
            if (left <= 0)
            {
                return;
            }

            var status = reader.LookMemory(out _, out var header, TimeSpan.FromTicks(Math.Min(left / 100, TimeSpan.TicksPerSecond / 10)));
            if (status == ReadStatus.Ok)
            {
                var now = MonotonicClock.NowNs();
                reader.Increment();
                samples?.Add(now, header.OriginTimestampNs);
            }
            else if (status is ReadStatus.EndOfStream or ReadStatus.WriterGone)
            {
                return;
            }
        }
    }

    private static JsonObject Summary(long[] values)
    {
        var s = LatencySummary.Of(values);
        double Us(double ns) => Math.Round(ns / 1e3, 3);
        var std = 0.0;
        if (values.Length > 0)
        {
            var mean = s.MeanNs;
            std = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / values.Length);
        }

        return new JsonObject
        {
            ["samples"] = s.Samples,
            ["mean"] = Us(s.MeanNs),
            ["std"] = Us(std),
            ["p50"] = Us(s.P50Ns),
            ["p90"] = Us(s.P90Ns),
            ["p99"] = Us(s.P99Ns),
            ["p99_9"] = Us(s.P999Ns),
            ["max"] = Us(s.MaxNs),
        };
    }

    /// <summary>Arrival and origin times of the frames measured (grown in chunks; the measuring loop allocates only when a chunk fills).</summary>
    private sealed class Samples
    {
        private readonly List<long> arrivals = new(1 << 16);
        private readonly List<long> origins = new(1 << 16);

        public int Count => arrivals.Count;

        public long FirstArrival => arrivals[0];

        public long LastArrival => arrivals[^1];

        public void Add(long arrival, long origin)
        {
            arrivals.Add(arrival);
            origins.Add(origin);
        }

        public long[] InterArrivals() => [.. arrivals.Zip(arrivals.Skip(1), (a, b) => b - a)];

        public long[] Latencies() => [.. arrivals.Zip(origins, (a, o) => Math.Max(0, a - o))];
    }
}
