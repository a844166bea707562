using System.Diagnostics;
using System.Text.Json.Nodes;
using Flowline.Runtime;
using Flowline.SharedMemory.Diagnostics;

namespace Flowline.Kernels.BuiltIn;

/// <summary>The synthetic patterns of shmpipeline's <c>synthetic.array</c> source and synthetic inputs.</summary>
internal static class SyntheticPatterns
{
    public static readonly string[] Names = ["constant", "random", "ramp", "sine", "impulse", "checkerboard"];

    public static readonly ParameterInfo[] Parameters =
    [
        new("pattern", string.Join(" | ", Names), false, "random", "what to generate"),
        new("rate_hz", "number >= 1e-6, or null", false, "null", "frames per second; null writes as fast as possible"),
        new("seed", "integer", false, "0", "seed of the random pattern"),
        new("amplitude", "number", false, "1.0", "scale of the pattern"),
        new("offset", "number", false, "0.0", "added to the pattern"),
        new("period", "number > 0", false, "64.0", "period of ramp and sine, in elements; tile size of checkerboard"),
        new("constant", "number", false, "0.0", "the value of the constant pattern"),
        new("impulse_interval", "integer >= 1", false, "64", "frames between impulses"),
    ];

    public static void Validate(NodeContext context)
    {
        context.Choice("pattern", Names, "random");
        if (context.Parameters.Contains("rate_hz") && context.Parameters.Get("rate_hz") is not null)
        {
            context.Number("rate_hz", min: Pacer.MinRateHz);
        }

        context.Integer("seed", 0);
        context.Number("amplitude", 1.0);
        context.Number("offset", 0.0);
        context.Number("period", 64.0, min: 0, minExclusive: true);
        context.Number("constant", 0.0);
        context.Integer("impulse_interval", 64, min: 1);
    }
}

/// <summary><c>synthetic.array</c>: generates a pattern into one stream.</summary>
internal sealed class SyntheticArrayDefinition : SourceDefinition
{
    public override string Kind => "synthetic.array";

    public override string Description => "writes a synthetic pattern (constant, random, ramp, sine, impulse, checkerboard) at a rate or as fast as possible";

    public override IReadOnlyList<ParameterInfo> Parameters => SyntheticPatterns.Parameters;

    public override void Validate(SourceContext context)
    {
        SyntheticPatterns.Validate(context);
        foreach (var stream in context.Streams)
        {
            context.RequireDtype(stream, context.Spec.StreamsAsList ? "streams" : "stream", Numeric.RealTypes);
        }
    }

    public override ISource Create(SourceContext context)
    {
        var settings = SyntheticSettings.From(context.Parameters);
        return new Source(settings, [.. context.Streams.Select((s, i) => new SyntheticPattern(s.Format, settings with { Seed = settings.Seed + i }))]);
    }

    private sealed class Source(SyntheticSettings settings, SyntheticPattern[] patterns) : ISource
    {
        public double? RateHz => settings.RateHz;

        public bool Produce(SourceIo io)
        {
            for (var i = 0; i < patterns.Length; i++)
            {
                patterns[i].Next(io.Output<byte>(i));
            }

            return true;
        }
    }
}

/// <summary><c>synthetic.frame_set</c>: one generation across two or more streams, with a shared frame id (cameras in lock-step).</summary>
internal sealed class SyntheticFrameSetDefinition : SourceDefinition
{
    public override string Kind => "synthetic.frame_set";

    public override string Description => "writes one generation to every stream with a shared frame id, with optional per-stream jitter and drops";

    public override Arity Streams => Arity.AtLeast(2);

    public override IReadOnlyList<ParameterInfo> Parameters { get; } =
    [
        .. SyntheticPatterns.Parameters,
        new("assign_frame_id", "boolean", false, "true", "stamp every stream of a generation with the same frame id"),
        new("jitter_us", "number >= 0", false, "0", "uniform per-stream delay before writing, in microseconds"),
        new("drop_probability", "number from 0 to 1", false, "0", "probability of leaving a stream out of a generation"),
    ];

    public override void Validate(SourceContext context)
    {
        SyntheticPatterns.Validate(context);
        context.Boolean("assign_frame_id", true);
        context.Number("jitter_us", 0, min: 0);
        context.Number("drop_probability", 0, min: 0, max: 1);
        for (var i = 0; i < context.Streams.Count; i++)
        {
            context.RequireDtype(context.Streams[i], $"streams[{i}]", Numeric.RealTypes);
        }
    }

    public override ISource Create(SourceContext context)
    {
        var settings = SyntheticSettings.From(context.Parameters);
        return new FrameSet(
            settings,
            [.. context.Streams.Select((s, i) => new SyntheticPattern(s.Format, settings with { Seed = settings.Seed + i }))],
            context.Boolean("assign_frame_id", true)!.Value,
            context.Number("jitter_us", 0)!.Value,
            context.Number("drop_probability", 0)!.Value);
    }

    /// <summary>One generation across every stream: per-stream jitter before each write, random drops, a shared frame id.</summary>
    private sealed class FrameSet(SyntheticSettings settings, SyntheticPattern[] patterns, bool assignFrameId, double jitterUs, double dropProbability) : ISource
    {
        private readonly Random random = new(unchecked((int)settings.Seed) ^ 0x5eed);
        private readonly long[] writes = new long[patterns.Length];
        private readonly long[] drops = new long[patterns.Length];
        private long generations;
        private double lastSkewUs;
        private double maxSkewUs;

        public double? RateHz => settings.RateHz;

        public bool Produce(SourceIo io)
        {
            io.PerStreamFrameIds = !assignFrameId;
            long first = 0;
            long last = 0;
            for (var i = 0; i < patterns.Length; i++)
            {
                if (dropProbability > 0 && random.NextDouble() < dropProbability)
                {
                    drops[i]++;
                    continue;
                }

                if (jitterUs > 0)
                {
                    var until = Stopwatch.GetTimestamp() + (long)(random.NextDouble() * jitterUs * Stopwatch.Frequency / 1e6);
                    while (Stopwatch.GetTimestamp() < until)
                    {
                        Thread.SpinWait(20);
                    }
                }

                patterns[i].Next(io.Output<byte>(i));
                last = Stopwatch.GetTimestamp();
                first = first == 0 ? last : first;
                writes[i]++;
            }

            generations++;
            lastSkewUs = first == 0 ? 0 : (last - first) * 1e6 / Stopwatch.Frequency;
            maxSkewUs = Math.Max(maxSkewUs, lastSkewUs);
            return true;
        }

        public JsonObject Metrics() => new()
        {
            ["generations"] = generations,
            ["per_stream_writes"] = new JsonArray([.. writes.Select(w => (JsonNode?)w)]),
            ["per_stream_drops"] = new JsonArray([.. drops.Select(d => (JsonNode?)d)]),
            ["requested_rate_hz"] = settings.RateHz,
            ["jitter_us"] = jitterUs,
            ["drop_probability"] = dropProbability,
            ["last_skew_us"] = Math.Round(lastSkewUs, 3),
            ["max_skew_us"] = Math.Round(maxSkewUs, 3),
        };
    }
}

/// <summary><c>null.sink</c>: consumes frames and discards them, reporting consume-time percentiles.</summary>
internal sealed class NullSinkDefinition : SinkDefinition
{
    public override string Kind => "null.sink";

    public override string Description => "consumes and discards frames; reports consumed count and consume-time percentiles";

    public override IReadOnlyList<ParameterInfo> Parameters { get; } =
    [
        new("device_delay_s", "number >= 0", false, "0", "a fake hardware latency added to each frame"),
        new("sample_window", "integer >= 1", false, "8192", "how many consume times the percentiles cover"),
    ];

    public override void Validate(SinkContext context)
    {
        context.Number("device_delay_s", 0, min: 0);
        context.Integer("sample_window", 8192, min: 1, max: 10_000_000);
    }

    public override ISink Create(SinkContext context) =>
        new Sink(context.Number("device_delay_s", 0)!.Value, (int)context.Integer("sample_window", 8192)!.Value);

    /// <summary>Discards frames, optionally after a fake device delay, and keeps a window of consume times.</summary>
    private sealed class Sink(double deviceDelayS, int sampleWindow) : ISink
    {
        private readonly long[] samples = new long[sampleWindow];
        private long consumed;

        public void Consume(SinkIo io)
        {
            var start = Stopwatch.GetTimestamp();
            if (deviceDelayS > 0)
            {
                io.Wait(TimeSpan.FromSeconds(deviceDelayS));
            }

            samples[consumed % samples.Length] = Stopwatch.GetTimestamp() - start;
            consumed++;
        }

        public JsonObject Metrics()
        {
            var count = (int)Math.Min(consumed, samples.Length);
            var sorted = samples[..count];
            Array.Sort(sorted);
            double Us(double q) => count == 0 ? 0 : Math.Round(sorted[Math.Clamp((int)Math.Ceiling(q * count) - 1, 0, count - 1)] * 1e6 / Stopwatch.Frequency, 3);
            return new JsonObject
            {
                ["consumed"] = consumed,
                ["device_delay_us"] = deviceDelayS * 1e6,
                ["consume_us"] = new JsonObject
                {
                    ["p50"] = Us(0.50),
                    ["p90"] = Us(0.90),
                    ["p99"] = Us(0.99),
                    ["p99_9"] = Us(0.999),
                    ["max"] = Us(1.0),
                },
            };
        }
    }
}
