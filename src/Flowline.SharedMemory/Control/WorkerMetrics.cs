using System.Runtime.InteropServices;

namespace Flowline.SharedMemory;

/// <summary>
/// The figures a worker publishes in its control block, read by the manager without messaging the
/// worker (D8). Times are in nanoseconds; rates in hertz. A blittable value copied under a seqlock.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct WorkerMetrics
{
    /// <summary>How many inputs the per-input counters cover (the rest are ignored).</summary>
    public const int MaxInputs = 8;

    /// <summary>Frames computed (kernels), written (sources) or consumed (sinks).</summary>
    public long FramesProcessed;

    /// <summary>Frames written to outputs.</summary>
    public long OutputFrames;

    /// <summary>The last execution time (compute and publication).</summary>
    public long LastExecNs;

    /// <summary>Mean execution time over the window.</summary>
    public double AvgExecNs;

    /// <summary>Population standard deviation of the execution times over the window.</summary>
    public double JitterNs;

    /// <summary>How many executions the window holds (at most 1,000).</summary>
    public int Window;

    /// <summary>Reserved for alignment.</summary>
    public int Reserved;

    /// <summary>(n - 1) / (t_last - t_first) over the window's completion times.</summary>
    public double ThroughputHz;

    /// <summary>When the last frame completed (<see cref="MonotonicClock"/>, ns); 0 before the first.</summary>
    public long LastProgressNs;

    /// <summary>When these figures were published (ns).</summary>
    public long PublishedNs;

    /// <summary>End-to-end latency (now minus the frame's origin timestamp) at completion: 50th percentile.</summary>
    public long LatencyP50Ns;

    /// <summary>90th percentile of the end-to-end latency.</summary>
    public long LatencyP90Ns;

    /// <summary>99th percentile of the end-to-end latency.</summary>
    public long LatencyP99Ns;

    /// <summary>Largest end-to-end latency in the window.</summary>
    public long LatencyMaxNs;

    /// <summary>Frame synchronisation: generations whose frame ids disagreed.</summary>
    public long SkewEvents;

    /// <summary>Frame synchronisation: older frames dropped to line the inputs up.</summary>
    public long SkippedGenerations;

    /// <summary>Frame synchronisation: waits for a matching frame that ran out of time.</summary>
    public long SyncTimeouts;

    /// <summary>Writes a source could not make in time (missed its rate).</summary>
    public long MissedWrites;

    /// <summary>Frames dropped because a latest-delivery input was overwritten while in use (their outputs were not published).</summary>
    public long TornFrames;

    /// <summary>Frames each trigger input skipped (latest delivery).</summary>
    public InputCounters SkippedPerInput;

    /// <summary>Copies of auxiliary inputs discarded because their writer overwrote them meanwhile (the worker kept computing with the last intact copy).</summary>
    public long AuxiliaryTornCopies;

    /// <summary>The worker's predictive waits that had a plan (<see cref="WaitCounters.PredictedWaits"/>).</summary>
    public long PredictedWaits;

    /// <summary>Those whose frame came in the planned window (<see cref="WaitCounters.PredictedHits"/>).</summary>
    public long PredictedHits;

    /// <summary>The worker's waits woken early by a writer (<see cref="WaitCounters.EarlyWakes"/>).</summary>
    public long EarlyWakes;

    /// <summary>Those whose frame came while they spun (<see cref="WaitCounters.EarlyWakeHits"/>).</summary>
    public long EarlyWakeHits;

    /// <summary>A paced source: its pacer's interval (<see cref="Diagnostics.Pacer.IntervalNs"/>); 0 for a worker without a pacer (decision 161).</summary>
    public long PacerIntervalNs;

    /// <summary>A paced source: how long before each intended time it wakes its readers (<see cref="Diagnostics.Pacer.WakeLeadNs"/>).</summary>
    public long PacerWakeLeadNs;

    /// <summary>A paced source: intended times its pacer returned (<see cref="Diagnostics.Pacer.Intervals"/>).</summary>
    public long PacerIntervals;

    /// <summary>Intervals in which it woke its readers early (<see cref="Diagnostics.Pacer.EarlyWakes"/>).</summary>
    public long PacerEarlyWakes;

    /// <summary>Intervals without an early wake-up because of the share bound (<see cref="Diagnostics.Pacer.BoundSkips"/>).</summary>
    public long PacerBoundSkips;

    /// <summary>Early wake-ups called after the intended time (<see cref="Diagnostics.Pacer.LateWakes"/>).</summary>
    public long PacerLateWakes;

    /// <summary>Intervals it came back to after their intended time (<see cref="Diagnostics.Pacer.Overdue"/>).</summary>
    public long PacerOverdue;

    /// <summary>The timer lateness its pacer learnt (<see cref="Diagnostics.Pacer.TimerLatenessNs"/>).</summary>
    public long PacerTimerLatenessNs;

    /// <summary>Eight counters, one per input.</summary>
    [System.Runtime.CompilerServices.InlineArray(MaxInputs)]
    public struct InputCounters
    {
        private long element;
    }
}
