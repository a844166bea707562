namespace Flowline.SharedMemory.Liveness;

/// <summary>
/// A process named by its pid and its start time, so that a reused pid is never mistaken for the
/// process that held it before.
/// </summary>
/// <param name="Pid">The process id.</param>
/// <param name="StartTicks">The start time after boot in clock ticks (<c>/proc/&lt;pid&gt;/stat</c> field 22).</param>
public readonly record struct ProcessIdentity(int Pid, ulong StartTicks)
{
    // An owner word packs a 3-bit state, a 22-bit pid and a 39-bit start time into one 64-bit value,
    // so that ownership changes with a single compare-and-swap. Linux pids are below 2^22
    // (PID_MAX_LIMIT), and 2^39 clock ticks at 100 Hz is 174 years of uptime.
    private const int StateBits = 3;
    private const int PidBits = 22;
    private const ulong StateMask = (1UL << StateBits) - 1;
    private const ulong PidMask = (1UL << PidBits) - 1;
    private const ulong StartMask = (1UL << (64 - StateBits - PidBits)) - 1;

    private static readonly Lazy<ProcessIdentity> CurrentIdentity = new(ReadCurrent);

    /// <summary>The current process.</summary>
    public static ProcessIdentity Current => CurrentIdentity.Value;

    /// <summary>
    /// False only when this process has provably exited: no process has the pid, the process with the pid
    /// started at another time, or it is a zombie. When <c>/proc</c> cannot be read, the answer is true:
    /// a live peer must never be treated as dead.
    /// </summary>
    public bool IsAlive()
    {
        if (Pid <= 0)
        {
            return false;
        }

        if (Pid == Environment.ProcessId)
        {
            return (StartTicks & StartMask) == (Current.StartTicks & StartMask);
        }

        return ProcStat.Read(Pid, out var stat) switch
        {
            ProcLookup.NotFound => false,
            ProcLookup.Found => !stat.HasExited && (stat.StartTicks & StartMask) == (StartTicks & StartMask),
            _ => true,
        };
    }

    /// <summary>Reads the identity of a running process, or null if it does not exist.</summary>
    public static ProcessIdentity? Of(int pid) =>
        ProcStat.TryRead(pid, out var stat) && !stat.HasExited ? new ProcessIdentity(pid, stat.StartTicks) : null;

    /// <inheritdoc/>
    public override string ToString() => $"pid {Pid}";

    /// <summary>Packs a state (0 to 7) and this identity into one owner word.</summary>
    internal ulong Pack(int state) =>
        ((StartTicks & StartMask) << (StateBits + PidBits)) | (((ulong)Pid & PidMask) << StateBits) | ((ulong)state & StateMask);

    /// <summary>The state of an owner word.</summary>
    internal static int StateOf(ulong word) => (int)(word & StateMask);

    /// <summary>The identity of an owner word.</summary>
    internal static ProcessIdentity Unpack(ulong word) =>
        new((int)((word >> StateBits) & PidMask), word >> (StateBits + PidBits));

    private static ProcessIdentity ReadCurrent()
    {
        var pid = Environment.ProcessId;
        if (!ProcStat.TryRead(pid, out var stat))
        {
            throw new SharedMemoryException($"cannot read /proc/{pid}/stat: Flowline needs Linux procfs to identify processes.");
        }

        return new ProcessIdentity(pid, stat.StartTicks);
    }
}
