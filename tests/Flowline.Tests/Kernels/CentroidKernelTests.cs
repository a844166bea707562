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

    [Fact]
    public void TipTiltController_RotatesAndIntegratesTheCentroid()
    {
        var run = KernelRun.Of(OneKernel.Unary("cpu.tip_tilt_controller", "float64", [3, 3], "float64", [2], "parameters: {control_gain: 0.5, leak: 0.9, rotation_deg: 90}"));
        var image = new double[9];
        image[5] = 1; // row 1, column 2: centroid (0, 1)
        // A 90 degree rotation maps (0, 1) to (-1, 0).
        var u = new double[2];
        for (var k = 0; k < 4; k++)
        {
            u[0] = (0.9 * u[0]) + (0.5 * -1);
            u[1] = (0.9 * u[1]) + (0.5 * 0);
            var y = run.Input(image).Compute().Output<double>();
            Assert.Equal(u[0], y[0], 12);
            Assert.Equal(u[1], y[1], 12);
        }

        Assert.Equal(0, run.AllocatedPerRun());
    }
}
