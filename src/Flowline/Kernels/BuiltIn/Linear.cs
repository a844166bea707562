using System.Numerics;
using System.Numerics.Tensors;
using Flowline.SharedMemory;

namespace Flowline.Kernels.BuiltIn;

/// <summary><c>cpu.affine_transform</c>: y = A x + b, with A (and optionally b) as auxiliary inputs.</summary>
internal sealed class AffineTransformDefinition : KernelDefinition
{
    public override string Kind => "cpu.affine_transform";

    public override string Description => "out = matrix @ input + offset; auxiliary inputs: the matrix (M x N), then the offset (M), optional";

    public override Arity Auxiliary => Arity.Between(1, 2);

    public override IReadOnlyList<ParameterInfo> Parameters { get; } =
        [new("blas_threads", "integer", false, "1", "accepted for shmpipeline compatibility; Flowline's product runs on the worker's own thread")];

    public override void Validate(KernelContext context)
    {
        context.Integer("blas_threads", 1, min: 1);
        var x = context.Inputs[0];
        var y = context.Outputs[0];
        var (matrix, offset) = Operands(context);
        if (!context.RequireDtype(x, context.InputField(), Numeric.FloatTypes) || matrix is null)
        {
            return;
        }

        if (x.Shape.Length != 1)
        {
            context.Error(context.InputField(), $"input '{x.Name}' has shape [{string.Join(", ", x.Shape)}]; the affine transform takes a 1-D vector (flatten it first)");
            return;
        }

        var n = x.Shape[0];
        var field = context.AuxiliaryField(context.Auxiliary[0].Binding.Alias);
        if (matrix.Dtype != x.Dtype || matrix.Shape.Length != 2 || matrix.Shape[1] != n)
        {
            context.Error(field, $"matrix '{matrix.Name}' is {NodeContext.Describe(matrix)}; for input {NodeContext.Describe(x)} it must be {x.Dtype.ToName()}[M, {n}]");
            return;
        }

        var m = matrix.Shape[0];
        if (offset is not null && (offset.Dtype != x.Dtype || offset.Shape.Length != 1 || offset.Shape[0] != m))
        {
            context.Error(context.AuxiliaryField(context.Auxiliary[1].Binding.Alias), $"offset '{offset.Name}' is {NodeContext.Describe(offset)}; it must be {x.Dtype.ToName()}[{m}]");
        }

        if (y.Dtype != x.Dtype || y.Shape.Length != 1 || y.Shape[0] != m)
        {
            context.Error(context.OutputField(), $"output '{y.Name}' is {NodeContext.Describe(y)}; the matrix gives {x.Dtype.ToName()}[{m}]");
        }
    }

    public override IKernel Create(KernelContext context)
    {
        var (matrix, _) = Operands(context);
        var m = matrix!.Shape[0];
        var n = matrix.Shape[1];
        var (matrixIndex, offsetIndex) = context.Spec.AuxiliaryAsMapping
            ? (context.AuxiliaryIndex("matrix"), context.AuxiliaryIndex("offset"))
            : (0, context.Auxiliary.Count > 1 ? 1 : -1);
        return context.Inputs[0].Dtype == ElementType.Float32
            ? new Kernel<float>(m, n, matrixIndex, offsetIndex)
            : new Kernel<double>(m, n, matrixIndex, offsetIndex);
    }

    /// <summary>The matrix and offset: by alias (<c>matrix</c>, <c>offset</c>) in mapping form, by order otherwise.</summary>
    private static (Documents.StreamSpec? Matrix, Documents.StreamSpec? Offset) Operands(KernelContext context)
    {
        if (context.Spec.AuxiliaryAsMapping)
        {
            var matrix = context.AuxiliaryStream("matrix");
            var offset = context.AuxiliaryStream("offset");
            foreach (var (binding, _) in context.Auxiliary)
            {
                if (binding.Alias is not ("matrix" or "offset"))
                {
                    context.Error($"auxiliary.{binding.Alias}", $"unknown auxiliary alias '{binding.Alias}'; {context.Spec.Kind} takes 'matrix' and optionally 'offset'");
                }
            }

            if (matrix is null)
            {
                context.Error("auxiliary", "missing auxiliary alias 'matrix'");
            }

            return (matrix, offset);
        }

        return (context.Auxiliary[0].Stream, context.Auxiliary.Count > 1 ? context.Auxiliary[1].Stream : null);
    }

    private sealed class Kernel<T>(int rows, int columns, int matrixIndex, int offsetIndex) : IKernel
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Compute(KernelIo io)
        {
            var x = io.Input<T>();
            var a = io.Auxiliary<T>(matrixIndex);
            var y = io.Output<T>();
            for (var i = 0; i < rows; i++)
            {
                y[i] = TensorPrimitives.Dot(a.Slice(i * columns, columns), x);
            }

            if (offsetIndex >= 0)
            {
                TensorPrimitives.Add(y, io.Auxiliary<T>(offsetIndex), y);
            }
        }
    }
}

/// <summary>
/// <c>cpu.leaky_integrator</c>: u(k) = leak * u(k-1) + gain * e(k). The state u lives in the kernel.
/// <c>leak</c> and <c>gain</c> come from parameters, or from one-element auxiliary inputs of those
/// aliases; an auxiliary <c>override_enabled</c> chooses between the two on every frame.
/// </summary>
internal sealed class LeakyIntegratorDefinition : KernelDefinition
{
    private static readonly string[] Aliases = ["leak", "gain", "override_enabled"];

    public override string Kind => "cpu.leaky_integrator";

    public override string Description => "out = leak * previous out + gain * input (state kept in the worker)";

    public override Arity Auxiliary => Arity.Between(0, 3);

    public override IReadOnlyList<ParameterInfo> Parameters { get; } =
    [
        new("leak", "number", false, null, "the leak, from 0 (no memory) to 1 (a pure integrator) (required unless an auxiliary input 'leak' gives it)") { Live = true, Minimum = LeakRange.Min, Maximum = LeakRange.Max },
        new("gain", "number", false, null, "the loop gain, from 0 to 2 (the stability limit of an integrator without delay) (required unless an auxiliary input 'gain' gives it)") { Live = true, Minimum = GainRange.Min, Maximum = GainRange.Max },
    ];

    private static readonly (double Min, double Max) LeakRange = (0, 1);
    private static readonly (double Min, double Max) GainRange = (0, 2);

    public override void Validate(KernelContext context)
    {
        var input = context.Inputs[0];
        context.RequireDtype(input, context.InputField(), Numeric.FloatTypes);
        if (input.Shape.Length != 1)
        {
            context.Error(context.InputField(), $"input '{input.Name}' has shape [{string.Join(", ", input.Shape)}]; the integrator works on 1-D vectors");
        }

        context.RequireSameFormat(context.Outputs[0], input, context.OutputField(), "output");
        foreach (var (binding, stream) in context.Auxiliary)
        {
            if (!Aliases.Contains(binding.Alias))
            {
                context.Error(context.AuxiliaryField(binding.Alias), $"unknown auxiliary alias '{binding.Alias}'; {Kind} takes leak, gain and override_enabled");
            }
            else if (stream.ElementCount != 1)
            {
                context.Error(context.AuxiliaryField(binding.Alias), $"auxiliary '{binding.Alias}' ('{stream.Name}') has shape [{string.Join(", ", stream.Shape)}]; it must hold a single value");
            }
            else
            {
                context.RequireDtype(stream, context.AuxiliaryField(binding.Alias), Numeric.RealTypes);
            }
        }

        var gated = context.AuxiliaryIndex("override_enabled") >= 0;
        foreach (var name in new[] { "leak", "gain" })
        {
            var fromAux = context.AuxiliaryIndex(name) >= 0;
            var (min, max) = name == "leak" ? LeakRange : GainRange;
            context.Number(name, required: !fromAux || gated, min: min, max: max);
        }
    }

    public override IKernel Create(KernelContext context) => context.Inputs[0].Dtype == ElementType.Float32 ? Create<float>(context) : Create<double>(context);

    private static Kernel<T> Create<T>(KernelContext context)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        new(
            context.Inputs[0].ElementCount,
            T.CreateChecked(context.Number("leak") ?? 0),
            T.CreateChecked(context.Number("gain") ?? 0),
            Scalar(context, "leak"),
            Scalar(context, "gain"),
            Scalar(context, "override_enabled"));

    private static ScalarInput Scalar(KernelContext context, string alias)
    {
        var index = context.AuxiliaryIndex(alias);
        return index < 0 ? new ScalarInput(-1, default) : new ScalarInput(index, context.Auxiliary[index].Stream.Dtype);
    }

    private readonly record struct ScalarInput(int Index, ElementType Type)
    {
        public T Read<T>(KernelIo io)
            where T : unmanaged, INumber<T>
        {
            Span<T> one = stackalloc T[1];
            Numeric.ConvertInto(Type, io.Auxiliary<byte>(Index), one);
            return one[0];
        }
    }

    /// <remarks>Its leak and gain parameters are live: changed between two frames (<see cref="Runtime.ILiveSettings"/>).</remarks>
    private sealed class Kernel<T>(int length, T leak, T gain, ScalarInput leakInput, ScalarInput gainInput, ScalarInput gate) : IKernel, Runtime.ILiveSettings
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly T[] state = new T[length];

        public void ApplySettings(System.Text.Json.Nodes.JsonObject values)
        {
            // Both read before either is set: a value that does not convert changes nothing.
            var newLeak = values["leak"] is { } l ? T.CreateChecked(l.GetValue<double>()) : leak;
            var newGain = values["gain"] is { } g ? T.CreateChecked(g.GetValue<double>()) : gain;
            leak = newLeak;
            gain = newGain;
        }

        public void Compute(KernelIo io)
        {
            var useAux = gate.Index < 0 || gate.Read<T>(io) != T.Zero;
            var l = useAux && leakInput.Index >= 0 ? leakInput.Read<T>(io) : leak;
            var g = useAux && gainInput.Index >= 0 ? gainInput.Read<T>(io) : gain;
            var output = io.Output<T>();
            TensorPrimitives.Multiply(io.Input<T>(), g, output);
            TensorPrimitives.MultiplyAdd(state, l, output, output);
            output.CopyTo(state);
        }
    }
}
