using Flowline.SharedMemory.Interop;

namespace Flowline.SharedMemory.Liveness;

/// <summary>
/// Ends a child process when its parent dies, so that workers and test peers never outlive the
/// process that started them.
/// </summary>
/// <remarks>
/// A watcher thread polls a pidfd of the parent (Linux 5.3+), which becomes readable when the parent
/// exits: no polling interval, no signal handler. <c>PR_SET_PDEATHSIG</c> is not used because it fires
/// when the parent <em>thread</em> that forked exits, and .NET forks from whichever thread starts the
/// process. Where no pidfd can be opened (a seccomp filter, an old kernel), the pid is checked every
/// half second instead.
/// </remarks>
public static class ParentWatch
{
    /// <summary>The exit code of a process ended because its parent died.</summary>
    public const int ParentDiedExitCode = 86;

    /// <summary>
    /// Starts watching <paramref name="parentPid"/>; when it exits, this process exits with
    /// <see cref="ParentDiedExitCode"/>. Exits at once if the parent is already gone.
    /// </summary>
    public static void ExitWhenParentDies(int parentPid)
    {
        Watch(parentPid, ExitNow);

        // Checked after the pidfd is open: a parent that died before was replaced as our parent, and its
        // pid may since name an unrelated process that the pidfd now watches.
        if (LibC.GetPPid() != parentPid)
        {
            ExitNow();
        }
    }

    /// <summary>Runs <paramref name="onExit"/> on a background thread when <paramref name="pid"/> exits (at once if it has).</summary>
    public static void Watch(int pid, Action onExit)
    {
        ArgumentNullException.ThrowIfNull(onExit);
        var fd = (int)LibC.Syscall(Syscalls.PidfdOpen, pid, 0, 0, 0, 0, 0);
        if (fd >= 0)
        {
            StartThread(pid, () => WaitReadable(fd), onExit);
        }
        else if (LibC.Errno == LibC.ESrch)
        {
            onExit();
        }
        else
        {
            StartThread(pid, () => PollUntilGone(pid), onExit);
        }
    }

    private static void ExitNow() => Environment.Exit(ParentDiedExitCode);

    private static void StartThread(int pid, Action wait, Action onExit)
    {
        var thread = new Thread(() =>
        {
            wait();
            onExit();
        })
        {
            IsBackground = true,
            Name = $"flowline-watch-{pid}",
        };
        thread.Start();
    }

    private static unsafe void WaitReadable(int fd)
    {
        LibC.PollFd pfd;
        pfd.Fd = fd;
        pfd.Events = LibC.PollIn;
        pfd.Revents = 0;
        while (true)
        {
            var rc = LibC.Poll(&pfd, 1, -1);
            if (rc > 0)
            {
                break;
            }

            if (rc < 0 && LibC.Errno != LibC.EIntr)
            {
                // poll itself failed: keep watching, slowly, rather than declare the process gone.
                Thread.Sleep(500);
            }
        }

        LibC.Close(fd);
    }

    private static void PollUntilGone(int pid)
    {
        var identity = ProcessIdentity.Of(pid);
        while (identity is { } id && id.IsAlive())
        {
            Thread.Sleep(500);
        }
    }
}
