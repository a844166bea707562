using CsCheck;

namespace Flowline.Tests.Kernels;

public sealed class ElementwiseKernelTests
{
    private static readonly int[] Eight = [8];

    private static float[] Ramp(int n, float start = -3.5f) => [.. Enumerable.Range(0, n).Select(i => start + i)];

    [Fact]
    public void Copy_CopiesEveryByte_OfAnyElementType()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.copy", "int16", [2, 3], "int16", [2, 3]));
        short[] values = [1, -2, 3, short.MaxValue, short.MinValue, 0];
        Assert.Equal(values, run.Input(values).Compute().Output<short>());
        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Fact]
    public void Scale_MultipliesByTheFactor_AndPropagatesNaN()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.scale", "float32", Eight, "float32", Eight, "parameters: {factor: 2.5}"));
        var x = Ramp(8);
        x[3] = float.NaN;
        var y = run.Input(x).Compute().Output<float>();
        for (var i = 0; i < 8; i++)
        {
            Assert.Equal(x[i] * 2.5f, y[i]);
        }

        Assert.True(float.IsNaN(y[3]));
        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Fact]
    public void Scale_OfAnIntegerFrame_ComputesInTheOutputsFloatType()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.scale", "uint16", [4], "float64", [4], "parameters: {factor: 0.5}"));
        var y = run.Input(new ushort[] { 0, 1, 65535, 3 }).Compute().Output<double>();
        Assert.Equal([0.0, 0.5, 32767.5, 1.5], y);
        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Fact]
    public void AddConstant_AddsTheConstant()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.add_constant", "float64", [3], "float64", [3], "parameters: {constant: -1.25}"));
        Assert.Equal([-1.25, 0.75, 98.75], run.Input(new[] { 0.0, 2.0, 100.0 }).Compute().Output<double>());
    }

    [Fact]
    public void ScaleOffset_IsGainTimesInputMinusTheOffsetFrame()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.scale_offset", "float32", [4], "float32", [4], "auxiliary: [dark]\nparameters: {gain: 3}", ("dark", "float32", [4])));
        var y = run.Input(new[] { 1f, 2f, 3f, 4f }).Auxiliary(new[] { 0.5f, 1f, 0f, -1f }).Compute().Output<float>();
        Assert.Equal([2.5f, 5f, 9f, 13f], y);
        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Theory]
    [InlineData("add")]
    [InlineData("subtract")]
    [InlineData("multiply")]
    [InlineData("divide")]
    public void Elementwise_AppliesItsOperatorElementByElement(string operation)
    {
        var run = KernelRun.Of(OneKernel.Unary($"cpu.elementwise_{operation}", "float32", Eight, "float32", Eight, "auxiliary: [z]", ("z", "float32", Eight)));
        var x = Ramp(8);
        var z = Ramp(8, -1.75f);
        z[2] = 0;
        var y = run.Input(x).Auxiliary(z).Compute().Output<float>();
        for (var i = 0; i < 8; i++)
        {
            var expected = operation switch
            {
                "add" => x[i] + z[i],
                "subtract" => x[i] - z[i],
                "multiply" => x[i] * z[i],
                _ => x[i] / z[i],
            };
            Assert.Equal(expected, y[i]);
        }

        if (operation == "divide")
        {
            Assert.True(float.IsInfinity(y[2]) || float.IsNaN(y[2]));
        }

        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Fact]
    public void Elementwise_WithAnAuxiliaryOfAnotherIntegerType_ConvertsIt()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.elementwise_subtract", "uint16", [3], "float32", [3], "auxiliary: [dark]", ("dark", "int32", [3])));
        var y = run.Input(new ushort[] { 10, 20, 30 }).Auxiliary(new[] { 1, -2, 40 }).Compute().Output<float>();
        Assert.Equal([9f, 22f, -10f], y);
        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Fact]
    public void Scale_IsLinear_ForAnyFrame()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.scale", "float64", [16], "float64", [16], "parameters: {factor: -0.75}"));
        Gen.Double[-1e6, 1e6].Array[16].Sample(x =>
        {
            var y = run.Input(x).Compute().Output<double>();
            for (var i = 0; i < x.Length; i++)
            {
                Assert.Equal(x[i] * -0.75, y[i]);
            }
        }, threads: 1);
    }

    [Fact]
    public void Reduce_ComputesEachOperation_OfIntegerAndFloatFrames()
    {
        int[] values = [5, -3, 12, 7, 0, -8];
        foreach (var (op, expected) in new[] { ("sum", 13.0), ("mean", 13.0 / 6), ("max", 12.0), ("min", -8.0) })
        {
            var run = KernelRun.Of(OneKernel.Unary("cpu.reduce", "int32", [2, 3], "float64", [1], $"parameters: {{operation: {op}}}"));
            Assert.Equal(expected, run.Input(values).Compute().Output<double>()[0], 12);
        }

        var mean = KernelRun.Of(OneKernel.Unary("cpu.reduce", "float32", [4], "float32", [1]));
        Assert.Equal(2.5f, mean.Input(new[] { 1f, 2f, 3f, 4f }).Compute().Output<float>()[0]);
        Assert.Equal(0, mean.AllocatedPerRun());
    }

    [Fact]
    public void RaiseError_FailsEveryFrameWithItsMessage()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.raise_error", "float32", [1], "float32", [1], "parameters: {message: boom at stage 3}"));
        var error = Assert.Throws<Flowline.Kernels.KernelFailureException>(() => run.Compute());
        Assert.Equal("boom at stage 3", error.Message);
    }
}
