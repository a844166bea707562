using System.Globalization;
using Flowline.Pipelines;

namespace Flowline.Tests.Pipelines;

/// <summary>
/// Task functions that run in worker processes: static methods of a named type, which a worker finds
/// by type and name after loading the test assembly by path. A process cannot return values to the
/// test, so the tasks that report write a file named after their namespace and task.
/// </summary>
internal static class PipelineTasks
{
    /// <summary>Values per frame of the float streams.</summary>
    public const int FrameLength = 8;

    /// <summary>Frames the source publishes: many more than the rings of the tests hold.</summary>
    public const int Frames = 1000;

    /// <summary>The message of <see cref="Explode"/>'s exception.</summary>
    public const string ExplodeMessage = "deliberate task failure 42";

    /// <summary>Activations <see cref="Pulse"/> has run (per worker process).</summary>
    private static int pulses;

    /// <summary>The file a reporting task of <paramref name="namespace"/> writes.</summary>
    public static string ResultPath(string @namespace, string task) => Path.Combine(Path.GetTempPath(), $"flowline-{@namespace}-{task}.txt");

    /// <summary>Frame n is n*8, n*8+1, ..., n*8+7; then ends the stream.</summary>
    public static void Source(TaskWriter<float> samples)
    {
        var frame = new float[samples.FrameLength];
        for (var n = 0; n < Frames; n++)
        {
            for (var i = 0; i < frame.Length; i++)
            {
                frame[i] = (n * FrameLength) + i;
            }

            samples.Write(frame);
        }

        samples.Close();
    }

    /// <summary>Doubles every frame until its input ends, then ends its output.</summary>
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

    /// <summary>Writes every frame as a line of its file until its input ends; then "end".</summary>
    public static void SinkToFile(TaskReader<float> doubled, TaskContext context)
    {
        var lines = new List<string>();
        while (doubled.Read(Timeout.InfiniteTimeSpan) is { } frame)
        {
            lines.Add(string.Join(' ', frame.Select(v => v.ToString(CultureInfo.InvariantCulture))));
        }

        lines.Add($"end {doubled.EndOfStream}");
        File.WriteAllLines(ResultPath(context.Namespace, context.Name), lines);
    }

    /// <summary>Consumes its input until it ends.</summary>
    public static void Drain(TaskReader<float> doubled)
    {
        while (doubled.Read(Timeout.InfiniteTimeSpan) is not null)
        {
        }
    }

    /// <summary>Fails at once.</summary>
    public static void Explode() => throw new InvalidOperationException(ExplodeMessage);

    /// <summary>Ends its worker process without a word.</summary>
    public static void Crash() => Environment.Exit(3);

    /// <summary>Writes how many times it has run (once per activation when toggleable).</summary>
    public static void Pulse(TaskWriter<int> pulsed) => pulsed.Write([Interlocked.Increment(ref pulses)]);

    /// <summary>
    /// Says where it runs ("name namespace"), then waits for a frame that never comes; when the
    /// pipeline stops it, says whether its token fired, and ends.
    /// </summary>
    public static void BlockedReader(TaskReader<float> input, TaskContext context, CancellationToken stop)
    {
        var path = ResultPath(context.Namespace, context.Name);
        File.WriteAllText(path, $"{context.Name} {context.Namespace} {context.Stopping.IsCancellationRequested}\n");
        try
        {
            input.Read(Timeout.InfiniteTimeSpan);
            File.AppendAllText(path, "returned\n");
        }
        catch (OperationCanceledException)
        {
            File.AppendAllText(path, $"cancelled {stop.IsCancellationRequested} {context.Stopping.IsCancellationRequested}\n");
            throw;
        }
    }
}
