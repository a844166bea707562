using System.Numerics;
using System.Numerics.Tensors;
using Flowline.SharedMemory;

namespace Flowline.Kernels.BuiltIn;

/// <summary>
/// Element-by-element kernels: the output has the input's shape and a float type; integer inputs are
/// converted. The auxiliary input of the binary kinds has the input's shape.
/// </summary>
internal abstract class ElementwiseDefinition : KernelDefinition
{
    public override void Validate(KernelContext context)
    {
        var input = context.Inputs[0];
        var output = context.Outputs[0];
        context.RequireDtype(input, context.InputField(), Numeric.RealTypes);
        context.RequireDtype(output, context.OutputField(), Numeric.FloatTypes);
        if (!input.Shape.SequenceEqual(output.Shape))
        {
            context.Error(context.OutputField(), $"output '{output.Name}' has shape [{string.Join(", ", output.Shape)}]; {Kind} keeps the input's shape [{string.Join(", ", input.Shape)}]");
        }

        foreach (var (binding, stream) in context.Auxiliary)
        {
            context.RequireDtype(stream, context.AuxiliaryField(binding.Alias), Numeric.RealTypes);
            if (!stream.Shape.SequenceEqual(input.Shape))
            {
                context.Error(context.AuxiliaryField(binding.Alias), $"auxiliary '{stream.Name}' has shape [{string.Join(", ", stream.Shape)}]; it must have the input's shape [{string.Join(", ", input.Shape)}]");
            }
        }

        ValidateParameters(context);
    }

    public override IKernel Create(KernelContext context)
    {
        ValidateParameters(context);
        return context.Outputs[0].Dtype == ElementType.Float32 ? Create<float>(context) : Create<double>(context);
    }

    protected virtual void ValidateParameters(KernelContext context)
    {
    }

    protected abstract IKernel Create<T>(KernelContext context)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>The input converted into the output, as the output's element type.</summary>
    protected static Span<T> InputIntoOutput<T>(KernelIo io, ElementType inputType)
        where T : unmanaged, INumber<T>
    {
        var output = io.Output<T>();
        Numeric.ConvertInto(inputType, io.Input<byte>(), output);
        return output;
    }
}

/// <summary><c>cpu.scale</c> (out = input * factor) and <c>cpu.add_constant</c> (out = input + constant).</summary>
internal sealed class ScalarOperationDefinition(string kind, char operation, string parameter, string meaning) : ElementwiseDefinition
{
    public override string Kind => kind;

    public override string Description => $"out = input {operation} {parameter}";

    public override IReadOnlyList<ParameterInfo> Parameters { get; } = [new(parameter, "number", true, null, meaning) { Live = true }];

    protected override void ValidateParameters(KernelContext context) => context.Number(parameter, required: true);

    protected override IKernel Create<T>(KernelContext context) =>
        new Kernel<T>(context.Inputs[0].Dtype, operation, parameter, T.CreateChecked(context.Number(parameter)!.Value));

    /// <remarks>Its constant is live: changed between two frames (<see cref="Runtime.ILiveSettings"/>).</remarks>
    private sealed class Kernel<T>(ElementType inputType, char operation, string parameter, T value) : IKernel, Runtime.ILiveSettings
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void ApplySettings(System.Text.Json.Nodes.JsonObject values)
        {
            if (values[parameter] is { } node)
            {
                value = T.CreateChecked(node.GetValue<double>());
            }
        }

        public void Compute(KernelIo io)
        {
            var output = InputIntoOutput<T>(io, inputType);
            if (operation == '*')
            {
                TensorPrimitives.Multiply(output, value, output);
            }
            else
            {
                TensorPrimitives.Add(output, value, output);
            }
        }
    }
}

/// <summary>Kinds with one auxiliary input of the input's shape.</summary>
internal abstract class BinaryDefinition : ElementwiseDefinition
{
    public override Arity Auxiliary => Arity.Exactly(1);

    protected override IKernel Create<T>(KernelContext context) =>
        new Kernel<T>(context.Inputs[0].Dtype, context.Auxiliary[0].Stream.Dtype, context.Inputs[0].ElementCount, Operation<T>(context));

    /// <summary>The operation: (output holding the converted input, auxiliary) -> output.</summary>
    protected abstract BinaryOperation<T> Operation<T>(KernelContext context)
        where T : unmanaged, IFloatingPointIeee754<T>;

    protected delegate void BinaryOperation<T>(Span<T> output, ReadOnlySpan<T> auxiliary);

    private sealed class Kernel<T>(ElementType inputType, ElementType auxiliaryType, int length, BinaryOperation<T> operation) : IKernel
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        private readonly T[] scratch = auxiliaryType.ClrType() == typeof(T) ? [] : new T[length];

        public void Compute(KernelIo io)
        {
            var output = InputIntoOutput<T>(io, inputType);
            operation(output, Numeric.As<T>(auxiliaryType, io.Auxiliary<byte>(0), scratch));
        }
    }
}

internal sealed class ScaleOffsetDefinition : BinaryDefinition
{
    public override string Kind => "cpu.scale_offset";

    public override string Description => "out = gain * input - offset, with the offset frame as auxiliary input";

    public override IReadOnlyList<ParameterInfo> Parameters { get; } = [new("gain", "number", true, null, "the gain")];

    protected override void ValidateParameters(KernelContext context) => context.Number("gain", required: true);

    protected override BinaryOperation<T> Operation<T>(KernelContext context)
    {
        var gain = T.CreateChecked(context.Number("gain")!.Value);
        return (output, offset) =>
        {
            TensorPrimitives.Multiply(output, gain, output);
            TensorPrimitives.Subtract(output, offset, output);
        };
    }
}

internal sealed class ElementwiseOperationDefinition(string name, string symbol) : BinaryDefinition
{
    public override string Kind => $"cpu.elementwise_{name}";

    public override string Description => $"out = input {symbol} auxiliary, element by element";

    protected override BinaryOperation<T> Operation<T>(KernelContext context) => name switch
    {
        "add" => static (output, aux) => TensorPrimitives.Add(output, aux, output),
        "subtract" => static (output, aux) => TensorPrimitives.Subtract(output, aux, output),
        "multiply" => static (output, aux) => TensorPrimitives.Multiply(output, aux, output),
        _ => static (output, aux) => TensorPrimitives.Divide(output, aux, output),
    };
}
