using System.Runtime.InteropServices;
using Flowline.Kernels;
using Flowline.SharedMemory;

namespace Flowline.Tests.Runtime;

/// <summary>The adaptive-optics example, run by worker processes, computes exactly what its kernels compute directly, stage by stage.</summary>
public sealed class PipelineNumbersTests : RuntimeTest
{
    private static readonly string[] Stages = ["wfs_image", "centroids", "slopes", "modes", "commands_raw", "dm_commands"];

    [Fact]
    public void AoBasic_EveryStageMatchesADirectComputation()
    {
        var example = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "examples", "ao-basic", "pipeline.yaml"));
        var dir = Directory.CreateTempSubdirectory("flowline-ao-").FullName;
        try
        {
            // Every stream lossless (nothing skipped, so the stateful integrator sees every frame), the
            // camera paced, and a capturing sink (a thread of this process) on every stream.
            var yaml = "plugins: [plugins/Flowline.Tests.Plugin.dll]\n" + example
                .Replace("    dtype: float32\n", "    dtype: float32\n    delivery: lossless\n", StringComparison.Ordinal)
                .Replace("rate_hz: 1000}", "rate_hz: 200}", StringComparison.Ordinal)
                .TrimEnd() + "\n" + string.Concat(Stages.Select(s => $"  - {{name: cap_{s}, kind: test.capture, stream: {s}, placement: thread, parameters: {{path: \"{Path.Combine(dir, s)}\"}}}}\n"));
            Assert.Contains("rate_hz: 200", yaml, StringComparison.Ordinal);
            var manager = Manager(yaml);
            manager.Build();
            manager.Start();
            WaitUntil(() => Frames(manager, "cap_dm_commands") > 150, "frames cross all five stages");
            manager.Stop();

            float[] reconstructor;
            using (var stream = SharedStream.Attach(manager.Namespace, "reconstructor"))
            using (var reader = stream.OpenReader<byte>())
            {
                Assert.True(reader.PeekNewest(out var frame, out _));
                reconstructor = MemoryMarshal.Cast<byte, float>(frame.Span).ToArray();
            }

            var captured = Stages.ToDictionary(s => s, s => PipelineDataTests.Captured(Path.Combine(dir, s)));
            var count = captured["dm_commands"].Count;
            Assert.True(count > 150, $"only {count} frames were captured");

            var pipeline = manager.Pipeline;
            var kernels = new[] { "centroid", "flatten", "reconstruct", "integrate", "clip" }.Select(pipeline.CreateKernel).ToArray();
            for (var i = 0; i < count; i++)
            {
                var input = captured["wfs_image"][i].Values;
                for (var stage = 0; stage < kernels.Length; stage++)
                {
                    var expected = captured[Stages[stage + 1]][i];
                    Assert.True(
                        captured["wfs_image"][i].Header.OriginTimestampNs == expected.Header.OriginTimestampNs,
                        $"frame {i} of '{Stages[stage + 1]}' does not come from frame {i} of the camera; captured: {string.Join(", ", Stages.Select(s => $"{s} {captured[s].Count} from seq {captured[s][0].Header.Sequence} id {captured[s][0].Header.FrameId} origins {string.Join("/", captured[s].Take(3).Select(f => f.Header.OriginTimestampNs))}"))}");
                    var io = new KernelIo(1, stage == 2 ? 1 : 0, 1);
                    io.SetInput(0, MemoryMarshal.AsBytes(input.AsSpan()).ToArray());
                    if (stage == 2)
                    {
                        io.SetAuxiliary(0, MemoryMarshal.AsBytes(reconstructor.AsSpan()).ToArray());
                    }

                    var output = new byte[expected.Values.Length * sizeof(float)];
                    io.SetOutput(0, output);
                    kernels[stage].Compute(io);
                    var direct = MemoryMarshal.Cast<byte, float>(output).ToArray();
                    Assert.True(direct.SequenceEqual(expected.Values), $"frame {i}: stage '{Stages[stage + 1]}' differs from the direct computation");
                    input = direct;
                }
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
