using Flowline.Documents;
using Flowline.Kernels;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// The synthetic patterns of shmpipeline: <c>constant</c>, <c>random</c> (seeded normal noise), <c>ramp</c>,
/// <c>sine</c>, <c>impulse</c> and <c>checkerboard</c>, written straight into a frame of any real type.
/// </summary>
/// <remarks>
/// For frame k and element i (row r, column c of the last two dimensions):
/// constant = constant; random = offset + amplitude * N(0, 1); ramp = offset + amplitude * ((i + k) mod
/// period) / period; sine = offset + amplitude * sin(2 pi (i + k) / period); impulse = offset + amplitude on
/// every impulse_interval-th frame, offset otherwise; checkerboard = offset +/- amplitude in tiles of period
/// elements, scrolling one tile per frame. Float values are converted (saturating) for integer types.
/// The random pattern is drawn once for up to <see cref="RandomBankFrames"/> frames (16 MiB at most) and
/// then repeats, so that a source writes noise at memory speed rather than at the speed of the generator.
/// </remarks>
public sealed class SyntheticPattern
{
    private readonly double[] values;
    private readonly int rows;
    private readonly int columns;
    private readonly Random random;
    private byte[][]? bank;
    private long frame;

    /// <summary>How many frames of noise the random pattern draws before it repeats.</summary>
    public const int RandomBankFrames = 16;

    /// <summary>Creates a pattern for frames of <paramref name="format"/>.</summary>
    public SyntheticPattern(FrameFormat format, SyntheticSettings settings)
    {
        ArgumentNullException.ThrowIfNull(format);
        Format = format;
        Settings = settings ?? throw new ArgumentNullException(nameof(settings));
        values = new double[format.ElementCount];
        columns = format.Shape.Length >= 1 ? format.Shape[^1] : 1;
        rows = format.Shape.Length >= 2 ? format.Shape[^2] : 1;
        random = new Random(unchecked((int)settings.Seed));
    }

    /// <summary>The frames it fills.</summary>
    public FrameFormat Format { get; }

    /// <summary>Its settings.</summary>
    public SyntheticSettings Settings { get; }

    /// <summary>Writes the next frame into <paramref name="destination"/> (the frame's bytes).</summary>
    public void Next(Span<byte> destination)
    {
        if (Settings.Pattern == "random")
        {
            bank ??= DrawBank();
            bank[frame % bank.Length].CopyTo(destination);
            frame++;
            return;
        }

        Generate();
        Numeric.Store(values, Format.ElementType, destination);
        frame++;
    }

    private byte[][] DrawBank()
    {
        var count = (int)Math.Clamp((16L << 20) / Math.Max(1, Format.FrameBytes), 1, RandomBankFrames);
        var frames = new byte[count][];
        for (var i = 0; i < count; i++)
        {
            Generate();
            frames[i] = new byte[Format.FrameBytes];
            Numeric.Store(values, Format.ElementType, frames[i]);
        }

        return frames;
    }

    private void Generate()
    {
        var s = Settings;
        switch (s.Pattern)
        {
            case "constant":
                Array.Fill(values, s.Constant);
                break;
            case "random":
                for (var i = 0; i < values.Length; i += 2)
                {
                    // Box-Muller: two normal values from two uniform ones.
                    var u1 = 1.0 - random.NextDouble();
                    var u2 = random.NextDouble();
                    var radius = Math.Sqrt(-2.0 * Math.Log(u1));
                    values[i] = s.Offset + (s.Amplitude * radius * Math.Cos(2 * Math.PI * u2));
                    if (i + 1 < values.Length)
                    {
                        values[i + 1] = s.Offset + (s.Amplitude * radius * Math.Sin(2 * Math.PI * u2));
                    }
                }

                break;
            case "ramp":
                for (var i = 0; i < values.Length; i++)
                {
                    values[i] = s.Offset + (s.Amplitude * (((i + frame) % s.Period) / s.Period));
                }

                break;
            case "sine":
                for (var i = 0; i < values.Length; i++)
                {
                    values[i] = s.Offset + (s.Amplitude * Math.Sin(2 * Math.PI * (i + frame) / s.Period));
                }

                break;
            case "impulse":
                Array.Fill(values, frame % s.ImpulseInterval == 0 ? s.Offset + s.Amplitude : s.Offset);
                break;
            default: // checkerboard
                var tile = Math.Max(1, (long)s.Period);
                for (var i = 0; i < values.Length; i++)
                {
                    var r = i / columns % rows;
                    var c = i % columns;
                    var parity = ((r / tile) + (c / tile) + frame) % 2;
                    values[i] = s.Offset + (parity == 0 ? s.Amplitude : -s.Amplitude);
                }

                break;
        }
    }
}

/// <summary>Reads <see cref="SyntheticSettings"/> from a source node's parameters.</summary>
public static class SyntheticSettingsParameters
{
    extension(SyntheticSettings)
    {
        /// <summary>Reads the pattern parameters of a source node.</summary>
        public static SyntheticSettings From(Parameters parameters)
        {
            ArgumentNullException.ThrowIfNull(parameters);
            double? Number(string name, double? fallback) => parameters.TryGetDouble(name, out var v) ? v : fallback;
            return new SyntheticSettings
            {
                Pattern = parameters.TryGetString("pattern", out var p) ? p : "random",
                RateHz = Number("rate_hz", null),
                Seed = parameters.TryGetLong("seed", out var seed) ? seed : 0,
                Amplitude = Number("amplitude", 1.0)!.Value,
                Offset = Number("offset", 0)!.Value,
                Period = Number("period", 64)!.Value,
                Constant = Number("constant", 0)!.Value,
                ImpulseInterval = parameters.TryGetLong("impulse_interval", out var interval) ? interval : 64,
            };
        }
    }
}
