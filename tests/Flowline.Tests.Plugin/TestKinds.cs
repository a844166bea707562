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

    public override IReadOnlyList<ParameterInfo> Parameters { get; } = [new("start", "integer", true, null, "the first count"), new("rate_hz", "number > 0", false, "null", "generations per second")];

    public override void Validate(SourceContext context)
    {
        context.Integer("start", required: true);
        context.RequireDtype(context.Streams[0], "stream", ElementType.Float32, ElementType.Float64, ElementType.Int32, ElementType.Int64);
    }

    public override ISource Create(SourceContext context) =>
        new Counter(context.Integer("start", required: true)!.Value, context.Number("rate_hz"), context.Streams[0].Dtype);

    /// <summary>Writes start, start + 1, ... into every element, one value per generation.</summary>
    private sealed class Counter(long start, double? rateHz, ElementType dtype) : ISource
    {
        private long next = start;

        public double? RateHz => rateHz;

        public bool Produce(SourceIo io)
        {
            var value = next++;
            switch (dtype)
            {
                case ElementType.Float32: io.Output<float>().Fill(value); break;
                case ElementType.Float64: io.Output<double>().Fill(value); break;
                case ElementType.Int32: io.Output<int>().Fill((int)value); break;
                default: io.Output<long>().Fill(value); break;
            }

            return true;
        }

        public System.Text.Json.Nodes.JsonObject Metrics() => new() { ["next"] = next };
    }
}

/// <summary><c>test.recorder</c>: a stateful sink kind with one feedback output.</summary>
public sealed class RecorderSink : SinkDefinition
{
    public override string Kind => "test.recorder";

    public override string Description => "records frames and writes one feedback output (a plugin sink for the tests)";

    public override Arity Outputs => Arity.Exactly(1);

    public override ISink Create(SinkContext context) => new Recorder();

    /// <summary>Counts frames and writes each frame's first element plus 1 as feedback.</summary>
    private sealed class Recorder : ISink
    {
        private long recorded;

        public void Consume(SinkIo io)
        {
            recorded++;
            var input = io.Input<float>();
            io.Output<float>().Fill(input.Length > 0 ? input[0] + 1 : 0);
        }

        public System.Text.Json.Nodes.JsonObject Metrics() => new() { ["recorded"] = recorded };
    }
}

/// <summary><c>test.hang</c>: copies its input, and from frame <c>after</c> on, blocks forever (a hung worker for the tests).</summary>
public sealed class HangKernel : KernelDefinition
{
    public override string Kind => "test.hang";

    public override string Description => "copies frames, then hangs in compute after a number of frames (a plugin kernel for the tests)";

    public override IReadOnlyList<ParameterInfo> Parameters { get; } = [new("after", "integer", false, "0", "frames copied before it hangs")];

    public override IKernel Create(KernelContext context) => new Hang(context.Integer("after", 0)!.Value);

    private sealed class Hang(long after) : IKernel
    {
        private long frames;

        public void Compute(KernelIo io)
        {
            if (frames++ >= after)
            {
                Thread.Sleep(Timeout.Infinite);
            }

            io.Input<byte>().CopyTo(io.Output<byte>());
        }
    }
}

/// <summary><c>test.capture</c>: keeps every frame it consumes and writes them to <c>path</c> when its worker stops (for comparing a pipeline's numbers).</summary>
/// <remarks>File layout: per frame, i64 sequence, u64 frame id, i64 origin ns, i32 byte count, then the bytes.</remarks>
public sealed class CaptureSink : SinkDefinition
{
    public override string Kind => "test.capture";

    public override string Description => "captures frames to a file when stopped (a plugin sink for the tests)";

    public override IReadOnlyList<ParameterInfo> Parameters { get; } = [new("path", "string", true, null, "where to write the frames")];

    public override void Validate(SinkContext context) => context.Text("path", required: true);

    public override ISink Create(SinkContext context) => new Capture(context.Text("path", required: true)!);

    private sealed class Capture(string path) : ISink, IDisposable
    {
        private readonly List<(FrameHeader Header, byte[] Data)> frames = [];

        public void Consume(SinkIo io) => frames.Add((io.InputHeader, io.Input<byte>().ToArray()));

        public void Dispose()
        {
            using var writer = new BinaryWriter(File.Create(path));
            foreach (var (header, data) in frames)
            {
                writer.Write(header.Sequence);
                writer.Write(header.FrameId);
                writer.Write(header.OriginTimestampNs);
                writer.Write(data.Length);
                writer.Write(data);
            }
        }
    }
}

/// <summary><c>test.fail_create</c>: a kernel whose creation throws (a worker that cannot start).</summary>
public sealed class FailCreateKernel : KernelDefinition
{
    public override string Kind => "test.fail_create";

    public override string Description => "throws when its worker creates it (a plugin kernel for the tests)";

    public override IKernel Create(KernelContext context) => throw new InvalidOperationException("this kernel cannot be created");
}

/// <summary><c>test.slow_create</c>: a kernel whose creation takes <c>delay_s</c> seconds (a worker slow to start), then copies.</summary>
public sealed class SlowCreateKernel : KernelDefinition
{
    public override string Kind => "test.slow_create";

    public override string Description => "sleeps while its worker creates it, then copies (a plugin kernel for the tests)";

    public override IReadOnlyList<ParameterInfo> Parameters { get; } = [new("delay_s", "number", true, null, "how long creation takes")];

    public override IKernel Create(KernelContext context)
    {
        Thread.Sleep(TimeSpan.FromSeconds(context.Number("delay_s", required: true)!.Value));
        return new Copy();
    }

    private sealed class Copy : IKernel
    {
        public void Compute(KernelIo io) => io.Input<byte>().CopyTo(io.Output<byte>());
    }
}

/// <summary><c>test.sum</c>: out = the sum of its trigger inputs (float32, same shape), for any trigger policy.</summary>
public sealed class SumKernel : KernelDefinition
{
    public override string Kind => "test.sum";

    public override string Description => "out = the sum of the inputs (a plugin kernel for the tests)";

    public override Arity Inputs => Arity.AtLeast(1);

    public override IKernel Create(KernelContext context) => new Sum();

    private sealed class Sum : IKernel
    {
        public void Compute(KernelIo io)
        {
            var output = io.Output<float>();
            io.Input<float>(0).CopyTo(output);
            for (var i = 1; i < io.InputCount; i++)
            {
                TensorPrimitives.Add(output, io.Input<float>(i), output);
            }
        }
    }
}

/// <summary><c>test.frame_ids</c>: out[i] = the frame id of trigger input i (float32), to check frame synchronisation.</summary>
public sealed class FrameIdsKernel : KernelDefinition
{
    public override string Kind => "test.frame_ids";

    public override string Description => "out[i] = the frame id of input i (a plugin kernel for the tests)";

    public override Arity Inputs => Arity.AtLeast(1);

    public override IKernel Create(KernelContext context) => new Ids();

    private sealed class Ids : IKernel
    {
        public void Compute(KernelIo io)
        {
            var output = io.Output<float>();
            output.Clear();
            for (var i = 0; i < Math.Min(io.InputCount, output.Length); i++)
            {
                output[i] = io.InputHeader(i).FrameId;
            }
        }
    }
}
