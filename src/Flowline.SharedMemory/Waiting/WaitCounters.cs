using Flowline.SharedMemory.Waiting;

namespace Flowline.SharedMemory;

/// <summary>
/// How the waits of this process ended, counted process-wide since it started (a worker process reports
/// them in its status; a worker on a thread reports <see cref="ThisThread"/>): predictive waits that followed a plan and found their frame in its window, and waits
/// woken early by a writer (<see cref="StreamWriter{T}.WakeReadersEarly"/>) that found their frame while
/// they spun for it. A count that stays at 0 means the mechanism never applied.
/// </summary>
public static class WaitCounters
{
    /// <summary>Predictive waits that had a plan: slept to (or were woken before) its time, then spun across the expected arrival.</summary>
    public static long PredictedWaits => Waiter.PredictedSpins;

    /// <summary>Predictive waits with a plan whose frame came while they spun.</summary>
    public static long PredictedHits => Waiter.PredictedHits;

    /// <summary>Waits woken early by a writer with no frame yet, which then spun for it.</summary>
    public static long EarlyWakes => Waiter.EarlyWakes;

    /// <summary>Early-woken waits whose frame came while they spun (the others slept again and were woken by the publication).</summary>
    public static long EarlyWakeHits => Waiter.EarlyWakeHits;

    /// <summary>
    /// The same four counts, of the calling thread's waits only: what a worker running on a thread of a
    /// process that runs others (<c>placement: thread</c>) reports as its own.
    /// </summary>
    public static WaitCounts ThisThread
    {
        get
        {
            var (predictedWaits, predictedHits, earlyWakes, earlyWakeHits) = Waiter.ThisThread;
            return new WaitCounts(predictedWaits, predictedHits, earlyWakes, earlyWakeHits);
        }
    }

    /// <summary>
    /// Sets what the calling thread does when one of its waits is woken before its frame (by a writer's
    /// early wake-up, or by its own timer in a predictive wait): a stage wakes the readers of its outputs in
    /// turn (<see cref="StreamWriter{T}.WakeReadersEarly"/>). Null clears it. The action runs on the waiting
    /// thread, inside the wait, at most once per early wake-up: keep it short and allocation-free.
    /// </summary>
    public static void OnWokenEarly(Action? action) => Waiter.OnWokenEarly(action);
}

/// <summary>How a thread's waits ended (see <see cref="WaitCounters"/>).</summary>
/// <param name="PredictedWaits">Predictive waits that had a plan.</param>
/// <param name="PredictedHits">Those whose frame came while they spun.</param>
/// <param name="EarlyWakes">Waits woken early by a writer with no frame yet.</param>
/// <param name="EarlyWakeHits">Those whose frame came while they spun.</param>
public readonly record struct WaitCounts(long PredictedWaits, long PredictedHits, long EarlyWakes, long EarlyWakeHits);
