using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Runtime;
using Flowline.SharedMemory;

namespace Flowline.Tests.Runtime;

public sealed class SyntheticPatternTests
{
    private const double Tolerance = 1e-12;

    private static SyntheticPattern Pattern(ElementType type, int[] shape, SyntheticSettings settings) =>
        new(new FrameFormat(type, shape), settings);

    /// <summary>The next <paramref name="count"/> frames of a float64 pattern.</summary>
    private static double[][] Frames(SyntheticPattern pattern, int count)
    {
        var frames = new double[count][];
        for (var k = 0; k < count; k++)
        {
            var bytes = new byte[pattern.Format.FrameBytes];
            pattern.Next(bytes);
            frames[k] = MemoryMarshal.Cast<byte, double>(bytes).ToArray();
        }

        return frames;
    }

    private static T[] Next<T>(SyntheticPattern pattern)
        where T : unmanaged
    {
        var bytes = new byte[pattern.Format.FrameBytes];
        pattern.Next(bytes);
        return MemoryMarshal.Cast<byte, T>(bytes).ToArray();
    }

    private static void Near(double[] expected, double[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= Tolerance, $"element {i}: expected {expected[i]}, got {actual[i]}");
        }
    }

    [Fact]
    public void Constant_FillsEveryElementWithTheConstant_InEveryFrame()
    {
        var pattern = Pattern(ElementType.Float64, [3, 5], new SyntheticSettings { Pattern = "constant", Constant = -2.75, Offset = 100, Amplitude = 9 });

        foreach (var frame in Frames(pattern, 3))
        {
            Assert.All(frame, v => Assert.Equal(-2.75, v));
        }
    }

    [Fact]
    public void Ramp_IsOffsetPlusAmplitudeTimesPositionModPeriodOverPeriod_MovingOnePerFrame()
    {
        var settings = new SyntheticSettings { Pattern = "ramp", Offset = 1, Amplitude = 4, Period = 5 };
        var frames = Frames(Pattern(ElementType.Float64, [12], settings), 3);

        // Element i of frame k: 1 + 4 * ((i + k) mod 5) / 5.
        double[] frame0 = [1, 1.8, 2.6, 3.4, 4.2, 1, 1.8, 2.6, 3.4, 4.2, 1, 1.8];
        double[] frame1 = [1.8, 2.6, 3.4, 4.2, 1, 1.8, 2.6, 3.4, 4.2, 1, 1.8, 2.6];
        double[] frame2 = [2.6, 3.4, 4.2, 1, 1.8, 2.6, 3.4, 4.2, 1, 1.8, 2.6, 3.4];
        Near(frame0, frames[0]);
        Near(frame1, frames[1]);
        Near(frame2, frames[2]);
    }

    [Fact]
    public void Ramp_WithAFractionalPeriod_WrapsAtThePeriod()
    {
        var settings = new SyntheticSettings { Pattern = "ramp", Amplitude = 1, Period = 2.5 };
        var frame = Frames(Pattern(ElementType.Float64, [6], settings), 1)[0];

        // i mod 2.5 for i = 0..5 is 0, 1, 2, 0.5, 1.5, 0; divided by 2.5.
        Near([0, 0.4, 0.8, 0.2, 0.6, 0], frame);
    }

    [Fact]
    public void Sine_IsOffsetPlusAmplitudeTimesSineOfPositionOverPeriod()
    {
        var settings = new SyntheticSettings { Pattern = "sine", Offset = 10, Amplitude = 2, Period = 4 };
        var frames = Frames(Pattern(ElementType.Float64, [2, 4], settings), 2);

        // A period of 4 samples the sine at quarter turns: 0, 1, 0, -1.
        Near([10, 12, 10, 8, 10, 12, 10, 8], frames[0]);
        Near([12, 10, 8, 10, 12, 10, 8, 10], frames[1]);
    }

    [Fact]
    public void Sine_AtAnyPeriod_MatchesTheFormula()
    {
        var settings = new SyntheticSettings { Pattern = "sine", Offset = -0.5, Amplitude = 3, Period = 7.3 };
        var frames = Frames(Pattern(ElementType.Float64, [16], settings), 4);

        for (var k = 0; k < 4; k++)
        {
            var expected = Enumerable.Range(0, 16).Select(i => -0.5 + (3 * Math.Sin(2 * Math.PI * (i + k) / 7.3))).ToArray();
            Near(expected, frames[k]);
        }
    }

    [Fact]
    public void Impulse_IsOffsetPlusAmplitudeEveryIntervalFrames_AndOffsetOtherwise()
    {
        var settings = new SyntheticSettings { Pattern = "impulse", Offset = 0.5, Amplitude = 8, ImpulseInterval = 3 };
        var frames = Frames(Pattern(ElementType.Float64, [4], settings), 7);

        double[] expected = [8.5, 0.5, 0.5, 8.5, 0.5, 0.5, 8.5];
        for (var k = 0; k < 7; k++)
        {
            Assert.All(frames[k], v => Assert.Equal(expected[k], v));
        }
    }

    [Fact]
    public void Checkerboard_AlternatesTilesOfPeriodElements_AndInvertsEachFrame()
    {
        var settings = new SyntheticSettings { Pattern = "checkerboard", Offset = 1, Amplitude = 2, Period = 2 };
        var frames = Frames(Pattern(ElementType.Float64, [4, 6], settings), 2);

        // 2 x 2 tiles, the top-left one high (1 + 2), its neighbours low (1 - 2).
        double[] frame0 =
        [
            3, 3, -1, -1, 3, 3,
            3, 3, -1, -1, 3, 3,
            -1, -1, 3, 3, -1, -1,
            -1, -1, 3, 3, -1, -1,
        ];
        Assert.Equal(frame0, frames[0]);
        Assert.Equal(frame0.Select(v => v == 3 ? -1.0 : 3.0).ToArray(), frames[1]);
    }

    [Fact]
    public void Checkerboard_OfAStack_RestartsEveryMatrix()
    {
        var settings = new SyntheticSettings { Pattern = "checkerboard", Amplitude = 1, Period = 1 };
        var frame = Frames(Pattern(ElementType.Float64, [2, 2, 2], settings), 1)[0];

        // Two 2 x 2 matrices, each a checkerboard of single elements starting high.
        Assert.Equal([1.0, -1, -1, 1, 1, -1, -1, 1], frame);
    }

    [Fact]
    public void Checkerboard_OfAVector_AlternatesAlongIt()
    {
        var settings = new SyntheticSettings { Pattern = "checkerboard", Amplitude = 1, Period = 3 };
        var frame = Frames(Pattern(ElementType.Float64, [8], settings), 1)[0];

        Assert.Equal([1.0, 1, 1, -1, -1, -1, 1, 1], frame);
    }

    [Fact]
    public void Random_WithTheSameSeed_IsReproducible_AndDiffersWithAnotherSeed()
    {
        SyntheticPattern Make(long seed) => Pattern(ElementType.Float64, [7], new SyntheticSettings { Pattern = "random", Seed = seed });

        var a = Frames(Make(42), 3);
        var b = Frames(Make(42), 3);
        var c = Frames(Make(43), 3);

        for (var k = 0; k < 3; k++)
        {
            Assert.Equal(a[k], b[k]);
            Assert.NotEqual(a[k], c[k]);
            Assert.All(a[k], v => Assert.True(double.IsFinite(v)));
        }

        Assert.NotEqual(a[0], a[1]);
        Assert.Equal(7, a[0].Distinct().Count());
    }

    [Fact]
    public void Random_DrawsABankOfFrames_ThenRepeatsIt()
    {
        var frames = Frames(Pattern(ElementType.Float64, [5], new SyntheticSettings { Pattern = "random", Seed = 9 }), (2 * SyntheticPattern.RandomBankFrames) + 1);

        Assert.Equal(SyntheticPattern.RandomBankFrames, frames.Take(SyntheticPattern.RandomBankFrames).Select(f => string.Join(",", f)).Distinct().Count());
        Assert.Equal(frames[0], frames[SyntheticPattern.RandomBankFrames]);
        Assert.Equal(frames[1], frames[(2 * SyntheticPattern.RandomBankFrames) + 1 - SyntheticPattern.RandomBankFrames]);
    }

    [Fact]
    public void Random_OverManyValues_HasTheOffsetAsMeanAndTheAmplitudeAsStandardDeviation()
    {
        var settings = new SyntheticSettings { Pattern = "random", Seed = 5, Offset = 3, Amplitude = 2 };
        var values = Frames(Pattern(ElementType.Float64, [201, 199], settings), 3).SelectMany(f => f).ToArray();

        var mean = values.Average();
        var std = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / values.Length);

        // About 120,000 values: the standard error of the mean is 0.006, of the deviation 0.004.
        Assert.InRange(mean, 2.95, 3.05);
        Assert.InRange(std, 1.95, 2.05);
        var withinOneSigma = values.Count(v => Math.Abs(v - 3) < 2) / (double)values.Length;
        Assert.InRange(withinOneSigma, 0.66, 0.705);
    }

    [Fact]
    public void Float32Frames_HoldTheValuesRoundedToFloat()
    {
        var pattern = Pattern(ElementType.Float32, [4], new SyntheticSettings { Pattern = "ramp", Amplitude = 1, Period = 3 });

        Assert.Equal([0f, (float)(1 / 3.0), (float)(2 / 3.0), 0f], Next<float>(pattern));
    }

    [Fact]
    public void IntegerFrames_Saturate_AndTruncateTowardZero()
    {
        Assert.All(Next<sbyte>(Pattern(ElementType.Int8, [3], new SyntheticSettings { Pattern = "constant", Constant = 1000 })), v => Assert.Equal(sbyte.MaxValue, v));
        Assert.All(Next<sbyte>(Pattern(ElementType.Int8, [3], new SyntheticSettings { Pattern = "constant", Constant = -1000 })), v => Assert.Equal(sbyte.MinValue, v));
        Assert.All(Next<byte>(Pattern(ElementType.UInt8, [3], new SyntheticSettings { Pattern = "constant", Constant = -5 })), v => Assert.Equal(0, v));
        Assert.All(Next<ushort>(Pattern(ElementType.UInt16, [3], new SyntheticSettings { Pattern = "constant", Constant = 1e9 })), v => Assert.Equal(ushort.MaxValue, v));
        Assert.All(Next<short>(Pattern(ElementType.Int16, [3], new SyntheticSettings { Pattern = "constant", Constant = -2.7 })), v => Assert.Equal(-2, v));
        Assert.All(Next<int>(Pattern(ElementType.Int32, [3], new SyntheticSettings { Pattern = "constant", Constant = 1e12 })), v => Assert.Equal(int.MaxValue, v));
        Assert.All(Next<long>(Pattern(ElementType.Int64, [3], new SyntheticSettings { Pattern = "constant", Constant = 2.7 })), v => Assert.Equal(2L, v));

        // A sine of amplitude 200 in int8: the peaks clip at the type's limits.
        var clipped = Next<sbyte>(Pattern(ElementType.Int8, [4], new SyntheticSettings { Pattern = "sine", Amplitude = 200, Period = 4 }));
        Assert.Equal(new sbyte[] { 0, 127, 0, -128 }, clipped);
    }

    [Fact]
    public void From_ReadsEveryField()
    {
        var parameters = Parameters.From(new Dictionary<string, JsonNode?>
        {
            ["pattern"] = "sine",
            ["rate_hz"] = 250.5,
            ["seed"] = 9,
            ["amplitude"] = 2.5,
            ["offset"] = -1,
            ["period"] = 16,
            ["constant"] = 0.25,
            ["impulse_interval"] = 12,
        });

        var settings = SyntheticSettings.From(parameters);

        Assert.Equal("sine", settings.Pattern);
        Assert.Equal(250.5, settings.RateHz);
        Assert.Equal(9, settings.Seed);
        Assert.Equal(2.5, settings.Amplitude);
        Assert.Equal(-1, settings.Offset);
        Assert.Equal(16, settings.Period);
        Assert.Equal(0.25, settings.Constant);
        Assert.Equal(12, settings.ImpulseInterval);
    }

    [Fact]
    public void From_EmptyParameters_GivesTheDefaults()
    {
        var settings = SyntheticSettings.From(Parameters.Empty);

        Assert.Equal(new SyntheticSettings(), settings);
        Assert.Equal("random", settings.Pattern);
        Assert.Null(settings.RateHz);
        Assert.Equal(0, settings.Seed);
        Assert.Equal(1.0, settings.Amplitude);
        Assert.Equal(0.0, settings.Offset);
        Assert.Equal(64.0, settings.Period);
        Assert.Equal(0.0, settings.Constant);
        Assert.Equal(64, settings.ImpulseInterval);
        Assert.Contains(settings.Pattern, SyntheticSettings.Patterns);
    }

    [Fact]
    public void From_ANullRate_MeansAsFastAsPossible()
    {
        var parameters = Parameters.From(new Dictionary<string, JsonNode?> { ["rate_hz"] = null, ["pattern"] = "ramp" });

        var settings = SyntheticSettings.From(parameters);

        Assert.Null(settings.RateHz);
        Assert.Equal("ramp", settings.Pattern);
    }

    [Fact]
    public void From_ADocumentsSourceParameters_ReadsThem()
    {
        var pipeline = PipelineDocument.Parse("""
            shared_memory:
              - {name: a, shape: [4], dtype: float32}
            sources:
              - name: src
                kind: synthetic.array
                stream: a
                parameters: {pattern: impulse, rate_hz: 30, seed: 4, amplitude: 3, impulse_interval: 5}
            """);

        var settings = SyntheticSettings.From(pipeline.Spec.Sources[0].Parameters);

        Assert.Equal(new SyntheticSettings { Pattern = "impulse", RateHz = 30, Seed = 4, Amplitude = 3, ImpulseInterval = 5 }, settings);
    }

    [Fact]
    public void Constructor_WithoutSettings_Throws() =>
        Assert.Throws<ArgumentNullException>(() => new SyntheticPattern(new FrameFormat(ElementType.Float32, 4), null!));
}
