using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// A worker's rolling figures over its last 1,000 executions: mean and population standard deviation of
/// the execution time (shmpipeline's <c>avg_exec_us</c> and <c>jitter_us_rms</c>), throughput from the
/// completion times, and end-to-end latency percentiles. Fixed arrays: nothing is allocated per frame.
/// </summary>
internal sealed class MetricsWindow
{
    /// <summary>The window's size (shmpipeline's <c>ROLLING_METRICS_WINDOW</c>).</summary>
    public const int Size = 1000;

    private readonly long[] execNs = new long[Size];
    private readonly long[] completedNs = new long[Size];
    private readonly long[] latencyNs = new long[Size];
    private readonly long[] sorted = new long[Size];
    private int count;
    private int next;
    private double execSum;
    private double execSquares;
    private long lastExec;
    private long lastCompleted;

    /// <summary>Frames recorded since the start.</summary>
    public long Frames { get; private set; }

    /// <summary>Records one execution that took <paramref name="exec"/> ns and completed at <paramref name="completed"/> (ns) for a frame that originated at <paramref name="originNs"/>.</summary>
    public void Record(long exec, long completed, long originNs)
    {
        if (count == Size)
        {
            var old = execNs[next];
            execSum -= old;
            execSquares -= (double)old * old;
        }
        else
        {
            count++;
        }

        execNs[next] = exec;
        completedNs[next] = completed;
        latencyNs[next] = originNs > 0 ? Math.Max(0, completed - originNs) : 0;
        execSum += exec;
        execSquares += (double)exec * exec;
        next = (next + 1) % Size;
        lastExec = exec;
        lastCompleted = completed;
        Frames++;
    }

    /// <summary>Fills the timing fields of <paramref name="metrics"/>.</summary>
    public void Fill(ref WorkerMetrics metrics)
    {
        metrics.FramesProcessed = Frames;
        metrics.LastExecNs = lastExec;
        metrics.LastProgressNs = lastCompleted;
        metrics.Window = count;
        if (count == 0)
        {
            return;
        }

        var mean = execSum / count;
        metrics.AvgExecNs = mean;
        metrics.JitterNs = Math.Sqrt(Math.Max(0, (execSquares / count) - (mean * mean)));

        // The oldest completion in the window is at `next` once the window is full, at 0 before.
        var first = completedNs[count == Size ? next : 0];
        var span = lastCompleted - first;
        metrics.ThroughputHz = count > 1 && span > 0 ? (count - 1) * 1e9 / span : 0;

        Array.Copy(latencyNs, sorted, count);
        Array.Sort(sorted, 0, count);
        metrics.LatencyP50Ns = sorted[Rank(0.50)];
        metrics.LatencyP90Ns = sorted[Rank(0.90)];
        metrics.LatencyP99Ns = sorted[Rank(0.99)];
        metrics.LatencyMaxNs = sorted[count - 1];
    }

    private int Rank(double quantile) => Math.Clamp((int)Math.Ceiling(quantile * count) - 1, 0, count - 1);
}
