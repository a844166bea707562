using System.Runtime.InteropServices;
using Flowline.Nats.Tests.Infrastructure;
using Flowline.SharedMemory;

namespace Flowline.Nats.Tests;

/// <summary>Two namespaces standing for two hosts, joined through a real nats-server by the two bridges.</summary>
public sealed class BridgeTests : BridgeTest
{
    private static readonly FrameFormat Image = new(ElementType.Float32, 64, 64);

    [Fact]
    public async Task Bridge_FramesAcrossHosts_ArriveIdenticalWithTheirIds()
    {
        using var server = Own(NatsServer.Start());
        var options = new NatsBridgeOptions { Url = server.Url, Subject = NewSubject() };
        var source = Own(SharedStream.Open(HostA, "wfs", Image));
        var writer = Own(source.OpenWriter<float>());
        // Core NATS drops what a receiver cannot queue: the receiver here queues every frame.
        const int Frames = 200;
        var subscriber = OwnAsync(await NatsSubscriber.StartAsync(HostB, "wfs", options, new NatsSubscriberOptions { Format = Image, PendingFrames = Frames }));
        var remote = Own(SharedStream.Attach(HostB, "wfs"));
        var reader = Own(remote.OpenReader<float>(new ReaderOptions { Delivery = Delivery.Lossless }));
        var publisher = OwnAsync(await NatsPublisher.StartAsync(HostA, "wfs", options, Delivery.Lossless));

        var writing = Task.Run(() =>
        {
            var frame = new float[Image.ElementCount];
            for (var i = 0; i < Frames; i++)
            {
                Fill(frame, i);
                Assert.Equal(WriteStatus.Ok, writer.Write(frame, new FrameStamp((ulong)(1000 + i), 0), Bound));
            }

            writer.Close();
        });

        var received = new float[Image.ElementCount];
        var expected = new float[Image.ElementCount];
        long sentChecksum = 0, receivedChecksum = 0;
        for (var i = 0; i < Frames; i++)
        {
            Assert.Equal(ReadStatus.Ok, reader.ReadInto(received, out var header, Bound));
            Assert.Equal((ulong)(1000 + i), header.FrameId);
            Fill(expected, i);
            sentChecksum += Checksum(expected);
            receivedChecksum += Checksum(received);
            Assert.True(expected.AsSpan().SequenceEqual(received), $"frame {i} differs after the bridge");
            Assert.True(header.OriginTimestampNs <= header.PublishTimestampNs, "the origin moved onto this host's clock is not after the local publish");
        }

        await writing.WaitAsync(Bound);
        Assert.Equal(sentChecksum, receivedChecksum);

        // The publisher's stream closed: the end travels too, and nothing was lost.
        Assert.Equal(ReadStatus.EndOfStream, reader.ReadInto(received, out _, Bound));
        await publisher.Completion.WaitAsync(Bound);
        await subscriber.Completion.WaitAsync(Bound);
        Assert.Equal(Frames, publisher.FramesPublished);
        Assert.Equal(Frames, subscriber.FramesWritten);
        Assert.Equal(0, subscriber.FramesLost);
        Assert.True(subscriber.CreatedStream);
    }

    [Fact]
    public async Task Latest_SlowReceiver_LosesFramesAndCountsThem()
    {
        using var server = Own(NatsServer.Start());
        var format = new FrameFormat(ElementType.Int32, 256);
        var options = new NatsBridgeOptions { Url = server.Url, Subject = NewSubject() };
        var source = Own(SharedStream.Open(HostA, "cam", format));
        var writer = Own(source.OpenWriter<int>());
        var subscriber = OwnAsync(await NatsSubscriber.StartAsync(
            HostB, "cam", options, new NatsSubscriberOptions { Format = format, PendingFrames = 4, StreamOptions = new StreamOptions { CapacityFrames = 4 } }));
        var remote = Own(SharedStream.Attach(HostB, "cam"));
        var slowReader = Own(remote.OpenReader<int>(new ReaderOptions { Delivery = Delivery.Lossless }));
        OwnAsync(await NatsPublisher.StartAsync(HostA, "cam", options, Delivery.Lossless));

        // The source runs far ahead of the receiver's lossless reader, which sleeps on every frame.
        const int Frames = 400;
        var frame = new int[format.ElementCount];
        for (var i = 0; i < Frames; i++)
        {
            frame.AsSpan().Fill(i);
            Assert.Equal(WriteStatus.Ok, writer.Write(frame, Bound));
        }

        // Then one frame at a time, read at once, until one comes through: every frame before it is
        // either written on host B or counted as lost.
        var read = 0L;
        var lastId = -1L;
        var received = new int[format.ElementCount];
        var next = Frames;
        var deadline = DateTime.UtcNow + Bound;
        while (lastId != next - 1)
        {
            Assert.True(DateTime.UtcNow < deadline, $"frame {next - 1} never came through (written {subscriber.FramesWritten}, lost {subscriber.FramesLost}, read {read})");
            if (slowReader.ReadInto(received, out var header, TimeSpan.FromMilliseconds(50)) == ReadStatus.Ok)
            {
                read++;
                Assert.True((long)header.FrameId > lastId, "frames arrived out of order");
                lastId = (long)header.FrameId;
                Assert.All(received, v => Assert.Equal((int)header.FrameId, v));
                Thread.Sleep(2);
            }
            else if (slowReader.FramesAvailable == 0)
            {
                frame.AsSpan().Fill(next++);
                Assert.Equal(WriteStatus.Ok, writer.Write(frame, Bound));
            }
        }

        Assert.True(subscriber.FramesLost > 0, "a receiver this slow must lose frames");
        Assert.Equal(next - subscriber.FirstSequence, subscriber.FramesWritten + subscriber.FramesLost);
        Assert.Equal(subscriber.FramesWritten, read);
    }
    [Fact]
    public async Task Subscribe_FormatMismatch_FailsAndWritesNothing()
    {
        using var server = Own(NatsServer.Start());
        var options = new NatsBridgeOptions { Url = server.Url, Subject = NewSubject() };
        var source = Own(SharedStream.Open(HostA, "wfs", Image));
        var writer = Own(source.OpenWriter<float>());

        // Host B already has the stream, with another shape: the subscriber attaches to it and checks.
        var existing = Own(SharedStream.Open(HostB, "wfs", new FrameFormat(ElementType.Float32, 32, 32)));
        var reader = Own(existing.OpenReader<float>());
        var subscriber = OwnAsync(await NatsSubscriber.StartAsync(HostB, "wfs", options));
        OwnAsync(await NatsPublisher.StartAsync(HostA, "wfs", options));

        Assert.Equal(WriteStatus.Ok, writer.Write(new float[Image.ElementCount], Bound));
        var error = await Assert.ThrowsAsync<NatsBridgeException>(() => subscriber.Completion.WaitAsync(Bound));
        Assert.Contains("float32[64, 64]", error.Message, StringComparison.Ordinal);
        Assert.Contains("float32[32, 32]", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, subscriber.FramesWritten);
        Assert.Equal(0, reader.FramesAvailable);
        Assert.False(subscriber.CreatedStream);
    }

    [Fact]
    public async Task Subscribe_GivenFormatDiffersFromExistingStream_RefusedAtStart()
    {
        using var server = Own(NatsServer.Start());
        var options = new NatsBridgeOptions { Url = server.Url, Subject = NewSubject() };
        var existing = Own(SharedStream.Open(HostB, "wfs", new FrameFormat(ElementType.Float32, 32, 32)));

        var error = await Assert.ThrowsAsync<NatsBridgeException>(() => NatsSubscriber.StartAsync(HostB, "wfs", options, new NatsSubscriberOptions { Format = Image }));
        Assert.Contains(HostB + "/wfs", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Connect_WithoutTheServersToken_IsRefused()
    {
        using var server = Own(NatsServer.Start(token: "s3cret"));
        var subject = NewSubject();
        var source = Own(SharedStream.Open(HostA, "wfs", Image));

        var refused = await Assert.ThrowsAsync<NatsBridgeException>(() => NatsPublisher.StartAsync(HostA, "wfs", new NatsBridgeOptions { Url = server.Url, Subject = subject }));
        Assert.Contains("Authorization", refused.Message, StringComparison.OrdinalIgnoreCase);
        await Assert.ThrowsAsync<NatsBridgeException>(() => NatsSubscriber.StartAsync(HostB, "wfs", new NatsBridgeOptions { Url = server.Url, Subject = subject, Token = "wrong" }));

        // The same bridge with the token is let in.
        OwnAsync(await NatsPublisher.StartAsync(HostA, "wfs", new NatsBridgeOptions { Url = server.Url, Subject = subject, Token = "s3cret" }));
    }

    [Fact]
    public async Task Latest_ServerRestartMidStream_ReconnectsAndCountsTheGap()
    {
        using var server = Own(NatsServer.Start());
        var format = new FrameFormat(ElementType.Int64, 16);
        var options = new NatsBridgeOptions { Url = server.Url, Subject = NewSubject() };
        var source = Own(SharedStream.Open(HostA, "s", format));
        var writer = Own(source.OpenWriter<long>());
        var subscriber = OwnAsync(await NatsSubscriber.StartAsync(HostB, "s", options, new NatsSubscriberOptions { Format = format }));
        var remote = Own(SharedStream.Attach(HostB, "s"));
        var reader = Own(remote.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Latest }));
        var publisher = OwnAsync(await NatsPublisher.StartAsync(HostA, "s", options));

        var frame = new long[format.ElementCount];
        var next = 0L;
        void WriteUntilWritten(long count)
        {
            var deadline = DateTime.UtcNow + Bound;
            var target = subscriber.FramesWritten + count;
            while (subscriber.FramesWritten < target)
            {
                Assert.True(DateTime.UtcNow < deadline, $"only {subscriber.FramesWritten} of {target} frames came through the bridge");
                frame.AsSpan().Fill(next++);
                writer.Write(frame, Bound);
                Thread.Sleep(2);
            }
        }

        WriteUntilWritten(20);
        server.Restart();
        WriteUntilWritten(20);

        // One frame at a time until one comes through: every frame from the first received to it is either
        // written on host B or counted as lost.
        var settled = DateTime.UtcNow + Bound;
        while (!(reader.PeekNewest(out _, out var newest) && (long)newest.FrameId == next - 1))
        {
            Assert.True(DateTime.UtcNow < settled, $"frame {next - 1} never came through");
            frame.AsSpan().Fill(next++);
            writer.Write(frame, Bound);
            Thread.Sleep(50);
        }

        Assert.Equal(next - subscriber.FirstSequence, subscriber.FramesWritten + subscriber.FramesLost);
        Assert.False(publisher.Completion.IsCompleted, "the publisher stopped instead of reconnecting");
    }

    private static void Fill(float[] frame, int index)
    {
        for (var i = 0; i < frame.Length; i++)
        {
            frame[i] = (index * 31) + (i * 0.5f);
        }
    }

    private static long Checksum(float[] frame)
    {
        long sum = 0;
        foreach (var b in MemoryMarshal.AsBytes(frame.AsSpan()))
        {
            sum = (sum * 131) + b;
        }

        return sum;
    }
}
