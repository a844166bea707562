using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Liveness;

namespace Flowline.SharedMemory.Regions;

/// <summary>
/// The header at offset 0 of every region: what it is, which layout it has, and who created it.
/// </summary>
/// <remarks>
/// <code>
///  0       8       16      24      32      40      48      56      64            128
///  +-------+---+---+-------+-------+-------+-------+-------+-------+-- ... ------+
///  | magic |ver|kind| hash | total | owner | id    |created| (reserved)          |
///  +-------+---+---+-------+-------+-------+-------+-------+-------+-- ... ------+
///  magic    u64  "FLOWLINE" (0x454E494C574F4C46); written last, so a region is never seen half-made
///  ver      u32  <see cref="LayoutVersion"/>
///  kind     u32  <see cref="RegionKind"/>
///  hash     u64  FNV-1a of the kind's layout signature (offsets and sizes of every structure)
///  total    i64  size of the region in bytes
///  owner    u64  the creator: pid and start time packed (<see cref="ProcessIdentity"/>)
///  id       u64  random identity of this incarnation of the region
///  created  i64  creation time, Unix milliseconds
/// </code>
/// Regions are built under a temporary name and linked into place, so a region that can be opened by
/// name is always complete.
/// </remarks>
internal static class RegionHeader
{
    public const ulong Magic = 0x454E494C574F4C46; // "FLOWLINE" in little-endian bytes
    public const uint LayoutVersion = 2;
    public const int Size = 128;

    public const int MagicOffset = 0;
    public const int VersionOffset = 8;
    public const int KindOffset = 12;
    public const int HashOffset = 16;
    public const int TotalBytesOffset = 24;
    public const int OwnerOffset = 32;
    public const int RegionIdOffset = 40;
    public const int CreatedOffset = 48;

    /// <summary>The part of every layout signature that describes this header.</summary>
    public static readonly string Signature =
        $"header:size={Size},magic@{MagicOffset},version@{VersionOffset}={LayoutVersion},kind@{KindOffset},hash@{HashOffset}," +
        $"total@{TotalBytesOffset},owner@{OwnerOffset},id@{RegionIdOffset},created@{CreatedOffset}";

    /// <summary>FNV-1a, 64-bit, of a layout signature.</summary>
    public static ulong Hash(string signature)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in signature)
        {
            hash ^= c;
            hash *= 1099511628211UL;
        }

        return hash;
    }

    public static unsafe ulong ReadMagic(byte* region) => Ordered.GetULongVolatile(region + MagicOffset);

    public static unsafe uint ReadVersion(byte* region) => Ordered.GetUInt(region + VersionOffset);

    public static unsafe RegionKind ReadKind(byte* region) => (RegionKind)Ordered.GetUInt(region + KindOffset);

    public static unsafe ulong ReadHash(byte* region) => Ordered.GetULong(region + HashOffset);

    public static unsafe long ReadTotalBytes(byte* region) => Ordered.GetLong(region + TotalBytesOffset);

    public static unsafe ProcessIdentity ReadOwner(byte* region) => ProcessIdentity.Unpack(Ordered.GetULong(region + OwnerOffset));

    public static unsafe ulong ReadRegionId(byte* region) => Ordered.GetULong(region + RegionIdOffset);

    public static unsafe long ReadCreatedUnixMs(byte* region) => Ordered.GetLong(region + CreatedOffset);

    /// <summary>Writes the header of a new region; the magic number goes last, with release semantics.</summary>
    public static unsafe void Write(byte* region, RegionKind kind, ulong layoutHash, long totalBytes, ulong regionId)
    {
        Ordered.PutUInt(region + VersionOffset, LayoutVersion);
        Ordered.PutUInt(region + KindOffset, (uint)kind);
        Ordered.PutULong(region + HashOffset, layoutHash);
        Ordered.PutLong(region + TotalBytesOffset, totalBytes);
        Ordered.PutULong(region + OwnerOffset, ProcessIdentity.Current.Pack(1));
        Ordered.PutULong(region + RegionIdOffset, regionId);
        Ordered.PutLong(region + CreatedOffset, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        Ordered.PutULongOrdered(region + MagicOffset, Magic);
    }
}
