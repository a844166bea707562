using System.Runtime.InteropServices;

namespace Flowline.SharedMemory.Interop;

/// <summary>System call numbers for the architectures Flowline supports.</summary>
internal static class Syscalls
{
    /// <summary><c>SYS_futex</c>: 202 on x86-64, 98 on arm64.</summary>
    public static readonly long Futex = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 202,
        Architecture.Arm64 => 98,
        _ => -1,
    };

    /// <summary><c>SYS_pidfd_open</c>: 434 on both x86-64 and arm64 (Linux 5.3+).</summary>
    public const long PidfdOpen = 434;

    /// <summary><c>SYS_futex_waitv</c>: 449 on both x86-64 and arm64 (Linux 5.16+).</summary>
    public const long FutexWaitv = 449;

    /// <summary>Throws unless the process runs on Linux x64 or arm64.</summary>
    public static void EnsureSupported()
    {
        if (!OperatingSystem.IsLinux() || Futex < 0)
        {
            throw new PlatformNotSupportedException(
                $"Flowline shared memory needs Linux on x64 or arm64; this is {RuntimeInformation.OSDescription} on {RuntimeInformation.ProcessArchitecture}.");
        }
    }
}
