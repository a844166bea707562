using System.Text;
using System.Threading.Channels;
using Flowline.Runtime;
using Flowline.Status;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Flowline.ControlPlane;

/// <summary>
/// The profiling endpoints (decisions 90 and 94): <c>GET /profiling</c>, and opt-in traces:
/// <c>POST</c> / <c>DELETE /profiling/traces</c> switch them on and off, <c>GET /profiling/traces</c>
/// streams them as Server-Sent Events.
/// </summary>
public static partial class ControlApi
{
    /// <summary>How long a profiling request waits for an operation in progress before it answers with the last snapshot (<c>stale: true</c>).</summary>
    private static readonly TimeSpan ProfilingWait = TimeSpan.FromMilliseconds(100);

    private static void MapProfiling(RouteGroupBuilder read, RouteGroupBuilder control, ControlService service, ControlApiOptions options, TraceHub traces)
    {

        // The counters of every stream and the histograms of every worker, read from shared memory.
        read.MapGet("/profiling", () => Reply(service, () => service.Manager.Profiling(ProfilingWait)));
        read.MapGet("/profiling/traces", (Delegate)((HttpContext context) => traces.StreamAsync(context, options.KeepaliveInterval)))
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        control.MapPost("/profiling/traces", async (HttpRequest request, CancellationToken ct) =>
            await ReplyAsync(service, request, ct, body =>
            {
                var state = service.Manager.SetTraces(new TraceRequest(
                    Names(body, "nodes"),
                    Names(body, "streams"),
                    (int)Math.Clamp(ControlJson.Integer(body, "every", 1), int.MinValue, int.MaxValue),
                    ControlJson.Number(body, "seconds", 10.0)!.Value));
                traces.Wake(); // traffic may start at full rate: read soon rather than after up to 100 ms
                return state;
            }).ConfigureAwait(false));
        control.MapDelete("/profiling/traces", () => Reply(service, () => service.Manager.StopTraces()));
    }

    /// <summary>A list of names in <paramref name="body"/>'s field <paramref name="name"/>, or null when absent.</summary>
    private static List<string>? Names(System.Text.Json.Nodes.JsonObject? body, string name)
    {
        if (body?[name] is not { } node)
        {
            return null;
        }

        if (node is not System.Text.Json.Nodes.JsonArray array || array.Any(n => n?.GetValueKind() != System.Text.Json.JsonValueKind.String))
        {
            throw new BadBodyException($"'{name}' must be a list of names");
        }

        return [.. array.Select(n => (string)n!)];
    }
}

/// <summary>
/// The trace stream of a control plane: while anyone listens, reads the workers' trace rings with a
/// <see cref="TraceFollower"/> (every 100 ms while traffic is light, down to every 5 ms at full rate,
/// decision 146) and sends each batch to every subscriber through a <see cref="TraceFanout"/>.
/// </summary>
internal sealed class TraceHub(ControlService service, int queueBytes = TraceFanout.QueueBytes)
{
    private readonly TraceFanout fanout = new(queueBytes);
    private readonly Lock gate = new();
    private readonly SemaphoreSlim wake = new(0, 1);
    private Thread? polling;
    private long wakes;

    /// <summary>Samples lost by the workers' rings before the hub read them (the hub was too slow), since it started.</summary>
    public long RingLost { get; private set; }

    /// <summary><c>GET /profiling/traces</c>: <c>event: trace</c> batches, <c>event: lost</c> counts, keepalive comments.</summary>
    public async Task StreamAsync(HttpContext context, TimeSpan keepalive)
    {
        var response = context.Response;
        var cancel = context.RequestAborted;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        var body = response.Body;
        var subscriber = fanout.Subscribe();
        lock (gate)
        {
            if (polling is null || !polling.IsAlive)
            {
                // A thread of its own: a read that waits behind busy thread-pool work lets the rings overflow.
                polling = new Thread(Poll) { IsBackground = true, Name = "flowline-traces" };
                polling.Start();
            }
        }

        try
        {
            await body.WriteAsync(": traces\n\n"u8.ToArray(), cancel).ConfigureAwait(false);
            await body.FlushAsync(cancel).ConfigureAwait(false);
            while (!cancel.IsCancellationRequested)
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                idle.CancelAfter(keepalive);
                try
                {
                    if (!await subscriber.WaitToReadAsync(idle.Token).ConfigureAwait(false))
                    {
                        return;
                    }
                }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    await body.WriteAsync(": keepalive\n\n"u8.ToArray(), cancel).ConfigureAwait(false);
                    await body.FlushAsync(cancel).ConfigureAwait(false);
                    continue;
                }

                while (subscriber.TryRead(out var item))
                {
                    await body.WriteAsync(item, cancel).ConfigureAwait(false);
                }

                await body.FlushAsync(cancel).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
        }
        finally
        {
            fanout.Unsubscribe(subscriber);
        }
    }

    /// <summary>How many times traces were switched on through this server (<see cref="Wake"/> calls), by either path.</summary>
    public long Wakes => Interlocked.Read(ref wakes);

    /// <summary>Traces were switched on: the next read comes at once, and the ones after it from the shortest interval.</summary>
    public void Wake()
    {
        Interlocked.Increment(ref wakes);
        try
        {
            wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already woken.
        }
    }

    /// <summary>Reads the rings while anyone listens; starts at the rings' ends (a subscriber gets samples from when it came).</summary>
    private void Poll()
    {
        TraceFollower? follower = null;
        var samples = new List<TraceSample>();
        while (true)
        {
            lock (gate)
            {
                if (fanout.Count == 0)
                {
                    polling = null;
                    return;
                }
            }

            var interval = TraceFollower.Ceiling;
            try
            {
                var current = service.Manager;
                samples.Clear();
                if (!ReferenceEquals(current, follower?.Manager))
                {
                    // A new manager (a replaced document): start at the ends of its rings.
                    follower = new TraceFollower(current);
                    interval = TraceFollower.Floor;
                }
                else
                {
                    var lost = follower!.Read(samples);
                    RingLost += lost;
                    fanout.Publish(samples, lost);
                    interval = follower.Interval;
                }
            }
            catch (Exception)
            {
                // A disposed manager (a replaced document) or any other failure to read: start again at the
                // current manager's ring ends. Never let it escape: this thread's exception would end the server.
                follower = null;
            }

            if (wake.Wait(interval))
            {
                follower?.Hurry();
            }
        }
    }
}

/// <summary>
/// Sends trace batches to every subscriber through a queue of its own, so that two consumers get the same
/// samples and never take them from each other. A subscriber's queue holds at most <see cref="QueueBytes"/>
/// of encoded batches: one that reads too slowly loses the batches that do not fit, and is told how many
/// samples it lost (<c>event: lost</c>, with those the workers' rings overwrote before the server read
/// them) before its next batch. Nothing is dropped without a count.
/// </summary>
internal sealed class TraceFanout
{
    /// <summary>Encoded batches a subscriber may have waiting, in bytes (its memory on the server).</summary>
    public const int QueueBytes = 16 << 20;

    private readonly Lock gate = new();
    private readonly List<Subscriber> subscribers = [];
    private readonly int queueBytes;

    /// <summary>Creates a fan-out whose subscribers each queue at most <paramref name="queueBytes"/>.</summary>
    public TraceFanout(int queueBytes = QueueBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(queueBytes, 1);
        this.queueBytes = queueBytes;
    }

    /// <summary>The number of subscribers.</summary>
    public int Count
    {
        get
        {
            lock (gate)
            {
                return subscribers.Count;
            }
        }
    }

    /// <summary>Adds a subscriber: it gets the batches published from now on.</summary>
    public Subscriber Subscribe()
    {
        var subscriber = new Subscriber();
        lock (gate)
        {
            subscribers.Add(subscriber);
        }

        return subscriber;
    }

    /// <summary>Removes a subscriber; it reads what it has queued, then no more.</summary>
    public void Unsubscribe(Subscriber subscriber)
    {
        ArgumentNullException.ThrowIfNull(subscriber);
        lock (gate)
        {
            subscribers.Remove(subscriber);
        }

        subscriber.Complete();
    }

    /// <summary>
    /// Sends one batch (which may be empty) to every subscriber, after the workers' rings lost
    /// <paramref name="ringLost"/> samples before it was read. A subscriber is told of its losses (the
    /// rings' and those of its own full queue) before its next batch, as soon as it has room.
    /// </summary>
    public void Publish(IReadOnlyList<TraceSample> samples, long ringLost)
    {
        ArgumentNullException.ThrowIfNull(samples);
        var batch = samples.Count == 0 ? null : Encoding.UTF8.GetBytes($"event: trace\ndata: {StatusJson.Serialize(samples)}\n\n");
        lock (gate)
        {
            foreach (var subscriber in subscribers)
            {
                subscriber.RingLost += ringLost;
                if (subscriber.RingLost + subscriber.QueueLost > 0)
                {
                    var notice = Encoding.UTF8.GetBytes(
                        $"event: lost\ndata: {{\"samples\":{subscriber.RingLost + subscriber.QueueLost},\"ring\":{subscriber.RingLost},\"queue\":{subscriber.QueueLost}}}\n\n");
                    if (subscriber.TryQueue(notice, queueBytes))
                    {
                        subscriber.RingLost = 0;
                        subscriber.QueueLost = 0;
                    }
                }

                if (batch is not null && (subscriber.RingLost + subscriber.QueueLost > 0 || !subscriber.TryQueue(batch, queueBytes)))
                {
                    subscriber.QueueLost += samples.Count;
                }
            }
        }
    }

    /// <summary>One consumer's queue of encoded SSE frames.</summary>
    internal sealed class Subscriber
    {
        private readonly Channel<byte[]> queue = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
        private long queued;

        /// <summary>Samples the rings lost since the last <c>lost</c> event.</summary>
        public long RingLost { get; set; }

        /// <summary>Samples dropped since the last <c>lost</c> event because its queue was full.</summary>
        public long QueueLost { get; set; }

        /// <summary>The bytes waiting in its queue.</summary>
        public long QueuedBytes => Interlocked.Read(ref queued);

        /// <summary>Waits until a frame is queued; false once unsubscribed and drained.</summary>
        public ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken) => queue.Reader.WaitToReadAsync(cancellationToken);

        /// <summary>Takes the next frame (an SSE event, UTF-8).</summary>
        public bool TryRead(out byte[] frame)
        {
            if (!queue.Reader.TryRead(out frame!))
            {
                return false;
            }

            Interlocked.Add(ref queued, -frame.Length);
            return true;
        }

        /// <summary>Queues <paramref name="frame"/> unless the queue would hold more than <paramref name="limit"/> bytes.</summary>
        public bool TryQueue(byte[] frame, int limit)
        {
            if (QueuedBytes + frame.Length > limit || !queue.Writer.TryWrite(frame))
            {
                return false;
            }

            Interlocked.Add(ref queued, frame.Length);
            return true;
        }

        public void Complete() => queue.Writer.TryComplete();
    }
}
