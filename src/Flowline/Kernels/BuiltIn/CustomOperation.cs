using Flowline.Kernels.Expressions;
using Flowline.SharedMemory;

namespace Flowline.Kernels.BuiltIn;

/// <summary>
/// <c>cpu.custom_operation</c>: the kernel's <c>operation</c> expression over <c>input</c> and the
/// auxiliary aliases, compiled once at validation (shape and broadcasting errors say where in the
/// expression), computed in the output's float type.
/// </summary>
internal sealed class CustomOperationDefinition : KernelDefinition
{
    public override string Kind => "cpu.custom_operation";

    public override string Description => "out = the 'operation' expression: names, numbers, + - * / @, abs, min/minimum, max/maximum, clip";

    public override Arity Auxiliary => Arity.AtLeast(0);

    public override bool UsesOperation => true;

    public override void Validate(KernelContext context) => Compile(context, build: false);

    public override IKernel Create(KernelContext context) => Compile(context, build: true)!;

    private static IKernel? Compile(KernelContext context, bool build)
    {
        var output = context.Outputs[0];
        context.RequireDtype(output, context.OutputField(), Numeric.FloatTypes);
        var names = new Dictionary<string, Operand>(StringComparer.Ordinal);
        var input = context.Inputs[0];
        if (context.RequireDtype(input, context.InputField(), Numeric.RealTypes))
        {
            names["input"] = new Operand("input", [.. input.Shape], input.Dtype, false, 0);
        }

        for (var i = 0; i < context.Auxiliary.Count; i++)
        {
            var (binding, stream) = context.Auxiliary[i];
            if (binding.Alias == "input")
            {
                context.Error(context.AuxiliaryField(binding.Alias), "the alias 'input' is reserved for the trigger input; choose another alias");
                continue;
            }

            if (context.RequireDtype(stream, context.AuxiliaryField(binding.Alias), Numeric.RealTypes))
            {
                names[binding.Alias] = new Operand(binding.Alias, [.. stream.Shape], stream.Dtype, true, i);
            }
        }

        var text = context.Spec.Operation;
        if (string.IsNullOrWhiteSpace(text))
        {
            context.Error("operation", "cpu.custom_operation needs an 'operation', such as 'input * 2'");
            return null;
        }

        try
        {
            var expr = ExpressionParser.Parse(text);
            var shape = ExpressionShapes.Infer(expr, names);
            if (!shape.SequenceEqual(output.Shape))
            {
                context.Error("operation", $"the expression gives shape {ExpressionShapes.Text(shape)}; output '{output.Name}' has shape {ExpressionShapes.Text([.. output.Shape])}");
                return null;
            }

            if (!build || context.HasErrors)
            {
                return null;
            }

            return output.Dtype == ElementType.Float32
                ? CompiledExpression<float>.Build(expr, names, shape)
                : CompiledExpression<double>.Build(expr, names, shape);
        }
        catch (ExpressionException e)
        {
            context.Error("operation", $"at character {e.Position} of '{text}': {e.Message}");
            return null;
        }
    }
}
