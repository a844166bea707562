using Flowline.SharedMemory.Interop;

namespace Flowline.SharedMemory.Regions;

/// <summary>
/// The checks a directory of Flowline's shared memory must pass before a region is created or opened
/// in it: <c>/dev/shm/flowline</c> itself, and each namespace directory (control-block namespaces
/// included).
/// </summary>
/// <remarks>
/// <para>The directory is opened with <c>O_NOFOLLOW | O_DIRECTORY</c> and checked with <c>fstat</c>
/// (<c>statx</c> on the descriptor), so a symbolic link is refused rather than followed.</para>
/// <para>The root is shared by every user, like <c>/tmp</c>: it must not be a link, and if others may
/// write to it, or another user than this one or root owns it, it must have the sticky bit (so nobody
/// but its owner removes or renames another user's namespace; a namespace directory swapped by the
/// root's owner fails its own check, below, when it is next opened). A namespace directory must belong to this user and have mode 0700: nobody else
/// may read or write the frames in it. Only the owner of a directory can change it, so a directory that
/// passes these checks cannot be swapped by another user afterwards.</para>
/// </remarks>
internal static unsafe class TrustedDirectory
{
    private const int StickyBit = 0x200; // 01000
    private const int GroupOrOtherWrite = 0x12; // 0022
    private const int GroupOrOtherAny = 0x3F; // 0077

    /// <summary>Throws <see cref="UntrustedDirectoryException"/> if the root exists and may not be trusted.</summary>
    public static void CheckRoot(string path)
    {
        if (RootProblem(path) is { } problem)
        {
            throw new UntrustedDirectoryException(problem);
        }
    }

    /// <summary>Throws <see cref="UntrustedDirectoryException"/> if the namespace directory exists and may not be trusted.</summary>
    public static void CheckNamespace(string path)
    {
        if (NamespaceProblem(path) is { } problem)
        {
            throw new UntrustedDirectoryException(problem);
        }
    }

    /// <summary>Why the root directory at <paramref name="path"/> may not be used, or null (also when it does not exist).</summary>
    public static string? RootProblem(string path)
    {
        if (Inspect(path, out var uid, out var mode) is { } problem)
        {
            return problem;
        }

        var me = LibC.GetEUid();
        if (uid is { } owner && owner != me && owner != 0 && (mode & StickyBit) == 0)
        {
            return $"{path} belongs to uid {owner}, neither this user (uid {me}) nor root, and has no sticky bit: its owner or anyone it lets write could remove or replace every namespace in it. " +
                   $"Remove it (as uid {owner} or root: rm -rf {path}) and run again; Flowline creates it anew (mode 1777, like /tmp).";
        }

        if ((mode & GroupOrOtherWrite) != 0 && (mode & StickyBit) == 0)
        {
            return $"{path} may be written by other users (mode {Octal(mode)}) but has no sticky bit: anyone could remove or replace a namespace in it. " +
                   $"Run `chmod 1777 {path}` (shared by several users, like /tmp) or `chmod 700 {path}` (one user).";
        }

        return null;
    }

    /// <summary>Why the namespace directory at <paramref name="path"/> may not be used, or null (also when it does not exist).</summary>
    public static string? NamespaceProblem(string path)
    {
        if (Inspect(path, out var uid, out var mode) is { } problem)
        {
            return problem;
        }

        var me = LibC.GetEUid();
        if (uid is { } owner && owner != me)
        {
            return $"namespace directory {path} belongs to uid {owner}, not this user (uid {me}): another user made it and could read or change its frames. " +
                   $"Use another namespace, or remove it (as uid {owner} or root: rm -rf {path}).";
        }

        if (uid is not null && (mode & GroupOrOtherAny) != 0)
        {
            return $"namespace directory {path} has mode {Octal(mode)}; Flowline needs 0700 (nobody but its owner may read or change the frames in it). " +
                   $"Run `chmod 700 {path}` if you trust what it holds, or remove it (rm -rf {path}).";
        }

        return null;
    }

    /// <summary>
    /// Opens <paramref name="path"/> without following a symbolic link and reads its owner and mode;
    /// returns why it cannot be used as a directory, or null. <paramref name="uid"/> is null if it does not exist.
    /// </summary>
    private static string? Inspect(string path, out uint? uid, out int mode)
    {
        uid = null;
        mode = 0;
        var fd = LibC.Open(path, LibC.ORdOnly | LibC.OCloExec | LibC.ODirectory | LibC.ONoFollow, 0);
        if (fd < 0)
        {
            var errno = LibC.Errno;
            return errno switch
            {
                LibC.ENoEnt => null,
                LibC.ELoop or LibC.ENotDir when IsSymbolicLink(path) => $"{path} is a symbolic link: it could send Flowline's shared memory anywhere. Remove it (rm {path}) and run again.",
                LibC.ENotDir => $"{path} is not a directory. Remove it (rm {path}) and run again.",
                _ => $"cannot open {path}: {LibC.Describe(errno)}.",
            };
        }

        try
        {
            LibC.StatxBuffer stat;
            if (LibC.Statx(fd, "", LibC.AtEmptyPath, LibC.StatxBasicStats, &stat) != 0)
            {
                return $"cannot read the owner and mode of {path}: {LibC.Describe(LibC.Errno)}.";
            }

            uid = stat.Uid;
            mode = stat.Mode & 0xFFF;
            return null;
        }
        finally
        {
            LibC.Close(fd);
        }
    }

    private static bool IsSymbolicLink(string path)
    {
        LibC.StatxBuffer stat;
        return LibC.Statx(LibC.AtFdCwd, path, LibC.AtSymlinkNoFollow, LibC.StatxBasicStats, &stat) == 0 && (stat.Mode & LibC.SIfMt) == LibC.SIfLnk;
    }

    private static string Octal(int mode) => "0" + Convert.ToString(mode, 8);
}
