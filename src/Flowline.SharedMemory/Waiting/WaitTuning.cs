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
}
