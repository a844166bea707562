using System.Runtime.CompilerServices;

namespace Flowline.SharedMemory.Interop;

/// <summary>
/// Reads and writes of words in shared memory that say which ordering they need, as Aeron's
/// <c>AtomicBuffer</c> names them, instead of raw <c>*(long*)</c> casts at call sites:
/// <list type="bullet">
/// <item><c>Get</c>/<c>Put</c>: plain; for words nobody else reads yet (a region being initialised before it
/// is published) or that only their owner touches.</item>
/// <item><c>GetVolatile</c>: an acquire load (<c>Volatile.Read</c>): what was written before
/// the matching release store is visible after it.</item>
/// <item><c>PutOrdered</c>: a release store (<c>Volatile.Write</c>): everything written
/// before it is visible to a reader that sees it. On x64 both are plain moves; they stop the compiler
/// and the JIT from reordering.</item>
/// <item><c>PutVolatile</c>, <c>CompareAndSet</c>, <c>GetAndAdd</c>: full fences (<see cref="Interlocked"/>).</item>
/// </list>
/// Every method is a single instruction once inlined (measured by <c>flowline bench streams</c>, docs/performance.md).
/// </summary>
internal static unsafe class Ordered
{
    /// <summary>A plain load of the 64-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long GetLong(byte* address) => *(long*)address;

    /// <summary>A plain store of the 64-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PutLong(byte* address, long value) => *(long*)address = value;

    /// <summary>An acquire load of the 64-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long GetLongVolatile(byte* address) => Volatile.Read(ref *(long*)address);

    /// <summary>A release store of the 64-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PutLongOrdered(byte* address, long value) => Volatile.Write(ref *(long*)address, value);

    /// <summary>A store with a full fence (an exchange) of the 64-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PutLongVolatile(byte* address, long value) => Interlocked.Exchange(ref *(long*)address, value);

    /// <summary>Sets the 64-bit word to <paramref name="update"/> if it holds <paramref name="expected"/>; true when it did.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool CompareAndSetLong(byte* address, long expected, long update) =>
        Interlocked.CompareExchange(ref *(long*)address, update, expected) == expected;

    /// <summary>Adds <paramref name="delta"/> to the 64-bit word atomically; returns the value before.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long GetAndAddLong(byte* address, long delta) => Interlocked.Add(ref *(long*)address, delta) - delta;

    /// <summary>A plain load of the unsigned 64-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong GetULong(byte* address) => *(ulong*)address;

    /// <summary>An acquire load of the unsigned 64-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong GetULongVolatile(byte* address) => Volatile.Read(ref *(ulong*)address);

    /// <summary>A release store of the unsigned 64-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PutULongOrdered(byte* address, ulong value) => Volatile.Write(ref *(ulong*)address, value);

    /// <summary>A plain load of the 32-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int GetInt(byte* address) => *(int*)address;

    /// <summary>A plain store of the 32-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PutInt(byte* address, int value) => *(int*)address = value;

    /// <summary>A plain load of the unsigned 32-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint GetUInt(byte* address) => *(uint*)address;

    /// <summary>A plain store of the unsigned 32-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PutUInt(byte* address, uint value) => *(uint*)address = value;

    /// <summary>A plain store of the unsigned 64-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PutULong(byte* address, ulong value) => *(ulong*)address = value;

    /// <summary>An acquire load of the 32-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int GetIntVolatile(byte* address) => Volatile.Read(ref *(int*)address);

    /// <summary>A store with a full fence (an exchange) of the 32-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PutIntVolatile(byte* address, int value) => Interlocked.Exchange(ref *(int*)address, value);

    /// <summary>A release store of the 32-bit word at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PutIntOrdered(byte* address, int value) => Volatile.Write(ref *(int*)address, value);
}
