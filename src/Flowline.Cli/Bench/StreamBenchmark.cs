using System.Diagnostics;
using System.Globalization;
using Flowline.SharedMemory;
using Flowline.SharedMemory.Diagnostics;

namespace Flowline.Cli.Bench;

/// <summary>
/// Runs the stream benchmarks: this process writes, a second process (<see cref="BenchPeer"/>) reads.
/// Every figure is measured in the same run as the limits it is compared with.
/// </summary>
internal sealed class StreamBenchmark(StreamBenchOptions options, TextWriter progress)
{
    private const int SmallFrameBytes = 64;
    private const int LargeFrameBytes = 1 << 20;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);
    private readonly string ns = $"bench-{Environment.ProcessId}";
    private const double WakeRateHz = 1_000;
    private readonly int scale = options.Quick ? 10 : 1;

    public StreamBenchReport Run()
    {
        if (options.Pin && Environment.ProcessorCount > 1)
        {
            Process.GetCurrentProcess().ProcessorAffinity = 1;
        }

        var cpuBefore = CpuTimes.Read();
        try
        {
            var limits = options.Runs("limits") ? MeasureLimits() : null;
            var latency = !options.Runs("latency") ? [] : new List<LatencyCase>
            {
                MeasureLatency(WaitPolicy.Spin, rateHz: 20_000, samples: 100_000 / scale),
                MeasureLatency(WaitPolicy.Hybrid, rateHz: 20_000, samples: 100_000 / scale),
                MeasureLatency(WaitPolicy.Hybrid, rateHz: 1_000, samples: 5_000 / scale),
                MeasureLatency(WaitPolicy.Block, rateHz: 1_000, samples: 5_000 / scale),
                MeasureLatency(WaitPolicy.Predictive, rateHz: 1_000, samples: 5_000 / scale),
            };
            var throughput = new List<ThroughputCase>();
            if (options.Runs("throughput"))
            {
                throughput.AddRange(
                [
                MeasureThroughput("64 B, copy in, copy out", SmallFrameBytes, writerLook: false, readerLook: false, frames: 20_000_000 / scale, capacity: 1024),
                MeasureThroughput("64 B, zero-copy", SmallFrameBytes, writerLook: true, readerLook: true, frames: 20_000_000 / scale, capacity: 1024),
                MeasureThroughput("64 B, batches of 64, copy in, copy out", SmallFrameBytes, writerLook: false, readerLook: false, frames: 40_000_000 / scale, capacity: 1024, batch: 64),
                // One side batched, the other frame by frame: which side sets the single-frame figure.
                MeasureThroughput("64 B, written in batches of 64, read one by one", SmallFrameBytes, writerLook: false, readerLook: false, frames: 40_000_000 / scale, capacity: 1024, batch: 64, readerBatch: 0),
                MeasureThroughput("64 B, written one by one, read in batches of 64", SmallFrameBytes, writerLook: false, readerLook: false, frames: 20_000_000 / scale, capacity: 1024, batch: 0, readerBatch: 64),
                MeasureThroughput("64 B, zero-copy, 8 slots", SmallFrameBytes, writerLook: true, readerLook: true, frames: 2_000_000 / scale, capacity: 8),
                MeasureThroughput("1 MiB, copy in, zero-copy read", LargeFrameBytes, writerLook: false, readerLook: true, frames: 10_000 / scale, capacity: 8),
                MeasureThroughput("1 MiB, zero-copy, 8 slots", LargeFrameBytes, writerLook: true, readerLook: true, frames: 2_000_000 / scale, capacity: 8),
                ]);
            }

            if (options.Runs("large"))
            {
                // One copy in and one copy out of 1 MiB frames, with each wait policy of the reader (the sleeps per frame tell them apart).
                throughput.Add(MeasureThroughput("1 MiB, copy in, copy out", LargeFrameBytes, writerLook: false, readerLook: false, frames: 5_000 / scale, capacity: 8));
                throughput.Add(MeasureThroughput("1 MiB, copy in, copy out, predictive reader", LargeFrameBytes, writerLook: false, readerLook: false, frames: 5_000 / scale, capacity: 8, policy: WaitPolicy.Predictive));
            }

            var idle = !options.Runs("idle") ? [] : new List<IdleCase>
            {
                MeasureIdle(WaitPolicy.Hybrid, seconds: options.Quick ? 1 : 5),
                MeasureIdle(WaitPolicy.Block, seconds: options.Quick ? 1 : 5),
            };
            return new StreamBenchReport(
                "flowline bench streams" + (options.Quick ? " --quick" : "") + (options.Pin ? " --pin" : "") + (options.Only.Count > 0 ? " --only " + string.Join(",", options.Only) : ""),
                DateTimeOffset.UtcNow,
                Machine.Describe(options.Pin, CpuTimes.Read().StealPercentSince(cpuBefore)),
                limits,
                latency,
                throughput,
                idle);
        }
        finally
        {
            SharedMemoryNamespace.UnlinkAll(ns);
        }
    }

    private LimitsReport MeasureLimits()
    {
        Say("limits: shared-memory ping-pong, spinning");
        var spin = PingPong(futex: false, rounds: 200_000 / scale, parentCpu: null, childCpu: null);
        var twoCpus = Environment.ProcessorCount > 1;
        Say("limits: futex ping-pong, both processes on CPU 0");
        var sameCpu = PingPong(futex: true, rounds: 20_000 / scale, parentCpu: 0, childCpu: 0);
        Say("limits: futex ping-pong, processes on CPUs 0 and 1");
        var crossCpu = twoCpus ? PingPong(futex: true, rounds: 20_000 / scale, parentCpu: 0, childCpu: 1) : sameCpu;
        Say($"limits: futex wake-ups at {WakeRateHz:N0} Hz");
        var wake = FutexWakes(5_000 / scale);
        Say("limits: memcpy bandwidth");
        return new LimitsReport(
            spin,
            sameCpu,
            crossCpu,
            wake,
            WakeRateHz,
            MemoryBandwidth.MeasureCopy(LargeFrameBytes),
            MemoryBandwidth.MeasureCopy(64 << 20));
    }

    private LatencySummary PingPong(bool futex, int rounds, int? parentCpu, int? childCpu)
    {
        var name = futex ? "probe-futex" : "probe-spin";
        using var probe = Probe.Open(ns, name, RegionMode.Replace);
        var self = Process.GetCurrentProcess();
        var affinity = self.ProcessorAffinity;
        try
        {
            using var child = BenchChild.Start(childCpu is { } c ? 1L << c : ChildAffinity, "pong", "--ns", ns, "--name", name, "--count", Invariant(rounds), "--futex", futex ? "true" : "false");
            child.Expect("ready", Patience);
            if (parentCpu is { } p)
            {
                self.ProcessorAffinity = (nint)(1L << p);
            }

            var samples = probe.RunPinger(rounds, futex, Patience);
            child.Expect("result ", Patience);

            // The first tenth warms caches, the JIT and the scheduler.
            return LatencySummary.Of(samples.AsSpan(rounds / 10));
        }
        finally
        {
            self.ProcessorAffinity = affinity;
            probe.Unlink();
        }
    }

    private LatencySummary FutexWakes(int count)
    {
        const string Name = "probe-wake";
        using var probe = Probe.Open(ns, Name, RegionMode.Replace);
        try
        {
            using var child = StartChild("wake", Name, "--count", Invariant(count), "--warmup", Invariant(count / 10));
            child.Expect("ready", Patience);
            probe.SendWakes(count, WakeRateHz);
            return BenchJson.ParsePeer(child.Expect("result ", Patience)["result ".Length..]).Latency!;
        }
        finally
        {
            probe.Unlink();
        }
    }

    private LatencyCase MeasureLatency(WaitPolicy policy, double rateHz, int samples)
    {
        Say($"latency: 64 B frames, {Name(policy)} at {rateHz:N0} Hz, {samples:N0} samples");
        var warmup = samples / 10;
        var name = $"latency-{Name(policy)}-{rateHz}";
        using var stream = SharedStream.Open(ns, name, new FrameFormat(ElementType.UInt8, SmallFrameBytes), RegionMode.Replace, new StreamOptions { CapacityFrames = 64 });
        try
        {
            using var child = StartChild("latency", name, "--policy", policy.ToString(), "--count", Invariant(samples), "--warmup", Invariant(warmup));
            child.Expect("ready", Patience);
            using (var writer = stream.OpenWriter<byte>(new WriterOptions { WaitPolicy = policy }))
            {
                var frame = new byte[SmallFrameBytes];
                var pacer = new Pacer(rateHz);
                for (var i = 0; i < samples + warmup; i++)
                {
                    pacer.WaitNext();
                    writer.Write(frame, Patience);
                }

                writer.Close();
            }

            var result = BenchJson.ParsePeer(child.Expect("result ", Patience)["result ".Length..]);
            return new LatencyCase(Name(policy), rateHz, result.Latency!);
        }
        finally
        {
            stream.Unlink();
        }
    }

    private ThroughputCase MeasureThroughput(string title, int frameBytes, bool writerLook, bool readerLook, int frames, int capacity, int batch = 0, WaitPolicy policy = WaitPolicy.Hybrid, int? readerBatch = null)
    {
        var readBatch = readerBatch ?? batch;
        Say($"throughput: {title}, {frames:N0} frames");
        var name = $"throughput-{frameBytes}-{capacity}-{writerLook}-{readerLook}-{batch}-{readBatch}-{Name(policy)}";
        using var stream = SharedStream.Open(ns, name, new FrameFormat(ElementType.UInt8, frameBytes), RegionMode.Replace, new StreamOptions { CapacityFrames = capacity });
        try
        {
            var warmup = frames / 4;
            using var child = StartChild("throughput", name, "--policy", policy.ToString(), "--look", readerLook ? "true" : "false", "--warmup", Invariant(warmup), "--batch", Invariant(readBatch));
            child.Expect("ready", Patience);
            using (var writer = stream.OpenWriter<byte>())
            {
                var frame = new byte[frameBytes * Math.Max(1, batch)];
                frame.AsSpan().Fill(7);
                for (var i = 0; i < warmup + frames; i += Math.Max(1, batch))
                {
                    if (batch > 0)
                    {
                        writer.WriteBatch(frame.AsSpan(0, frameBytes * Math.Min(batch, warmup + frames - i)), out _, Patience);
                    }
                    else if (writerLook)
                    {
                        writer.Look(out _, Patience);
                        writer.Publish();
                    }
                    else
                    {
                        writer.Write(frame, Patience);
                    }
                }

                writer.Close();
            }

            var result = BenchJson.ParsePeer(child.Expect("result ", Patience)["result ".Length..]);
            if (result.Frames != frames)
            {
                throw new InvalidOperationException($"the reader received {result.Frames:N0} of {frames:N0} frames after the warm-up");
            }

            var perSecond = frames / result.Seconds;
            return new ThroughputCase(
                title,
                frameBytes,
                batch > 0 ? $"write batch of {batch}" : writerLook ? "look + publish" : "write (copy in)",
                readBatch > 0 ? "read batch (copy out)" : readerLook ? "look + increment" : "read into (copy out)",
                capacity,
                frames,
                perSecond,
                perSecond * frameBytes,
                result.Sleeps * 1e6 / frames);
        }
        finally
        {
            stream.Unlink();
        }
    }

    private IdleCase MeasureIdle(WaitPolicy policy, double seconds)
    {
        Say($"idle CPU: a {Name(policy)} reader waiting {seconds:0} s on a silent stream");
        var name = $"idle-{Name(policy)}";
        using var stream = SharedStream.Open(ns, name, new FrameFormat(ElementType.UInt8, SmallFrameBytes), RegionMode.Replace);
        try
        {
            using var writer = stream.OpenWriter<byte>();
            using var child = StartChild("idle", name, "--policy", policy.ToString(), "--seconds", Invariant(seconds));
            child.Expect("ready", Patience);
            var result = BenchJson.ParsePeer(child.Expect("result ", Patience)["result ".Length..]);
            return new IdleCase(
                Name(policy),
                result.Seconds,
                100 * result.ProcessCpuSeconds / result.Seconds,
                100 * result.ThreadCpuSeconds / result.Seconds,
                result.Sleeps);
        }
        finally
        {
            stream.Unlink();
        }
    }

    /// <summary>With --pin, readers run on CPU 1 (the writer runs on CPU 0).</summary>
    private long? ChildAffinity => options.Pin && Environment.ProcessorCount > 1 ? 2 : null;

    private LineProcess StartChild(string role, string name, params string[] arguments) =>
        BenchChild.Start(ChildAffinity, [role, "--ns", ns, "--name", name, .. arguments]);

    private void Say(string line) => progress.WriteLine(line);

    private static string Name(WaitPolicy policy) => policy.ToString().ToLowerInvariant();

    private static string Invariant(double value) => value.ToString(CultureInfo.InvariantCulture);
}
