using Flowline.Nats.Tests.Infrastructure;
using Flowline.SharedMemory;

namespace Flowline.Nats.Tests;

/// <summary>Lossless delivery over JetStream: every frame arrives once, in order, through restarts of either side and of the server.</summary>
public sealed class LosslessTests : BridgeTest
{
    private static readonly FrameFormat Format = new(ElementType.Int64, 128);

    private NatsBridgeOptions Options(NatsServer server, long maxFrames = 1024) =>
        new() { Url = server.Url, Subject = NewSubject(), Delivery = Delivery.Lossless, JetStreamMaxFrames = maxFrames };

    private static NatsSubscriberOptions SubscriberOptions => new() { Format = Format, PendingFrames = 8, StreamOptions = new StreamOptions { CapacityFrames = 8 } };

    /// <summary>Frame <paramref name="index"/>: every element derived from the index, so that a frame is recognised and checked whole.</summary>
    private static void Fill(long[] frame, long index)
    {
        for (var i = 0; i < frame.Length; i++)
        {
            frame[i] = (index * 7919) ^ (i * 31L);
        }
    }

    private static long Checksum(long[] frame)
    {
        long sum = 17;
        foreach (var v in frame)
        {
            sum = (sum * 31) + v;
        }

        return sum;
    }

    /// <summary>Reads frames 0..count-1 in order from <paramref name="reader"/>, checking each frame's id and bytes; returns the checksum of all.</summary>
    private static long ReadExactly(StreamReader<long> reader, long from, long count, Action<long>? afterEach = null, Func<string>? figures = null)
    {
        var received = new long[Format.ElementCount];
        var expected = new long[Format.ElementCount];
        long checksum = 0;
        for (var i = from; i < from + count; i++)
        {
            var status = reader.ReadInto(received, out var header, Bound);
            Assert.True(status == ReadStatus.Ok, $"frame {i}: {status} {figures?.Invoke()}");
            Assert.Equal((ulong)i, header.FrameId);
            Fill(expected, i);
            Assert.True(expected.AsSpan().SequenceEqual(received), $"frame {i} differs after the bridge");
            checksum += Checksum(received);
            afterEach?.Invoke(i);
        }

        return checksum;
    }

    private static long ExpectedChecksum(long from, long count)
    {
        var frame = new long[Format.ElementCount];
        long checksum = 0;
        for (var i = from; i < from + count; i++)
        {
            Fill(frame, i);
            checksum += Checksum(frame);
        }

        return checksum;
    }

    /// <summary>Writes frames on a task that teardown stops and waits for before the stream is disposed.</summary>
    private Task WriteFrames(StreamWriter<long> writer, long from, long count, bool close = false)
    {
        var background = OwnAsync(new Background());
        return background.Run(token =>
        {
            var frame = new long[Format.ElementCount];
            for (var i = from; i < from + count; i++)
            {
                Fill(frame, i);
                Assert.Equal(WriteStatus.Ok, writer.Write(frame, new FrameStamp((ulong)i, 0), Bound, token));
            }

            if (close)
            {
                writer.Close();
            }
        });
    }

    [Fact]
    public async Task Lossless_SlowReceiver_EveryFrameArrivesOnceWithItsBytes()
    {
        using var server = Own(NatsServer.Start(jetStream: true));
        var options = Options(server, maxFrames: 16);
        var source = Own(SharedStream.Open(HostA, "wfs", Format));
        var writer = Own(source.OpenWriter<long>());
        var subscriber = OwnAsync(await NatsSubscriber.StartAsync(HostB, "wfs", options, SubscriberOptions));
        var remote = Own(SharedStream.Attach(HostB, "wfs"));
        var reader = Own(remote.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Lossless }));
        var publisher = OwnAsync(await NatsPublisher.StartAsync(HostA, "wfs", options));

        // The writer runs ahead; the receiver sleeps on every frame, so the local rings and the JetStream stream fill
        // and the publisher waits: nothing may be dropped anywhere.
        const int Frames = 300;
        var writing = WriteFrames(writer, 0, Frames, close: true);
        var checksum = ReadExactly(reader, 0, Frames, i => Thread.Sleep(i % 50 == 0 ? 20 : 0));
        await writing.WaitAsync(Bound);

        Assert.Equal(ExpectedChecksum(0, Frames), checksum);
        Assert.Equal(ReadStatus.EndOfStream, reader.ReadInto(new long[Format.ElementCount], out _, Bound));
        await publisher.Completion.WaitAsync(Bound);
        await subscriber.Completion.WaitAsync(Bound);
        Assert.Equal(Frames, publisher.FramesPublished);
        Assert.Equal(0, publisher.FramesSkipped);
        Assert.Equal(Frames, subscriber.FramesWritten);
        Assert.Equal(0, subscriber.FramesLost);
        Assert.Equal(0, subscriber.FramesDuplicate);
    }

    [Fact]
    public async Task Lossless_NoReceiverYet_PublisherWaitsAtTheStreamLimitThenEverythingArrives()
    {
        using var server = Own(NatsServer.Start(jetStream: true));
        var options = Options(server, maxFrames: 8);
        var source = Own(SharedStream.Open(HostA, "cam", Format, options: new StreamOptions { CapacityFrames = 64 }));
        var writer = Own(source.OpenWriter<long>());
        var publisher = OwnAsync(await NatsPublisher.StartAsync(HostA, "cam", options));

        // No receiver: the JetStream stream holds 8 frames, then the publisher waits (and retries) instead of dropping.
        await WriteFrames(writer, 0, 20).WaitAsync(Bound);
        using (var waited = new CancellationTokenSource(Bound))
        {
            while (publisher.PublishRetries == 0)
            {
                await Task.Delay(10, waited.Token);
            }
        }

        Assert.Equal(8, publisher.FramesPublished);

        // The receiver arrives: it gets the 20 frames from the first, in order, and the publisher goes on.
        var subscriber = OwnAsync(await NatsSubscriber.StartAsync(HostB, "cam", options, SubscriberOptions));
        var remote = Own(SharedStream.Attach(HostB, "cam"));
        var reader = Own(remote.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Lossless }));
        Assert.Equal(ExpectedChecksum(0, 20), ReadExactly(reader, 0, 20));
        using (var published = new CancellationTokenSource(Bound))
        {
            // Counted once the server's acknowledgement is back, which may be after the receiver has the frame.
            while (publisher.FramesPublished < 20)
            {
                await Task.Delay(10, published.Token);
            }
        }

        Assert.Equal(20, publisher.FramesPublished);
        Assert.Equal(0, subscriber.FramesLost);
    }

    [Fact]
    public async Task Lossless_SubscriberRestartsMidStream_ResumesWithNoLossAndNoDuplicate()
    {
        using var server = Own(NatsServer.Start(jetStream: true));
        var options = Options(server);
        var source = Own(SharedStream.Open(HostA, "wfs", Format, options: new StreamOptions { CapacityFrames = 64 }));
        var writer = Own(source.OpenWriter<long>());
        var subscriber = await NatsSubscriber.StartAsync(HostB, "wfs", options, SubscriberOptions);
        await using (subscriber.ConfigureAwait(false))
        {
            var remote = Own(SharedStream.Attach(HostB, "wfs"));
            var reader = Own(remote.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Lossless, WaitThroughWriterChanges = true }));
            OwnAsync(await NatsPublisher.StartAsync(HostA, "wfs", options));
            var writing = WriteFrames(writer, 0, 400, close: true);

            // The receiver stops after 100 frames, while the source goes on writing.
            var checksum = ReadExactly(reader, 0, 100);
            await subscriber.DisposeAsync();

            // A new bridge with the same durable consumer takes over the same local stream.
            var again = OwnAsync(await NatsSubscriber.StartAsync(HostB, "wfs", options, SubscriberOptions));
            checksum += ReadExactly(reader, 100, 300);
            await writing.WaitAsync(Bound);

            Assert.Equal(ExpectedChecksum(0, 400), checksum);
            Assert.Equal(ReadStatus.EndOfStream, reader.ReadInto(new long[Format.ElementCount], out _, Bound));
            Assert.Equal(0, again.FramesLost);
            Assert.Equal(400, subscriber.FramesWritten + again.FramesWritten);
        }
    }

    [Fact]
    public async Task Lossless_ServerRestartMidStream_LosesNothing()
    {
        using var server = Own(NatsServer.Start(jetStream: true));
        var options = Options(server);
        var source = Own(SharedStream.Open(HostA, "s", Format, options: new StreamOptions { CapacityFrames = 64 }));
        var writer = Own(source.OpenWriter<long>());
        var subscriber = OwnAsync(await NatsSubscriber.StartAsync(HostB, "s", options, SubscriberOptions));
        var remote = Own(SharedStream.Attach(HostB, "s"));
        var reader = Own(remote.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Lossless }));
        var publisher = OwnAsync(await NatsPublisher.StartAsync(HostA, "s", options));

        const int Frames = 300;
        var writing = WriteFrames(writer, 0, Frames, close: true);
        var checksum = ReadExactly(
            reader,
            0,
            Frames,
            i =>
            {
                if (i == 100)
                {
                    server.Restart();
                }
            },
            () => $"(published {publisher.FramesPublished}, retried {publisher.PublishRetries}; written {subscriber.FramesWritten}, duplicates {subscriber.FramesDuplicate}, ack failures {subscriber.AckFailures})");
        await writing.WaitAsync(Bound);

        Assert.Equal(ExpectedChecksum(0, Frames), checksum);
        Assert.Equal(ReadStatus.EndOfStream, reader.ReadInto(new long[Format.ElementCount], out _, Bound));
        await publisher.Completion.WaitAsync(Bound);
        Assert.Equal(Frames, subscriber.FramesWritten);
        Assert.Equal(0, subscriber.FramesLost);
    }

    [Fact]
    public async Task Lossless_FullWindowAgainstAFullStreamThroughAServerRestart_KeepsOrderAndLosesAndDuplicatesNothing()
    {
        // A JetStream stream of 16 frames against a window of 64 in flight: the server refuses the frames beyond the stream's
        // limit while it accepts later ones as the receiver frees room, and the server is killed with the window in flight.
        using var server = Own(NatsServer.Start(jetStream: true));
        var options = Options(server, maxFrames: 16) with { Window = 64 };
        var source = Own(SharedStream.Open(HostA, "s", Format, options: new StreamOptions { CapacityFrames = 64 }));
        var writer = Own(source.OpenWriter<long>());
        var publisher = OwnAsync(await NatsPublisher.StartAsync(HostA, "s", options));
        const int Frames = 400;
        var writing = WriteFrames(writer, 0, Frames, close: true);

        // The receiver comes once the stream is full and the publisher's window has been refused and sent again.
        using (var refused = new CancellationTokenSource(Bound))
        {
            while (publisher.PublishRetries == 0)
            {
                await Task.Delay(10, refused.Token);
            }
        }

        var subscriber = OwnAsync(await NatsSubscriber.StartAsync(HostB, "s", options, SubscriberOptions with { AckWindow = 64 }));
        var remote = Own(SharedStream.Attach(HostB, "s"));
        var reader = Own(remote.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Lossless, WaitThroughWriterChanges = true }));
        var checksum = ReadExactly(
            reader,
            0,
            Frames,
            i =>
            {
                if (i == 150)
                {
                    server.Restart();
                }
            },
            () => $"(published {publisher.FramesPublished}, retried {publisher.PublishRetries}; written {subscriber.FramesWritten}, duplicates {subscriber.FramesDuplicate}, ahead {subscriber.FramesAhead})");
        await writing.WaitAsync(Bound);

        Assert.Equal(ExpectedChecksum(0, Frames), checksum);
        Assert.Equal(ReadStatus.EndOfStream, reader.ReadInto(new long[Format.ElementCount], out _, Bound));
        await publisher.Completion.WaitAsync(Bound);
        Assert.Equal(Frames, publisher.FramesPublished);
        Assert.Equal(Frames, subscriber.FramesWritten);
        Assert.Equal(0, subscriber.FramesLost);
        Assert.Equal(0, subscriber.SequenceRestarts);
    }

    [Fact]
    public async Task Lossless_ServerWithoutJetStream_IsRefusedWithTheReason()
    {
        using var server = Own(NatsServer.Start());
        var options = Options(server);
        var source = Own(SharedStream.Open(HostA, "wfs", Format));

        var error = await Assert.ThrowsAsync<NatsBridgeException>(() => NatsPublisher.StartAsync(HostA, "wfs", options));
        Assert.Contains("JetStream", error.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<NatsBridgeException>(() => NatsSubscriber.StartAsync(HostB, "wfs", options, SubscriberOptions));
    }
}
