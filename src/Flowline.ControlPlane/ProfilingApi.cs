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

    private static void MapProfiling(RouteGroupBuilder read, RouteGroupBuilder control, ControlService service, ControlApiOptions options)
    {
        var traces = new TraceHub(service);

        // The counters of every stream and the histograms of every worker, read from shared memory.
        read.MapGet("/profiling", () => Reply(service, () => service.Manager.Profiling(ProfilingWait)));
        read.MapGet("/profiling/traces", (Delegate)((HttpContext context) => traces.StreamAsync(context, options.KeepaliveInterval)))
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        control.MapPost("/profiling/traces", async (HttpRequest request, CancellationToken ct) =>
            await ReplyAsync(service, request, ct, body => service.Manager.SetTraces(new TraceRequest(
                Names(body, "nodes"),
                Names(body, "streams"),
                (int)Math.Clamp(ControlJson.Integer(body, "every", 1), int.MinValue, int.MaxValue),
                ControlJson.Number(body, "seconds", 10.0)!.Value))).ConfigureAwait(false));
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
/// The trace stream of a control plane: while anyone listens, reads the workers' trace rings every
/// 100 ms and sends each batch to every subscriber through a queue of its own, so that two consumers
/// get the same samples and never take them from each other. A subscriber whose queue is full loses the
/// batches that do not fit, and is told how many samples it lost (<c>event: lost</c>) before its next batch.
/// </summary>
internal sealed class TraceHub(ControlService service)
{
    /// <summary>Batches a subscriber may have waiting.</summary>
    public const int QueueCapacity = 64;

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    private readonly Lock gate = new();
    private readonly List<Subscriber> subscribers = [];
    private Task? polling;

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
        var subscriber = Subscribe();
        try
        {
            await body.WriteAsync(": traces\n\n"u8.ToArray(), cancel).ConfigureAwait(false);
            await body.FlushAsync(cancel).ConfigureAwait(false);
            var reader = subscriber.Queue.Reader;
            while (!cancel.IsCancellationRequested)
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                idle.CancelAfter(keepalive);
                try
                {
                    if (!await reader.WaitToReadAsync(idle.Token).ConfigureAwait(false))
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

                while (reader.TryRead(out var item))
                {
                    await body.WriteAsync(Encoding.UTF8.GetBytes(item), cancel).ConfigureAwait(false);
                }

                await body.FlushAsync(cancel).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
        }
        finally
        {
            Unsubscribe(subscriber);
        }
    }

    private Subscriber Subscribe()
    {
        var subscriber = new Subscriber(Channel.CreateBounded<string>(new BoundedChannelOptions(QueueCapacity) { SingleReader = true, SingleWriter = true }));
        lock (gate)
        {
            subscribers.Add(subscriber);
            if (polling is null || polling.IsCompleted)
            {
                polling = Task.Run(PollAsync);
            }
        }

        return subscriber;
    }

    private void Unsubscribe(Subscriber subscriber)
    {
        lock (gate)
        {
            subscribers.Remove(subscriber);
        }

        subscriber.Queue.Writer.TryComplete();
    }

    /// <summary>Reads the rings while anyone listens; starts at the rings' ends (a subscriber gets samples from when it came).</summary>
    private async Task PollAsync()
    {
        PipelineManager? manager = null;
        long[] cursors = [];
        var samples = new List<TraceSample>();
        while (true)
        {
            lock (gate)
            {
                if (subscribers.Count == 0)
                {
                    polling = null;
                    return;
                }
            }

            try
            {
                var current = service.Manager;
                samples.Clear();
                if (!ReferenceEquals(current, manager))
                {
                    // A new manager (a replaced document): start at the ends of its rings.
                    manager = current;
                    cursors = new long[current.WorkerCount];
                    current.ReadTraces(cursors, samples);
                    samples.Clear();
                }
                else
                {
                    RingLost += current.ReadTraces(cursors, samples);
                }

                if (samples.Count > 0)
                {
                    Fan(samples);
                }
            }
            catch (ObjectDisposedException)
            {
                manager = null;
            }

            await Task.Delay(PollInterval).ConfigureAwait(false);
        }
    }

    /// <summary>Sends one batch to every subscriber; one that has no room loses it, and is told before its next batch.</summary>
    private void Fan(List<TraceSample> samples)
    {
        var batch = $"event: trace\ndata: {StatusJson.Serialize<IReadOnlyList<TraceSample>>(samples)}\n\n";
        lock (gate)
        {
            foreach (var subscriber in subscribers)
            {
                if (subscriber.Lost > 0 && subscriber.Queue.Writer.TryWrite($"event: lost\ndata: {{\"samples\":{subscriber.Lost}}}\n\n"))
                {
                    subscriber.Lost = 0;
                }

                if (subscriber.Lost > 0 || !subscriber.Queue.Writer.TryWrite(batch))
                {
                    subscriber.Lost += samples.Count;
                }
            }
        }
    }

    private sealed class Subscriber(Channel<string> queue)
    {
        public Channel<string> Queue { get; } = queue;

        /// <summary>Samples dropped since the last <c>lost</c> event, because its queue was full.</summary>
        public long Lost { get; set; }
    }
}
