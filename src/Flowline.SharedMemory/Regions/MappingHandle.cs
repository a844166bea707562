using System.Runtime.InteropServices;
using Flowline.SharedMemory.Interop;

namespace Flowline.SharedMemory.Regions;

/// <summary>
/// Owns one <c>mmap</c> of a region. Readers and writers take a reference, so the memory stays mapped
/// until the last user is disposed, whatever the order of disposal.
/// </summary>
internal sealed class MappingHandle : SafeHandle
{
    public MappingHandle(nint address, long length)
        : base(IntPtr.Zero, ownsHandle: true)
    {
        SetHandle(address);
        Length = length;
    }

    public long Length { get; }

    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Takes a reference that keeps the mapping alive; pair with <see cref="SafeHandle.DangerousRelease"/>.</summary>
    public void AddReference()
    {
        var success = false;
        DangerousAddRef(ref success);
        if (!success)
        {
            throw new ObjectDisposedException(nameof(MappingHandle));
        }
    }

    protected override bool ReleaseHandle() => LibC.MUnmap(handle, (nuint)Length) == 0;
}
