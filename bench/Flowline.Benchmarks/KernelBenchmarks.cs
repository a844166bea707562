using BenchmarkDotNet.Attributes;
using Flowline.Documents;
using Flowline.Kernels;

namespace Flowline.Benchmarks;

/// <summary>
/// Per-frame execution time of each stage of the adaptive-optics examples, at their real sizes
/// (examples/ao-basic and examples/ao-observatory), on one thread, with the memory diagnoser proving
/// nothing is allocated per frame.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class KernelBenchmarks
{
    private KernelIo io = null!;
    private IKernel kernel = null!;

    /// <summary>The example document: ao-basic (120x120) or ao-observatory (256x256, 1024x2048 reconstructor).</summary>
    [Params("ao-basic", "ao-observatory")]
    public string Example { get; set; } = "";

    /// <summary>The stage.</summary>
    [Params("centroid", "flatten", "reconstruct", "integrate", "clip")]
    public string Stage { get; set; } = "";

    [GlobalSetup]
    public void Setup()
    {
        var pipeline = PipelineDocument.Load(Path.Combine(RepositoryRoot(), "examples", Example, "pipeline.yaml"));
        var spec = pipeline.Spec.Kernels.Single(k => k.Name == Stage);
        var streams = pipeline.Spec;
        kernel = pipeline.CreateKernel(Stage);
        io = new KernelIo(spec.Inputs.Length, spec.Auxiliary.Length, spec.Outputs.Length);
        var random = new Random(1);
        byte[] Frame(string stream)
        {
            var format = streams.FindStream(stream)!.Format;
            var values = new float[format.ElementCount];
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = 1000 + (float)(random.NextDouble() * 100);
            }

            return System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        }

        for (var i = 0; i < spec.Inputs.Length; i++)
        {
            io.SetInput(i, Frame(spec.Inputs[i]));
        }

        for (var i = 0; i < spec.Auxiliary.Length; i++)
        {
            io.SetAuxiliary(i, Frame(spec.Auxiliary[i].Stream));
        }

        for (var i = 0; i < spec.Outputs.Length; i++)
        {
            io.SetOutput(i, new byte[streams.FindStream(spec.Outputs[i])!.Format.FrameBytes]);
        }
    }

    /// <summary>One frame of the stage.</summary>
    [Benchmark]
    public void Compute() => kernel.Compute(io);

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Flowline.slnx")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("cannot find the repository root (Flowline.slnx) above " + AppContext.BaseDirectory);
    }
}
