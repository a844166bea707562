using System.Text;
using Flowline.Documents;

namespace Flowline.Tests.Kernels;

/// <summary><c>cpu.tomographic_controller</c> against a naive computation of shmpipeline's definition, in double precision.</summary>
public sealed class TomographicControllerTests
{
    private const int Rows = 4;
    private const int Columns = 6;
    private const int Tile = 2;
    private const int Actuators = 5;
    private const int SlopesPerSensor = Rows / Tile * (Columns / Tile) * 2;
    private const int Slopes = 8 * SlopesPerSensor;
    private const string Parameters = "parameters: {tile_size: 2, slope_gain: 1.5, leak: 0.9, control_gain: 0.3, command_gain: 2}";

    /// <summary>A document with eight sensor inputs (or one batched input) and every auxiliary input the kind needs.</summary>
    private static string Document(bool batched, string dtype = "float64", string parameters = Parameters, string? extraAlias = null)
    {
        var streams = new List<(string, string, int[])>();
        var kernel = new StringBuilder("name: tomo\nkind: cpu.tomographic_controller\n");
        if (batched)
        {
            streams.Add(("cube", dtype, [8, Rows, Columns]));
            streams.AddRange([("dark", dtype, [8, Rows, Columns]), ("flat", dtype, [8, Rows, Columns]), ("offset", dtype, [8, Rows / Tile, Columns / Tile, 2])]);
            kernel.Append("inputs: [cube]\n");
        }
        else
        {
            for (var i = 0; i < 8; i++)
            {
                streams.AddRange([($"wfs{i}", dtype, [Rows, Columns]), ($"dark{i}", dtype, [Rows, Columns]), ($"flat{i}", dtype, [Rows, Columns]), ($"offset{i}", dtype, [Rows / Tile, Columns / Tile, 2])]);
            }

            kernel.Append($"inputs: [{string.Join(", ", Enumerable.Range(0, 8).Select(i => $"wfs{i}"))}]\n");
        }

        streams.AddRange([("R", dtype, [Actuators, Slopes]), ("rb", dtype, [Actuators]), ("co", dtype, [Actuators]), ("lo", dtype, [Actuators]), ("hi", dtype, [Actuators]), ("dm", dtype, [Actuators])]);
        kernel.Append("trigger_policy: all_new\noutput: dm\nauxiliary:\n");
        kernel.Append("  reconstructor: R\n  reconstructor_bias: rb\n  command_offset: co\n  command_low: lo\n  command_high: hi\n");
        if (batched)
        {
            kernel.Append("  wfs_dark: dark\n  wfs_inverse_flat: flat\n  wfs_slope_offset: offset\n");
        }
        else
        {
            for (var i = 0; i < 8; i++)
            {
                kernel.Append($"  wfs{i}_dark: dark{i}\n  wfs{i}_inverse_flat: flat{i}\n  wfs{i}_slope_offset: offset{i}\n");
            }
        }

        if (extraAlias is not null)
        {
            kernel.Append($"  {extraAlias}: rb\n");
        }

        kernel.Append(parameters).Append('\n');
        return OneKernel.Document(streams, kernel.ToString());
    }

    /// <summary>The operands of one test: 8 images, darks, inverse flats and slope offsets, and the shared ones.</summary>
    private sealed class Operands
    {
        public Operands(Random random)
        {
            double[] Values(int n, double scale, double shift) => [.. Enumerable.Range(0, n).Select(_ => (random.NextDouble() * scale) + shift)];
            Images = [.. Enumerable.Range(0, 8).Select(_ => Values(Rows * Columns, 10, -1))]; // some pixels negative after the dark
            Dark = [.. Enumerable.Range(0, 8).Select(_ => Values(Rows * Columns, 1, 0))];
            Flat = [.. Enumerable.Range(0, 8).Select(_ => Values(Rows * Columns, 0.4, 0.8))];
            Offset = [.. Enumerable.Range(0, 8).Select(_ => Values(SlopesPerSensor, 0.2, -0.1))];
            Reconstructor = Values(Actuators * Slopes, 0.2, -0.1);
            Bias = Values(Actuators, 0.1, -0.05);
            CommandOffset = Values(Actuators, 0.1, -0.05);
            Low = [-0.5, -1, -2, -1, -0.2];
            High = [0.5, 1, 2, 0.1, 0.2];
        }

        public double[][] Images { get; set; }

        public double[][] Dark { get; }

        public double[][] Flat { get; }

        public double[][] Offset { get; }

        public double[] Reconstructor { get; }

        public double[] Bias { get; }

        public double[] CommandOffset { get; }

        public double[] Low { get; }

        public double[] High { get; }
    }

    /// <summary>shmpipeline's definition, computed naively: calibrate, centroid each tile (raw weights), slopes, reconstruct, integrate, clip.</summary>
    private static double[] Naive(Operands o, double[] state, double slopeGain = 1.5, double leak = 0.9, double gain = 0.3, double commandGain = 2)
    {
        var slopes = new double[Slopes];
        for (var s = 0; s < 8; s++)
        {
            var k = 0;
            for (var ty = 0; ty < Rows / Tile; ty++)
            {
                for (var tx = 0; tx < Columns / Tile; tx++)
                {
                    double total = 0, sy = 0, sx = 0;
                    for (var y = 0; y < Tile; y++)
                    {
                        for (var x = 0; x < Tile; x++)
                        {
                            var p = (((ty * Tile) + y) * Columns) + (tx * Tile) + x;
                            var v = (o.Images[s][p] - o.Dark[s][p]) * o.Flat[s][p];
                            total += v;
                            sy += v * y;
                            sx += v * x;
                        }
                    }

                    var centre = (Tile - 1) / 2.0;
                    var (cy, cx) = total <= 0 ? (0.0, 0.0) : ((sy / total) - centre, (sx / total) - centre);
                    slopes[(s * SlopesPerSensor) + k] = (slopeGain * cy) - o.Offset[s][k];
                    slopes[(s * SlopesPerSensor) + k + 1] = (slopeGain * cx) - o.Offset[s][k + 1];
                    k += 2;
                }
            }
        }

        var command = new double[Actuators];
        for (var a = 0; a < Actuators; a++)
        {
            var r = o.Bias[a];
            for (var j = 0; j < Slopes; j++)
            {
                r += o.Reconstructor[(a * Slopes) + j] * slopes[j];
            }

            state[a] = (leak * state[a]) + (gain * r);
            command[a] = Math.Min(Math.Max((commandGain * state[a]) - o.CommandOffset[a], o.Low[a]), o.High[a]);
        }

        return command;
    }

    private static void Feed(KernelRun run, Operands o, bool batched)
    {
        // Auxiliary order is the document's: R, rb, co, lo, hi, then the per-sensor operands.
        run.Auxiliary(o.Reconstructor, 0).Auxiliary(o.Bias, 1).Auxiliary(o.CommandOffset, 2).Auxiliary(o.Low, 3).Auxiliary(o.High, 4);
        if (batched)
        {
            run.Input(o.Images.SelectMany(i => i).ToArray());
            run.Auxiliary(o.Dark.SelectMany(i => i).ToArray(), 5).Auxiliary(o.Flat.SelectMany(i => i).ToArray(), 6).Auxiliary(o.Offset.SelectMany(i => i).ToArray(), 7);
            return;
        }

        for (var i = 0; i < 8; i++)
        {
            run.Input(o.Images[i], i).Auxiliary(o.Dark[i], 5 + (3 * i)).Auxiliary(o.Flat[i], 6 + (3 * i)).Auxiliary(o.Offset[i], 7 + (3 * i));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Controller_MatchesTheNaiveDefinition_FrameAfterFrame(bool batched)
    {
        var run = KernelRun.Of(Document(batched));
        var random = new Random(batched ? 7 : 8);
        var operands = new Operands(random);
        var state = new double[Actuators];
        var clipped = 0;
        for (var frame = 0; frame < 12; frame++)
        {
            operands.Images = [.. Enumerable.Range(0, 8).Select(_ => Enumerable.Range(0, Rows * Columns).Select(_ => (random.NextDouble() * 10) - 1).ToArray())];
            Feed(run, operands, batched);
            var expected = Naive(operands, state);
            var actual = run.Compute().Output<double>();
            for (var a = 0; a < Actuators; a++)
            {
                Assert.Equal(expected[a], actual[a], 10);
                clipped += actual[a] == operands.Low[a] || actual[a] == operands.High[a] ? 1 : 0;
            }
        }

        // The clip was exercised, and so was the unclipped path.
        Assert.InRange(clipped, 1, (12 * Actuators) - 1);
        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Fact]
    public void Controller_InFloat32_AgreesWithTheDoublePrecisionDefinition()
    {
        var run = KernelRun.Of(Document(batched: true, dtype: "float32"));
        var operands = new Operands(new Random(21));
        float[] F(double[] v) => [.. v.Select(x => (float)x)];
        run.Auxiliary(F(operands.Reconstructor), 0).Auxiliary(F(operands.Bias), 1).Auxiliary(F(operands.CommandOffset), 2).Auxiliary(F(operands.Low), 3).Auxiliary(F(operands.High), 4);
        run.Input(F([.. operands.Images.SelectMany(i => i)]));
        run.Auxiliary(F([.. operands.Dark.SelectMany(i => i)]), 5).Auxiliary(F([.. operands.Flat.SelectMany(i => i)]), 6).Auxiliary(F([.. operands.Offset.SelectMany(i => i)]), 7);
        var expected = Naive(operands, new double[Actuators]);
        var actual = run.Compute().Output<float>();
        for (var a = 0; a < Actuators; a++)
        {
            Assert.Equal(expected[a], actual[a], 1e-3);
        }
    }

    [Theory]
    [InlineData("tile_size: 4", "tile_size 4 does not divide the images [4, 6]")]
    [InlineData("trigger_policy: any_new", "needs trigger_policy: all_new")]
    [InlineData("alias: surprise", "unknown: surprise")]
    public void Controller_RejectsWiringThatDoesNotFit(string change, string expected)
    {
        var yaml = change switch
        {
            "tile_size: 4" => Document(batched: false, parameters: "parameters: {tile_size: 4}"),
            "trigger_policy: any_new" => Document(batched: false).Replace("trigger_policy: all_new", "trigger_policy: any_new", StringComparison.Ordinal),
            _ => Document(batched: true, extraAlias: "surprise"),
        };
        var error = Assert.Throws<DocumentValidationException>(() => PipelineDocument.Parse(yaml, "tomo.yaml"));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Controller_RejectsAReconstructorOfTheWrongWidth()
    {
        var yaml = Document(batched: true).Replace($"shape: [{Actuators}, {Slopes}]", $"shape: [{Actuators}, {Slopes - 2}]", StringComparison.Ordinal);
        var error = Assert.Throws<DocumentValidationException>(() => PipelineDocument.Parse(yaml, "tomo.yaml"));
        Assert.Contains($"[M, {Slopes}]", error.Message, StringComparison.Ordinal);
    }
}
