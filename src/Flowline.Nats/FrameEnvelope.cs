using System.Buffers.Binary;
using Flowline.SharedMemory;

namespace Flowline.Nats;

/// <summary>
/// The fixed binary prefix every bridged frame carries before its payload, little-endian:
/// <code>
///  offset  size  field
///       0     4  magic "FLN1"
///       4     1  version (1)
///       5     1  flags (bit 0: end of stream, no payload)
///       6     1  element type (<see cref="ElementType"/>)
///       7     1  rank (0..8)
///       8     8  sequence in the publisher's stream
///      16     8  frame id
///      24     8  origin timestamp, publisher's monotonic clock (ns)
///      32     8  publish timestamp in the publisher's stream, publisher's monotonic clock (ns)
///      40     8  send time, publisher's monotonic clock (ns)
///      48     8  send time, publisher's wall clock (ns since the Unix epoch)
///      56    32  shape: 8 x int32, unused dimensions 0
///      88     4  payload bytes
///      92     4  reserved (0)
///      96        payload
/// </code>
/// </summary>
internal static class FrameEnvelope
{
    public const int PrefixBytes = 96;
    public const uint Magic = 0x314E4C46; // "FLN1"
    public const byte Version = 1;
    public const byte EndOfStreamFlag = 1;

    private const int MagicOffset = 0;
    private const int VersionOffset = 4;
    private const int FlagsOffset = 5;
    private const int ElementTypeOffset = 6;
    private const int RankOffset = 7;
    private const int SequenceOffset = 8;
    private const int FrameIdOffset = 16;
    private const int OriginOffset = 24;
    private const int PublishOffset = 32;
    private const int SendMonotonicOffset = 40;
    private const int SendWallOffset = 48;
    private const int ShapeOffset = 56;
    private const int PayloadBytesOffset = 88;

    /// <summary>Writes the prefix of a frame of <paramref name="format"/> into the first <see cref="PrefixBytes"/> of <paramref name="destination"/>.</summary>
    public static void Write(Span<byte> destination, FrameFormat format, in FrameHeader header, long sendMonotonicNs, long sendWallNs, byte flags = 0)
    {
        var prefix = destination[..PrefixBytes];
        prefix.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(prefix[MagicOffset..], Magic);
        prefix[VersionOffset] = Version;
        prefix[FlagsOffset] = flags;
        prefix[ElementTypeOffset] = (byte)format.ElementType;
        prefix[RankOffset] = (byte)format.Shape.Length;
        BinaryPrimitives.WriteInt64LittleEndian(prefix[SequenceOffset..], header.Sequence);
        BinaryPrimitives.WriteUInt64LittleEndian(prefix[FrameIdOffset..], header.FrameId);
        BinaryPrimitives.WriteInt64LittleEndian(prefix[OriginOffset..], header.OriginTimestampNs);
        BinaryPrimitives.WriteInt64LittleEndian(prefix[PublishOffset..], header.PublishTimestampNs);
        BinaryPrimitives.WriteInt64LittleEndian(prefix[SendMonotonicOffset..], sendMonotonicNs);
        BinaryPrimitives.WriteInt64LittleEndian(prefix[SendWallOffset..], sendWallNs);
        for (var i = 0; i < format.Shape.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(prefix[(ShapeOffset + (4 * i))..], format.Shape[i]);
        }

        BinaryPrimitives.WriteInt32LittleEndian(prefix[PayloadBytesOffset..], (flags & EndOfStreamFlag) != 0 ? 0 : format.FrameBytes);
    }

    /// <summary>Reads a message; a message that is not a bridged frame gets a reason in <paramref name="problem"/>.</summary>
    public static bool TryRead(ReadOnlySpan<byte> message, out Envelope envelope, out string? problem)
    {
        envelope = default;
        if (message.Length < PrefixBytes)
        {
            problem = $"a message of {message.Length} bytes is shorter than the {PrefixBytes}-byte frame prefix";
            return false;
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(message[MagicOffset..]) != Magic || message[VersionOffset] != Version)
        {
            problem = "a message does not start with the Flowline frame prefix (magic 'FLN1', version 1): is another program publishing to this subject?";
            return false;
        }

        var rank = message[RankOffset];
        var elementType = (ElementType)message[ElementTypeOffset];
        if (rank > FrameFormat.MaxRank || !Enum.IsDefined(elementType))
        {
            problem = $"a message has an invalid format (element type {message[ElementTypeOffset]}, rank {rank})";
            return false;
        }

        Span<int> shape = stackalloc int[rank];
        for (var i = 0; i < rank; i++)
        {
            shape[i] = BinaryPrimitives.ReadInt32LittleEndian(message[(ShapeOffset + (4 * i))..]);
        }

        var payloadBytes = BinaryPrimitives.ReadInt32LittleEndian(message[PayloadBytesOffset..]);
        if (payloadBytes != message.Length - PrefixBytes)
        {
            problem = $"a message says {payloadBytes} payload bytes but carries {message.Length - PrefixBytes}";
            return false;
        }

        envelope = new Envelope(
            message[FlagsOffset],
            elementType,
            shape.ToArray(),
            new FrameHeader(
                BinaryPrimitives.ReadInt64LittleEndian(message[SequenceOffset..]),
                BinaryPrimitives.ReadUInt64LittleEndian(message[FrameIdOffset..]),
                BinaryPrimitives.ReadInt64LittleEndian(message[PublishOffset..]),
                BinaryPrimitives.ReadInt64LittleEndian(message[OriginOffset..])),
            BinaryPrimitives.ReadInt64LittleEndian(message[SendMonotonicOffset..]),
            BinaryPrimitives.ReadInt64LittleEndian(message[SendWallOffset..]));
        problem = null;
        return true;
    }

    /// <summary>True if <paramref name="format"/> is the format the envelope says.</summary>
    public static bool Matches(in Envelope envelope, FrameFormat format) =>
        envelope.ElementType == format.ElementType && envelope.Shape.AsSpan().SequenceEqual(format.Shape.AsSpan());

    /// <summary>The format the envelope says, as text (the same as <see cref="FrameFormat.ToString"/>).</summary>
    public static string Describe(in Envelope envelope) => $"{envelope.ElementType.ToName()}[{string.Join(", ", envelope.Shape)}]";

    /// <summary>A bridged frame's prefix, read.</summary>
    public readonly record struct Envelope(byte Flags, ElementType ElementType, int[] Shape, FrameHeader Header, long SendMonotonicNs, long SendWallNs)
    {
        /// <summary>True for the message that says the publisher's stream was closed.</summary>
        public bool IsEndOfStream => (Flags & EndOfStreamFlag) != 0;
    }
}
