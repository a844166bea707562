using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Flowline.Documents;
using Flowline.SharedMemory;

namespace Flowline.Kernels.BuiltIn;

/// <summary>
/// <c>cpu.tomographic_controller</c> (shmpipeline's fused tomographic AO controller): eight wavefront
/// sensors, given as eight 2-D inputs or one batched [8, rows, columns] input, each calibrated
/// ((image - dark) * inverse_flat), centroided per tile and turned into slopes
/// (slope_gain * centroids - slope_offset); then r = reconstructor @ slopes + reconstructor_bias,
/// s(k) = leak * s(k-1) + control_gain * r, out = clip(command_gain * s(k) - command_offset, command_low, command_high).
/// </summary>
/// <remarks>
/// The tile centroids weigh each calibrated pixel by its value, negative ones included (a tile whose
/// weights sum to 0 or less gives (0, 0)), as shmpipeline does. Nothing is allocated per frame.
/// </remarks>
internal sealed class TomographicControllerDefinition : KernelDefinition
{
    private const int Sensors = 8;
    private static readonly string[] Shared = ["reconstructor", "reconstructor_bias", "command_offset", "command_low", "command_high"];
    private static readonly string[] SensorSuffixes = ["dark", "inverse_flat", "slope_offset"];

    public override string Kind => "cpu.tomographic_controller";

    public override string Description =>
        "out = clip(command_gain * s - command_offset, low, high), s = leak * s + control_gain * (reconstructor @ slopes + bias), slopes of 8 calibrated WFS images (needs trigger_policy: all_new)";

    public override Arity Inputs => Arity.Between(1, Sensors);

    public override Arity Auxiliary => Arity.AtLeast(1);

    public override IReadOnlyList<ParameterInfo> Parameters { get; } =
    [
        new("tile_size", "integer >= 1", false, "4", "the side of a square subaperture in pixels"),
        new("slope_gain", "number", false, "1", "slopes = slope_gain * centroids - slope_offset"),
        new("leak", "number", false, "1", "the integrator's leak"),
        new("control_gain", "number", false, "1", "the integrator's gain"),
        new("command_gain", "number", false, "1", "out = command_gain * state - command_offset, then clipped"),
    ];

    /// <summary>The auxiliary aliases a kernel with <paramref name="batched"/> input needs.</summary>
    private static IEnumerable<string> RequiredAliases(bool batched) =>
        batched
            ? [.. Shared, .. SensorSuffixes.Select(s => $"wfs_{s}")]
            : [.. Shared, .. Enumerable.Range(0, Sensors).SelectMany(i => SensorSuffixes.Select(s => $"wfs{i}_{s}"))];

    public override void Validate(KernelContext context)
    {
        var tile = (int)(context.Integer("tile_size", 4, min: 1, max: 65_536) ?? 4);
        foreach (var name in new[] { "slope_gain", "leak", "control_gain", "command_gain" })
        {
            context.Number(name, 1);
        }

        if (context.Spec.EffectiveTriggerPolicy != TriggerPolicy.AllNew)
        {
            context.Error("trigger_policy", $"{Kind} needs trigger_policy: all_new, so that every sensor contributes to each command");
        }

        var inputs = context.Inputs;
        var batched = inputs.Count == 1;
        if (!batched && inputs.Count != Sensors)
        {
            context.Error("inputs", $"{Kind} takes one batched input [8, rows, columns] or eight 2-D inputs, not {inputs.Count}");
            return;
        }

        var required = RequiredAliases(batched).ToHashSet(StringComparer.Ordinal);
        var given = context.Auxiliary.Select(a => a.Binding.Alias).ToHashSet(StringComparer.Ordinal);
        if (!required.SetEquals(given))
        {
            var missing = required.Except(given).Order(StringComparer.Ordinal).ToList();
            var extra = given.Except(required).Order(StringComparer.Ordinal).ToList();
            context.Error("auxiliary", $"{Kind} with {(batched ? "one batched input" : "eight inputs")} needs exactly the auxiliary aliases {string.Join(", ", required.Order(StringComparer.Ordinal))}" +
                (missing.Count > 0 ? $"; missing: {string.Join(", ", missing)}" : "") + (extra.Count > 0 ? $"; unknown: {string.Join(", ", extra)}" : ""));
            return;
        }

        for (var i = 0; i < inputs.Count; i++)
        {
            if (!context.RequireDtype(inputs[i], context.InputField(i), Numeric.RealTypes))
            {
                return;
            }
        }

        var first = inputs[0];
        if (batched ? first.Shape.Length != 3 || first.Shape[0] != Sensors : first.Shape.Length != 2)
        {
            context.Error(context.InputField(), $"input '{first.Name}' has shape [{string.Join(", ", first.Shape)}]; {Kind} takes {(batched ? "a batched input [8, rows, columns]" : "2-D images")}");
            return;
        }

        int[] image = batched ? [.. first.Shape.AsSpan()[1..]] : [.. first.Shape];
        for (var i = 1; i < inputs.Count; i++)
        {
            if (!inputs[i].Shape.SequenceEqual(image))
            {
                context.Error(context.InputField(i), $"input '{inputs[i].Name}' has shape [{string.Join(", ", inputs[i].Shape)}]; every sensor's image must have the shape of '{first.Name}', [{string.Join(", ", image)}]");
                return;
            }
        }

        if (image[0] % tile != 0 || image[1] % tile != 0)
        {
            context.Error("parameters.tile_size", $"tile_size {tile} does not divide the images [{image[0]}, {image[1]}]; use a divisor of both");
            return;
        }

        var output = context.Outputs[0];
        if (!context.RequireDtype(output, context.OutputField(), Numeric.FloatTypes))
        {
            return;
        }

        int[] centroids = [image[0] / tile, image[1] / tile, 2];
        var slopes = centroids[0] * centroids[1] * 2 * Sensors;
        var reconstructor = context.AuxiliaryStream("reconstructor")!;
        if (!Require(context, "reconstructor", output.Dtype, reconstructor.Shape.Length == 2 && reconstructor.Shape[1] == slopes ? [.. reconstructor.Shape] : [-1, slopes], $"[M, {slopes}] (8 sensors x {centroids[0]} x {centroids[1]} tiles x 2 slopes)"))
        {
            return;
        }

        var actuators = reconstructor.Shape[0];
        if (!output.Shape.SequenceEqual([actuators]))
        {
            context.Error(context.OutputField(), $"output '{output.Name}' is {NodeContext.Describe(output)}; the reconstructor gives {output.Dtype.ToName()}[{actuators}]");
        }

        foreach (var alias in Shared.Skip(1))
        {
            Require(context, alias, output.Dtype, [actuators]);
        }

        foreach (var suffix in SensorSuffixes)
        {
            int[] shape = suffix == "slope_offset" ? centroids : image;
            for (var i = 0; i < (batched ? 1 : Sensors); i++)
            {
                Require(context, batched ? $"wfs_{suffix}" : $"wfs{i}_{suffix}", output.Dtype, batched ? [Sensors, .. shape] : shape);
            }
        }
    }

    /// <summary>Checks the auxiliary <paramref name="alias"/> is <paramref name="dtype"/>[<paramref name="shape"/>].</summary>
    private static bool Require(KernelContext context, string alias, ElementType dtype, int[] shape, string? describe = null)
    {
        var stream = context.AuxiliaryStream(alias)!;
        if (stream.Dtype == dtype && stream.Shape.SequenceEqual(shape))
        {
            return true;
        }

        context.Error(context.AuxiliaryField(alias), $"auxiliary '{alias}' ('{stream.Name}') is {NodeContext.Describe(stream)}; {context.Spec.Kind} needs {dtype.ToName()}{describe ?? $"[{string.Join(", ", shape)}]"} (the output's type)");
        return false;
    }

    public override IKernel Create(KernelContext context) =>
        context.Outputs[0].Dtype == ElementType.Float32 ? Create<float>(context) : Create<double>(context);

    private static Kernel<T> Create<T>(KernelContext context)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var tile = (int)context.Integer("tile_size", 4)!.Value;
        var batched = context.Inputs.Count == 1;
        var shape = batched ? context.Inputs[0].Shape.AsSpan()[1..].ToArray() : [.. context.Inputs[0].Shape];
        int Index(string suffix, int sensor) => context.AuxiliaryIndex(batched ? $"wfs_{suffix}" : $"wfs{sensor}_{suffix}");
        var layout = new Layout(
            batched,
            context.Inputs[0].Dtype,
            shape[0] * shape[1],
            context.AuxiliaryStream("reconstructor")!.Shape[0],
            [.. Enumerable.Range(0, Sensors).Select(i => Index("dark", i))],
            [.. Enumerable.Range(0, Sensors).Select(i => Index("inverse_flat", i))],
            [.. Enumerable.Range(0, Sensors).Select(i => Index("slope_offset", i))],
            [.. Shared.Select(context.AuxiliaryIndex)]);
        T Number(string name) => T.CreateChecked(context.Number(name, 1) ?? 1);
        return new Kernel<T>(
            layout,
            new TileCentroider<T>(ElementTypes.Of<T>()!.Value, shape[0], shape[1], tile, tile),
            Number("slope_gain"),
            Number("leak"),
            Number("control_gain"),
            Number("command_gain"));
    }

    /// <summary>Where a frame's operands are: auxiliary indices per sensor (the same index 8 times when batched) and of the shared operands, in <see cref="Shared"/>'s order.</summary>
    private sealed record Layout(bool Batched, ElementType InputType, int Pixels, int Actuators, int[] Dark, int[] InverseFlat, int[] SlopeOffset, int[] SharedIndex);

    private sealed class Kernel<T> : IKernel
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly Layout layout;
        private readonly TileCentroider<T> centroider;
        private readonly T slopeGain;
        private readonly T leak;
        private readonly T controlGain;
        private readonly T commandGain;
        private readonly T[] calibrated;
        private readonly T[] slopes;
        private readonly T[] residual;
        private readonly T[] state;
        private readonly int slopesPerSensor;

        public Kernel(Layout layout, TileCentroider<T> centroider, T slopeGain, T leak, T controlGain, T commandGain)
        {
            this.layout = layout;
            this.centroider = centroider;
            this.slopeGain = slopeGain;
            this.leak = leak;
            this.controlGain = controlGain;
            this.commandGain = commandGain;
            slopesPerSensor = 2 * centroider.Tiles;
            calibrated = new T[layout.Pixels];
            slopes = new T[slopesPerSensor * Sensors];
            residual = new T[layout.Actuators];
            state = new T[layout.Actuators];
        }

        public void Compute(KernelIo io)
        {
            var pixels = layout.Pixels;
            var imageBytes = pixels * layout.InputType.SizeOf();
            for (var i = 0; i < Sensors; i++)
            {
                var image = layout.Batched ? io.Input<byte>().Slice(i * imageBytes, imageBytes) : io.Input<byte>(i);
                Numeric.ConvertInto(layout.InputType, image, calibrated.AsSpan());
                TensorPrimitives.Subtract(calibrated, Sensor(io, layout.Dark[i], i, pixels), calibrated);
                TensorPrimitives.Multiply(calibrated, Sensor(io, layout.InverseFlat[i], i, pixels), calibrated);
                var destination = slopes.AsSpan(i * slopesPerSensor, slopesPerSensor);
                centroider.Compute(MemoryMarshal.AsBytes(calibrated.AsSpan()), destination);
                TensorPrimitives.Multiply(destination, slopeGain, destination);
                TensorPrimitives.Subtract(destination, Sensor(io, layout.SlopeOffset[i], i, slopesPerSensor), destination);
            }

            // The images are in the slopes now: a camera that laps its ring during the long product does not tear this frame.
            io.InputsConsumed();
            var reconstructor = io.Auxiliary<T>(layout.SharedIndex[0]);
            var columns = slopes.Length;
            for (var r = 0; r < residual.Length; r++)
            {
                residual[r] = TensorPrimitives.Dot(reconstructor.Slice(r * columns, columns), slopes);
            }

            TensorPrimitives.Add(residual, io.Auxiliary<T>(layout.SharedIndex[1]), residual);
            TensorPrimitives.Multiply(state, leak, state);
            TensorPrimitives.MultiplyAdd(residual, controlGain, state, state);
            var output = io.Output<T>();
            TensorPrimitives.Multiply(state, commandGain, output);
            TensorPrimitives.Subtract(output, io.Auxiliary<T>(layout.SharedIndex[2]), output);
            TensorPrimitives.Max(output, io.Auxiliary<T>(layout.SharedIndex[3]), output);
            TensorPrimitives.Min(output, io.Auxiliary<T>(layout.SharedIndex[4]), output);
        }

        /// <summary>Sensor <paramref name="sensor"/>'s part of a per-sensor operand: its own stream, or its slice of the batched one.</summary>
        private ReadOnlySpan<T> Sensor(KernelIo io, int index, int sensor, int length)
        {
            var all = io.Auxiliary<T>(index);
            return layout.Batched ? all.Slice(sensor * length, length) : all;
        }
    }
}
