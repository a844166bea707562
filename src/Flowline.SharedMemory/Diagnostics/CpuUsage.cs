using Flowline.SharedMemory.Interop;

namespace Flowline.SharedMemory.Diagnostics;

/// <summary>CPU time and context switches of this process or thread, from <c>getrusage</c> (microsecond resolution).</summary>
/// <param name="CpuTime">User plus system time.</param>
/// <param name="VoluntarySwitches">Times the thread or process gave up the CPU to wait (each sleeping wait counts one).</param>
/// <param name="InvoluntarySwitches">Times the scheduler took the CPU away.</param>
internal readonly record struct CpuUsage(TimeSpan CpuTime, long VoluntarySwitches, long InvoluntarySwitches)
{
    /// <summary>The whole process: every thread, the runtime's included.</summary>
    public static CpuUsage Process() => Read(LibC.RUsageSelf);

    /// <summary>The calling thread only.</summary>
    public static CpuUsage Thread() => Read(LibC.RUsageThread);

    public static CpuUsage operator -(CpuUsage after, CpuUsage before) =>
        new(after.CpuTime - before.CpuTime, after.VoluntarySwitches - before.VoluntarySwitches, after.InvoluntarySwitches - before.InvoluntarySwitches);

    private static unsafe CpuUsage Read(int who)
    {
        LibC.RUsage usage;
        if (LibC.GetRUsage(who, &usage) != 0)
        {
            throw new SharedMemoryException($"getrusage failed: {LibC.Describe(LibC.Errno)}.");
        }

        var micros = (usage.UserSeconds + usage.SystemSeconds) * 1_000_000 + usage.UserMicroseconds + usage.SystemMicroseconds;
        return new CpuUsage(TimeSpan.FromMicroseconds(micros), usage.VoluntarySwitches, usage.InvoluntarySwitches);
    }
}
