using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Runtime;
using Flowline.SharedMemory;
using Flowline.Status;

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
/// <param name="Duration">How long to measure.</param>
/// <param name="Warmup">How long to run before measuring.</param>
/// <param name="OutputStream">Where to measure (null: the first sink's stream, else the last kernel's output).</param>
/// <param name="Sources">Synthetic inputs to start.</param>
/// <param name="Placement">CPU placement of the workers.</param>
/// <param name="WithoutSources">Leave the document's sources out (their streams can then be driven by <paramref name="Sources"/> or <paramref name="Lockstep"/>).</param>
/// <param name="Lockstep">A stream the benchmark writes itself, one frame at a time, waiting for each to come out before the next.</param>
/// <param name="Lossless">Make every stream lossless, so that an unthrottled source runs at the pace of the slowest stage instead of overwriting frames.</param>
/// <param name="WithoutSinks">Leave the document's sinks out: the benchmark's reader is then the pipeline's only sink, not one more process competing for the CPUs.</param>
/// <param name="Wait">Make every stream wait with this policy (the benchmark's own reader too), to compare policies on one document.</param>
/// <param name="FirstFrames">Report the latency of the first this many frames after the start (read from the start on, warm-up included) apart from the steady state; 0 for none.</param>
/// <param name="TracePollMs">Switch traces on for every frame of every kernel and sink while measuring and read them every this many milliseconds (the server's trace stream reads every 100 ms); 0 for no traces.</param>
/// <param name="TraceAdaptive">Switch traces on likewise and read them as the server's trace stream does, at the interval a <see cref="TraceFollower"/> adapts to the traffic.</param>
/// <param name="OnThreads">Run every source, kernel and sink on a thread of the benchmark's process (<c>placement: thread</c>) instead of a worker process of its own.</param>
internal sealed record PipelineBenchOptions(
    TimeSpan Duration,
    TimeSpan Warmup,
    string? OutputStream,
    IReadOnlyList<BenchSource> Sources,
    PlacementPolicy Placement,
    bool WithoutSources = false,
    string? Lockstep = null,
    bool Lossless = false,
    bool WithoutSinks = false,
    WaitPolicy? Wait = null,
    int FirstFrames = 0,
    int TracePollMs = 0,
    bool TraceAdaptive = false,
    bool OnThreads = false);

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
        var defaultOutput = DefaultOutput(pipeline);
        if (options.WithoutSources || options.Lossless || options.WithoutSinks || options.Wait is not null || options.OnThreads)
        {
            var spec = pipeline.Spec;
            if (options.WithoutSources)
            {
                spec = spec with { Sources = [] };
            }

            if (options.WithoutSinks)
            {
                spec = spec with { Sinks = [] };
            }

            if (options.Lossless)
            {
                spec = Lossless(spec);
            }

            if (options.Wait is { } wait)
            {
                spec = spec with { Streams = [.. spec.Streams.Select(s => s with { Wait = wait })] };
            }

            if (options.OnThreads)
            {
                spec = spec with
                {
                    Sources = [.. spec.Sources.Select(s => s with { Placement = WorkerPlacement.Thread })],
                    Kernels = [.. spec.Kernels.Select(k => k with { Placement = WorkerPlacement.Thread })],
                    Sinks = [.. spec.Sinks.Select(s => s with { Placement = WorkerPlacement.Thread })],
                };
            }

            pipeline = PipelineDocument.Validate(spec, pipeline.Kinds);
        }

        if (options.Lockstep is { } entry && (pipeline.Spec.FindStream(entry) is null || pipeline.Graph.ProducersOf(entry).Count > 0))
        {
            throw new InvalidOperationException($"--lockstep: '{entry}' must be a stream of the pipeline that nothing writes (leave the sources out with --without-sources)");
        }
        var output = options.OutputStream ?? defaultOutput
            ?? throw new InvalidOperationException("the pipeline has no sink or kernel output to measure at; name one with --output-stream");
        if (pipeline.Spec.FindStream(output) is null)
        {
            throw new InvalidOperationException($"--output-stream: the pipeline has no stream '{output}'");
        }

        var cpuBefore = CpuTimes.Read();
        foreach (var source in options.Sources)
        {
            if (pipeline.Spec.FindStream(source.Stream) is null)
            {
                throw new InvalidOperationException($"--source: the pipeline has no stream '{source.Stream}'");
            }

            if (pipeline.Graph.ProducersOf(source.Stream) is [var producer, ..])
            {
                throw new InvalidOperationException($"--source: stream '{source.Stream}' is written by '{producer}' (leave the document's sources out with --without-sources)");
            }
        }

        using var manager = new PipelineManager(pipeline, new PipelineManagerOptions { Placement = options.Placement });
        // Each worker's start: from the start command to its worker_started event (attached, at the start barrier).
        var ready = new JsonObject();
        var startUnix = 0.0;
        manager.EventRaised += (_, e) =>
        {
            if (e.Type == "worker_started" && (string?)e.Data["kernel"] is { } name)
            {
                lock (ready)
                {
                    ready[name] = Math.Round(e.Timestamp - startUnix, 4);
                }
            }
        };
        var watch = Stopwatch.StartNew();
        manager.Build();
        var buildS = watch.Elapsed.TotalSeconds;
        startUnix = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1e3;
        watch.Restart();
        manager.Start();
        var startS = watch.Elapsed.TotalSeconds;
        progress.WriteLine($"built in {buildS * 1e3:0.0} ms, started in {startS * 1e3:0.0} ms");
        foreach (var source in options.Sources)
        {
            manager.StartSyntheticInput(source.Stream, new SyntheticSettings { Pattern = source.Pattern, RateHz = source.RateHz });
        }

        using var stream = SharedStream.Attach(manager.Plan.NamespaceOf(output), output);
        using var reader = stream.OpenReader<byte>(new ReaderOptions { Delivery = Delivery.Latest, WaitPolicy = pipeline.Spec.FindStream(output)!.Wait ?? PipelinePlan.DefaultWait });
        using var lockstep = options.Lockstep is { } lockName ? new Lockstep(manager.Namespace, lockName, reader) : null;
        progress.WriteLine($"warming up for {options.Warmup.TotalSeconds:0.#} s, then measuring '{output}' for {options.Duration.TotalSeconds:0.#} s{(lockstep is null ? "" : $", one frame at a time into '{options.Lockstep}'")}");
        // The first frames are read from the start on: the warm-up's frames are kept when they are asked for.
        var early = options.FirstFrames > 0 ? new Samples() : null;
        Measure(reader, lockstep, MonotonicClock.NowNs() + Ns(options.Warmup), early, cancellation);

        var pids = Pids(manager.Status());
        var cpuAtStart = manager.WorkerCpuTimes();
        var skippedBefore = reader.FramesSkipped;
        var samples = new Samples();
        using var traces = options.TracePollMs > 0 || options.TraceAdaptive ? new TraceReader(manager, options.TraceAdaptive ? 0 : options.TracePollMs, options.Duration) : null;
        var measureStart = MonotonicClock.NowNs();
        Measure(reader, lockstep, measureStart + Ns(options.Duration), samples, cancellation);
        var measured = (MonotonicClock.NowNs() - measureStart) / 1e9;
        var traced = traces?.Finish(measured);
        var cpuPercent = new JsonObject();
        var cpuTotal = 0.0;
        foreach (var (name, cpu) in manager.WorkerCpuTimes())
        {
            // A worker on a thread of this process (placement: thread) is measured by its own thread's time.
            if (cpuAtStart.TryGetValue(name, out var atStart))
            {
                var percent = (cpu - atStart).TotalSeconds / measured * 100;
                cpuPercent[name] = Math.Round(percent, 2);
                cpuTotal += percent;
            }
        }

        var pss = new JsonObject();
        foreach (var (name, pid) in pids)
        {
            if (ProportionalSetSize(pid) is { } bytes)
            {
                pss[name] = Math.Round(bytes / 1048576.0, 1);
            }
        }

        var snapshot = StatusJson.ToJsonObject(manager.Status());
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
            ["lockstep_stream"] = options.Lockstep,
            ["lossless"] = options.Lossless,
            ["wait"] = options.Wait is { } w ? DocumentWriter.Name(w) : null,
            ["on_threads"] = options.OnThreads,
            ["lockstep_lost"] = lockstep?.Lost ?? 0,
            ["throughput_hz"] = samples.Count > 1 ? Math.Round((samples.Count - 1) / ((samples.LastArrival - samples.FirstArrival) / 1e9), 2) : 0,
            ["inter_arrival_us"] = Summary(samples.InterArrivals()),
            ["latency_us"] = Summary(samples.Latencies()),
            ["reader_waits"] = new JsonObject
            {
                // The benchmark's own reader (this process's waits, warm-up included), as a worker's status reports its own.
                ["predicted_waits"] = WaitCounters.PredictedWaits,
                ["predicted_hits"] = WaitCounters.PredictedHits,
                ["early_wakes"] = WaitCounters.EarlyWakes,
                ["early_wake_hits"] = WaitCounters.EarlyWakeHits,
            },
            ["first_frames"] = early is null ? null : FirstFrames(early, samples, options.FirstFrames),
            ["profiling"] = ProfileHistograms.Enabled,
            ["traces"] = traced,
            ["worker_ready_s"] = ready.DeepClone(),
            ["worker_pss_mb"] = pss,
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

    /// <summary><paramref name="spec"/> with every stream lossless, for every reader (node overrides removed).</summary>
    internal static PipelineSpec Lossless(PipelineSpec spec) => spec with
    {
        Streams = [.. spec.Streams.Select(s => s with { Delivery = Delivery.Lossless })],
        Kernels = [.. spec.Kernels.Select(k => k with { Delivery = null })],
        Sinks = [.. spec.Sinks.Select(k => k with { Delivery = null })],
    };

    private static string? DefaultOutput(ValidatedPipeline pipeline) =>
        pipeline.Spec.Sinks.Select(s => s.Stream).FirstOrDefault() ?? pipeline.Spec.Kernels.LastOrDefault()?.Outputs.FirstOrDefault();

    private static long Ns(TimeSpan span) => span.Ticks * 100;

    /// <summary>The process of every source, kernel and sink that runs in one, by name, from a status.</summary>
    internal static Dictionary<string, int> Pids(PipelineStatus status)
    {
        var pids = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var w in status.AllWorkers())
        {
            if (w is { Placement: "process", Pid: { } pid })
            {
                pids[w.Name] = pid;
            }
        }

        return pids;
    }

    private static void Measure(StreamReader<byte> reader, Lockstep? lockstep, long untilNs, Samples? samples, CancellationToken cancellation)
    {
        if (lockstep is null)
        {
            Consume(reader, untilNs, samples, cancellation);
        }
        else
        {
            lockstep.Run(untilNs, samples, cancellation);
        }
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

    /// <summary>
    /// The latency of the first <paramref name="count"/> frames read after the start (the warm-up's, then the
    /// measurement's), and how long after the first of them the last arrived.
    /// </summary>
    private static JsonObject FirstFrames(Samples early, Samples measured, int count)
    {
        var latencies = early.Latencies().Concat(measured.Latencies()).Take(count).ToArray();
        var arrivals = early.Arrivals().Concat(measured.Arrivals()).Take(count).ToArray();
        return new JsonObject
        {
            ["frames"] = latencies.Length,
            ["requested"] = count,
            ["span_s"] = arrivals.Length > 1 ? Math.Round((arrivals[^1] - arrivals[0]) / 1e9, 4) : 0,
            ["latency_us"] = Summary(latencies),
        };
    }

    /// <summary>The proportional set size of process <paramref name="pid"/> in bytes (<c>/proc/PID/smaps_rollup</c>), or null if it cannot be read.</summary>
    internal static long? ProportionalSetSize(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/smaps_rollup"))
            {
                if (line.StartsWith("Pss:", StringComparison.Ordinal))
                {
                    var kb = line["Pss:".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
                    return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
        }

        return null;
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

    /// <summary>
    /// Lock-step driving: writes a random frame into the entry stream stamped with its own origin, waits
    /// until the output shows a frame of that origin, and only then writes the next (frame in, command out).
    /// </summary>
    private sealed class Lockstep : IDisposable
    {
        private static readonly long LostAfterNs = 1_000_000_000;
        private readonly SharedStream stream;
        private readonly StreamWriter<byte> writer;
        private readonly SyntheticPattern pattern;
        private readonly StreamReader<byte> output;
        private ulong frameId;

        public Lockstep(string @namespace, string entry, StreamReader<byte> output)
        {
            this.output = output;
            stream = SharedStream.Attach(@namespace, entry);
            writer = stream.OpenWriter<byte>();
            pattern = new SyntheticPattern(stream.Format, new SyntheticSettings { Pattern = "random", Seed = 1 });
        }

        /// <summary>Frames that did not come out within a second (the loop then goes on with the next).</summary>
        public long Lost { get; private set; }

        public void Run(long untilNs, Samples? samples, CancellationToken cancellation)
        {
            while (!cancellation.IsCancellationRequested && MonotonicClock.NowNs() < untilNs)
            {
                writer.Look(out var slot);
                pattern.Next(System.Runtime.InteropServices.MemoryMarshal.AsBytes(slot));
                var origin = MonotonicClock.NowNs();
                writer.Publish(new FrameStamp(frameId++, origin));
                while (true)
                {
                    var status = output.LookMemory(out _, out var header, TimeSpan.FromMilliseconds(100), cancellation);
                    var now = MonotonicClock.NowNs();
                    if (status == ReadStatus.Ok)
                    {
                        output.Increment();
                        if (header.OriginTimestampNs == origin)
                        {
                            samples?.Add(now, origin);
                            break;
                        }
                    }

                    if (now - origin > LostAfterNs || status is ReadStatus.EndOfStream or ReadStatus.WriterGone)
                    {
                        Lost++;
                        break;
                    }
                }
            }
        }

        public void Dispose()
        {
            writer.Dispose();
            stream.Dispose();
        }
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

        public long[] Arrivals() => [.. arrivals];

        public long[] InterArrivals() => [.. arrivals.Zip(arrivals.Skip(1), (a, b) => b - a)];

        public long[] Latencies() => [.. arrivals.Zip(origins, (a, o) => Math.Max(0, a - o))];
    }
}

/// <summary>
/// Traces at full rate (<c>--trace-poll-ms</c>, <c>--trace-adaptive</c>): every frame of every kernel and sink
/// traced while the benchmark measures, read with a <see cref="TraceFollower"/> on a thread every poll
/// interval, or at the interval the follower adapts to the traffic as the server's trace stream does;
/// counts the records read and those overwritten before they were read.
/// </summary>
internal sealed class TraceReader : IDisposable
{
    private readonly TimeSpan? poll;
    private readonly TraceFollower follower;
    private readonly PipelineManager manager;
    private readonly List<TraceSample> batch = [];
    private readonly Thread thread;
    private readonly ManualResetEventSlim stop = new();
    private long records;
    private long lost;
    private long reads;
    private double intervalSumMs;
    private double intervalMinMs = double.MaxValue;

    /// <summary>Reads every <paramref name="pollMs"/> ms, or adaptively when it is 0.</summary>
    public TraceReader(PipelineManager manager, int pollMs, TimeSpan duration)
    {
        this.manager = manager;
        poll = pollMs > 0 ? TimeSpan.FromMilliseconds(pollMs) : null;
        var state = manager.SetTraces(new TraceRequest(null, null, 1, Math.Min(3600, duration.TotalSeconds + 60)));
        Traced = state.Nodes;
        follower = new TraceFollower(manager); // start from now: what the warm-up left is not counted
        follower.Hurry(); // as the server's trace stream does when traces are switched on
        thread = new Thread(Run) { IsBackground = true, Name = "flowline-bench-traces" };
        thread.Start();
    }

    public IReadOnlyList<string> Traced { get; }

    /// <summary>Stops reading (after one last read) and switches traces off; the figures over <paramref name="seconds"/>.</summary>
    public JsonObject Finish(double seconds)
    {
        stop.Set();
        thread.Join();
        ReadOnce();
        manager.StopTraces();
        return new JsonObject
        {
            ["nodes"] = new JsonArray([.. Traced.Select(n => JsonValue.Create(n))]),
            ["poll_ms"] = poll?.TotalMilliseconds,
            ["adaptive"] = poll is null,
            ["mean_interval_ms"] = reads == 0 ? null : Math.Round(intervalSumMs / reads, 2),
            ["min_interval_ms"] = reads == 0 ? null : Math.Round(intervalMinMs, 2),
            ["ring_records_per_worker"] = ProfileBlock.TraceCapacity,
            ["records_read"] = records,
            ["records_lost"] = lost,
            ["records_per_s"] = Math.Round(records / seconds, 1),
            ["lost_percent"] = records + lost == 0 ? 0 : Math.Round(100.0 * lost / (records + lost), 3),
            ["reads"] = reads,
        };
    }

    public void Dispose()
    {
        if (thread.IsAlive)
        {
            stop.Set();
            thread.Join();
        }

        stop.Dispose();
    }

    private void Run()
    {
        while (!stop.Wait(poll ?? follower.Interval))
        {
            ReadOnce();
        }
    }

    private void ReadOnce()
    {
        var interval = (poll ?? follower.Interval).TotalMilliseconds;
        intervalSumMs += interval;
        intervalMinMs = Math.Min(intervalMinMs, interval);
        lost += follower.Read(batch);
        records += batch.Count;
        reads++;
        batch.Clear();
    }
}
