using Flowline.Pipelines;

// The Pipeline API's quick example (PYTHUSA's seed, in C#): a source publishes frames, a stage doubles
// them, a sink prints them. Each task is a static method and runs in a worker process of its own; each
// owns its loop, and waits sleep in the kernel instead of polling.
using var pipe = new Pipeline("demo");
pipe.AddStream<float>("samples", [8])
    .AddStream<float>("doubled", [8]);
pipe.AddTask("source", QuickstartTasks.Source, writes: new() { ["samples"] = "samples" });
pipe.AddTask("scale", QuickstartTasks.Scale, reads: new() { ["samples"] = "samples" }, writes: new() { ["doubled"] = "doubled" });
pipe.AddTask("sink", QuickstartTasks.Sink, reads: new() { ["doubled"] = "doubled" });
pipe.Run(TimeSpan.FromSeconds(30));
Console.WriteLine($"done: {pipe.Metrics("sink")?.FramesProcessed ?? 0} frames consumed by the sink");

/// <summary>The example's tasks: static methods, so each can run in a process of its own.</summary>
internal static class QuickstartTasks
{
    /// <summary>How many frames the source publishes.</summary>
    public const int Frames = 5;

    /// <summary>Publishes <see cref="Frames"/> frames 0..7, 1..8, ... then ends the stream.</summary>
    public static void Source(TaskWriter<float> samples)
    {
        for (var n = 0; n < Frames; n++)
        {
            samples.Write(Enumerable.Range(n, 8).Select(i => (float)i).ToArray());
        }

        samples.Close();
    }

    /// <summary>Doubles every frame until its input ends.</summary>
    public static void Scale(TaskReader<float> samples, TaskWriter<float> doubled)
    {
        var frame = new float[samples.FrameLength];
        while (samples.ReadInto(frame, Timeout.InfiniteTimeSpan))
        {
            for (var i = 0; i < frame.Length; i++)
            {
                frame[i] *= 2;
            }

            doubled.Write(frame);
        }

        doubled.Close();
    }

    /// <summary>Prints every frame until its input ends.</summary>
    public static void Sink(TaskReader<float> doubled)
    {
        while (doubled.Read(Timeout.InfiniteTimeSpan) is { } frame)
        {
            Console.WriteLine(string.Join(' ', frame));
        }
    }
}
