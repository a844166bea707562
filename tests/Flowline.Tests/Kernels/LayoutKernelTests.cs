namespace Flowline.Tests.Kernels;

public sealed class LayoutKernelTests
{
    [Fact]
    public void Flatten_KeepsEveryElementInRowMajorOrder()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.flatten", "float32", [2, 3, 2], "float32", [12]));
        var x = Enumerable.Range(0, 12).Select(i => (float)i * 1.5f).ToArray();
        Assert.Equal(x, run.Input(x).Compute().Output<float>());
        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(-1)]
    [InlineData(-2)]
    public void Concatenate_JoinsTheInputsAlongTheAxis(int axis)
    {
        var a = new[,] { { 1, 2 }, { 3, 4 } };
        var b = axis is 0 or -2 ? new[,] { { 5, 6 }, { 7, 8 }, { 9, 10 } } : new[,] { { 5, 6, 7 }, { 8, 9, 10 } };
        var joined0 = axis is 0 or -2;
        int[] outShape = joined0 ? [5, 2] : [2, 5];
        var yaml = OneKernel.Document(
            [("a", "int32", [2, 2]), ("b", "int32", [b.GetLength(0), b.GetLength(1)]), ("y", "int32", outShape)],
            $"name: join\nkind: cpu.concatenate\ninputs: [a, b]\noutput: y\ntrigger_policy: all_new\nparameters: {{axis: {axis}}}");
        var run = KernelRun.Of(yaml);
        var y = run.Input(a.Cast<int>().ToArray()).Input(b.Cast<int>().ToArray(), 1).Compute().Output<int>();

        var expected = new List<int>();
        if (joined0)
        {
            expected.AddRange(a.Cast<int>());
            expected.AddRange(b.Cast<int>());
        }
        else
        {
            for (var r = 0; r < 2; r++)
            {
                expected.AddRange(Enumerable.Range(0, 2).Select(c => a[r, c]));
                expected.AddRange(Enumerable.Range(0, b.GetLength(1)).Select(c => b[r, c]));
            }
        }

        Assert.Equal(expected, y);
        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Fact]
    public void Concatenate_OfThreeVectors_PutsThemEndToEnd()
    {
        var yaml = OneKernel.Document(
            [("a", "float64", [1]), ("b", "float64", [3]), ("c", "float64", [2]), ("y", "float64", [6])],
            "name: join\nkind: cpu.concatenate\ninputs: [a, b, c]\noutput: y");
        var run = KernelRun.Of(yaml);
        var y = run.Input(new[] { 1.0 }).Input(new[] { 2.0, 3, 4 }, 1).Input(new[] { 5.0, 6 }, 2).Compute().Output<double>();
        Assert.Equal([1.0, 2, 3, 4, 5, 6], y);
    }
}
