using System.Threading.Channels;
using Flowline.SharedMemory;
using NATS.Client.Core;

namespace Flowline.Nats;

/// <summary>
/// Receives the frames a <see cref="NatsPublisher"/> sends to a subject and writes them to a local
/// stream, with their frame ids and their origin timestamps moved onto this host's clock. Over core
/// NATS the delivery is <c>latest</c>: frames dropped on the way (a slow receiver, a server restart)
/// are counted from the gaps in the publisher's sequence numbers.
/// </summary>
public sealed class NatsSubscriber : IAsyncDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    private readonly string @namespace;
    private readonly string streamName;
    private readonly NatsSubscriberOptions subscriberOptions;
    private readonly NatsConnection connection;
    private readonly INatsSub<NatsMemoryOwner<byte>> subscription;
    private readonly CancellationTokenSource stop = new();
    private SharedStream? stream;
    private StreamWriter<byte>? writer;
    private readonly TaskCompletionSource completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Thread? thread;
    private long lastSequence = -1;
    private long firstSequence = -1;
    private long framesWritten;
    private long framesLost;
    private long sequenceRestarts;

    private NatsSubscriber(string @namespace, string streamName, NatsSubscriberOptions subscriberOptions, NatsConnection connection, INatsSub<NatsMemoryOwner<byte>> subscription, SharedStream? stream)
    {
        this.@namespace = @namespace;
        this.streamName = streamName;
        this.subscriberOptions = subscriberOptions;
        this.connection = connection;
        this.subscription = subscription;
        this.stream = stream;
        writer = stream?.OpenWriter<byte>();
    }

    /// <summary>The local stream's format, or null until the first frame when the stream did not exist and no format was given.</summary>
    public FrameFormat? Format => stream?.Format;

    /// <summary>True if this bridge created the local stream (rather than attaching to one that existed).</summary>
    public bool CreatedStream => stream?.Created ?? false;

    /// <summary>Frames written to the local stream.</summary>
    public long FramesWritten => Interlocked.Read(ref framesWritten);

    /// <summary>Frames lost between the publisher's stream and this one: the gaps in the publisher's sequence numbers since the first frame received.</summary>
    public long FramesLost => Interlocked.Read(ref framesLost);

    /// <summary>The publisher's sequence of the first frame received, or -1: frames before it are not counted as lost.</summary>
    public long FirstSequence => Interlocked.Read(ref firstSequence);

    /// <summary>Times the publisher's sequence went backwards (its stream was made anew); the count of lost frames starts again from there.</summary>
    public long SequenceRestarts => Interlocked.Read(ref sequenceRestarts);

    /// <summary>Completes when the publisher's stream closes (the local stream is then closed too) or the bridge is disposed; faults with <see cref="NatsBridgeException"/> on a format mismatch or a foreign message.</summary>
    public Task Completion => completion.Task;

    /// <summary>
    /// Connects to NATS, subscribes to the subject and opens the local stream: created with
    /// <see cref="NatsSubscriberOptions.Format"/>, or attached and checked if it exists; when neither is
    /// known, the stream is created with the format of the first frame received.
    /// </summary>
    /// <exception cref="NatsBridgeException">The server refused the connection, or the existing local stream's format is not the one given.</exception>
    public static async Task<NatsSubscriber> StartAsync(string @namespace, string streamName, NatsBridgeOptions options, NatsSubscriberOptions? subscriberOptions = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        subscriberOptions ??= new NatsSubscriberOptions();
        if (subscriberOptions.PendingFrames < 1)
        {
            throw new ArgumentException($"pending frames {subscriberOptions.PendingFrames}: the subscriber queues at least 1 frame", nameof(subscriberOptions));
        }

        SharedMemoryNamespace.Validate(@namespace, "namespace");
        SharedMemoryNamespace.Validate(streamName, "stream");
        var connection = await options.ConnectAsync(cancellationToken).ConfigureAwait(false);
        SharedStream? stream = null;
        try
        {
            stream = OpenLocal(@namespace, streamName, subscriberOptions, subscriberOptions.Format);
            var subOpts = new NatsSubOpts
            {
                ChannelOpts = new NatsSubChannelOpts { Capacity = subscriberOptions.PendingFrames, FullMode = BoundedChannelFullMode.DropOldest },
            };
            var subscription = await connection.SubscribeCoreAsync<NatsMemoryOwner<byte>>(options.Subject, opts: subOpts, cancellationToken: cancellationToken).ConfigureAwait(false);

            // The server has the subscription once it answers a ping sent after it.
            await connection.PingAsync(cancellationToken).ConfigureAwait(false);
            var subscriber = new NatsSubscriber(@namespace, streamName, subscriberOptions, connection, subscription, stream);
            subscriber.thread = new Thread(subscriber.Run) { IsBackground = true, Name = $"nats-subscribe {options.Subject}" };
            subscriber.thread.Start();
            return subscriber;
        }
        catch
        {
            stream?.Dispose();
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static SharedStream? OpenLocal(string @namespace, string streamName, NatsSubscriberOptions options, FrameFormat? format)
    {
        try
        {
            if (format is not null)
            {
                return SharedStream.Open(@namespace, streamName, format, RegionMode.CreateOrAttach, options.StreamOptions);
            }

            return SharedMemoryNamespace.Exists(@namespace, streamName) ? SharedStream.Attach(@namespace, streamName) : null;
        }
        catch (SharedMemoryException e)
        {
            throw new NatsBridgeException($"local stream '{@namespace}/{streamName}': {e.Message}", e);
        }
    }

    /// <summary>
    /// The receive loop, on a thread of its own: writing a frame may wait for a lossless local reader, and
    /// that wait must not hold a thread-pool thread the client needs to read its socket (a client that stops
    /// reading is a slow consumer, which the server disconnects).
    /// </summary>
    private void Run()
    {
        var token = stop.Token;
        try
        {
            var messages = subscription.Msgs;
            while (true)
            {
                if (!messages.TryRead(out var message))
                {
                    var waiting = messages.WaitToReadAsync(token);
                    if (!(waiting.IsCompletedSuccessfully ? waiting.Result : waiting.AsTask().GetAwaiter().GetResult()))
                    {
                        break;
                    }

                    continue;
                }

                using var data = message.Data;
                if (!Handle(data.Memory.Span, token))
                {
                    break;
                }
            }

            completion.TrySetResult();
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            completion.TrySetResult();
        }
        catch (Exception e)
        {
            completion.TrySetException(e);
        }
    }

    /// <summary>Writes one received frame to the local stream; false once the publisher's stream has ended.</summary>
    private bool Handle(ReadOnlySpan<byte> message, CancellationToken token)
    {
        if (!FrameEnvelope.TryRead(message, out var envelope, out var problem))
        {
            throw new NatsBridgeException($"subject '{subscription.Subject}': {problem}");
        }

        if (stream is null)
        {
            stream = OpenLocal(@namespace, streamName, subscriberOptions, new FrameFormat(envelope.ElementType, envelope.Shape));
            writer = stream!.OpenWriter<byte>();
        }

        if (!FrameEnvelope.Matches(envelope, stream.Format))
        {
            throw new NatsBridgeException(
                $"subject '{subscription.Subject}' carries frames of {FrameEnvelope.Describe(envelope)} but the local stream '{@namespace}/{streamName}' is {stream.Format}: " +
                "no frame was written; bridge to a stream of the publisher's format");
        }

        if (envelope.IsEndOfStream)
        {
            writer!.Close();
            return false;
        }

        CountGap(envelope.Header.Sequence);
        WriteFrame(message[FrameEnvelope.PrefixBytes..], envelope, token);
        return true;
    }

    private void CountGap(long sequence)
    {
        if (lastSequence >= 0 && sequence > lastSequence + 1)
        {
            Interlocked.Add(ref framesLost, sequence - lastSequence - 1);
        }
        else if (lastSequence >= 0 && sequence <= lastSequence)
        {
            Interlocked.Increment(ref sequenceRestarts);
        }
        else if (lastSequence < 0)
        {
            Interlocked.Exchange(ref firstSequence, sequence);
        }

        lastSequence = sequence;
    }

    private void WriteFrame(ReadOnlySpan<byte> payload, in FrameEnvelope.Envelope envelope, CancellationToken token)
    {
        Span<byte> slot;
        while (writer!.Look(out slot, PollInterval, token) != WriteStatus.Ok)
        {
            // A lossless local reader holds the ring full: wait (frames queue in the client, and its oldest drop).
        }

        payload.CopyTo(slot);

        // Counted before it is visible: a reader that sees the frame sees it counted.
        Interlocked.Increment(ref framesWritten);
        writer.Publish(new FrameStamp(envelope.Header.FrameId, LocalOrigin(envelope, MonotonicClock.NowNs(), NatsPublisher.WallClockNs(), subscriberOptions.ClockOffsetNs)));
    }

    /// <summary>
    /// The origin timestamp on this host's monotonic clock: now, less the transit time (the wall clocks'
    /// difference, corrected by <paramref name="clockOffsetNs"/>, at least 0), less the frame's age when it was sent
    /// (exact: both readings are on the publisher's monotonic clock).
    /// </summary>
    internal static long LocalOrigin(in FrameEnvelope.Envelope envelope, long nowMonotonicNs, long nowWallNs, long clockOffsetNs)
    {
        var transitNs = Math.Max(0, nowWallNs + clockOffsetNs - envelope.SendWallNs);
        var ageAtSendNs = Math.Max(0, envelope.SendMonotonicNs - envelope.Header.OriginTimestampNs);
        return Math.Max(1, nowMonotonicNs - transitNs - ageAtSendNs);
    }

    /// <summary>Unsubscribes, closes the connection and detaches from the local stream (which stays for its readers).</summary>
    public async ValueTask DisposeAsync()
    {
        if (stop.IsCancellationRequested)
        {
            return;
        }

        await stop.CancelAsync().ConfigureAwait(false);
        if (thread is { IsAlive: true })
        {
            thread.Join();
        }

        await subscription.DisposeAsync().ConfigureAwait(false);
        await connection.DisposeAsync().ConfigureAwait(false);
        writer?.Dispose();
        stream?.Dispose();
        stop.Dispose();
    }
}

/// <summary>How a <see cref="NatsSubscriber"/> writes its local stream. Immutable; defaults on each property.</summary>
public sealed record NatsSubscriberOptions
{
    /// <summary>The local stream's format; null to attach to an existing stream, or to create it with the first frame's format. Default null.</summary>
    public FrameFormat? Format { get; init; }

    /// <summary>The local stream's ring, when the bridge creates it. Default <see cref="StreamOptions.Default"/>.</summary>
    public StreamOptions StreamOptions { get; init; } = StreamOptions.Default;

    /// <summary>Frames the client queues while the local stream is full; beyond, the oldest are dropped (and counted). Default 64.</summary>
    public int PendingFrames { get; init; } = 64;

    /// <summary>
    /// The publisher's wall clock minus this host's (ns), for the transit time of each frame. Default 0:
    /// the hosts' clocks are assumed synchronised (NTP, PTP).
    /// </summary>
    public long ClockOffsetNs { get; init; }
}
