using CsCheck;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Streams;

/// <summary>The lossless ring behaves as a bounded queue: a model-based property test against <see cref="Queue{T}"/>.</summary>
public sealed class RingModelTests : ShmTest
{
    private enum Op
    {
        Write,
        Read,
        LookIncrement,
        WriterLook,
        Close,
    }

    [Fact]
    public void LosslessRing_MatchesABoundedQueue_ForAnySequenceOfOperations()
    {
        var counter = 0;
        var ops = Gen.Frequency((6, Gen.Const(Op.Write)), (4, Gen.Const(Op.Read)), (3, Gen.Const(Op.LookIncrement)), (3, Gen.Const(Op.WriterLook)), (1, Gen.Const(Op.Close)));
        var gen = Gen.Select(Gen.OneOfConst(2, 4, 8), ops.Array[1, 120]);
        gen.Sample(
            sample =>
            {
                var (capacity, operations) = sample;
                var name = $"m{Interlocked.Increment(ref counter)}";
                using var stream = SharedStream.Open(Ns, name, new FrameFormat(ElementType.Int64, 3), RegionMode.Create, new StreamOptions { CapacityFrames = capacity });
                using var reader = stream.OpenReader<long>();
                using var writer = stream.OpenWriter<long>();
                try
                {
                    Check(capacity, operations, reader, writer);
                }
                finally
                {
                    stream.Unlink();
                }
            },
            iter: 300);
    }

    private static void Check(int capacity, Op[] operations, StreamReader<long> reader, StreamWriter<long> writer)
    {
        var model = new Queue<long>();
        var closed = false;
        long nextValue = 100;
        var frame = new long[3];
        foreach (var op in operations)
        {
            switch (op)
            {
                case Op.Write when !closed:
                {
                    var value = nextValue++;
                    var status = writer.Write([value, value * 2, -value], new FrameStamp((ulong)value, 0), TimeSpan.Zero);
                    Assert.Equal(model.Count < capacity ? WriteStatus.Ok : WriteStatus.Timeout, status);
                    if (status == WriteStatus.Ok)
                    {
                        model.Enqueue(value);
                    }

                    break;
                }

                case Op.WriterLook when !closed:
                {
                    var status = writer.Look(out var slot, TimeSpan.Zero);
                    Assert.Equal(model.Count < capacity ? WriteStatus.Ok : WriteStatus.Timeout, status);
                    if (status == WriteStatus.Ok)
                    {
                        var value = nextValue++;
                        slot[0] = value;
                        slot[1] = value * 2;
                        slot[2] = -value;
                        writer.Publish(new FrameStamp((ulong)value, 0));
                        model.Enqueue(value);
                    }

                    break;
                }

                case Op.Read:
                {
                    var status = reader.ReadInto(frame, out var header, TimeSpan.Zero);
                    Expect(model, closed, status, header, frame);
                    break;
                }

                case Op.LookIncrement:
                {
                    var status = reader.Look(out var span, out var header, TimeSpan.Zero);
                    var copy = status == ReadStatus.Ok ? span.ToArray() : frame;
                    if (status == ReadStatus.Ok)
                    {
                        Assert.True(reader.Increment());
                    }

                    Expect(model, closed, status, header, copy);
                    break;
                }

                case Op.Close:
                    writer.Close();
                    closed = true;
                    break;

                default:
                    break;
            }

            Assert.Equal(model.Count, reader.FramesAvailable);
        }
    }

    private static void Expect(Queue<long> model, bool closed, ReadStatus status, FrameHeader header, long[] frame)
    {
        if (model.Count == 0)
        {
            Assert.Equal(closed ? ReadStatus.EndOfStream : ReadStatus.Timeout, status);
            return;
        }

        Assert.Equal(ReadStatus.Ok, status);
        var value = model.Dequeue();
        Assert.Equal((ulong)value, header.FrameId);
        Assert.Equal([value, value * 2, -value], frame);
    }
}
