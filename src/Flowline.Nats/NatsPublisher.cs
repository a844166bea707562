using System.Buffers;
using Flowline.SharedMemory;
using System.Globalization;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Flowline.Nats;

/// <summary>
/// Reads a local stream and publishes each frame to a NATS subject, prefixed with its header and the
/// stream's format (<see cref="FrameEnvelope"/>). One pooled buffer holds the prefix and the frame: the
/// frame is copied once out of shared memory, intact, and the NATS client copies it into its write buffer.
/// With <c>latest</c> delivery (core NATS) nothing is allocated per frame. With <c>lossless</c> delivery
/// (JetStream) each frame is published with a message id (a small string per frame, for the server's
/// duplicate detection) and a window of frames (<see cref="NatsBridgeOptions.Window"/>) awaits the server's
/// acknowledgements, each stored in order after the one before it; the window is sent again from its oldest frame
/// while the server is away or the stream is full: in order, never dropped, stored once.
/// </summary>
public sealed class NatsPublisher : IAsyncDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    private readonly SharedStream stream;
    private readonly StreamReader<byte> reader;
    private readonly NatsConnection connection;
    private readonly string subject;
    private readonly NatsJSContext? jetStream;
    private readonly string runId = Guid.NewGuid().ToString("N")[..12];
    private readonly WindowSlot[] window;
    private readonly bool ordered;
    private readonly CancellationTokenSource stop = new();
    private readonly Thread thread;
    private readonly TaskCompletionSource completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long framesPublished;
    private long publishRetries;

    private NatsPublisher(SharedStream stream, StreamReader<byte> reader, NatsConnection connection, string subject, NatsJSContext? jetStream, bool ordered, int window)
    {
        this.stream = stream;
        this.reader = reader;
        this.connection = connection;
        this.subject = subject;
        this.jetStream = jetStream;
        this.ordered = ordered;
        var messageBytes = FrameEnvelope.PrefixBytes + stream.Format.FrameBytes;
        var slots = jetStream is null || !ordered ? 1 : (int)Math.Clamp(NatsBridgeOptions.WindowBytes / messageBytes, 1, window);
        this.window = new WindowSlot[slots];
        for (var i = 0; i < slots; i++)
        {
            this.window[i] = new WindowSlot(ArrayPool<byte>.Shared.Rent(messageBytes));
        }

        thread = new Thread(Run) { IsBackground = true, Name = $"nats-publish {subject}" };
    }

    /// <summary>The local stream's format, as it travels with every frame.</summary>
    public FrameFormat Format => stream.Format;

    /// <summary>Frames published to the subject.</summary>
    public long FramesPublished => Volatile.Read(ref framesPublished);

    /// <summary>Publishes the server did not acknowledge and that were sent again (lossless delivery: the server was away, or the JetStream stream was full).</summary>
    public long PublishRetries => Volatile.Read(ref publishRetries);

    /// <summary>The delivery across hosts: latest (core NATS) or lossless (JetStream).</summary>
    public Delivery Delivery => jetStream is null ? Delivery.Latest : Delivery.Lossless;

    /// <summary>Frames the local reader skipped because the bridge fell behind the local writer (<c>latest</c> delivery only).</summary>
    public long FramesSkipped => reader.FramesSkipped;

    /// <summary>Completes when the bridge stops: the local stream closed (an end-of-stream message was sent), or it was disposed; faults on an error.</summary>
    public Task Completion => completion.Task;

    /// <summary>
    /// Attaches to the local stream <paramref name="streamName"/> of <paramref name="namespace"/>, connects
    /// to NATS and starts publishing the frames written from now on.
    /// </summary>
    /// <param name="namespace">The local stream's namespace.</param>
    /// <param name="streamName">The local stream (it must exist).</param>
    /// <param name="options">The server, the subject, the delivery across hosts, authentication and TLS.</param>
    /// <param name="localDelivery">
    /// The local reader's delivery; null (default) for <see cref="NatsBridgeOptions.Delivery"/>. <see cref="Delivery.Latest"/>
    /// never holds the local writer back and skips frames when the network is slower; <see cref="Delivery.Lossless"/> holds
    /// the local writer back instead.
    /// </param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <exception cref="NatsBridgeException">The server refused the connection or cannot carry frames of this size.</exception>
    public static async Task<NatsPublisher> StartAsync(string @namespace, string streamName, NatsBridgeOptions options, Delivery? localDelivery = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var connection = await options.ConnectAsync(cancellationToken).ConfigureAwait(false);
        SharedStream? stream = null;
        try
        {
            stream = SharedStream.Attach(@namespace, streamName);
            var messageBytes = (long)FrameEnvelope.PrefixBytes + stream.Format.FrameBytes;
            if (connection.ServerInfo is { } info && messageBytes > info.MaxPayload)
            {
                throw new NatsBridgeException(
                    $"stream '{@namespace}/{streamName}' has frames of {stream.Format.FrameBytes} bytes ({stream.Format}); with the {FrameEnvelope.PrefixBytes}-byte prefix " +
                    $"they exceed the server's max_payload of {info.MaxPayload} bytes: raise max_payload in the server's configuration");
            }

            NatsJSContext? jetStream = null;
            var ordered = false;
            if (options.Delivery == Delivery.Lossless)
            {
                jetStream = new NatsJSContext(connection);
                ordered = await JetStreamSetup.EnsureStreamAsync(jetStream, options, cancellationToken).ConfigureAwait(false);
            }

            var reader = stream.OpenReader<byte>(new ReaderOptions { Delivery = localDelivery ?? options.Delivery, WaitThroughWriterChanges = true });
            var publisher = new NatsPublisher(stream, reader, connection, options.Subject, jetStream, ordered, options.Window);
            publisher.thread.Start();
            return publisher;
        }
        catch
        {
            stream?.Dispose();
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private void Run()
    {
        try
        {
            if (jetStream is not null)
            {
                RunLossless(jetStream);
            }
            else
            {
                RunLatest();
            }

            completion.TrySetResult();
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            completion.TrySetResult();
        }
        catch (Exception e)
        {
            completion.TrySetException(e);
        }
    }

    private void RunLatest()
    {
        var token = stop.Token;
        var format = stream.Format;
        var buffer = window[0].Buffer;
        var payload = buffer.AsSpan(FrameEnvelope.PrefixBytes, format.FrameBytes);
        var message = buffer.AsMemory(0, FrameEnvelope.PrefixBytes + format.FrameBytes);
        while (!token.IsCancellationRequested)
        {
            var status = reader.ReadInto(payload, out var header, PollInterval, token);
            if (status == ReadStatus.EndOfStream)
            {
                FrameEnvelope.Write(buffer, format, default, MonotonicClock.NowNs(), WallClockNs(), FrameEnvelope.EndOfStreamFlag);
                Publish(buffer.AsMemory(0, FrameEnvelope.PrefixBytes), token);
                break;
            }

            if (status != ReadStatus.Ok)
            {
                continue;
            }

            FrameEnvelope.Write(buffer, format, header, MonotonicClock.NowNs(), WallClockNs());
            Publish(message, token);
            Interlocked.Increment(ref framesPublished);
        }
    }

    private void Publish(ReadOnlyMemory<byte> message, CancellationToken token)
    {
        // The client copies the message into its write buffer; the call completes at once unless that
        // buffer is full or the connection is down (then it waits for the reconnection).
        var pending = connection.PublishAsync(subject, message, cancellationToken: token);
        if (!pending.IsCompletedSuccessfully)
        {
            pending.AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>
    /// Lossless delivery: a window of frames copied out of the local stream, published with message ids, each kept until the
    /// server acknowledges it. Frames are acknowledged in order, oldest first. Each publish but a run's first says which
    /// stream sequence it must follow (<c>Nats-Expected-Last-Sequence</c>: the previous frame's), so the server stores the
    /// frames in order or refuses them; after a refusal or a lost acknowledgement the window is sent again from its oldest
    /// frame, and the server's duplicate detection acknowledges the ones it had stored without storing them twice.
    /// </summary>
    private void RunLossless(NatsJSContext js)
    {
        var token = stop.Token;
        var format = stream.Format;
        var messageBytes = FrameEnvelope.PrefixBytes + format.FrameBytes;
        var head = 0;
        var count = 0;
        var started = 0;
        ulong? lastStored = null;
        var ended = false;
        var backoff = TimeSpan.FromMilliseconds(10);
        while (true)
        {
            token.ThrowIfCancellationRequested();

            // Until the first acknowledgement gives the stream's sequence, one frame is in flight.
            var canStart = started == 0 || lastStored is not null;
            if (started < count && canStart)
            {
                Start(js, window[(head + started) % window.Length], lastStored, started);
                started++;
                continue;
            }

            if (!ended && count < window.Length && canStart)
            {
                var slot = window[(head + count) % window.Length];
                var status = reader.ReadInto(slot.Buffer.AsSpan(FrameEnvelope.PrefixBytes, format.FrameBytes), out var header, started == 0 ? PollInterval : TimeSpan.Zero, token);
                if (status == ReadStatus.Ok || status == ReadStatus.EndOfStream)
                {
                    ended = status == ReadStatus.EndOfStream;
                    FrameEnvelope.Write(slot.Buffer, format, ended ? default : header, MonotonicClock.NowNs(), WallClockNs(), ended ? FrameEnvelope.EndOfStreamFlag : (byte)0);
                    slot.Length = ended ? FrameEnvelope.PrefixBytes : messageBytes;
                    slot.Sequence = ended ? -1 : header.Sequence;
                    count++;
                    Start(js, slot, lastStored, started);
                    started++;
                    continue;
                }
            }

            if (count == 0)
            {
                if (ended)
                {
                    return;
                }

                continue;
            }

            var oldest = window[head];
            try
            {
                var ack = oldest.Ack!.GetAwaiter().GetResult();
                ack.EnsureSuccess();
                lastStored = ack.Seq;
                oldest.Ack = null;
                head = (head + 1) % window.Length;
                count--;
                started--;
                backoff = TimeSpan.FromMilliseconds(10);
                if (oldest.Sequence >= 0)
                {
                    Interlocked.Increment(ref framesPublished);
                }
            }
            catch (NatsJSApiException e) when (e.Error.Code != 503 && (e.Error.ErrCode != WrongLastSequence || oldest.AfterAcknowledged))
            {
                throw new NatsBridgeException(
                    e.Error.ErrCode == WrongLastSequence
                        ? $"subject '{subject}': frame {oldest.Sequence} does not follow JetStream sequence {oldest.Expected} ({e.Error.Description}): another publisher writes to the JetStream stream, or it was changed; lossless delivery has one publisher per subject"
                        : $"subject '{subject}': JetStream refused frame {oldest.Sequence}: {e.Error.Description} (code {e.Error.Code}/{e.Error.ErrCode})",
                    e);
            }
            catch (Exception e) when (e is NatsException or TimeoutException && !token.IsCancellationRequested)
            {
                // Not stored or not acknowledged (the server is away, the stream is full, or a frame came before the one it
                // follows): let the others in flight finish, wait, and send the window again from its oldest frame.
                Interlocked.Increment(ref publishRetries);
                for (var i = 0; i < started; i++)
                {
                    var slot = window[(head + i) % window.Length];
                    try
                    {
                        slot.Ack!.GetAwaiter().GetResult();
                    }
                    catch (Exception) when (!token.IsCancellationRequested)
                    {
                        // Sent again below; if it was stored, the server says it is a duplicate.
                    }

                    slot.Ack = null;
                }

                started = 0;
                token.WaitHandle.WaitOne(backoff);
                token.ThrowIfCancellationRequested();
                backoff = TimeSpan.FromMilliseconds(Math.Min(500, backoff.TotalMilliseconds * 2));
            }
        }
    }

    /// <summary>Publishes <paramref name="slot"/>'s frame, <paramref name="offset"/> frames after the last one stored (<paramref name="lastStored"/>, null before the first acknowledgement).</summary>
    private void Start(NatsJSContext js, WindowSlot slot, ulong? lastStored, int offset)
    {
        slot.Expected = ordered && lastStored is { } last ? last + (ulong)offset : null;
        slot.AfterAcknowledged = offset == 0;
        var opts = new NatsJSPubOpts
        {
            MsgId = slot.Sequence < 0 ? runId + "-end" : runId + "-" + slot.Sequence.ToString(CultureInfo.InvariantCulture),
            ExpectedLastSequence = slot.Expected,
        };
        slot.Ack = js.PublishAsync(subject, slot.Buffer.AsMemory(0, slot.Length), opts: opts, cancellationToken: stop.Token).AsTask();
    }

    /// <summary>The server's error code for a publish whose expected last sequence is not the stream's.</summary>
    private const int WrongLastSequence = 10071;

    /// <summary>One frame of the lossless window: its bytes (prefix and payload), kept until the server acknowledges it.</summary>
    private sealed class WindowSlot(byte[] buffer)
    {
        public byte[] Buffer { get; } = buffer;

        public int Length { get; set; }

        /// <summary>The frame's sequence in the local stream; -1 for the end-of-stream message.</summary>
        public long Sequence { get; set; }

        /// <summary>The stream sequence the server must have stored last for this frame to be stored, or null (no condition).</summary>
        public ulong? Expected { get; set; }

        /// <summary>True if it was sent with nothing of this publisher in flight before it (a refusal for the expected sequence is then not a reordering).</summary>
        public bool AfterAcknowledged { get; set; }

        public Task<PubAckResponse>? Ack { get; set; }
    }

    /// <summary>The wall clock in ns since the Unix epoch (for the receiver's transit-time estimate).</summary>
    internal static long WallClockNs() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;

    /// <summary>Stops publishing, flushes and closes the connection, and detaches from the stream.</summary>
    public async ValueTask DisposeAsync()
    {
        if (stop.IsCancellationRequested)
        {
            return;
        }

        await stop.CancelAsync().ConfigureAwait(false);
        if (thread.IsAlive)
        {
            thread.Join();
        }

        await connection.DisposeAsync().ConfigureAwait(false);
        reader.Dispose();
        stream.Dispose();
        foreach (var slot in window)
        {
            ArrayPool<byte>.Shared.Return(slot.Buffer);
        }

        stop.Dispose();
    }
}
