using System.Numerics;

namespace Flowline.SharedMemory.Tests.Streams;

public sealed class FormatTests
{
    [Theory]
    [InlineData(ElementType.Float32, 4, "float32", typeof(float))]
    [InlineData(ElementType.Float64, 8, "float64", typeof(double))]
    [InlineData(ElementType.Int8, 1, "int8", typeof(sbyte))]
    [InlineData(ElementType.Int16, 2, "int16", typeof(short))]
    [InlineData(ElementType.Int32, 4, "int32", typeof(int))]
    [InlineData(ElementType.Int64, 8, "int64", typeof(long))]
    [InlineData(ElementType.UInt8, 1, "uint8", typeof(byte))]
    [InlineData(ElementType.UInt16, 2, "uint16", typeof(ushort))]
    [InlineData(ElementType.UInt32, 4, "uint32", typeof(uint))]
    [InlineData(ElementType.UInt64, 8, "uint64", typeof(ulong))]
    [InlineData(ElementType.Bool, 1, "bool", typeof(bool))]
    [InlineData(ElementType.Complex64, 8, "complex64", typeof(Complex64))]
    [InlineData(ElementType.Complex128, 16, "complex128", typeof(Complex))]
    public unsafe void ElementType_HasItsSizeNameAndClrType(ElementType type, int size, string name, Type clr)
    {
        Assert.Equal(size, type.SizeOf());
        Assert.Equal(name, type.ToName());
        Assert.Equal(clr, type.ClrType());
        Assert.True(ElementTypes.TryParse(name, out var parsed));
        Assert.Equal(type, parsed);
        Assert.Equal(size, System.Runtime.InteropServices.Marshal.SizeOf(clr == typeof(bool) ? typeof(byte) : clr));
    }

    [Theory]
    [InlineData("<f4", ElementType.Float32)]
    [InlineData("f8", ElementType.Float64)]
    [InlineData("|u1", ElementType.UInt8)]
    [InlineData("?", ElementType.Bool)]
    [InlineData("<c8", ElementType.Complex64)]
    [InlineData(" Float32 ", ElementType.Float32)]
    [InlineData("double", ElementType.Float64)]
    public void ElementTypes_ParseNumPyCodesAndAliases(string text, ElementType expected)
    {
        Assert.True(ElementTypes.TryParse(text, out var type));
        Assert.Equal(expected, type);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("float16")]
    [InlineData("object")]
    public void ElementTypes_RejectUnknownNames(string? text) => Assert.False(ElementTypes.TryParse(text, out _));

    [Fact]
    public void FrameFormat_ComputesSizes_AndComparesByValue()
    {
        var format = new FrameFormat(ElementType.Complex64, 2, 3, 4);
        Assert.Equal(24, format.ElementCount);
        Assert.Equal(192, format.FrameBytes);
        Assert.Equal("complex64[2, 3, 4]", format.ToString());
        Assert.Equal(format, new FrameFormat(ElementType.Complex64, 2, 3, 4));
        Assert.Equal(format.GetHashCode(), new FrameFormat(ElementType.Complex64, 2, 3, 4).GetHashCode());
        Assert.NotEqual(format, new FrameFormat(ElementType.Complex64, 4, 3, 2));
        Assert.Equal(1, new FrameFormat(ElementType.Float64).ElementCount);
    }

    [Fact]
    public void FrameFormat_AcceptsEightDimensions_AndRejectsNine()
    {
        Assert.Equal(256, new FrameFormat(ElementType.UInt8, 2, 2, 2, 2, 2, 2, 2, 2).ElementCount);
        var error = Assert.Throws<ArgumentException>(() => new FrameFormat(ElementType.UInt8, 2, 2, 2, 2, 2, 2, 2, 2, 2));
        Assert.Contains("limit is 8", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FrameFormat_RejectsZeroDimensionsAndHugeFrames()
    {
        Assert.Contains("at least 1", Assert.Throws<ArgumentException>(() => new FrameFormat(ElementType.Float32, 4, 0)).Message, StringComparison.Ordinal);
        Assert.Contains("largest frame", Assert.Throws<ArgumentException>(() => new FrameFormat(ElementType.Float64, 1 << 20, 1 << 10)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new FrameFormat((ElementType)99, 4));
    }

    [Fact]
    public void RegionModes_RoundTripShmpipelineNames()
    {
        foreach (var mode in Enum.GetValues<RegionMode>())
        {
            Assert.True(RegionModes.TryParse(mode.ToName(), out var parsed));
            Assert.Equal(mode, parsed);
        }

        Assert.False(RegionModes.TryParse("open", out _));
    }
}
