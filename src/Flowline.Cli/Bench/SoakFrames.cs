using System.Buffers.Binary;
using Flowline.Documents;
using Flowline.Kernels;
using Flowline.Runtime;
using Flowline.SharedMemory;
using Flowline.Status;

namespace Flowline.Cli.Bench;

/// <summary>
/// The frames a stream of the soaked pipeline can hold, where they can be known: the pattern of a
/// <c>synthetic.array</c> source (frame k of the pattern is published with frame id k, and the pattern
/// repeats), and the outputs of the stateless single-input kernels after it, computed here by the same
/// kernels from every possible input frame. A reader checks each frame it accepts against them: a torn
/// frame (parts of two frames) matches none.
/// </summary>
internal sealed class SoakFrames
{
    /// <summary>The most frames of one stream kept (a pattern that does not repeat sooner is not checked).</summary>
    private const int MaxFrames = 1024;

    /// <summary>The most bytes of frames of one stream kept.</summary>
    private const long MaxBytes = 64L << 20;

    private readonly Dictionary<string, FrameCheck> checks = new(StringComparer.Ordinal);

    /// <summary>The streams with a check, in document order.</summary>
    public IReadOnlyList<SoakStreamCheck> Checks { get; private set; } = [];

    /// <summary>The check of <paramref name="stream"/>, or null when its frames cannot be known.</summary>
    public FrameCheck? For(string stream) => checks.GetValueOrDefault(stream);

    /// <summary>
    /// Works out the checks of <paramref name="pipeline"/>'s streams. Auxiliary inputs are read from the
    /// running pipeline's namespace <paramref name="ns"/> (streams nobody writes: their initial values).
    /// </summary>
    public static SoakFrames Of(ValidatedPipeline pipeline, string ns)
    {
        var frames = new SoakFrames();
        var spec = pipeline.Spec;
        foreach (var source in spec.Sources.Where(s => s.Kind == "synthetic.array"))
        {
            var settings = SyntheticSettings.From(source.Parameters);
            for (var i = 0; i < source.Streams.Length; i++)
            {
                var format = spec.FindStream(source.Streams[i])!.Format;
                if (Pattern(new SyntheticPattern(format, settings with { Seed = settings.Seed + i })) is { } pattern)
                {
                    frames.checks[source.Streams[i]] = new FrameCheck(pattern, byFrameId: true);
                }
            }
        }

        // Kernels in document order, again until none adds a stream (a kernel may come before its input's).
        var added = true;
        while (added)
        {
            added = false;
            foreach (var kernel in spec.Kernels)
            {
                if (kernel.Inputs.Length == 1 && kernel.Outputs.Length == 1 && !frames.checks.ContainsKey(kernel.Outputs[0])
                    && frames.checks.TryGetValue(kernel.Inputs[0], out var input)
                    && Outputs(pipeline, kernel, input.Distinct, ns) is { } outputs)
                {
                    frames.checks[kernel.Outputs[0]] = new FrameCheck(outputs, byFrameId: false);
                    added = true;
                }
            }
        }

        frames.Checks = [.. spec.Streams.Where(s => frames.checks.ContainsKey(s.Name)).Select(s => new SoakStreamCheck(s.Name, frames.checks[s.Name].ByFrameId ? "frame_id" : "set", frames.checks[s.Name].Distinct.Count))];
        return frames;
    }

    /// <summary>Frames 0, 1, ... of <paramref name="pattern"/> until it repeats frame 0; null if it does not within the limits.</summary>
    private static List<byte[]>? Pattern(SyntheticPattern pattern)
    {
        var bytes = pattern.Format.FrameBytes;
        var frames = new List<byte[]>();
        while (frames.Count < MaxFrames && (frames.Count + 1) * bytes <= MaxBytes)
        {
            var frame = new byte[bytes];
            pattern.Next(frame);
            if (frames.Count > 0 && frame.AsSpan().SequenceEqual(frames[0]))
            {
                return frames;
            }

            frames.Add(frame);
        }

        return null;
    }

    /// <summary>
    /// The distinct outputs of <paramref name="kernel"/> for <paramref name="inputs"/>; null when the
    /// kernel cannot be run here (auxiliary inputs that something writes or that hold no frame) or keeps
    /// state (an input computed again after others gives another output).
    /// </summary>
    private static List<byte[]>? Outputs(ValidatedPipeline pipeline, KernelSpec kernel, IReadOnlyList<byte[]> inputs, string ns)
    {
        var auxiliary = new List<byte[]>();
        foreach (var binding in kernel.Auxiliary)
        {
            if (pipeline.Graph.ProducersOf(binding.Stream).Count > 0 || ReadNewest(ns, binding.Stream) is not { } frame)
            {
                return null;
            }

            auxiliary.Add(frame);
        }

        var outputBytes = pipeline.Spec.FindStream(kernel.Outputs[0])!.Format.FrameBytes;
        if ((long)inputs.Count * outputBytes > MaxBytes)
        {
            return null;
        }

        var compute = pipeline.CreateKernel(kernel.Name);
        try
        {
            var io = new KernelIo(1, auxiliary.Count, 1);
            for (var i = 0; i < auxiliary.Count; i++)
            {
                io.SetAuxiliary(i, auxiliary[i]);
            }

            byte[] Compute(byte[] input)
            {
                var output = new byte[outputBytes];
                io.SetInput(0, input);
                io.SetOutput(0, output);
                compute.Compute(io);
                return output;
            }

            var first = inputs.Select(Compute).ToList();
            for (var i = inputs.Count - 1; i >= 0; i--)
            {
                if (!Compute(inputs[i]).AsSpan().SequenceEqual(first[i]))
                {
                    return null;
                }
            }

            var distinct = new FrameSet();
            return [.. first.Where(distinct.Add)];
        }
        finally
        {
            (compute as IDisposable)?.Dispose();
        }
    }

    private static byte[]? ReadNewest(string ns, string name)
    {
        using var stream = SharedStream.Attach(ns, name);
        using var reader = stream.OpenReader<byte>(new ReaderOptions { Delivery = Delivery.Latest });
        for (var attempt = 0; attempt < 64; attempt++)
        {
            if (!reader.PeekNewest(out var newest, out var header))
            {
                return null;
            }

            var copy = newest.ToArray();
            if (reader.IsStillIntact(header.Sequence))
            {
                return copy; // a copy the writer did not overwrite meanwhile
            }
        }

        throw new InvalidOperationException($"stream '{name}' was overwritten during every one of 64 copies of its newest frame");
    }

    /// <summary>Frames, found by content: a table keyed by each frame's first 8 bytes.</summary>
    private sealed class FrameSet
    {
        private readonly Dictionary<ulong, List<byte[]>> byKey = [];

        /// <summary>Adds <paramref name="frame"/>; false if an equal frame is there already.</summary>
        public bool Add(byte[] frame)
        {
            if (Contains(frame))
            {
                return false;
            }

            var key = Key(frame);
            if (!byKey.TryGetValue(key, out var list))
            {
                byKey[key] = list = [];
            }

            list.Add(frame);
            return true;
        }

        public bool Contains(ReadOnlySpan<byte> frame)
        {
            if (byKey.TryGetValue(Key(frame), out var list))
            {
                foreach (var candidate in list)
                {
                    if (frame.SequenceEqual(candidate))
                    {
                        return true;
                    }
                }
            }

            return false;
        }

        private static ulong Key(ReadOnlySpan<byte> frame)
        {
            Span<byte> key = stackalloc byte[8];
            key.Clear();
            frame[..Math.Min(8, frame.Length)].CopyTo(key);
            return BinaryPrimitives.ReadUInt64LittleEndian(key);
        }
    }

    /// <summary>The check of one stream's frames; safe to use from several threads.</summary>
    internal sealed class FrameCheck
    {
        private readonly List<byte[]> frames;
        private readonly FrameSet set = new();

        public FrameCheck(List<byte[]> frames, bool byFrameId)
        {
            this.frames = frames;
            ByFrameId = byFrameId;
            Distinct = [.. frames.Where(set.Add)];
        }

        /// <summary>True: frame k of <see cref="Distinct"/>'s pattern carries frame id k (modulo its length); false: any of them may come.</summary>
        public bool ByFrameId { get; }

        /// <summary>The frames the stream can hold.</summary>
        public IReadOnlyList<byte[]> Distinct { get; }

        /// <summary>Null if <paramref name="payload"/> is the frame it must be, else what is wrong.</summary>
        public string? Problem(ReadOnlySpan<byte> payload, in FrameHeader header)
        {
            if (ByFrameId)
            {
                var index = (int)(header.FrameId % (ulong)frames.Count);
                return payload.SequenceEqual(frames[index])
                    ? null
                    : $"frame id {header.FrameId} (sequence {header.Sequence}) is not pattern frame {index}" + (set.Contains(payload) ? " (it is another frame of the pattern)" : " (nor any frame of the pattern)");
            }

            return set.Contains(payload) ? null : $"sequence {header.Sequence} (frame id {header.FrameId}) is none of the {Distinct.Count} frames its kernel computes";
        }
    }
}
