using CsCheck;

namespace Flowline.Tests.Kernels;

public sealed class CentroidKernelTests
{
    /// <summary>The centroid definition, computed naively in double precision.</summary>
    private static (double Row, double Column) Naive(float[] image, int width, int top, int left, int rows, int columns, double background = 0, double threshold = 0, double power = 1)
    {
        double sw = 0, sr = 0, sc = 0;
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                var v = image[((top + r) * width) + left + c] - background;
                if (v > Math.Max(threshold, 0))
                {
                    var w = Math.Pow(v, power);
                    sw += w;
                    sr += w * r;
                    sc += w * c;
                }
            }
        }

        return sw > 0 ? ((sr / sw) - ((rows - 1) / 2.0), (sc / sw) - ((columns - 1) / 2.0)) : (0, 0);
    }

    [Fact]
    public void SpotCentroid_OfOneBrightPixel_IsItsOffsetFromTheCentre()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.spot_centroid", "float32", [5, 7], "float32", [2]));
        var image = new float[35];
        image[(1 * 7) + 6] = 10;
        Assert.Equal([1 - 2f, 6 - 3f], run.Input(image).Compute().Output<float>());
        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Fact]
    public void SpotCentroid_OfAnEmptyImage_IsZero_AndNaNPixelsWeighNothing()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.spot_centroid", "float64", [4, 4], "float64", [2]));
        Assert.Equal([0.0, 0.0], run.Input(new double[16]).Compute().Output<double>());

        var image = new double[16];
        image[0] = double.NaN;
        image[15] = 4;
        Assert.Equal([1.5, 1.5], run.Input(image).Compute().Output<double>());
    }

    [Fact]
    public void SpotCentroid_AppliesBackgroundThresholdAndPower()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.spot_centroid", "float32", [3, 3], "float64", [2], "parameters: {background: 1, threshold: 0.5, weight_power: 2}"));
        float[] image = [1, 1, 1, 1, 3, 1, 1, 1, 4];
        var (row, column) = Naive(image, 3, 0, 0, 3, 3, 1, 0.5, 2);
        var y = run.Input(image).Compute().Output<double>();
        Assert.Equal(row, y[0], 12);
        Assert.Equal(column, y[1], 12);
    }

    [Fact]
    public void SpotCentroid_OfAnIntegerImage_MatchesTheNaiveDefinition()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.spot_centroid", "uint16", [6, 9], "float64", [2], "parameters: {background: 100}"));
        var random = new Random(3);
        var pixels = Enumerable.Range(0, 54).Select(_ => (ushort)random.Next(0, 400)).ToArray();
        var (row, column) = Naive([.. pixels.Select(p => (float)p)], 9, 0, 0, 6, 9, 100);
        var y = run.Input(pixels).Compute().Output<double>();
        Assert.Equal(row, y[0], 10);
        Assert.Equal(column, y[1], 10);
        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Fact]
    public void ShackHartmann_GivesEachTilesCentroid_AgreeingWithTheNaiveDefinition()
    {
        const int Tile = 4;
        var run = KernelRun.Of(OneKernel.Unary("cpu.shack_hartmann_centroid", "float32", [12, 16], "float32", [3, 4, 2], $"parameters: {{tile_size: {Tile}, background: 0.2}}"));
        Gen.Float[0, 1].Array[12 * 16].Sample(image =>
        {
            var y = run.Input(image).Compute().Output<float>();
            for (var ty = 0; ty < 3; ty++)
            {
                for (var tx = 0; tx < 4; tx++)
                {
                    var (row, column) = Naive(image, 16, ty * Tile, tx * Tile, Tile, Tile, 0.2);
                    var at = ((ty * 4) + tx) * 2;
                    Assert.Equal(row, y[at], 1e-4);
                    Assert.Equal(column, y[at + 1], 1e-4);
                }
            }
        }, iter: 200, threads: 1);
        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Fact]
    public void ShackHartmann_SpotsInKnownPlaces_AreFound()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.centroid", "float64", [8, 8], "float64", [2, 2, 2], "parameters: {tile_size: 4}"));
        var image = new double[64];
        image[(0 * 8) + 0] = 1; // tile (0,0): top-left corner
        image[(2 * 8) + 7] = 1; // tile (0,1): row 2, column 3
        image[(5 * 8) + 1] = 1; // tile (1,0): row 1, column 1
        Assert.Equal([-1.5, -1.5, 0.5, 1.5, -0.5, -0.5, 0, 0], run.Input(image).Compute().Output<double>());
    }

    private static string TipTilt(string dtype, string parameters = "") =>
        OneKernel.Document(
            [("image", dtype, [6, 5]), ("m", dtype, [2, 2]), ("b", dtype, [2]), ("u", dtype, [2])],
            $"name: tt\nkind: cpu.tip_tilt_controller\ninput: image\noutput: u\nauxiliary: [m, b]\n{parameters}");

    [Fact]
    public void TipTiltController_IntegratesTheCentroid_ThenAppliesTheMatrixAndBias()
    {
        var run = KernelRun.Of(TipTilt("float64", "parameters: {control_gain: 0.35, leak: 0.97, background: 0.5, threshold: 0.1, weight_power: 1.5}"));
        double[] m = [0.9781476, -0.2079117, 0.2079117, 0.9781476];
        double[] b = [0.01, -0.02];
        run.Auxiliary(m, 0).Auxiliary(b, 1);
        var random = new Random(17);
        double s0 = 0, s1 = 0;
        for (var k = 0; k < 20; k++)
        {
            var image = Enumerable.Range(0, 30).Select(_ => (double)(float)(random.NextDouble() * 4)).ToArray(); // exact in float, as Naive reads it
            var (row, column) = Naive([.. image.Select(v => (float)v)], 5, 0, 0, 6, 5, 0.5, 0.1, 1.5);
            s0 = (0.97 * s0) + (0.35 * row);
            s1 = (0.97 * s1) + (0.35 * column);
            var u = run.Input(image).Compute().Output<double>();
            Assert.Equal((m[0] * s0) + (m[1] * s1) + b[0], u[0], 10);
            Assert.Equal((m[2] * s0) + (m[3] * s1) + b[1], u[1], 10);
        }

        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Fact]
    public void TipTiltController_GainDefaultsToOne_AndLeakToOne()
    {
        var run = KernelRun.Of(TipTilt("float32"));
        run.Auxiliary(new float[] { 1, 0, 0, 1 }, 0).Auxiliary(new float[] { 0, 0 }, 1);
        var image = new float[30];
        image[(5 * 5) + 4] = 1; // row 5, column 4: centroid (2.5, 2) from the centre (2.5, 2)
        Assert.Equal([2.5f, 2f], run.Input(image).Compute().Output<float>());
        Assert.Equal([5f, 4f], run.Compute().Output<float>());
    }

    [Theory]
    [InlineData("[m]", "auxiliary")]
    [InlineData("[b, m]", "the matrix 'b' is float32[2]")]
    [InlineData("[m, wrong]", "the bias 'wrong' is float64[2]")]
    public void TipTiltController_RejectsAuxiliaryInputsThatAreNotAMatrixAndABias(string auxiliary, string expected)
    {
        var yaml = OneKernel.Document(
            [("image", "float32", [4, 4]), ("m", "float32", [2, 2]), ("b", "float32", [2]), ("wrong", "float64", [2]), ("u", "float32", [2])],
            $"name: tt\nkind: cpu.tip_tilt_controller\ninput: image\noutput: u\nauxiliary: {auxiliary}");
        var error = Assert.Throws<Flowline.Documents.DocumentValidationException>(() => Flowline.Documents.PipelineDocument.Parse(yaml, "tt.yaml"));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }
}
