using System.Globalization;
using Flowline.Runtime;

namespace Flowline.Pipelines;

/// <summary>
/// One task's figures (PYTHUSA's <c>ProcessMetrics</c>, plus the runtime's execution metrics).
/// </summary>
/// <param name="Name">The task.</param>
/// <param name="Pid">Its worker's process id (the program's own for a task on a thread).</param>
/// <param name="CpuPercent">CPU use, percent of one core, over the last sampling interval of the manager.</param>
/// <param name="MemoryRssMb">Resident memory of its process, MiB.</param>
/// <param name="Nice">The nice level of its process (Flowline reads it; unlike PYTHUSA it never changes it).</param>
/// <param name="RingPressure">Fill of each stream it reads or writes, percent of the ring.</param>
/// <param name="FramesProcessed">Frames it wrote (or read, for a task that only reads).</param>
/// <param name="ThroughputHz">Its rolling rate of frames.</param>
/// <param name="AvgExecUs">Mean time from a frame in to the next frame out.</param>
/// <param name="LatencyP50Us">Median end-to-end latency of its frames, from their origin.</param>
/// <param name="Health">The runtime's judgement: starting, waiting-input, active, idle, paused, failed, stopped.</param>
/// <param name="SampledAt">When the sample was taken (seconds on the monotonic clock).</param>
public sealed record TaskMetrics(
    string Name,
    int? Pid,
    double CpuPercent,
    double MemoryRssMb,
    int? Nice,
    IReadOnlyDictionary<string, int> RingPressure,
    long FramesProcessed,
    double ThroughputHz,
    double AvgExecUs,
    double? LatencyP50Us,
    string Health,
    double SampledAt);

/// <summary>
/// Samples a pipeline's tasks on a timer, and warns when a ring stays over 90 % full for more than a
/// second (a reader is probably stalled). It never renices anything: PYTHUSA's monitor does, which needs
/// privileges to raise priority and cannot be undone without them.
/// </summary>
internal sealed class PipelineMonitor : IDisposable
{
    private const int PressureWarningPercent = 90;
    private static readonly TimeSpan PressureWarningAfter = TimeSpan.FromSeconds(1);

    private readonly Pipeline pipeline;
    private readonly Action<string> warn;
    private readonly Timer timer;
    private readonly Dictionary<string, DateTime> fullSince = new(StringComparer.Ordinal);
    private readonly Lock gate = new();
    private volatile IReadOnlyDictionary<string, TaskMetrics>? latest;

    public PipelineMonitor(Pipeline pipeline, TimeSpan interval, Action<string> warn)
    {
        this.pipeline = pipeline;
        this.warn = warn;
        timer = new Timer(_ => Tick(), null, TimeSpan.Zero, interval);
    }

    public IReadOnlyDictionary<string, TaskMetrics>? Latest => latest;

    public void Dispose() => timer.Dispose();

    /// <summary>A sample of every task of <paramref name="manager"/>'s pipeline.</summary>
    public static IReadOnlyDictionary<string, TaskMetrics> Sample(PipelineManager manager)
    {
        var status = manager.Status();
        var fill = status.Streams.ToDictionary(p => p.Key, p => (int)Math.Round(100 * p.Value.Fill), StringComparer.Ordinal);
        var now = System.Diagnostics.Stopwatch.GetTimestamp() / (double)System.Diagnostics.Stopwatch.Frequency;
        var result = new Dictionary<string, TaskMetrics>(StringComparer.Ordinal);
        foreach (var task in manager.Pipeline.Spec.Tasks)
        {
            var w = status.Workers.GetValueOrDefault(task.Name);
            var pid = w?.Pid;
            var rings = task.Reads.Values.Concat(task.Writes.Values).Distinct(StringComparer.Ordinal).ToDictionary(s => s, s => fill.GetValueOrDefault(s), StringComparer.Ordinal);
            result[task.Name] = new TaskMetrics(
                task.Name,
                pid,
                w?.CpuPercent ?? 0,
                Math.Round((w?.RssBytes ?? 0) / (double)(1 << 20), 3),
                pid is { } p ? NiceOf(p) : null,
                rings,
                w?.FramesProcessed ?? 0,
                w?.ThroughputHz ?? 0,
                w?.AvgExecUs ?? 0,
                w is { HasFigures: true, LatencyUs: { } latency } ? latency.P50 : null,
                w?.Health ?? "stopped",
                now);
        }

        return result;
    }

    private void Tick()
    {
        if (!pipeline.IsStarted || pipeline.IsClosed || !pipeline.IsCompiled)
        {
            return;
        }

        lock (gate)
        {
            try
            {
                var sample = Sample(pipeline.Manager);
                latest = sample;
                var now = DateTime.UtcNow;
                foreach (var (stream, percent) in sample.Values.SelectMany(m => m.RingPressure).DistinctBy(p => p.Key))
                {
                    if (percent <= PressureWarningPercent)
                    {
                        fullSince.Remove(stream);
                    }
                    else if (!fullSince.TryGetValue(stream, out var since))
                    {
                        fullSince[stream] = now;
                    }
                    else if (now - since > PressureWarningAfter)
                    {
                        warn($"stream '{stream}' has stayed {percent} % full for {(now - since).TotalSeconds:0.0} s: a reader may be stalled");
                        fullSince[stream] = now;
                    }
                }
            }
            catch (ObjectDisposedException)
            {
                // The pipeline closed meanwhile.
            }
        }
    }

    private static int? NiceOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[16], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }
}
