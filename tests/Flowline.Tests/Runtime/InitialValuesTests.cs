using System.Runtime.InteropServices;
using Flowline.Documents;
using Flowline.Runtime;
using Flowline.SharedMemory;

namespace Flowline.Tests.Runtime;

public sealed class InitialValuesTests
{
    private static StreamSpec Stream(ElementType dtype, params int[] shape) => new() { Name = "s", Shape = [.. shape], Dtype = dtype };

    /// <summary>The frame <paramref name="initial"/> gives <paramref name="stream"/>, as elements of <typeparamref name="T"/>.</summary>
    private static T[] Fill<T>(StreamSpec stream, InitialSpec initial)
        where T : unmanaged
    {
        var bytes = new byte[stream.Format.FrameBytes];
        bytes.AsSpan().Fill(0xAB); // whatever was there before must not show through
        InitialValues.Fill(stream, initial, bytes);
        return MemoryMarshal.Cast<byte, T>(bytes).ToArray();
    }

    [Fact]
    public void Constant_FillsEveryElement_InFloatTypes()
    {
        Assert.Equal(Enumerable.Repeat(-1.5f, 6), Fill<float>(Stream(ElementType.Float32, 2, 3), new ConstantInitial(-1.5)));
        Assert.Equal(Enumerable.Repeat(0.1, 4), Fill<double>(Stream(ElementType.Float64, 4), new ConstantInitial(0.1)));
        Assert.Equal(Enumerable.Repeat((float)0.1, 4), Fill<float>(Stream(ElementType.Float32, 4), new ConstantInitial(0.1)));
    }

    [Fact]
    public void Constant_InIntegerTypes_TruncatesAndSaturates()
    {
        Assert.Equal(Enumerable.Repeat(3, 4), Fill<int>(Stream(ElementType.Int32, 2, 2), new ConstantInitial(3.9)));
        Assert.Equal(Enumerable.Repeat((short)-3, 4), Fill<short>(Stream(ElementType.Int16, 4), new ConstantInitial(-3.9)));
        Assert.Equal(Enumerable.Repeat(short.MaxValue, 4), Fill<short>(Stream(ElementType.Int16, 4), new ConstantInitial(1e6)));
        Assert.Equal(Enumerable.Repeat(byte.MinValue, 4), Fill<byte>(Stream(ElementType.UInt8, 4), new ConstantInitial(-7)));
        Assert.Equal(Enumerable.Repeat(0L, 4), Fill<long>(Stream(ElementType.Int64, 4), new ConstantInitial(0)));
    }

    [Fact]
    public void Normal_WithASeed_IsReproducible_AndDiffersWithAnotherSeed()
    {
        var stream = Stream(ElementType.Float64, 3, 4);

        var a = Fill<double>(stream, new NormalInitial(7, 1, 0.5));
        var b = Fill<double>(stream, new NormalInitial(7, 1, 0.5));
        var c = Fill<double>(stream, new NormalInitial(8, 1, 0.5));

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Equal(12, a.Distinct().Count());
        Assert.All(a, v => Assert.True(double.IsFinite(v)));
    }

    [Fact]
    public void Normal_WithoutSeedMeanOrStd_IsSeedZeroStandardNormal()
    {
        var stream = Stream(ElementType.Float64, 16);

        Assert.Equal(Fill<double>(stream, new NormalInitial(0, 0, 1)), Fill<double>(stream, new NormalInitial(null, null, null)));
    }

    [Fact]
    public void Normal_WithZeroStd_IsTheMeanEverywhere()
    {
        Assert.All(Fill<float>(Stream(ElementType.Float32, 2, 5), new NormalInitial(3, 2.5, 0)), v => Assert.Equal(2.5f, v));
    }

    [Fact]
    public void Normal_InFloat32_IsTheFloat64FrameRounded()
    {
        var initial = new NormalInitial(11, -4, 3);
        var wide = Fill<double>(Stream(ElementType.Float64, 5, 5), initial);
        var narrow = Fill<float>(Stream(ElementType.Float32, 5, 5), initial);

        Assert.Equal(wide.Select(v => (float)v), narrow);
    }

    [Fact]
    public void Normal_OverManyElements_HasTheMeanAndStd()
    {
        var values = Fill<double>(Stream(ElementType.Float64, 250, 400), new NormalInitial(5, 1, 0.5));

        var mean = values.Average();
        var std = Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / values.Length);

        // 100,000 values: standard errors are 0.0016 (mean) and 0.0011 (deviation).
        Assert.InRange(mean, 0.98, 1.02);
        Assert.InRange(std, 0.48, 0.52);
    }

    [Fact]
    public void Values_AreCopiedRowMajor_IntoEachType()
    {
        ValuesInitial initial = new([1, -2, 3.5, 4, 1e10, -0.5]);

        Assert.Equal([1.0, -2, 3.5, 4, 1e10, -0.5], Fill<double>(Stream(ElementType.Float64, 2, 3), initial));
        Assert.Equal([1f, -2f, 3.5f, 4f, 1e10f, -0.5f], Fill<float>(Stream(ElementType.Float32, 3, 2), initial));
        Assert.Equal([1, -2, 3, 4, int.MaxValue, 0], Fill<int>(Stream(ElementType.Int32, 2, 3), initial));
    }

    [Fact]
    public void Identity_IsOnesOnTheDiagonal()
    {
        float[] expected =
        [
            1, 0, 0,
            0, 1, 0,
            0, 0, 1,
        ];
        Assert.Equal(expected, Fill<float>(Stream(ElementType.Float32, 3, 3), new IdentityInitial(null)));
    }

    [Fact]
    public void Identity_WithAScale_PutsTheScaleOnTheDiagonal_InEachType()
    {
        Assert.Equal([2.5, 0, 0, 2.5], Fill<double>(Stream(ElementType.Float64, 2, 2), new IdentityInitial(2.5)));
        Assert.Equal([2, 0, 0, 2], Fill<int>(Stream(ElementType.Int32, 2, 2), new IdentityInitial(2.5)));
        Assert.Equal([-1, 0, 0, -1], Fill<short>(Stream(ElementType.Int16, 2, 2), new IdentityInitial(-1)).Select(v => (int)v));
    }

    [Fact]
    public void Identity_OfARectangle_FillsTheLeadingDiagonal()
    {
        float[] wide =
        [
            1, 0, 0, 0,
            0, 1, 0, 0,
        ];
        float[] tall =
        [
            1, 0,
            0, 1,
            0, 0,
        ];
        Assert.Equal(wide, Fill<float>(Stream(ElementType.Float32, 2, 4), new IdentityInitial(null)));
        Assert.Equal(tall, Fill<float>(Stream(ElementType.Float32, 3, 2), new IdentityInitial(null)));
    }

    [Fact]
    public void AnUnknownPattern_IsNotSupported()
    {
        var error = Assert.Throws<NotSupportedException>(() => Fill<float>(Stream(ElementType.Float32, 2), new OtherInitial()));
        Assert.Contains("'other'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheInitialOfAParsedDocument_FillsItsStream()
    {
        var pipeline = PipelineDocument.Parse("""
            shared_memory:
              - {name: m, shape: [2, 2], dtype: float32, initial: {pattern: identity, scale: 3}}
              - {name: v, shape: [3], dtype: int16, initial: {pattern: values, values: [7, -8, 9]}}
            sinks:
              - {name: out, kind: null.sink, stream: m}
            """);
        var m = pipeline.Spec.FindStream("m")!;
        var v = pipeline.Spec.FindStream("v")!;

        Assert.Equal([3f, 0, 0, 3f], Fill<float>(m, m.Initial!));
        Assert.Equal(new short[] { 7, -8, 9 }, Fill<short>(v, v.Initial!));
    }

    private sealed record OtherInitial : InitialSpec
    {
        public override string Pattern => "other";
    }
}
