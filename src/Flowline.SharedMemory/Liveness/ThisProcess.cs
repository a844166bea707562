using Flowline.SharedMemory.Interop;

namespace Flowline.SharedMemory.Liveness;

/// <summary>What a worker needs to know and set about itself and its peers: thread ids, CPU pinning, CPU time and memory.</summary>
public static class ThisProcess
{
    /// <summary>The kernel's id of the calling thread (<c>gettid</c>).</summary>
    public static int CurrentThreadId() => LibC.GetTid();

    /// <summary>
    /// Pins the calling thread to <paramref name="cpu"/>; returns null on success or why it could not
    /// (a CPU the machine or the process's cpuset does not have).
    /// </summary>
    public static unsafe string? TryPinCurrentThread(int cpu)
    {
        if (cpu < 0 || cpu >= 1024)
        {
            return $"CPU {cpu} is out of range";
        }

        var mask = stackalloc ulong[16];
        new Span<ulong>(mask, 16).Clear();
        mask[cpu / 64] = 1UL << (cpu % 64);
        return LibC.SchedSetAffinity(0, 16 * sizeof(ulong), mask) == 0
            ? null
            : $"sched_setaffinity to CPU {cpu} failed (errno {LibC.Errno}); this machine has {Environment.ProcessorCount} CPUs";
    }

    /// <summary>The CPU time (user and system) and resident memory of process <paramref name="pid"/>; false if it does not exist.</summary>
    public static bool TryReadUsage(int pid, out TimeSpan cpuTime, out long residentBytes)
    {
        if (!ProcStat.TryRead(pid, out var stat))
        {
            cpuTime = default;
            residentBytes = 0;
            return false;
        }

        cpuTime = TimeSpan.FromSeconds((double)(stat.UserTicks + stat.SystemTicks) / ProcStat.TicksPerSecond);
        residentBytes = stat.ResidentPages * Environment.SystemPageSize;
        return true;
    }

    /// <summary>
    /// The CPU time (user and system) of thread <paramref name="threadId"/> of this process alone, from
    /// <c>/proc/self/task/&lt;tid&gt;/stat</c> (<c>/proc/&lt;tid&gt;/stat</c> gives the whole process's);
    /// false if this process has no such thread.
    /// </summary>
    public static bool TryReadThreadCpuTime(int threadId, out TimeSpan cpuTime)
    {
        cpuTime = default;
        if (threadId <= 0)
        {
            return false;
        }

        byte[] text;
        try
        {
            text = File.ReadAllBytes($"/proc/self/task/{threadId}/stat");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }

        if (!ProcStat.TryParse(text, out var stat))
        {
            return false;
        }

        cpuTime = TimeSpan.FromSeconds((double)(stat.UserTicks + stat.SystemTicks) / ProcStat.TicksPerSecond);
        return true;
    }

    /// <summary>Sends <paramref name="signal"/> (15 for SIGTERM, 9 for SIGKILL) to process <paramref name="pid"/>; false if it does not exist.</summary>
    public static bool SendSignal(int pid, int signal) => pid > 0 && LibC.Kill(pid, signal) == 0;
}
