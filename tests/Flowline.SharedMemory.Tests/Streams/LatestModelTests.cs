using System.Runtime.InteropServices;
using CsCheck;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Streams;

/// <summary>
/// Latest delivery to several readers whose writer laps them: a model-based property test of the ring
/// (every operation's result and every reader's counters against a model), and a concurrent one (a writer
/// thread lapping reader threads: every frame intact, sequences increasing, counters adding up). Rings
/// have at least readers + 2 slots, so a held look is never overwritten (D100).
/// </summary>
public sealed class LatestModelTests : ShmTest
{
    private enum Kind
    {
        Write,
        Read,
        Look,
        Increment,
        Rejoin,
        Close,
    }

    /// <param name="Kind">What is done.</param>
    /// <param name="Reader">Which reader (modulo the number of readers).</param>
    /// <param name="Count">How many frames a write publishes.</param>
    private readonly record struct Op(Kind Kind, int Reader, int Count)
    {
        public override string ToString() => Kind == Kind.Write ? $"Write x{Count}" : Kind == Kind.Close ? "Close" : $"{Kind}({Reader})";
    }

    /// <summary>The model of one reader: where it is, what it counted, the look it holds.</summary>
    private sealed class ReaderModel(long joinedAt)
    {
        public long JoinedAt { get; set; } = joinedAt;

        public long Position { get; set; } = joinedAt;

        public long Read { get; set; }

        public long Skipped { get; set; }

        public long Torn { get; set; }

        /// <summary>The last sequence this reader was given, or -1.</summary>
        public long LastSequence { get; set; } = -1;

        /// <summary>The sequence of the look it holds, or -1.</summary>
        public long Held { get; set; } = -1;

        public ReadOnlyMemory<byte> HeldFrame { get; set; }
    }

    /// <summary>The frame of <paramref name="sequence"/>: its value, twice its value, minus its value.</summary>
    private static long ValueOf(long sequence) => 1000 + sequence;

    private static long[] FrameOf(long value) => [value, 2 * value, -value];

    [Fact]
    public void LatestRing_WithSeveralReadersAndALappingWriter_MatchesTheModel_ForAnySequenceOfOperations()
    {
        var counter = 0;
        var ops = Gen.Frequency(
            (5, Gen.Int[1, 20].Select(n => new Op(Kind.Write, 0, n))),
            (4, Gen.Int[0, 3].Select(r => new Op(Kind.Read, r, 0))),
            (3, Gen.Int[0, 3].Select(r => new Op(Kind.Look, r, 0))),
            (3, Gen.Int[0, 3].Select(r => new Op(Kind.Increment, r, 0))),
            (1, Gen.Int[0, 3].Select(r => new Op(Kind.Rejoin, r, 0))),
            (1, Gen.Const(new Op(Kind.Close, 0, 0))));
        var rings = Gen.OneOfConst(4, 8).SelectMany(c => Gen.Int[1, Math.Min(4, c - 2)].Select(r => (c, r)));
        var gen = Gen.Select(rings, ops.Array[1, 150]);
        gen.Sample(
            sample =>
            {
                var ((capacity, readerCount), operations) = sample;
                var name = $"l{Interlocked.Increment(ref counter)}";
                using var stream = SharedStream.Open(Ns, name, new FrameFormat(ElementType.Int64, 3), RegionMode.Create, new StreamOptions { CapacityFrames = capacity });
                var readers = new StreamReader<long>[readerCount];
                try
                {
                    for (var i = 0; i < readerCount; i++)
                    {
                        readers[i] = stream.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Latest });
                    }

                    using var writer = stream.OpenWriter<long>();
                    Check(stream, operations, readers, writer);
                }
                finally
                {
                    foreach (var reader in readers)
                    {
                        reader?.Dispose();
                    }

                    stream.Unlink();
                }
            },
            iter: 300);
    }

    [Fact]
    public void LatestRing_WithAWriterThreadLappingReaderThreads_GivesOnlyIntactFramesInOrder()
    {
        const int frameLongs = 4096;
        const int frames = 4000;
        var counter = 0;
        var rings = Gen.OneOfConst(4, 8).SelectMany(c => Gen.Int[1, Math.Min(3, c - 2)].Select(r => (c, r)));
        Gen.Select(rings, Gen.Bool).Sample(
            sample =>
            {
                var ((capacity, readerCount), look) = sample;
                var name = $"c{Interlocked.Increment(ref counter)}";
                using var stream = SharedStream.Open(Ns, name, new FrameFormat(ElementType.Int64, frameLongs), RegionMode.Create, new StreamOptions { CapacityFrames = capacity });
                var readers = new StreamReader<long>[readerCount];
                try
                {
                    for (var i = 0; i < readerCount; i++)
                    {
                        readers[i] = stream.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Latest, WaitPolicy = WaitPolicy.Block });
                    }

                    using var writer = stream.OpenWriter<long>();
                    var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
                    var threads = readers.Select(reader => new Thread(() => Catch(failures, () => ReadToTheEnd(reader, look)))).ToList();
                    threads.Add(new Thread(() => Catch(failures, () =>
                    {
                        // Every element of frame n holds n, its frame id.
                        for (long n = 0; n < frames; n++)
                        {
                            Assert.Equal(WriteStatus.Ok, writer.Look(out var slot, TimeSpan.Zero));
                            slot.Fill(n);
                            writer.Publish(new FrameStamp((ulong)n, 0));
                        }

                        writer.Close();
                    })));
                    threads.ForEach(t => t.Start());
                    Assert.All(threads, t => Assert.True(t.Join(Bound), "a reader or the writer did not finish in time"));
                    Assert.Empty(failures);

                    foreach (var reader in readers)
                    {
                        // Every frame was read or skipped; none was torn (held slots are skipped by the writer).
                        Assert.Equal(frames, reader.Position);
                        Assert.Equal(0, reader.TornCopies);
                        Assert.Equal(frames, reader.FramesRead + reader.FramesSkipped);
                    }
                }
                finally
                {
                    foreach (var reader in readers)
                    {
                        reader?.Dispose();
                    }

                    stream.Unlink();
                }
            },
            iter: 8);
    }

    private static void Catch(System.Collections.Concurrent.ConcurrentQueue<Exception> failures, Action action)
    {
        try
        {
            action();
        }
        catch (Exception e)
        {
            failures.Enqueue(e);
        }
    }

    /// <summary>Reads until the end of the stream: every frame intact (uniform and equal to its id and sequence), sequences increasing.</summary>
    private static void ReadToTheEnd(StreamReader<long> reader, bool look)
    {
        var buffer = new long[reader.FrameLength];
        long previous = -1;
        while (true)
        {
            ReadStatus status;
            FrameHeader header;
            bool uniform;
            if (look)
            {
                status = reader.Look(out var frame, out header, Bound);
                if (status != ReadStatus.Ok)
                {
                    Assert.Equal(ReadStatus.EndOfStream, status);
                    return;
                }

                uniform = !frame.ContainsAnyExcept(header.Sequence);
                if (!reader.Increment())
                {
                    continue;
                }
            }
            else
            {
                status = reader.ReadInto(buffer, out header, Bound);
                if (status != ReadStatus.Ok)
                {
                    Assert.Equal(ReadStatus.EndOfStream, status);
                    return;
                }

                uniform = !buffer.AsSpan().ContainsAnyExcept(header.Sequence);
            }

            Assert.True(uniform, $"frame {header.Sequence} was torn but given as intact");
            Assert.Equal((ulong)header.Sequence, header.FrameId);
            Assert.True(header.Sequence > previous, $"frame {header.Sequence} after frame {previous}");
            previous = header.Sequence;
        }
    }

    private static void Check(SharedStream stream, Op[] operations, StreamReader<long>[] readers, StreamWriter<long> writer)
    {
        var models = readers.Select(_ => new ReaderModel(0)).ToArray();
        long cursor = 0;
        var closed = false;
        var frame = new long[3];
        foreach (var op in operations)
        {
            var r = op.Reader % readers.Length;
            var reader = readers[r];
            var model = models[r];
            switch (op.Kind)
            {
                case Kind.Write when !closed:
                    // A writer with only latest readers never waits: it laps them.
                    for (var i = 0; i < op.Count; i++, cursor++)
                    {
                        var value = ValueOf(cursor);
                        Assert.Equal(WriteStatus.Ok, writer.Write(FrameOf(value), new FrameStamp((ulong)value, 0), TimeSpan.Zero));
                    }

                    break;

                case Kind.Read when model.Held >= 0:
                case Kind.Look when model.Held >= 0:
                    Assert.Throws<InvalidOperationException>(() => reader.ReadInto(frame, TimeSpan.Zero));
                    break;

                case Kind.Read:
                {
                    var status = reader.ReadInto(frame, out var header, TimeSpan.Zero);
                    if (Expect(model, cursor, closed, status, header, frame))
                    {
                        Consume(model, header.Sequence, intact: true);
                    }

                    break;
                }

                case Kind.Look:
                {
                    var status = reader.LookMemory(out var memory, out var header, TimeSpan.Zero);
                    var values = status == ReadStatus.Ok ? MemoryMarshal.Cast<byte, long>(memory.Span).ToArray() : frame;
                    if (Expect(model, cursor, closed, status, header, values))
                    {
                        // Nothing is consumed or counted until the look is released.
                        model.Held = header.Sequence;
                        model.HeldFrame = memory;
                    }

                    break;
                }

                case Kind.Increment when model.Held < 0:
                    Assert.Throws<InvalidOperationException>(() => reader.Increment());
                    break;

                case Kind.Increment:
                {
                    // The slot is held: however far the writer went, the frame is intact.
                    Assert.True(reader.IsStillIntact(model.Held));
                    Assert.Equal(FrameOf(ValueOf(model.Held)), MemoryMarshal.Cast<byte, long>(model.HeldFrame.Span).ToArray());
                    Assert.True(reader.Increment());
                    Consume(model, model.Held, intact: true);
                    model.Held = -1;
                    break;
                }

                case Kind.Rejoin:
                    // A reader that leaves and another that joins: it starts at the writer's position.
                    reader.Dispose();
                    readers[r] = stream.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Latest });
                    models[r] = new ReaderModel(cursor);
                    break;

                case Kind.Close when !closed:
                    writer.Close();
                    closed = true;
                    break;

                default:
                    break;
            }

            for (var i = 0; i < readers.Length; i++)
            {
                Agree(models[i], readers[i], cursor);
            }
        }
    }

    /// <summary>
    /// Checks a read or look against the model: with frames it did not read, the reader gets the newest,
    /// intact and later than anything it got before (true then); otherwise a timeout, or the end once closed.
    /// </summary>
    private static bool Expect(ReaderModel model, long cursor, bool closed, ReadStatus status, FrameHeader header, long[] values)
    {
        if (cursor <= model.Position)
        {
            Assert.Equal(closed ? ReadStatus.EndOfStream : ReadStatus.Timeout, status);
            return false;
        }

        Assert.Equal(ReadStatus.Ok, status);
        var newest = cursor - 1;
        Assert.Equal(newest, header.Sequence);
        Assert.Equal((ulong)ValueOf(newest), header.FrameId);
        Assert.Equal(FrameOf(ValueOf(newest)), values);
        Assert.True(newest > model.LastSequence, $"sequence {newest} after {model.LastSequence}");
        model.LastSequence = newest;
        return true;
    }

    /// <summary>Frame <paramref name="sequence"/> is consumed: the frames before it that were not read are skipped.</summary>
    private static void Consume(ReaderModel model, long sequence, bool intact)
    {
        model.Skipped += sequence - model.Position;
        model.Position = sequence + 1;
        if (intact)
        {
            model.Read++;
        }
        else
        {
            model.Torn++;
        }
    }

    /// <summary>The reader's figures are the model's, and every frame since it joined was read, skipped or torn.</summary>
    private static void Agree(ReaderModel model, StreamReader<long> reader, long cursor)
    {
        Assert.Equal(model.Position, reader.Position);
        Assert.Equal(model.Read, reader.FramesRead);
        Assert.Equal(model.Skipped, reader.FramesSkipped);
        Assert.Equal(model.Torn, reader.TornCopies);
        Assert.Equal(model.Position - model.JoinedAt, model.Read + model.Skipped + model.Torn);
        Assert.Equal(Math.Max(0, cursor - model.Position), reader.FramesAvailable);
    }
}
