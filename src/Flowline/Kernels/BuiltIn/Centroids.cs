using System.Numerics;
using System.Numerics.Tensors;
using Flowline.SharedMemory;

namespace Flowline.Kernels.BuiltIn;

/// <summary>
/// Weighted centroids of the tiles of an image. Each pixel's weight is <c>(v - background)^weight_power</c>
/// where <c>v - background</c> is above both <c>threshold</c> and 0, and 0 elsewhere (NaN pixels weigh 0). A tile's result is
/// its centroid minus its centre, as (row, column); a tile with no weight gives (0, 0).
/// </summary>
/// <remarks>
/// Work is done a whole image row at a time with vector operations: the weights of a row are added to
/// per-column sums (and row-weighted sums); once a row of tiles is complete, each tile's sums reduce to
/// its centroid. Nothing is allocated per frame.
/// </remarks>
internal sealed class TileCentroider<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ElementType inputType;
    private readonly int width;
    private readonly int tileRows;
    private readonly int tileColumns;
    private readonly int tilesAcross;
    private readonly T background;
    private readonly T threshold;
    private readonly T power;
    private readonly T[] row;
    private readonly T[] columnWeights;
    private readonly T[] columnRowMoments;
    private readonly T[] columnIndex;
    private readonly T rowCentre;
    private readonly T columnCentre;
    private readonly bool raw;

    public TileCentroider(ElementType inputType, int height, int width, int tileRows, int tileColumns, double background, double threshold, double power)
        : this(inputType, height, width, tileRows, tileColumns)
    {
        this.background = T.CreateChecked(background);
        this.threshold = T.CreateChecked(Math.Max(threshold, 0));
        this.power = T.CreateChecked(power);
        raw = false;
    }

    /// <summary>A centroider whose weights are the pixel values themselves, negative ones included (shmpipeline's tiled centroid of a calibrated image).</summary>
    public TileCentroider(ElementType inputType, int height, int width, int tileRows, int tileColumns)
    {
        this.inputType = inputType;
        this.width = width;
        this.tileRows = tileRows;
        this.tileColumns = tileColumns;
        tilesAcross = width / tileColumns;
        Tiles = height / tileRows * tilesAcross;
        power = T.One;
        raw = true;
        row = new T[width];
        columnWeights = new T[width];
        columnRowMoments = new T[width];
        columnIndex = new T[tileColumns];
        for (var i = 0; i < tileColumns; i++)
        {
            columnIndex[i] = T.CreateChecked(i);
        }

        rowCentre = T.CreateChecked((tileRows - 1) / 2.0);
        columnCentre = T.CreateChecked((tileColumns - 1) / 2.0);
    }

    /// <summary>The number of tiles; the output holds two values per tile.</summary>
    public int Tiles { get; }

    /// <summary>Computes every tile's (row, column) offset into <paramref name="output"/> (2 values per tile, row-major tiles).</summary>
    public void Compute(ReadOnlySpan<byte> image, Span<T> output)
    {
        var rowBytes = width * inputType.SizeOf();
        var imageRows = image.Length / rowBytes;
        var tile = 0;
        for (var y = 0; y < imageRows; y++)
        {
            var r = y % tileRows;
            if (r == 0)
            {
                columnWeights.AsSpan().Clear();
                columnRowMoments.AsSpan().Clear();
            }

            var weights = Weights(image.Slice(y * rowBytes, rowBytes));
            TensorPrimitives.Add(columnWeights, weights, columnWeights);
            if (r > 0)
            {
                TensorPrimitives.MultiplyAdd(weights, T.CreateChecked(r), columnRowMoments, columnRowMoments);
            }

            if (r == tileRows - 1)
            {
                for (var tx = 0; tx < tilesAcross; tx++, tile++)
                {
                    var w = columnWeights.AsSpan(tx * tileColumns, tileColumns);
                    var total = TensorPrimitives.Sum<T>(w);
                    if (total > T.Zero)
                    {
                        output[2 * tile] = (TensorPrimitives.Sum<T>(columnRowMoments.AsSpan(tx * tileColumns, tileColumns)) / total) - rowCentre;
                        output[(2 * tile) + 1] = (TensorPrimitives.Dot<T>(w, columnIndex) / total) - columnCentre;
                    }
                    else
                    {
                        output[2 * tile] = T.Zero;
                        output[(2 * tile) + 1] = T.Zero;
                    }
                }
            }
        }
    }

    /// <summary>The weights of one image row, in <see cref="row"/>.</summary>
    private Span<T> Weights(ReadOnlySpan<byte> pixels)
    {
        Span<T> w = row;
        Numeric.ConvertInto(inputType, pixels, w);
        if (raw)
        {
            return w;
        }

        TensorPrimitives.Subtract(w, background, w);

        // Keep values above the threshold; NaN compares false and weighs 0.
        var i = 0;
        if (Vector.IsHardwareAccelerated && Vector<T>.IsSupported)
        {
            var t = new Vector<T>(threshold);
            for (; i <= w.Length - Vector<T>.Count; i += Vector<T>.Count)
            {
                var v = new Vector<T>(w.Slice(i));
                Vector.ConditionalSelect(Vector.GreaterThan(v, t), v, Vector<T>.Zero).CopyTo(w.Slice(i));
            }
        }

        for (; i < w.Length; i++)
        {
            w[i] = w[i] > threshold ? w[i] : T.Zero;
        }

        if (power != T.One)
        {
            TensorPrimitives.Pow(w, power, w);
        }

        return w;
    }
}

/// <summary>What the centroid kinds share: their parameters and checks.</summary>
internal abstract class CentroidDefinition : KernelDefinition
{
    protected static readonly ParameterInfo[] CentroidParameters =
    [
        new("threshold", "number", false, "0", "pixels at or below background + threshold weigh nothing"),
        new("background", "number", false, "0", "subtracted from every pixel first"),
        new("weight_power", "number > 0", false, "1", "the weight of a pixel is its value to this power"),
    ];

    protected static (double Threshold, double Background, double Power) Read(KernelContext context) =>
        (context.Number("threshold", 0) ?? 0, context.Number("background", 0) ?? 0, context.Number("weight_power", 1, min: 0, minExclusive: true) ?? 1);

    /// <summary>Checks the input is a 2-D real image; returns its shape or null.</summary>
    protected static (int Height, int Width)? Image(KernelContext context)
    {
        var image = context.Inputs[0];
        if (!context.RequireDtype(image, context.InputField(), Numeric.RealTypes))
        {
            return null;
        }

        if (image.Shape.Length != 2)
        {
            context.Error(context.InputField(), $"input '{image.Name}' has shape [{string.Join(", ", image.Shape)}]; {context.Spec.Kind} takes a 2-D image");
            return null;
        }

        return (image.Shape[0], image.Shape[1]);
    }

    protected static void RequireOutput(KernelContext context, params int[] shape)
    {
        var output = context.Outputs[0];
        if (context.RequireDtype(output, context.OutputField(), Numeric.FloatTypes) && !output.Shape.SequenceEqual(shape))
        {
            context.Error(context.OutputField(), $"output '{output.Name}' has shape [{string.Join(", ", output.Shape)}]; {context.Spec.Kind} writes shape [{string.Join(", ", shape)}] here");
        }
    }
}

/// <summary><c>cpu.spot_centroid</c>: one centroid for the whole image: out = [drow, dcol] from its centre.</summary>
internal sealed class SpotCentroidDefinition : CentroidDefinition
{
    public override string Kind => "cpu.spot_centroid";

    public override string Description => "out = [row, column] of the image's weighted centroid, relative to its centre";

    public override IReadOnlyList<ParameterInfo> Parameters => CentroidParameters;

    public override void Validate(KernelContext context)
    {
        Read(context);
        if (Image(context) is not null)
        {
            RequireOutput(context, 2);
        }
    }

    public override IKernel Create(KernelContext context)
    {
        var (threshold, background, power) = Read(context);
        var (height, width) = Image(context)!.Value;
        var type = context.Inputs[0].Dtype;
        return context.Outputs[0].Dtype == ElementType.Float32
            ? new Kernel<float>(new TileCentroider<float>(type, height, width, height, width, background, threshold, power))
            : new Kernel<double>(new TileCentroider<double>(type, height, width, height, width, background, threshold, power));
    }

    internal sealed class Kernel<T>(TileCentroider<T> centroider) : IKernel
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Compute(KernelIo io) => centroider.Compute(io.Input<byte>(), io.Output<T>());
    }
}

/// <summary><c>cpu.shack_hartmann_centroid</c> (alias <c>cpu.centroid</c>): one centroid per square tile: out[rows, cols, 2].</summary>
internal sealed class ShackHartmannCentroidDefinition(string kind = "cpu.shack_hartmann_centroid") : CentroidDefinition
{
    public override string Kind => kind;

    public override string Description => "out[r, c] = [row, column] of each tile's weighted centroid, relative to the tile's centre";

    public override IReadOnlyList<ParameterInfo> Parameters { get; } =
        [new("tile_size", "integer >= 1", false, "8", "the side of a square tile (subaperture) in pixels"), .. CentroidParameters];

    public override void Validate(KernelContext context)
    {
        Read(context);
        var tile = (int)(context.Integer("tile_size", 8, min: 1, max: 65_536) ?? 8);
        if (Image(context) is not { } image)
        {
            return;
        }

        if (image.Height % tile != 0 || image.Width % tile != 0)
        {
            context.Error("parameters.tile_size", $"tile_size {tile} does not divide the image [{image.Height}, {image.Width}]; use a divisor of both");
            return;
        }

        RequireOutput(context, image.Height / tile, image.Width / tile, 2);
    }

    public override IKernel Create(KernelContext context)
    {
        var (threshold, background, power) = Read(context);
        var tile = (int)context.Integer("tile_size", 8)!.Value;
        var (height, width) = Image(context)!.Value;
        var type = context.Inputs[0].Dtype;
        return context.Outputs[0].Dtype == ElementType.Float32
            ? new SpotCentroidDefinition.Kernel<float>(new TileCentroider<float>(type, height, width, tile, tile, background, threshold, power))
            : new SpotCentroidDefinition.Kernel<double>(new TileCentroider<double>(type, height, width, tile, tile, background, threshold, power));
    }
}

/// <summary>
/// <c>cpu.tip_tilt_controller</c> (shmpipeline's): the image's centroid c, integrated and mapped to the
/// actuators: s(k) = leak * s(k-1) + control_gain * c(k); out = M s(k) + b, with the 2x2 matrix M and
/// the bias b as auxiliary inputs (in that order). Writes shape [2].
/// </summary>
internal sealed class TipTiltControllerDefinition : CentroidDefinition
{
    public override string Kind => "cpu.tip_tilt_controller";

    public override string Description => "s = leak * s + control_gain * centroid(image); out = matrix @ s + bias; auxiliary inputs: the 2x2 matrix, then the bias [2]";

    public override Arity Auxiliary => Arity.Exactly(2);

    public override IReadOnlyList<ParameterInfo> Parameters { get; } =
    [
        .. CentroidParameters,
        new("leak", "number", false, "1", "the integrator's leak"),
        new("control_gain", "number", false, "1", "the integrator's gain"),
    ];

    public override void Validate(KernelContext context)
    {
        Read(context);
        context.Number("leak", 1);
        context.Number("control_gain", 1);
        if (Image(context) is null)
        {
            return;
        }

        RequireOutput(context, 2);
        var output = context.Outputs[0];
        if (context.HasErrors)
        {
            return;
        }

        RequireAuxiliary(context, 0, "matrix", output.Dtype, 2, 2);
        RequireAuxiliary(context, 1, "bias", output.Dtype, 2);
    }

    private static void RequireAuxiliary(KernelContext context, int index, string what, ElementType dtype, params int[] shape)
    {
        var (binding, stream) = context.Auxiliary[index];
        if (stream.Dtype != dtype || !stream.Shape.SequenceEqual(shape))
        {
            context.Error(context.AuxiliaryField(binding.Alias), $"the {what} '{stream.Name}' is {NodeContext.Describe(stream)}; {context.Spec.Kind} needs {dtype.ToName()}[{string.Join(", ", shape)}] (the output's type)");
        }
    }

    public override IKernel Create(KernelContext context) =>
        context.Outputs[0].Dtype == ElementType.Float32 ? Create<float>(context) : Create<double>(context);

    private static Kernel<T> Create<T>(KernelContext context)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (threshold, background, power) = Read(context);
        var (height, width) = Image(context)!.Value;
        return new Kernel<T>(
            new TileCentroider<T>(context.Inputs[0].Dtype, height, width, height, width, background, threshold, power),
            T.CreateChecked(context.Number("leak", 1) ?? 1),
            T.CreateChecked(context.Number("control_gain", 1) ?? 1));
    }

    private sealed class Kernel<T>(TileCentroider<T> centroider, T leak, T gain) : IKernel
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly T[] centroid = new T[2];
        private T s0;
        private T s1;

        public void Compute(KernelIo io)
        {
            centroider.Compute(io.Input<byte>(), centroid);
            s0 = (leak * s0) + (gain * centroid[0]);
            s1 = (leak * s1) + (gain * centroid[1]);
            var m = io.Auxiliary<T>(0);
            var b = io.Auxiliary<T>(1);
            var output = io.Output<T>();
            output[0] = (m[0] * s0) + (m[1] * s1) + b[0];
            output[1] = (m[2] * s0) + (m[3] * s1) + b[1];
        }
    }
}
