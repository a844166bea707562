using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Regions;

namespace Flowline.SharedMemory;

/// <summary>
/// Where regions live: <c>/dev/shm/flowline/&lt;namespace&gt;/&lt;name&gt;</c>, and the rules for their names.
/// </summary>
/// <remarks>
/// A namespace keeps the regions of one pipeline apart from every other pipeline's. Names are made of
/// letters, digits, <c>_</c>, <c>-</c> and <c>.</c>, do not start with a dot, and are at most
/// <see cref="MaxNameLength"/> characters, so that no name can escape its directory.
/// </remarks>
public static class SharedMemoryNamespace
{
    /// <summary>The directory that holds every namespace.</summary>
    public const string Root = "/dev/shm/flowline";

    /// <summary>The longest namespace or region name.</summary>
    public const int MaxNameLength = 128;

    /// <summary>The directory of a namespace.</summary>
    public static string DirectoryOf(string @namespace)
    {
        Validate(@namespace, "namespace");
        return Path.Combine(Root, @namespace);
    }

    /// <summary>The file of a region.</summary>
    public static string PathOf(string @namespace, string name)
    {
        Validate(name, "region name");
        return Path.Combine(DirectoryOf(@namespace), name);
    }

    /// <summary>Throws <see cref="ArgumentException"/> with a clear message if <paramref name="name"/> is not a valid name.</summary>
    public static void Validate(string? name, string what = "name")
    {
        var problem = Check(name);
        if (problem is not null)
        {
            throw new ArgumentException($"invalid {what} '{name}': {problem}", what);
        }
    }

    /// <summary>Returns why <paramref name="name"/> is not valid, or null if it is.</summary>
    public static string? Check(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "it is empty";
        }

        if (name.Length > MaxNameLength)
        {
            return $"it has {name.Length} characters; the limit is {MaxNameLength}";
        }

        if (name[0] == '.')
        {
            return "it starts with '.'";
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.'))
            {
                return $"character '{c}' is not allowed; use letters, digits, '_', '-' and '.'";
            }
        }

        return null;
    }

    /// <summary>True if the region file exists.</summary>
    public static bool Exists(string @namespace, string name) => File.Exists(PathOf(@namespace, name));

    /// <summary>The names of the regions in a namespace (empty if the namespace does not exist).</summary>
    public static IReadOnlyList<string> List(string @namespace)
    {
        var dir = DirectoryOf(@namespace);
        if (!Directory.Exists(dir))
        {
            return [];
        }

        return Directory.EnumerateFiles(dir)
            .Select(Path.GetFileName)
            .Where(n => n is not null && Check(n) is null)
            .Select(n => n!)
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>The namespaces that exist now.</summary>
    public static IReadOnlyList<string> ListNamespaces() =>
        Directory.Exists(Root)
            ? Directory.EnumerateDirectories(Root).Select(Path.GetFileName).Where(n => n is not null && Check(n) is null).Select(n => n!).Order(StringComparer.Ordinal).ToList()
            : [];

    /// <summary>
    /// Removes a region's name. Processes that map it keep their mapping until they unmap it. Removes the
    /// namespace directory when it becomes empty. Returns false if the region did not exist.
    /// </summary>
    public static bool Unlink(string @namespace, string name)
    {
        var path = PathOf(@namespace, name);
        bool removed;
        int errno;
        using (Regions.NamespaceLock.Acquire(@namespace))
        {
            removed = LibC.Unlink(path) == 0;
            errno = LibC.Errno;
        }

        if (!removed && errno != LibC.ENoEnt)
        {
            throw new SharedMemoryException($"cannot remove region '{@namespace}/{name}' ({path}): {LibC.Describe(errno)}.");
        }

        RemoveDirectoryIfEmpty(@namespace);
        return removed;
    }

    /// <summary>
    /// Removes every region of a namespace and the namespace directory; returns how many regions were
    /// removed. The lease of a live manager stays (and so does the directory).
    /// </summary>
    public static int UnlinkAll(string @namespace)
    {
        var dir = DirectoryOf(@namespace);
        if (!Directory.Exists(dir))
        {
            return 0;
        }

        var count = 0;
        foreach (var file in Directory.EnumerateFiles(dir))
        {
            if (Path.GetFileName(file) == NamespaceLease.FileName)
            {
                // A live manager's lease stays (removing it would let a second manager in); a dead one's goes.
                NamespaceLease.RemoveIfAbandoned(@namespace);
                continue;
            }

            if (LibC.Unlink(file) == 0 && Check(Path.GetFileName(file)) is null)
            {
                count++;
            }
        }

        RemoveDirectoryIfEmpty(@namespace);
        return count;
    }

    internal static void RemoveDirectoryIfEmpty(string @namespace)
    {
        // rmdir fails with ENOTEMPTY while other regions remain, and with ENOENT if another process removed it.
        _ = LibC.RmDir(DirectoryOf(@namespace));
    }

    internal static string EnsureDirectory(string @namespace)
    {
        if (!Directory.Exists(Root))
        {
            // The root is shared by every user, like /tmp: world-writable with the sticky bit. It is made
            // private first, so that nobody sees it writable without the sticky bit in between.
            Directory.CreateDirectory(Root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            try
            {
                File.SetUnixFileMode(Root, (UnixFileMode)0b1_111_111_111);
            }
            catch (UnauthorizedAccessException)
            {
                // Another user created it first.
            }
        }

        TrustedDirectory.CheckRoot(Root);
        var dir = DirectoryOf(@namespace);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                break;
            }
            catch (IOException) when (attempt < 16 && !File.Exists(dir))
            {
                // mkdir found the directory, and it was gone when .NET checked it: a thread or process that unlinked the
                // namespace's last region removed it in between (RemoveDirectoryIfEmpty). Make it again (a file of that
                // name is a real error: it is rethrown).
            }
        }

        TrustedDirectory.CheckNamespace(dir);
        return dir;
    }

    /// <summary>Checks the root and a namespace's directory, if they exist, before a region in it is opened (<see cref="TrustedDirectory"/>).</summary>
    internal static void CheckTrusted(string @namespace)
    {
        TrustedDirectory.CheckRoot(Root);
        TrustedDirectory.CheckNamespace(DirectoryOf(@namespace));
    }
}
