using CsCheck;

namespace Flowline.Tests.Kernels;

public sealed class LinearKernelTests
{
    private static string Affine(int m, int n, string dtype, bool offset, bool mapping) =>
        OneKernel.Document(
            [("x", dtype, [n]), ("A", dtype, [m, n]), ("b", dtype, [m]), ("y", dtype, [m])],
            $"name: affine\nkind: cpu.affine_transform\ninput: x\noutput: y\n" +
            (mapping ? (offset ? "auxiliary: {offset: b, matrix: A}" : "auxiliary: {matrix: A}") : (offset ? "auxiliary: [A, b]" : "auxiliary: [A]")));

    private static double[] Reference(double[] a, double[] x, double[]? b, int m, int n)
    {
        var y = new double[m];
        for (var i = 0; i < m; i++)
        {
            double sum = 0;
            for (var j = 0; j < n; j++)
            {
                sum += a[(i * n) + j] * x[j];
            }

            y[i] = sum + (b?[i] ?? 0);
        }

        return y;
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, true)]
    public void AffineTransform_MatchesAReferenceProduct(bool offset, bool mapping)
    {
        const int M = 7;
        const int N = 37;
        var random = new Random(5);
        var a = Enumerable.Range(0, M * N).Select(_ => (random.NextDouble() * 2) - 1).ToArray();
        var x = Enumerable.Range(0, N).Select(_ => (random.NextDouble() * 10) - 5).ToArray();
        var b = Enumerable.Range(0, M).Select(_ => random.NextDouble()).ToArray();
        var run = KernelRun.Of(Affine(M, N, "float64", offset, mapping));
        run.Input(x).Auxiliary(a, mapping && offset ? 1 : 0);
        if (offset)
        {
            run.Auxiliary(b, mapping ? 0 : 1);
        }

        var y = run.Compute().Output<double>();
        var expected = Reference(a, x, offset ? b : null, M, N);
        for (var i = 0; i < M; i++)
        {
            Assert.Equal(expected[i], y[i], 10);
        }

        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Fact]
    public void AffineTransform_IsLinear_WithoutOffset()
    {
        const int M = 5;
        const int N = 9;
        var random = new Random(11);
        var a = Enumerable.Range(0, M * N).Select(_ => (float)random.NextDouble()).ToArray();
        var run = KernelRun.Of(Affine(M, N, "float32", offset: false, mapping: false));
        run.Auxiliary(a);
        Gen.Select(Gen.Float[-100, 100].Array[N], Gen.Float[-100, 100].Array[N]).Sample((x1, x2) =>
        {
            var sum = x1.Zip(x2, (p, q) => p + q).ToArray();
            var y1 = run.Input(x1).Compute().Output<float>();
            var y2 = run.Input(x2).Compute().Output<float>();
            var ys = run.Input(sum).Compute().Output<float>();
            for (var i = 0; i < M; i++)
            {
                Assert.Equal(y1[i] + y2[i], ys[i], 0.01f);
            }
        }, threads: 1);
    }

    [Fact]
    public void AffineTransform_WithTheIdentity_GivesTheInputBack()
    {
        const int N = 6;
        var identity = new float[N * N];
        for (var i = 0; i < N; i++)
        {
            identity[(i * N) + i] = 1;
        }

        var run = KernelRun.Of(Affine(N, N, "float32", offset: false, mapping: false)).Auxiliary(identity);
        float[] x = [1, -2, 3.5f, 0, 1e6f, -1e-6f];
        Assert.Equal(x, run.Input(x).Compute().Output<float>());
    }

    [Fact]
    public void LeakyIntegrator_KeepsItsStateAcrossFrames()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.leaky_integrator", "float64", [3], "float64", [3], "parameters: {leak: 0.5, gain: 2}"));
        double[] e = [1, -1, 0.25];
        var u = new double[3];
        for (var k = 0; k < 5; k++)
        {
            for (var i = 0; i < 3; i++)
            {
                u[i] = (0.5 * u[i]) + (2 * e[i]);
            }

            Assert.Equal(u, run.Input(e).Compute().Output<double>());
        }

        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Fact]
    public void LeakyIntegrator_TakesLeakAndGainFromAuxiliaryInputs_WhenTheGateIsOn()
    {
        var yaml = OneKernel.Unary(
            "cpu.leaky_integrator",
            "float32",
            [2],
            "float32",
            [2],
            "auxiliary: {leak: l, gain: g, override_enabled: on}\nparameters: {leak: 1, gain: 1}",
            ("l", "float32", [1]),
            ("g", "float32", [1]),
            ("on", "uint8", [1]));
        var run = KernelRun.Of(yaml).Auxiliary(new[] { 0f }, 0).Auxiliary(new[] { 10f }, 1);
        float[] e = [1, 2];

        // Gate off: the parameters (leak 1, gain 1) apply.
        run.Auxiliary(new byte[] { 0 }, 2);
        Assert.Equal([1f, 2f], run.Input(e).Compute().Output<float>());
        Assert.Equal([2f, 4f], run.Input(e).Compute().Output<float>());

        // Gate on: leak 0 and gain 10 from the auxiliary inputs.
        run.Auxiliary(new byte[] { 1 }, 2);
        Assert.Equal([10f, 20f], run.Input(e).Compute().Output<float>());
        Assert.Equal(0, run.AllocatedPerRun());
    }
}
