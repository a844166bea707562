using System.Numerics;
using System.Numerics.Tensors;
using Flowline.Documents;
using Flowline.SharedMemory;

namespace Flowline.Kernels.BuiltIn;

/// <summary><c>cpu.copy</c>: the output is the input, any element type.</summary>
internal sealed class CopyDefinition : KernelDefinition
{
    public override string Kind => "cpu.copy";

    public override string Description => "out = input (same shape and element type)";

    public override void Validate(KernelContext context) =>
        context.RequireSameFormat(context.Outputs[0], context.Inputs[0], context.OutputField(), "output");

    public override IKernel Create(KernelContext context) => new ByteCopyKernel();
}

/// <summary><c>cpu.flatten</c>: an N-D input becomes a 1-D output of as many elements.</summary>
internal sealed class FlattenDefinition : KernelDefinition
{
    public override string Kind => "cpu.flatten";

    public override string Description => "out = input as a 1-D frame of the same element count and type";

    public override void Validate(KernelContext context)
    {
        var input = context.Inputs[0];
        var output = context.Outputs[0];
        if (output.Shape.Length != 1 || output.Shape[0] != input.ElementCount || output.Dtype != input.Dtype)
        {
            context.Error(context.OutputField(), $"output '{output.Name}' is {NodeContext.Describe(output)}; flattening '{input.Name}' ({NodeContext.Describe(input)}) gives {input.Dtype.ToName()}[{input.ElementCount}]");
        }
    }

    public override IKernel Create(KernelContext context) => new ByteCopyKernel();
}

/// <summary>Copies the input's bytes into the output.</summary>
internal sealed class ByteCopyKernel : IKernel
{
    public void Compute(KernelIo io) => io.Input<byte>().CopyTo(io.Output<byte>());
}

/// <summary><c>cpu.concatenate</c>: two or more inputs joined along an axis (needs <c>all_new</c>).</summary>
internal sealed class ConcatenateDefinition : KernelDefinition
{
    public override string Kind => "cpu.concatenate";

    public override string Description => "out = the inputs joined along an axis (needs trigger_policy: all_new)";

    public override Arity Inputs => Arity.AtLeast(2);

    public override IReadOnlyList<ParameterInfo> Parameters { get; } = [new("axis", "integer", false, "0", "the axis to join along; negative counts from the end")];

    public override void Validate(KernelContext context)
    {
        if (context.Spec.EffectiveTriggerPolicy != TriggerPolicy.AllNew)
        {
            context.Error("trigger_policy", "cpu.concatenate needs trigger_policy: all_new, so that every input contributes to each frame");
        }

        var first = context.Inputs[0];
        var rank = first.Shape.Length;
        var axis = Axis(context, rank);
        for (var i = 1; i < context.Inputs.Count; i++)
        {
            var other = context.Inputs[i];
            if (other.Dtype != first.Dtype || other.Shape.Length != rank)
            {
                context.Error(context.InputField(i), $"input '{other.Name}' is {NodeContext.Describe(other)}; every input must have {first.Dtype.ToName()} elements and rank {rank} like '{first.Name}'");
                return;
            }

            for (var d = 0; d < rank; d++)
            {
                if (d != axis && other.Shape[d] != first.Shape[d])
                {
                    context.Error(context.InputField(i), $"input '{other.Name}' has shape [{string.Join(", ", other.Shape)}]; only axis {axis} may differ from [{string.Join(", ", first.Shape)}]");
                    return;
                }
            }
        }

        if (axis < 0)
        {
            return;
        }

        var expected = first.Shape.ToArray();
        expected[axis] = context.Inputs.Sum(s => s.Shape[axis]);
        var output = context.Outputs[0];
        if (output.Dtype != first.Dtype || !output.Shape.SequenceEqual(expected))
        {
            context.Error(context.OutputField(), $"output '{output.Name}' is {NodeContext.Describe(output)}; joining the inputs along axis {axis} gives {first.Dtype.ToName()}[{string.Join(", ", expected)}]");
        }
    }

    public override IKernel Create(KernelContext context)
    {
        var first = context.Inputs[0];
        var axis = Axis(context, first.Shape.Length);
        var elementBytes = first.Dtype.SizeOf();
        var outer = 1;
        for (var d = 0; d < axis; d++)
        {
            outer *= first.Shape[d];
        }

        var inner = elementBytes;
        for (var d = axis + 1; d < first.Shape.Length; d++)
        {
            inner *= first.Shape[d];
        }

        return new Kernel(outer, [.. context.Inputs.Select(s => s.Shape[axis] * inner)]);
    }

    private static int Axis(KernelContext context, int rank)
    {
        var axis = (int)(context.Integer("axis", 0) ?? 0);
        if (axis < -rank || axis >= rank)
        {
            context.Error("parameters.axis", $"axis {axis} is out of range for inputs of rank {rank}; use -{rank} to {rank - 1}");
            return -1;
        }

        return axis < 0 ? axis + rank : axis;
    }

    /// <summary>For each outer index, copies each input's block (its extent along the axis times the inner size).</summary>
    private sealed class Kernel(int outer, int[] blockBytes) : IKernel
    {
        public void Compute(KernelIo io)
        {
            var output = io.Output<byte>();
            var offset = 0;
            for (var o = 0; o < outer; o++)
            {
                for (var i = 0; i < blockBytes.Length; i++)
                {
                    var block = blockBytes[i];
                    io.Input<byte>(i).Slice(o * block, block).CopyTo(output.Slice(offset, block));
                    offset += block;
                }
            }
        }
    }
}

/// <summary><c>cpu.reduce</c>: a frame of any shape reduced to one element.</summary>
internal sealed class ReduceDefinition : KernelDefinition
{
    private static readonly string[] Operations = ["sum", "mean", "max", "min"];

    public override string Kind => "cpu.reduce";

    public override string Description => "out = sum, mean, max or min of the input, as a single element";

    public override IReadOnlyList<ParameterInfo> Parameters { get; } = [new("operation", "sum | mean | max | min", false, "mean", "the reduction")];

    public override void Validate(KernelContext context)
    {
        context.RequireDtype(context.Inputs[0], context.InputField(), Numeric.RealTypes);
        var output = context.Outputs[0];
        context.RequireDtype(output, context.OutputField(), Numeric.FloatTypes);
        if (output.ElementCount != 1)
        {
            context.Error(context.OutputField(), $"output '{output.Name}' has shape [{string.Join(", ", output.Shape)}]; a reduction writes a single element, such as shape [1]");
        }

        context.Choice("operation", Operations, "mean");
    }

    public override IKernel Create(KernelContext context)
    {
        var operation = context.Choice("operation", Operations, "mean")!;
        var input = context.Inputs[0];
        return context.Outputs[0].Dtype == ElementType.Float32
            ? new Kernel<float>(input.Dtype, input.ElementCount, operation)
            : new Kernel<double>(input.Dtype, input.ElementCount, operation);
    }

    private sealed class Kernel<T>(ElementType inputType, int length, string operation) : IKernel
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly T[] scratch = inputType.ClrType() == typeof(T) ? [] : new T[length];

        public void Compute(KernelIo io)
        {
            var x = Numeric.As<T>(inputType, io.Input<byte>(), scratch);
            io.Output<T>()[0] = operation switch
            {
                "sum" => TensorPrimitives.Sum(x),
                "max" => TensorPrimitives.Max(x),
                "min" => TensorPrimitives.Min(x),
                _ => TensorPrimitives.Sum(x) / T.CreateChecked(x.Length),
            };
        }
    }
}

/// <summary><c>cpu.raise_error</c>: always fails, to test supervision.</summary>
internal sealed class RaiseErrorDefinition : KernelDefinition
{
    public override string Kind => "cpu.raise_error";

    public override string Description => "fails on every frame with the given message (for supervision tests)";

    public override Arity Outputs => Arity.Between(0, int.MaxValue);

    public override IReadOnlyList<ParameterInfo> Parameters { get; } = [new("message", "string", true, null, "the error message")];

    public override void Validate(KernelContext context) => context.Text("message", required: true);

    public override IKernel Create(KernelContext context) => new Kernel(context.Text("message", required: true)!);

    private sealed class Kernel(string message) : IKernel
    {
        public void Compute(KernelIo io) => throw new KernelFailureException(message);
    }
}
