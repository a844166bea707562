using Flowline.SharedMemory.Regions;
using Flowline.SharedMemory.Streams;

namespace Flowline.SharedMemory.Tests.Regions;

/// <summary>
/// Pins every offset and size of the shared-memory layouts: two builds share a region only if these
/// agree, so a change here must be deliberate (and bump <see cref="RegionHeader.LayoutVersion"/>).
/// </summary>
public sealed class LayoutTests
{
    [Fact]
    public void RegionHeader_OffsetsArePinned()
    {
        Assert.Equal(128, RegionHeader.Size);
        Assert.Equal(
            [0, 8, 12, 16, 24, 32, 40, 48],
            [RegionHeader.MagicOffset, RegionHeader.VersionOffset, RegionHeader.KindOffset, RegionHeader.HashOffset, RegionHeader.TotalBytesOffset, RegionHeader.OwnerOffset, RegionHeader.RegionIdOffset, RegionHeader.CreatedOffset]);
        Assert.Equal(2u, RegionHeader.LayoutVersion);
        Assert.Equal("FLOWLINE"u8.ToArray(), BitConverter.GetBytes(RegionHeader.Magic));
    }

    [Fact]
    public void StreamLayout_OffsetsArePinned_AndHotLinesAre128BytesApart()
    {
        Assert.Equal(128, StreamLayout.DescriptorOffset);
        Assert.Equal(256, StreamLayout.CursorOffset);
        Assert.Equal(384, StreamLayout.WriterLineOffset);
        Assert.Equal(512, StreamLayout.DataSignalOffset);
        Assert.Equal(640, StreamLayout.SpaceSignalOffset);
        Assert.Equal(768, StreamLayout.ReaderTableOffset);
        Assert.Equal(128, StreamLayout.ReaderEntryBytes);
        Assert.Equal(64, StreamLayout.ReaderOwnerOffset - StreamLayout.ReaderPositionOffset);
        Assert.Equal(8, StreamLayout.ReaderHoldOffset);
        Assert.Equal(384 + 40, StreamLayout.LatestReadersOffset);
        Assert.Equal(-1, StreamLayout.SlotWriting);
        Assert.Equal(64, StreamLayout.SlotHeaderBytes);
        Assert.Equal([0, 8, 16, 24], [StreamLayout.SlotSequenceOffset, StreamLayout.SlotFrameIdOffset, StreamLayout.SlotPublishOffset, StreamLayout.SlotOriginOffset]);

        int[] hot = [StreamLayout.CursorOffset, StreamLayout.WriterLineOffset, StreamLayout.DataSignalOffset, StreamLayout.SpaceSignalOffset, StreamLayout.ReaderTableOffset];
        Assert.All(hot.Zip(hot.Skip(1)), pair => Assert.Equal(128, pair.Second - pair.First));
    }

    [Theory]
    [InlineData(1, 128)]
    [InlineData(64, 128)]
    [InlineData(65, 192)]
    [InlineData(4096, 4160)]
    [InlineData(1 << 20, (1 << 20) + 64)]
    public void SlotBytes_AreTheHeaderPlusThePayloadRoundedUpTo64(int frameBytes, long slotBytes) =>
        Assert.Equal(slotBytes, StreamLayout.SlotBytes(frameBytes));

    [Fact]
    public void TotalBytes_AddTheReaderTableTheSlotMapAndTheSlots()
    {
        Assert.Equal(768 + (8 * 128) + 128 + (32 * 128), StreamLayout.TotalBytes(64, 32, 8));
        Assert.Equal(768 + (64 * 128), StreamLayout.SlotMapOffset(64));
        Assert.Equal(768 + (64 * 128) + 128, StreamLayout.SlotsOffset(64, 32));
        Assert.Equal(768 + (64 * 128) + 256, StreamLayout.SlotsOffset(64, 64));
        Assert.Equal(768 + (8 * 128) + 128, StreamLayout.SlotsOffset(8, 2));
    }

    [Fact]
    public void LayoutHashes_ArePinned()
    {
        // These change whenever an offset or size above changes: update them together with LayoutVersion.
        Assert.Equal(RegionHeader.Hash(StreamLayout.Signature), StreamLayout.Hash);
        Assert.Equal(0xC38F48466B81AB82UL, StreamLayout.Hash);
        Assert.Equal(0x3D231929962ADB08UL, SharedEvent.LayoutHash);
        Assert.NotEqual(StreamLayout.Hash, SharedEvent.LayoutHash);
    }

    [Fact]
    public void Fnv1a_MatchesTheReferenceVectors()
    {
        Assert.Equal(0xcbf29ce484222325UL, RegionHeader.Hash(""));
        Assert.Equal(0xaf63dc4c8601ec8cUL, RegionHeader.Hash("a"));
        Assert.Equal(0x85944171f73967e8UL, RegionHeader.Hash("foobar"));
    }
}
