using System.Buffers;
using Flowline.SharedMemory;
using NATS.Client.Core;

namespace Flowline.Nats;

/// <summary>
/// Reads a local stream and publishes each frame to a NATS subject (core NATS: <c>latest</c> delivery
/// across hosts), prefixed with its header and the stream's format (<see cref="FrameEnvelope"/>).
/// One pooled buffer holds the prefix and the frame: the frame is copied once out of shared memory,
/// intact, and the NATS client copies it into its write buffer; nothing is allocated per frame.
/// </summary>
public sealed class NatsPublisher : IAsyncDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    private readonly SharedStream stream;
    private readonly StreamReader<byte> reader;
    private readonly NatsConnection connection;
    private readonly string subject;
    private readonly byte[] buffer;
    private readonly CancellationTokenSource stop = new();
    private readonly Thread thread;
    private readonly TaskCompletionSource completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long framesPublished;

    private NatsPublisher(SharedStream stream, StreamReader<byte> reader, NatsConnection connection, string subject)
    {
        this.stream = stream;
        this.reader = reader;
        this.connection = connection;
        this.subject = subject;
        buffer = ArrayPool<byte>.Shared.Rent(FrameEnvelope.PrefixBytes + stream.Format.FrameBytes);
        thread = new Thread(Run) { IsBackground = true, Name = $"nats-publish {subject}" };
    }

    /// <summary>The local stream's format, as it travels with every frame.</summary>
    public FrameFormat Format => stream.Format;

    /// <summary>Frames published to the subject.</summary>
    public long FramesPublished => Volatile.Read(ref framesPublished);

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
    /// <param name="options">The server, the subject, authentication and TLS.</param>
    /// <param name="delivery">
    /// The local reader's delivery: <see cref="Delivery.Latest"/> (default) never holds the local writer back and
    /// skips frames when the network is slower; <see cref="Delivery.Lossless"/> holds the local writer back instead.
    /// </param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <exception cref="NatsBridgeException">The server refused the connection or cannot carry frames of this size.</exception>
    public static async Task<NatsPublisher> StartAsync(string @namespace, string streamName, NatsBridgeOptions options, Delivery delivery = Delivery.Latest, CancellationToken cancellationToken = default)
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

            var reader = stream.OpenReader<byte>(new ReaderOptions { Delivery = delivery, WaitThroughWriterChanges = true });
            var publisher = new NatsPublisher(stream, reader, connection, options.Subject);
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
                    Send(buffer.AsMemory(0, FrameEnvelope.PrefixBytes), token);
                    break;
                }

                if (status != ReadStatus.Ok)
                {
                    continue;
                }

                FrameEnvelope.Write(buffer, format, header, MonotonicClock.NowNs(), WallClockNs());
                Send(message, token);
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

    private void Send(ReadOnlyMemory<byte> message, CancellationToken token)
    {
        // The client copies the message into its write buffer; the call completes at once unless that
        // buffer is full or the connection is down (then it waits for the reconnection).
        var pending = connection.PublishAsync(subject, message, cancellationToken: token);
        if (!pending.IsCompletedSuccessfully)
        {
            pending.AsTask().GetAwaiter().GetResult();
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
