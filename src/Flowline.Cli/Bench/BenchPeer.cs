using System.Diagnostics;
using Flowline.Cli.Commands;
using Flowline.SharedMemory;
using Flowline.SharedMemory.Diagnostics;
using Flowline.SharedMemory.Liveness;

namespace Flowline.Cli.Bench;

/// <summary>Arguments of <c>flowline bench-peer</c>.</summary>
internal sealed record BenchPeerArgs(
    string Role,
    string Namespace,
    string Name,
    WaitPolicy Policy,
    long Count,
    long Warmup,
    bool Look,
    bool Futex,
    double Seconds,
    int Parent,
    int Batch = 0);

/// <summary>
/// The reading side of the stream benchmarks (and the answering side of the probe), run in a second
/// process. It prints <c>ready</c> once attached and <c>result {json}</c> at the end.
/// </summary>
internal static class BenchPeer
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    public static int Run(BenchPeerArgs args)
    {
        if (args.Parent > 0)
        {
            ParentWatch.ExitWhenParentDies(args.Parent);
        }

        try
        {
            var result = args.Role switch
            {
                "latency" => Latency(args),
                "throughput" => Throughput(args),
                "idle" => Idle(args),
                "pong" => Pong(args),
                "wake" => Wake(args),
                _ => throw new ArgumentException($"unknown benchmark role '{args.Role}'"),
            };
            Console.Out.WriteLine("result " + BenchJson.SerializeLine(result));
            return ExitCodes.Ok;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"bench-peer {args.Role}: {e.Message}");
            return ExitCodes.Failed;
        }
    }

    private static PeerResult Latency(BenchPeerArgs args)
    {
        using var stream = SharedStream.Attach(args.Namespace, args.Name);
        using var reader = stream.OpenReader<byte>(new ReaderOptions { WaitPolicy = args.Policy });
        var frame = new byte[reader.FrameLength];
        var samples = new long[args.Count];
        var taken = 0;
        long seen = 0;
        Console.Out.WriteLine("ready");
        while (reader.ReadInto(frame, out var header, Patience) == ReadStatus.Ok)
        {
            var latency = MonotonicClock.NowNs() - header.PublishTimestampNs;
            if (seen++ >= args.Warmup && taken < samples.Length)
            {
                samples[taken++] = latency;
            }
        }

        return new PeerResult(LatencySummary.Of(samples.AsSpan(0, taken)), seen, 0, 0, 0, 0);
    }

    private static PeerResult Throughput(BenchPeerArgs args)
    {
        using var stream = SharedStream.Attach(args.Namespace, args.Name);
        using var reader = stream.OpenReader<byte>(new ReaderOptions { WaitPolicy = args.Policy });
        var frame = new byte[reader.FrameLength * Math.Max(1, args.Batch)];
        Console.Out.WriteLine("ready");

        // The clock starts after the warm-up frames, once both sides run optimised code.
        long frames = 0;
        var start = 0L;
        var end = 0L;
        var before = default(CpuUsage);
        while (true)
        {
            ReadStatus status;
            if (args.Batch > 0)
            {
                status = reader.ReadBatch(frame, out var got, Patience);
                if (status == ReadStatus.Ok)
                {
                    var before0 = frames;
                    frames += got;
                    if (before0 < args.Warmup && frames >= args.Warmup)
                    {
                        before = CpuUsage.Thread();
                        start = Stopwatch.GetTimestamp();
                    }

                    end = Stopwatch.GetTimestamp();
                    continue;
                }

                break;
            }

            if (args.Look)
            {
                status = reader.Look(out _, Patience);
                if (status == ReadStatus.Ok)
                {
                    reader.Increment();
                }
            }
            else
            {
                status = reader.ReadInto(frame, Patience);
            }

            if (status != ReadStatus.Ok)
            {
                break;
            }

            if (++frames == args.Warmup)
            {
                before = CpuUsage.Thread();
                start = Stopwatch.GetTimestamp();
            }

            end = Stopwatch.GetTimestamp();
        }

        if (frames <= args.Warmup)
        {
            throw new InvalidOperationException($"only {frames} frames arrived");
        }

        var used = CpuUsage.Thread() - before;
        return new PeerResult(null, frames - args.Warmup, Stopwatch.GetElapsedTime(start, end).TotalSeconds, used.VoluntarySwitches, 0, used.CpuTime.TotalSeconds);
    }

    private static PeerResult Idle(BenchPeerArgs args)
    {
        using var stream = SharedStream.Attach(args.Namespace, args.Name);
        using var reader = stream.OpenReader<byte>(new ReaderOptions { WaitPolicy = args.Policy });
        var frame = new byte[reader.FrameLength];

        // Warm up: let the runtime finish compiling what a wait runs before measuring.
        reader.ReadInto(frame, TimeSpan.FromMilliseconds(300));
        Console.Out.WriteLine("ready");
        var process = CpuUsage.Process();
        var thread = CpuUsage.Thread();
        var start = Stopwatch.GetTimestamp();
        var status = reader.ReadInto(frame, TimeSpan.FromSeconds(args.Seconds));
        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var processUsed = CpuUsage.Process() - process;
        var threadUsed = CpuUsage.Thread() - thread;
        if (status != ReadStatus.Timeout)
        {
            throw new InvalidOperationException($"the idle stream delivered {status}");
        }

        return new PeerResult(null, 0, elapsed, threadUsed.VoluntarySwitches, processUsed.CpuTime.TotalSeconds, threadUsed.CpuTime.TotalSeconds);
    }

    private static PeerResult Wake(BenchPeerArgs args)
    {
        using var probe = Probe.Open(args.Namespace, args.Name, RegionMode.Attach);
        Console.Out.WriteLine("ready");
        var samples = probe.ReceiveWakes((int)args.Count, Patience);
        return new PeerResult(LatencySummary.Of(samples.AsSpan((int)args.Warmup)), args.Count, 0, 0, 0, 0);
    }

    private static PeerResult Pong(BenchPeerArgs args)
    {
        using var probe = Probe.Open(args.Namespace, args.Name, RegionMode.Attach);
        Console.Out.WriteLine("ready");
        probe.RunPonger((int)args.Count, args.Futex, Patience);
        return new PeerResult(null, args.Count, 0, 0, 0, 0);
    }
}
