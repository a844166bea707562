using Flowline.SharedMemory.Interop;

namespace Flowline.SharedMemory.Liveness;

/// <summary>What a <c>/proc</c> lookup found.</summary>
internal enum ProcLookup
{
    /// <summary>The process exists and its stat was read.</summary>
    Found,

    /// <summary>No process has that pid.</summary>
    NotFound,

    /// <summary>The stat could not be read (permissions, no procfs, ...): nothing is known.</summary>
    Unknown,
}

/// <summary>The fields Flowline reads from <c>/proc/&lt;pid&gt;/stat</c>.</summary>
/// <param name="State">The state letter: R, S, D, T, Z (zombie), X (dead), ...</param>
/// <param name="UserTicks">CPU time in user mode, in clock ticks (field 14).</param>
/// <param name="SystemTicks">CPU time in kernel mode, in clock ticks (field 15).</param>
/// <param name="StartTicks">Start time after boot, in clock ticks (field 22): with the pid, it identifies a process.</param>
/// <param name="ResidentPages">Resident set size in pages (field 24).</param>
internal readonly record struct ProcStat(char State, ulong UserTicks, ulong SystemTicks, ulong StartTicks, long ResidentPages)
{
    /// <summary>Clock ticks per second of the <c>/proc</c> time fields (USER_HZ, 100 on Linux).</summary>
    public const int TicksPerSecond = 100;

    /// <summary>True for a process that has exited (a zombie waiting to be reaped counts as exited).</summary>
    public bool HasExited => State is 'Z' or 'X' or 'x';

    /// <summary>Reads <c>/proc/&lt;pid&gt;/stat</c> without allocating; false if the process does not exist or cannot be read.</summary>
    public static bool TryRead(int pid, out ProcStat stat) => Read(pid, out stat) == ProcLookup.Found;

    /// <summary>
    /// Reads <c>/proc/&lt;pid&gt;/stat</c> without allocating, telling a process that does not exist
    /// (<see cref="ProcLookup.NotFound"/>) from one that could not be read (<see cref="ProcLookup.Unknown"/>).
    /// </summary>
    public static unsafe ProcLookup Read(int pid, out ProcStat stat)
    {
        stat = default;
        Span<byte> path = stackalloc byte[32];
        if (pid <= 0 || !TryFormatPath(pid, path))
        {
            return ProcLookup.NotFound;
        }

        Span<byte> buffer = stackalloc byte[2048];
        int length;
        fixed (byte* p = path)
        fixed (byte* b = buffer)
        {
            var fd = OpenRaw(p);
            if (fd < 0)
            {
                return LibC.Errno is LibC.ENoEnt or LibC.ESrch ? ProcLookup.NotFound : ProcLookup.Unknown;
            }

            try
            {
                var n = LibC.Read(fd, b, (nuint)buffer.Length);
                if (n <= 0)
                {
                    // A process that exits between open and read reads as ESRCH or empty.
                    return n == 0 || LibC.Errno == LibC.ESrch ? ProcLookup.NotFound : ProcLookup.Unknown;
                }

                length = (int)n;
            }
            finally
            {
                LibC.Close(fd);
            }
        }

        return TryParse(buffer[..length], out stat) ? ProcLookup.Found : ProcLookup.Unknown;
    }

    /// <summary>Parses the text of a stat file; the command name in parentheses may hold spaces and parentheses.</summary>
    public static bool TryParse(ReadOnlySpan<byte> text, out ProcStat stat)
    {
        stat = default;
        var close = text.LastIndexOf((byte)')');
        if (close < 0 || close + 2 >= text.Length)
        {
            return false;
        }

        // Fields after the command: index 0 is field 3 (state).
        var rest = text[(close + 2)..];
        var state = (char)rest[0];
        ulong utime = 0, stime = 0, start = 0;
        long rss = 0;
        var field = 0;
        var i = 0;
        while (i < rest.Length && field <= 21)
        {
            while (i < rest.Length && rest[i] == (byte)' ')
            {
                i++;
            }

            var begin = i;
            while (i < rest.Length && rest[i] != (byte)' ' && rest[i] != (byte)'\n')
            {
                i++;
            }

            var token = rest[begin..i];
            switch (field)
            {
                case 11: utime = ParseUnsigned(token); break;
                case 12: stime = ParseUnsigned(token); break;
                case 19: start = ParseUnsigned(token); break;
                case 21: rss = (long)ParseUnsigned(token); break;
                default: break;
            }

            field++;
        }

        if (field <= 19)
        {
            return false;
        }

        stat = new ProcStat(state, utime, stime, start, rss);
        return true;
    }

    private static ulong ParseUnsigned(ReadOnlySpan<byte> token)
    {
        ulong value = 0;
        foreach (var c in token)
        {
            if (c is < (byte)'0' or > (byte)'9')
            {
                return 0;
            }

            value = (value * 10) + (ulong)(c - '0');
        }

        return value;
    }

    private static bool TryFormatPath(int pid, Span<byte> path)
    {
        ReadOnlySpan<byte> prefix = "/proc/"u8;
        ReadOnlySpan<byte> suffix = "/stat\0"u8;
        prefix.CopyTo(path);
        if (!pid.TryFormat(path[prefix.Length..], out var digits, provider: System.Globalization.CultureInfo.InvariantCulture))
        {
            return false;
        }

        suffix.CopyTo(path[(prefix.Length + digits)..]);
        return true;
    }

    // The path is already UTF-8 and NUL-terminated on the stack, so no string is marshalled.
    private static unsafe int OpenRaw(byte* nulTerminatedPath) =>
        LibC.OpenRaw(nulTerminatedPath, LibC.ORdOnly | LibC.OCloExec, 0);
}
