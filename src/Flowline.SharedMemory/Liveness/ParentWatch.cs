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
/// process.
/// </remarks>
public static class ParentWatch
{
    /// <summary>The exit code of a process ended because its parent died.</summary>
    public const int ParentDiedExitCode = 86;

    /// <summary>
    /// Starts watching <paramref name="parentPid"/>; when it exits, this process exits with
    /// <see cref="ParentDiedExitCode"/>. Exits at once if the parent is already gone.
    /// </summary>
    public static void ExitWhenParentDies(int parentPid) => Watch(parentPid, () => Environment.Exit(ParentDiedExitCode));

    /// <summary>Runs <paramref name="onExit"/> on a background thread when <paramref name="pid"/> exits.</summary>
    public static unsafe void Watch(int pid, Action onExit)
    {
        ArgumentNullException.ThrowIfNull(onExit);
        var fd = (int)LibC.Syscall(Syscalls.PidfdOpen, pid, 0, 0, 0, 0, 0);
        if (fd < 0)
        {
            // ESRCH: the process is already gone.
            onExit();
            return;
        }

        var thread = new Thread(() =>
        {
            LibC.PollFd pfd;
            pfd.Fd = fd;
            pfd.Events = LibC.PollIn;
            pfd.Revents = 0;
            while (true)
            {
                var rc = LibC.Poll(&pfd, 1, -1);
                if (rc > 0 || (rc < 0 && LibC.Errno != LibC.EIntr))
                {
                    break;
                }
            }

            LibC.Close(fd);
            onExit();
        })
        {
            IsBackground = true,
            Name = $"flowline-watch-{pid}",
        };
        thread.Start();
    }
}
