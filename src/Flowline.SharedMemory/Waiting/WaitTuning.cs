namespace Flowline.SharedMemory;

/// <summary>The constants of waiting; see <c>docs/shared-memory.md</c> for why they are what they are.</summary>
public static class WaitTuning
{
    /// <summary>
    /// How long a hybrid wait stays awake (spinning for the first fifth, then yielding) before it sleeps.
    /// On two cores, a longer spin starves the very process it waits for.
    /// </summary>
    public static readonly TimeSpan DefaultSpinTime = TimeSpan.FromMicroseconds(50);

    /// <summary>
    /// The longest a sleeping wait stays asleep before it checks its peers are alive: this bounds how
    /// late a dead writer or reader is noticed, and keeps idle wake-ups to 10 per second.
    /// </summary>
    public static readonly TimeSpan LivenessInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// The longest a wait woken early by a writer (<c>StreamWriter.WakeReadersEarly</c>) spins for its frame
    /// before it sleeps again (or its own spin time, if longer): a paced source wakes its readers
    /// <c>Pacer.DefaultWakeLeadNs</c> (30 µs) before it publishes, a stage passes the wake-up on at once,
    /// so a stage deeper in a chain waits for its upstream stages' computing as well. A frame that comes
    /// sooner ends the spin at once, so what a frame costs is the lead less the wake-up, not this.
    /// </summary>
    public static readonly TimeSpan EarlyWakeSpin = TimeSpan.FromMicroseconds(100);

    /// <summary>
    /// The default spin budget of a predictive wait: 3 % of the frame interval (30 µs a frame at 1 kHz),
    /// so that a worker at 1 kHz stays under 5 % of a core with its own work and wake-ups.
    /// </summary>
    public const double DefaultSpinBudget = 0.03;

    /// <summary>
    /// The spin budget of <paramref name="workers"/> workers sharing <paramref name="cores"/> cores: the
    /// budget as given while every worker has a core, shrunk in proportion when there are more workers
    /// than cores (so that stages spinning for their frames do not starve the stages computing them).
    /// </summary>
    public static double SharedSpinBudget(double budget, int workers, int cores) =>
        workers <= cores || workers <= 0 ? budget : budget * Math.Max(1, cores) / workers;

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="budget"/> is above 0 and at most 1.</summary>
    public static void ValidateSpinBudget(double budget, string name)
    {
        if (!(budget > 0 && budget <= 1))
        {
            throw new ArgumentException($"spin budget of {budget} is not valid: it is a fraction of a core, above 0 and at most 1 (0.03 spins 30 µs a frame at 1 kHz).", name);
        }
    }
}
