using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// A node's object whose settings can change while it runs: the worker calls <see cref="ApplySettings"/>
/// between two frames with the fields that changed (already validated against the kind's schema), so a
/// frame computes either with the old values or with the new ones, never with half of them.
/// </summary>
public interface ILiveSettings
{
    /// <summary>Applies changed fields (name to new value); throws to refuse (nothing must have changed then).</summary>
    void ApplySettings(JsonObject values);
}

/// <summary>
/// The worker's side of routed requests: a thread that sleeps on the mailbox's doorbell, takes each
/// request, and either answers it at once (<see cref="RequestTiming.AnyTime"/>) or hands it to the loop,
/// which runs it between two frames (<see cref="DrainBetweenFrames"/>, called from the reporter's tick:
/// one volatile read when nothing waits). The loop is never blocked by a request it does not run itself.
/// </summary>
internal sealed class WorkerRequestService : IDisposable
{
    private static readonly long ProcessStartNs = MonotonicClock.NowNs();
    private readonly ControlBlock control;
    private readonly RequestHandlers handlers;
    private readonly bool loopServices;
    private readonly ConcurrentQueue<(MailboxRequest Mail, WorkerRequest Request, RequestHandler Handler)> betweenFrames = new();
    private readonly Thread thread;
    private volatile bool disposed;
    private int queued;

    /// <param name="control">The worker's control block.</param>
    /// <param name="node">The worker's node.</param>
    /// <param name="nodeObject">The node's kernel, source or sink (live settings, its own handlers), if any.</param>
    /// <param name="loopServices">False when no loop ticks between frames (a task): between-frame handlers then run on the request thread.</param>
    public WorkerRequestService(ControlBlock control, string node, object? nodeObject, bool loopServices)
    {
        this.control = control;
        this.loopServices = loopServices;
        handlers = new RequestHandlers(node);
        handlers.Add("ping", Ping);
        handlers.Add("process_stats", _ => ProcessStats());
        if (nodeObject is ILiveSettings live)
        {
            handlers.Add("update_setting", r => UpdateSetting(live, r), RequestTiming.BetweenFrames);
        }
        else
        {
            handlers.Add("update_setting", r => throw new RequestException(RequestErrorCode.InvalidRequest, $"node '{r.Node}' cannot change its settings while it runs: they apply when it restarts"));
        }

        (nodeObject as IRequestHandlerSource)?.AddHandlers(handlers);
        thread = new Thread(Serve) { IsBackground = true, Name = $"flowline-requests-{node}" };
        thread.Start();
    }

    /// <summary>The handlers (tests and hosts add to them).</summary>
    public RequestHandlers Handlers => handlers;

    /// <summary>Runs the requests waiting for a frame boundary; called by the loop between frames only.</summary>
    public void DrainBetweenFrames()
    {
        if (Volatile.Read(ref queued) == 0)
        {
            return;
        }

        while (betweenFrames.TryDequeue(out var item))
        {
            Interlocked.Decrement(ref queued);
            Run(item.Mail, item.Request, item.Handler);
        }
    }

    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        control.Mailbox.WakeRequestWaiters();
        thread.Join(TimeSpan.FromSeconds(1));
        while (betweenFrames.TryDequeue(out var item))
        {
            Answer(item.Mail, MailboxStatus.HandlerError, Error("the worker stopped before it reached a frame boundary", null));
        }
    }

    /// <summary>The result of <c>process_stats</c> for this process.</summary>
    internal static JsonObject ProcessStats()
    {
        using var self = Process.GetCurrentProcess();
        var uptime = (MonotonicClock.NowNs() - ProcessStartNs) / 1e9;
        return new JsonObject
        {
            ["pid"] = Environment.ProcessId,
            ["host"] = Environment.MachineName,
            ["cpu_seconds"] = self.TotalProcessorTime.TotalSeconds,
            ["cpu_percent"] = uptime > 0 ? 100.0 * self.TotalProcessorTime.TotalSeconds / uptime / Environment.ProcessorCount : 0.0,
            ["rss_bytes"] = Environment.WorkingSet,
            ["threads"] = self.Threads.Count,
            ["gc_gen0"] = GC.CollectionCount(0),
            ["gc_gen1"] = GC.CollectionCount(1),
            ["gc_gen2"] = GC.CollectionCount(2),
            ["gc_pause_seconds"] = GC.GetTotalPauseDuration().TotalSeconds,
            ["allocated_bytes"] = GC.GetTotalAllocatedBytes(precise: false),
            ["uptime_seconds"] = uptime,
        };
    }

    private static JsonObject Ping(WorkerRequest request) => new()
    {
        ["pid"] = Environment.ProcessId,
        ["host"] = Environment.MachineName,
        ["node"] = request.Node,
        ["monotonic_ns"] = MonotonicClock.NowNs(),
    };

    private static JsonObject UpdateSetting(ILiveSettings live, WorkerRequest request)
    {
        if (request.Args["values"] is not JsonObject values || values.Count == 0)
        {
            throw new RequestException(RequestErrorCode.InvalidRequest, "update_setting needs 'values': an object of the fields to change");
        }

        live.ApplySettings((JsonObject)values.DeepClone());
        return new JsonObject { ["applied"] = values.DeepClone(), ["applied_ns"] = MonotonicClock.NowNs() };
    }

    private static byte[] Error(string message, string? field, RequestErrorCode? code = null)
    {
        var o = new JsonObject { ["error"] = message };
        if (field is not null)
        {
            o["field"] = field;
        }

        if (code is { } c)
        {
            o["code"] = RequestException.WireName(c);
        }

        return Encoding.UTF8.GetBytes(o.ToJsonString());
    }

    private void Serve()
    {
        var mailbox = control.Mailbox;
        while (!disposed)
        {
            var observed = mailbox.RequestDoorbell;
            while (!disposed && mailbox.TryTake(out var mail))
            {
                Dispatch(mail!);
            }

            mailbox.WaitForRequests(observed, TimeSpan.FromMilliseconds(250));
        }
    }

    private void Dispatch(MailboxRequest mail)
    {
        if (MonotonicClock.NowNs() > mail.DeadlineNs)
        {
            Answer(mail, MailboxStatus.Timeout, Error("the request's deadline passed before the worker came to it", null));
            return;
        }

        string op;
        JsonObject args;
        try
        {
            var body = JsonNode.Parse(mail.Payload) as JsonObject ?? throw new JsonException("the request is not a JSON object");
            op = (string?)body["op"] ?? throw new JsonException("the request has no 'op'");
            args = body["args"] as JsonObject ?? [];
            args = (JsonObject)args.DeepClone();
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            Answer(mail, MailboxStatus.InvalidRequest, Error($"invalid request: {e.Message}", null));
            return;
        }

        if (!handlers.TryGet(op, out var handler, out var timing))
        {
            Answer(mail, MailboxStatus.NoHandler, Error($"node '{handlers.Node}' has no handler for '{op}' (it has: {string.Join(", ", handlers.Operations)})", null));
            return;
        }

        var request = new WorkerRequest(op, args, handlers.Node, mail.CorrelationId);
        if (timing == RequestTiming.BetweenFrames && loopServices)
        {
            betweenFrames.Enqueue((mail, request, handler));
            Interlocked.Increment(ref queued);
            control.WakeCommandWaiters(); // a paused or ready worker sleeps on its command word: let it tick now
            return;
        }

        Run(mail, request, handler);
    }

    private void Run(MailboxRequest mail, WorkerRequest request, RequestHandler handler)
    {
        if (MonotonicClock.NowNs() > mail.DeadlineNs)
        {
            Answer(mail, MailboxStatus.Timeout, Error("the request's deadline passed before the worker reached a frame boundary; it was not applied", null));
            return;
        }

        try
        {
            var result = handler(request);
            var text = new JsonObject { ["result"] = result?.DeepClone() }.ToJsonString();
            var bytes = Encoding.UTF8.GetBytes(text);
            if (bytes.Length > RequestMailbox.PayloadCapacity)
            {
                Answer(mail, MailboxStatus.HandlerError, Error($"the answer is {bytes.Length} bytes, more than a mailbox slot holds ({RequestMailbox.PayloadCapacity})", null));
                return;
            }

            Answer(mail, MailboxStatus.Ok, bytes);
        }
        catch (RequestException e)
        {
            var status = e.Code switch
            {
                RequestErrorCode.InvalidRequest => MailboxStatus.InvalidRequest,
                RequestErrorCode.NoHandler => MailboxStatus.NoHandler,
                _ => MailboxStatus.HandlerError,
            };
            Answer(mail, status, Error(e.Message, e.Field));
        }
#pragma warning disable CA1031 // A handler's failure is the requester's answer, not the worker's death.
        catch (Exception e)
#pragma warning restore CA1031
        {
            Answer(mail, MailboxStatus.HandlerError, Error($"{e.GetType().Name}: {e.Message}", null));
        }
    }

    private void Answer(MailboxRequest mail, MailboxStatus status, byte[] answer)
    {
        if (answer.Length > RequestMailbox.PayloadCapacity)
        {
            answer = Error("the answer was too long for a mailbox slot", null);
        }

        control.Mailbox.Answer(mail.Slot, mail.CorrelationId, status, answer);
    }
}
