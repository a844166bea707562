using System.Buffers;
using Flowline.SharedMemory;
using System.Globalization;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Flowline.Nats;

/// <summary>
/// Reads a local stream and publishes each frame to a NATS subject, prefixed with its header and the
/// stream's format (<see cref="FrameEnvelope"/>). One pooled buffer holds the prefix and the frame: the
/// frame is copied once out of shared memory, intact, and the NATS client copies it into its write buffer.
/// With <c>latest</c> delivery (core NATS) nothing is allocated per frame. With <c>lossless</c> delivery
/// (JetStream) each frame is published with a message id (a small string per frame, for the server's
/// duplicate detection) and the publisher waits for the server's acknowledgement before the next frame,
/// retrying the same frame while the server is away or the stream is full: one frame in flight, in order, never dropped.
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
    private readonly byte[] buffer;
    private readonly CancellationTokenSource stop = new();
    private readonly Thread thread;
    private readonly TaskCompletionSource completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long framesPublished;
    private long publishRetries;

    private NatsPublisher(SharedStream stream, StreamReader<byte> reader, NatsConnection connection, string subject, NatsJSContext? jetStream)
    {
        this.stream = stream;
        this.reader = reader;
        this.connection = connection;
        this.subject = subject;
        this.jetStream = jetStream;
        buffer = ArrayPool<byte>.Shared.Rent(FrameEnvelope.PrefixBytes + stream.Format.FrameBytes);
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
            if (options.Delivery == Delivery.Lossless)
            {
                jetStream = new NatsJSContext(connection);
                await JetStreamSetup.EnsureStreamAsync(jetStream, options, cancellationToken).ConfigureAwait(false);
            }

            var reader = stream.OpenReader<byte>(new ReaderOptions { Delivery = localDelivery ?? options.Delivery, WaitThroughWriterChanges = true });
            var publisher = new NatsPublisher(stream, reader, connection, options.Subject, jetStream);
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
            var token = stop.Token;
            var format = stream.Format;
            var payload = buffer.AsSpan(FrameEnvelope.PrefixBytes, format.FrameBytes);
            var message = buffer.AsMemory(0, FrameEnvelope.PrefixBytes + format.FrameBytes);
            while (!token.IsCancellationRequested)
            {
                var status = reader.ReadInto(payload, out var header, PollInterval, token);
                if (status == ReadStatus.EndOfStream)
                {
                    FrameEnvelope.Write(buffer, format, default, MonotonicClock.NowNs(), WallClockNs(), FrameEnvelope.EndOfStreamFlag);
                    Send(buffer.AsMemory(0, FrameEnvelope.PrefixBytes), -1, token);
                    break;
                }

                if (status != ReadStatus.Ok)
                {
                    continue;
                }

                FrameEnvelope.Write(buffer, format, header, MonotonicClock.NowNs(), WallClockNs());
                Send(message, header.Sequence, token);
                Interlocked.Increment(ref framesPublished);
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

    private void Send(ReadOnlyMemory<byte> message, long sequence, CancellationToken token)
    {
        if (jetStream is not null)
        {
            SendLossless(jetStream, message, sequence, token);
            return;
        }

        // The client copies the message into its write buffer; the call completes at once unless that
        // buffer is full or the connection is down (then it waits for the reconnection).
        var pending = connection.PublishAsync(subject, message, cancellationToken: token);
        if (!pending.IsCompletedSuccessfully)
        {
            pending.AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>
    /// Publishes one frame to JetStream and waits for the server to store it. Until it does (the server is away, the
    /// stream is full because the receiver is behind), the same frame is sent again with the same message id, which
    /// the server's duplicate detection stores once; anything but a transient refusal stops the bridge.
    /// </summary>
    private void SendLossless(NatsJSContext js, ReadOnlyMemory<byte> message, long sequence, CancellationToken token)
    {
        var opts = new NatsJSPubOpts { MsgId = sequence < 0 ? runId + "-end" : runId + "-" + sequence.ToString(CultureInfo.InvariantCulture) };
        var backoff = TimeSpan.FromMilliseconds(10);
        while (true)
        {
            try
            {
                js.PublishAsync(subject, message, opts: opts, cancellationToken: token).AsTask().GetAwaiter().GetResult().EnsureSuccess();
                return;
            }
            catch (NatsJSApiException e) when (e.Error.Code != 503)
            {
                throw new NatsBridgeException($"subject '{subject}': JetStream refused frame {sequence}: {e.Error.Description} (code {e.Error.Code}/{e.Error.ErrCode})", e);
            }
            catch (Exception e) when (e is NatsException or TimeoutException && !token.IsCancellationRequested)
            {
                // Not stored (or not acknowledged): the server is away or the stream is full. Wait, then send it again.
                Interlocked.Increment(ref publishRetries);
                token.WaitHandle.WaitOne(backoff);
                token.ThrowIfCancellationRequested();
                backoff = TimeSpan.FromMilliseconds(Math.Min(500, backoff.TotalMilliseconds * 2));
            }
        }
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
        ArrayPool<byte>.Shared.Return(buffer);
        stop.Dispose();
    }
}
