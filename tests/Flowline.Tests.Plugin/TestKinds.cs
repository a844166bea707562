using System.Numerics.Tensors;
using Flowline.Kernels;
using Flowline.SharedMemory;

namespace Flowline.Tests.Plugin;

/// <summary><c>test.square</c>: out = input * input (float32), with an optional offset parameter.</summary>
public sealed class SquareKernel : KernelDefinition
{
    public override string Kind => "test.square";

    public override string Description => "out = input * input + offset (a plugin kernel for the tests)";

    public override IReadOnlyList<ParameterInfo> Parameters { get; } = [new("offset", "number", false, "0", "added to every square")];

    public override void Validate(KernelContext context)
    {
        context.RequireDtype(context.Inputs[0], context.InputField(), ElementType.Float32);
        context.RequireSameFormat(context.Outputs[0], context.Inputs[0], context.OutputField(), "output");
        context.Number("offset", 0);
    }

    public override IKernel Create(KernelContext context) => new Square((float)(context.Number("offset", 0) ?? 0));

    private sealed class Square(float offset) : IKernel
    {
        public void Compute(KernelIo io)
        {
            var output = io.Output<float>();
            TensorPrimitives.Multiply(io.Input<float>(), io.Input<float>(), output);
            TensorPrimitives.Add(output, offset, output);
        }
    }
}

/// <summary><c>test.counter</c>: a source kind with a required parameter.</summary>
public sealed class CounterSource : SourceDefinition
{
    public override string Kind => "test.counter";

    public override string Description => "counts frames (a plugin source for the tests)";

    public override IReadOnlyList<ParameterInfo> Parameters { get; } = [new("start", "integer", true, null, "the first count")];

    public override void Validate(SourceContext context) => context.Integer("start", required: true);
}

/// <summary><c>test.recorder</c>: a stateful sink kind with one feedback output.</summary>
public sealed class RecorderSink : SinkDefinition
{
    public override string Kind => "test.recorder";

    public override string Description => "records frames and writes one feedback output (a plugin sink for the tests)";

    public override Arity Outputs => Arity.Exactly(1);
}
