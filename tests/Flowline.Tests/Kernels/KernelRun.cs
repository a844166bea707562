using System.Runtime.InteropServices;
using Flowline.Documents;
using Flowline.Kernels;

namespace Flowline.Tests.Kernels;

/// <summary>Runs one kernel of a document on arrays: what a worker does with stream slots, without streams.</summary>
internal sealed class KernelRun
{
    private readonly byte[][] inputs;
    private readonly byte[][] auxiliary;
    private readonly byte[][] outputs;

    private KernelRun(IKernel kernel, KernelSpec spec, ValidatedPipeline pipeline)
    {
        Kernel = kernel;
        inputs = [.. spec.Inputs.Select(n => new byte[pipeline.Spec.FindStream(n)!.Format.FrameBytes])];
        auxiliary = [.. spec.Auxiliary.Select(a => new byte[pipeline.Spec.FindStream(a.Stream)!.Format.FrameBytes])];
        outputs = [.. spec.Outputs.Select(n => new byte[pipeline.Spec.FindStream(n)!.Format.FrameBytes])];
        Io = new KernelIo(inputs.Length, auxiliary.Length, outputs.Length);
        for (var i = 0; i < inputs.Length; i++)
        {
            Io.SetInput(i, inputs[i]);
        }

        for (var i = 0; i < auxiliary.Length; i++)
        {
            Io.SetAuxiliary(i, auxiliary[i]);
        }

        for (var i = 0; i < outputs.Length; i++)
        {
            Io.SetOutput(i, outputs[i]);
        }
    }

    public IKernel Kernel { get; }

    public KernelIo Io { get; }

    /// <summary>Validates <paramref name="yaml"/> and creates its kernel named <paramref name="name"/> (the first if null).</summary>
    public static KernelRun Of(string yaml, string? name = null)
    {
        var pipeline = PipelineDocument.Parse(yaml, "kernel.yaml");
        var spec = name is null ? pipeline.Spec.Kernels[0] : pipeline.Spec.Kernels.Single(k => k.Name == name);
        return new KernelRun(pipeline.CreateKernel(spec.Name), spec, pipeline);
    }

    public KernelRun Input<T>(T[] values, int index = 0)
        where T : unmanaged
    {
        MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(inputs[index]);
        return this;
    }

    public KernelRun Auxiliary<T>(T[] values, int index = 0)
        where T : unmanaged
    {
        MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(auxiliary[index]);
        return this;
    }

    public KernelRun Compute()
    {
        Kernel.Compute(Io);
        return this;
    }

    public T[] Output<T>(int index = 0)
        where T : unmanaged => MemoryMarshal.Cast<byte, T>(outputs[index]).ToArray();

    /// <summary>Bytes allocated by <paramref name="frames"/> computations after a warm-up.</summary>
    public long AllocatedPerRun(int frames = 1_000)
    {
        for (var i = 0; i < 100; i++)
        {
            Kernel.Compute(Io);
        }

        // The least of three windows: an allocation per frame shows in every window, while a one-off
        // allocation of the runtime on this thread (seen once in CI: 2,808 bytes in one window) does not.
        var least = long.MaxValue;
        for (var window = 0; window < 3 && least > 0; window++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < frames; i++)
            {
                Kernel.Compute(Io);
            }

            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        return least;
    }
}

/// <summary>Builds one-kernel documents.</summary>
internal static class OneKernel
{
    /// <summary>A document with streams given as (name, dtype, shape) and one kernel given as its YAML body.</summary>
    public static string Document(IEnumerable<(string Name, string Dtype, int[] Shape)> streams, string kernel)
    {
        var lines = new List<string> { "shared_memory:" };
        foreach (var (name, dtype, shape) in streams)
        {
            lines.Add($"  - {{name: {name}, dtype: {dtype}, shape: [{string.Join(", ", shape)}]}}");
        }

        lines.Add("kernels:");
        var first = true;
        foreach (var line in kernel.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            lines.Add((first ? "  - " : "    ") + line.TrimEnd());
            first = false;
        }

        return string.Join('\n', lines) + '\n';
    }

    /// <summary>A document with an input 'x', an output 'y' and auxiliary streams, and one kernel.</summary>
    public static string Unary(string kind, string dtypeIn, int[] shapeIn, string dtypeOut, int[] shapeOut, string extra = "", params (string Name, string Dtype, int[] Shape)[] auxiliary) =>
        Document(
            [("x", dtypeIn, shapeIn), ("y", dtypeOut, shapeOut), .. auxiliary],
            $"name: k\nkind: {kind}\ninput: x\noutput: y\n{extra}");
}
