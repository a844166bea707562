using System.Threading.Channels;
using Flowline.SharedMemory;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Flowline.Nats;

/// <summary>
/// Receives the frames a <see cref="NatsPublisher"/> sends to a subject and writes them to a local
/// stream, with their frame ids and their origin timestamps moved onto this host's clock. Over core
/// NATS the delivery is <c>latest</c>: frames dropped on the way (a slow receiver, a server restart)
/// are counted from the gaps in the publisher's sequence numbers. Over JetStream the delivery is
/// <c>lossless</c>: a durable consumer delivers every frame, a window of them unacknowledged; each is written in stream order and acknowledged only once
/// it is written to the local stream, frames delivered again
/// are recognised by their JetStream sequence and dropped, and a subscriber that restarts resumes where it stopped.
/// </summary>
public sealed class NatsSubscriber : IAsyncDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    private readonly string @namespace;
    private readonly string streamName;
    private readonly NatsSubscriberOptions subscriberOptions;
    private readonly NatsConnection connection;
    private readonly INatsSub<NatsMemoryOwner<byte>>? subscription;
    private readonly INatsJSConsumer? consumer;
    private readonly string subject;
    private readonly byte[]? newestBeforeStart;
    private ulong lastStreamSequence;
    private bool ordered;
    private long framesDuplicate;
    private long ackFailures;
    private long framesAhead;
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

    private NatsSubscriber(string @namespace, string streamName, string subject, NatsSubscriberOptions subscriberOptions, NatsConnection connection, INatsSub<NatsMemoryOwner<byte>>? subscription, INatsJSConsumer? consumer, SharedStream? stream)
    {
        this.@namespace = @namespace;
        this.streamName = streamName;
        this.subject = subject;
        this.subscriberOptions = subscriberOptions;
        this.connection = connection;
        this.subscription = subscription;
        this.consumer = consumer;
        this.stream = stream;
        if (consumer is not null && stream is not null)
        {
            newestBeforeStart = NewestFrame(stream);
        }

        writer = stream?.OpenWriter<byte>();
    }

    /// <summary>The delivery across hosts: latest (core NATS) or lossless (JetStream).</summary>
    public Delivery Delivery => consumer is null ? Delivery.Latest : Delivery.Lossless;

    /// <summary>Frames delivered again by JetStream (after a restart of this bridge or of the server) and dropped because they were written already.</summary>
    public long FramesDuplicate => Interlocked.Read(ref framesDuplicate);

    /// <summary>Acknowledgements that could not be sent (the server was away): those frames are delivered again and dropped as duplicates.</summary>
    public long AckFailures => Interlocked.Read(ref ackFailures);

    /// <summary>Frames JetStream delivered before the frame they follow (after a restart) and left to be delivered again, in order.</summary>
    public long FramesAhead => Interlocked.Read(ref framesAhead);

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
        if (subscriberOptions.AckWindow < 1)
        {
            throw new ArgumentException($"ack window {subscriberOptions.AckWindow}: a lossless receiver has at least 1 frame unacknowledged", nameof(subscriberOptions));
        }

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
            INatsSub<NatsMemoryOwner<byte>>? subscription = null;
            INatsJSConsumer? consumer = null;
            if (options.Delivery == Delivery.Lossless)
            {
                consumer = await CreateConsumerAsync(connection, options, subscriberOptions.Durable ?? DefaultDurable(@namespace, streamName), subscriberOptions, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                var subOpts = new NatsSubOpts
                {
                    ChannelOpts = new NatsSubChannelOpts { Capacity = subscriberOptions.PendingFrames, FullMode = BoundedChannelFullMode.DropOldest },
                };
                subscription = await connection.SubscribeCoreAsync<NatsMemoryOwner<byte>>(options.Subject, opts: subOpts, cancellationToken: cancellationToken).ConfigureAwait(false);

                // The server has the subscription once it answers a ping sent after it.
                await connection.PingAsync(cancellationToken).ConfigureAwait(false);
            }

            var subscriber = new NatsSubscriber(@namespace, streamName, options.Subject, subscriberOptions, connection, subscription, consumer, stream);
            if (consumer is not null)
            {
                // Frames up to the acknowledgement floor are done; the next one to write follows it.
                subscriber.lastStreamSequence = consumer.Info.AckFloor.StreamSeq;
                subscriber.ordered = consumer.Info.Config.MaxAckPending > 1;
            }

            subscriber.thread = new Thread(consumer is null ? subscriber.Run : subscriber.RunLossless) { IsBackground = true, Name = $"nats-subscribe {options.Subject}" };
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

    /// <summary>The durable consumer's name when none is given: <c>flowline_</c>, the namespace, <c>_</c>, the stream.</summary>
    public static string DefaultDurable(string @namespace, string streamName) => NatsBridgeOptions.Sanitize($"flowline_{@namespace}_{streamName}");

    private static async Task<INatsJSConsumer> CreateConsumerAsync(NatsConnection connection, NatsBridgeOptions options, string durable, NatsSubscriberOptions subscriberOptions, CancellationToken cancellationToken)
    {
        if (durable.Length == 0 || NatsBridgeOptions.Sanitize(durable) != durable)
        {
            throw new ArgumentException($"durable '{durable}': use letters, digits, '-' and '_' only", nameof(subscriberOptions));
        }

        var js = new NatsJSContext(connection);
        var ordered = await JetStreamSetup.EnsureStreamAsync(js, options, cancellationToken).ConfigureAwait(false);
        try
        {
            return await js.CreateOrUpdateConsumerAsync(
                options.ResolvedJetStreamName,
                new ConsumerConfig(durable)
                {
                    DurableName = durable,
                    FilterSubject = options.Subject,
                    AckPolicy = ConsumerConfigAckPolicy.Explicit,
                    DeliverPolicy = ConsumerConfigDeliverPolicy.All,
                    AckWait = subscriberOptions.AckWait,

                    // A window of frames unacknowledged: the server delivers new frames in order, frames delivered again after a
                    // restart may come before newer ones, and the receive loop writes only the frame that follows the last one
                    // written. On a stream holding other subjects too, the sequence numbers have gaps: one frame at a time.
                    MaxAckPending = ordered ? subscriberOptions.AckWindow : 1,
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (NatsJSApiException e)
        {
            throw new NatsBridgeException(
                $"lossless delivery on '{options.Subject}': the server refused the durable consumer '{durable}' on JetStream stream '{options.ResolvedJetStreamName}': {e.Error.Description} " +
                $"(code {e.Error.Code}/{e.Error.ErrCode}); a work-queue stream has one receiver per subject",
                e);
        }
    }

    /// <summary>A copy of the newest frame of <paramref name="local"/>'s ring, or null if it has none.</summary>
    private static byte[]? NewestFrame(SharedStream local)
    {
        using var peek = local.OpenReader<byte>(new ReaderOptions { Delivery = Delivery.Latest });
        return peek.PeekNewest(out var frame, out var header) ? [.. BitConverter.GetBytes(header.FrameId), .. frame.Span] : null;
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
            var messages = subscription!.Msgs;
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

    /// <summary>
    /// The receive loop of lossless delivery: pulls from the durable consumer, writes each new frame to the local
    /// stream, then acknowledges it. Only the frame that follows the last one written (by JetStream sequence) is written:
    /// an older one is a duplicate, a newer one is left unacknowledged to come again in order. Pulls again after the server went away.
    /// </summary>
    private void RunLossless()
    {
        var token = stop.Token;
        // Short pull requests with heartbeats: a pull lost with a server that went away is noticed and made again within seconds.
        var consumeOpts = new NatsJSConsumeOpts { MaxMsgs = subscriberOptions.PendingFrames, Expires = TimeSpan.FromSeconds(5), IdleHeartbeat = TimeSpan.FromSeconds(1) };
        var checkRestart = newestBeforeStart is not null;
        try
        {
            var ended = false;
            while (!ended)
            {
                try
                {
                    var messages = consumer!.ConsumeAsync<NatsMemoryOwner<byte>>(opts: consumeOpts, cancellationToken: token).GetAsyncEnumerator(token);
                    try
                    {
                        while (!ended && Wait(messages.MoveNextAsync()))
                        {
                            var message = messages.Current;
                            using var data = message.Data;
                            var sequence = message.Metadata?.Sequence.Stream ?? 0;
                            var span = data.Memory.Span;
                            if (ordered && lastStreamSequence != 0 && sequence > lastStreamSequence + 1 && message.Metadata?.NumDelivered < 3)
                            {
                                // Newer than the next frame, which is being delivered again after a restart (of the server or of
                                // this bridge): not written, not acknowledged, so that it is delivered again after the ack wait,
                                // after the frame it follows. (A gap that stays — a frame removed by hand — is passed on the third delivery.)
                                Interlocked.Increment(ref framesAhead);
                                continue;
                            }

                            if (sequence != 0 && sequence <= lastStreamSequence)
                            {
                                // Delivered again (the server did not get the acknowledgement): written already.
                                Interlocked.Increment(ref framesDuplicate);
                            }
                            else if (checkRestart && message.Metadata?.NumDelivered > 1 && IsNewestBeforeStart(span))
                            {
                                // This bridge stopped after writing the frame and before its acknowledgement got through.
                                Interlocked.Increment(ref framesDuplicate);
                                lastStreamSequence = sequence;
                            }
                            else
                            {
                                ended = !Handle(span, token);
                                lastStreamSequence = sequence;
                            }

                            checkRestart = false;
                            Acknowledge(message, token);
                        }
                    }
                    finally
                    {
                        Wait(messages.DisposeAsync());
                    }

                    if (!ended)
                    {
                        // The consumption ended without an error (the connection closed): pull again.
                        token.WaitHandle.WaitOne(PollInterval);
                    }
                }
                catch (NatsException) when (!token.IsCancellationRequested)
                {
                    // The server went away mid-pull: pull again once it is back.
                    token.WaitHandle.WaitOne(PollInterval);
                }

                token.ThrowIfCancellationRequested();
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

    private static bool Wait(ValueTask<bool> pending) => pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();

    private static void Wait(ValueTask pending)
    {
        if (!pending.IsCompletedSuccessfully)
        {
            pending.AsTask().GetAwaiter().GetResult();
        }
    }

    private void Acknowledge(INatsJSMsg<NatsMemoryOwner<byte>> message, CancellationToken token)
    {
        try
        {
            Wait(message.AckAsync(cancellationToken: token));
        }
        catch (Exception e) when (e is NatsException or TimeoutException && !token.IsCancellationRequested)
        {
            // Not sent: the server delivers the frame again after the ack wait, and it is recognised by its sequence.
            Interlocked.Increment(ref ackFailures);
        }
    }

    /// <summary>True if <paramref name="message"/> is the frame that was the local stream's newest when this bridge started (same frame id, same bytes).</summary>
    private bool IsNewestBeforeStart(ReadOnlySpan<byte> message)
    {
        if (!FrameEnvelope.TryRead(message, out var envelope, out _) || envelope.IsEndOfStream)
        {
            return false;
        }

        var newest = newestBeforeStart!;
        return BitConverter.ToUInt64(newest) == envelope.Header.FrameId && message[FrameEnvelope.PrefixBytes..].SequenceEqual(newest.AsSpan(sizeof(ulong)));
    }

    /// <summary>Writes one received frame to the local stream; false once the publisher's stream has ended.</summary>
    private bool Handle(ReadOnlySpan<byte> message, CancellationToken token)
    {
        if (!FrameEnvelope.TryRead(message, out var envelope, out var problem))
        {
            throw new NatsBridgeException($"subject '{subject}': {problem}");
        }

        if (stream is null)
        {
            stream = OpenLocal(@namespace, streamName, subscriberOptions, new FrameFormat(envelope.ElementType, envelope.Shape));
            writer = stream!.OpenWriter<byte>();
        }

        if (!FrameEnvelope.Matches(envelope, stream.Format))
        {
            throw new NatsBridgeException(
                $"subject '{subject}' carries frames of {FrameEnvelope.Describe(envelope)} but the local stream '{@namespace}/{streamName}' is {stream.Format}: " +
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

        if (subscription is not null)
        {
            await subscription.DisposeAsync().ConfigureAwait(false);
        }

        if (consumer is not null)
        {
            // The acknowledgements of the frames written are queued in the client: a ping answered after them means the
            // server has them, so that a bridge started again does not receive those frames again.
            try
            {
                using var flushed = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await connection.PingAsync(flushed.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is NatsException or OperationCanceledException)
            {
                // The server is away: those frames are delivered again and recognised.
            }
        }

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

    /// <summary>
    /// Latest delivery: frames the client queues while the local stream is full; beyond, the oldest are dropped (and counted).
    /// Lossless delivery: the size of the client's pull requests (the server has at most <see cref="AckWindow"/> frames unacknowledged). Default 64.
    /// </summary>
    public int PendingFrames { get; init; } = 64;

    /// <summary>
    /// Lossless delivery: the durable JetStream consumer's name, which the receiver resumes from after a restart; null (default)
    /// for <see cref="NatsSubscriber.DefaultDurable"/> of the local namespace and stream.
    /// </summary>
    public string? Durable { get; init; }

    /// <summary>
    /// Lossless delivery: how long JetStream waits for a frame's acknowledgement before delivering it again. A receiver that
    /// restarts after a crash resumes after this wait at most; a frame whose local write waits longer (a lossless local reader
    /// holds the ring full) is delivered again and dropped as a duplicate. Default 5 s.
    /// </summary>
    public TimeSpan AckWait { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Lossless delivery: frames the durable consumer delivers ahead of their acknowledgement. 1 (default) is one round
    /// trip to the server per frame, and exact after a crash: a receiver killed between writing a frame and acknowledging
    /// it finds that frame as its stream's newest and drops it when it comes again. More overlaps the round trips (several
    /// times the rate of small frames, see docs/performance.md) but a receiver killed (SIGKILL, power loss) with
    /// acknowledgements not yet sent writes those frames again after its restart: at most <c>AckWindow - 1</c> duplicates.
    /// A clean stop sends every acknowledgement first. Fixed when the consumer is created (a durable keeps its window).
    /// </summary>
    public int AckWindow { get; init; } = 1;

    /// <summary>
    /// The publisher's wall clock minus this host's (ns), for the transit time of each frame. Default 0:
    /// the hosts' clocks are assumed synchronised (NTP, PTP).
    /// </summary>
    public long ClockOffsetNs { get; init; }
}
