using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace Flowline.Runtime;

/// <summary>When a worker may run a request's handler.</summary>
public enum RequestTiming
{
    /// <summary>At once, on the worker's request thread, while its loop computes (read-only or thread-safe handlers: ping, stats).</summary>
    AnyTime,

    /// <summary>On the worker's loop thread, between two frames (handlers that change what a frame computes with: settings).</summary>
    BetweenFrames,
}

/// <summary>The typed error codes of routed requests (their wire names are snake_case).</summary>
public enum RequestErrorCode
{
    /// <summary>No process owns the node, or no process has the id.</summary>
    UnknownTarget,

    /// <summary>The process has no handler for the operation.</summary>
    NoHandler,

    /// <summary>No answer within the request's timeout.</summary>
    Timeout,

    /// <summary>The process exited (or is not running) before it answered.</summary>
    ProcessExited,

    /// <summary>The request or its arguments are invalid.</summary>
    InvalidRequest,

    /// <summary>The handler failed.</summary>
    HandlerError,
}

/// <summary>A request a handler is given.</summary>
/// <param name="Op">The operation.</param>
/// <param name="Args">Its arguments (an empty object when none were given).</param>
/// <param name="Node">The node of the worker that handles it.</param>
/// <param name="CorrelationId">The correlation id the client gave it.</param>
public sealed record WorkerRequest(string Op, JsonObject Args, string Node, long CorrelationId);

/// <summary>Handles one routed request; returns the result (any JSON, or null).</summary>
public delegate JsonNode? RequestHandler(WorkerRequest request);

/// <summary>A failed routed request, with its typed code; a handler throws it (usually with <see cref="RequestErrorCode.InvalidRequest"/>) to refuse a request.</summary>
public sealed class RequestException : Exception
{
    /// <summary>Creates an exception.</summary>
    public RequestException(RequestErrorCode code, string message, string? field = null)
        : base(message)
    {
        Code = code;
        Field = field;
    }

    /// <summary>Creates an exception of code <see cref="RequestErrorCode.HandlerError"/>.</summary>
    public RequestException()
        : this(RequestErrorCode.HandlerError, "request failed")
    {
    }

    /// <summary>Creates an exception of code <see cref="RequestErrorCode.HandlerError"/>.</summary>
    public RequestException(string message)
        : this(RequestErrorCode.HandlerError, message)
    {
    }

    /// <summary>Creates an exception of code <see cref="RequestErrorCode.HandlerError"/>.</summary>
    public RequestException(string message, Exception innerException)
        : base(message, innerException)
    {
        Code = RequestErrorCode.HandlerError;
    }

    /// <summary>The error code.</summary>
    public RequestErrorCode Code { get; }

    /// <summary>The field at fault (a setting's name), if any.</summary>
    public string? Field { get; }

    /// <summary>The wire name of <paramref name="code"/>: <c>unknown_target</c>, <c>no_handler</c>, ...</summary>
    public static string WireName(RequestErrorCode code) => code switch
    {
        RequestErrorCode.UnknownTarget => "unknown_target",
        RequestErrorCode.NoHandler => "no_handler",
        RequestErrorCode.Timeout => "timeout",
        RequestErrorCode.ProcessExited => "process_exited",
        RequestErrorCode.InvalidRequest => "invalid_request",
        _ => "handler_error",
    };
}

/// <summary>
/// A node's object (a kernel, source or sink made by its kind, or a code-first task's settings holder)
/// that adds request handlers of its own to its worker.
/// </summary>
public interface IRequestHandlerSource
{
    /// <summary>Adds handlers to <paramref name="handlers"/> (called once, in the worker, before it serves requests).</summary>
    void AddHandlers(RequestHandlers handlers);
}

/// <summary>
/// The operations a worker answers, by name: the built-in ones (<c>ping</c>, <c>process_stats</c>,
/// <c>update_setting</c>), those its node's object adds (<see cref="IRequestHandlerSource"/>), and those
/// process-wide contributors add (<see cref="AddContributor"/>). Profiling's <c>profiling_snapshot</c>,
/// <c>set_profiling_trace</c> and <c>profiling_trace_batch</c> are not here: the manager answers them
/// from the process's profile block in shared memory (<see cref="PipelineManager.ProfilingOperations"/>, decision 95).
/// </summary>
public sealed class RequestHandlers
{
    private static readonly ConcurrentQueue<Action<RequestHandlers>> Contributors = new();
    private readonly ConcurrentDictionary<string, (RequestHandler Handler, RequestTiming Timing)> handlers = new(StringComparer.Ordinal);

    internal RequestHandlers(string node)
    {
        Node = node;
        foreach (var contribute in Contributors)
        {
            contribute(this);
        }
    }

    /// <summary>The node of the worker.</summary>
    public string Node { get; }

    /// <summary>The operations, sorted.</summary>
    public IEnumerable<string> Operations => handlers.Keys.Order(StringComparer.Ordinal);

    /// <summary>
    /// Adds a contributor that every worker started afterwards in this process runs to add handlers
    /// (process-wide operations such as profiling's). Call it once, at startup.
    /// </summary>
    public static void AddContributor(Action<RequestHandlers> contributor)
    {
        ArgumentNullException.ThrowIfNull(contributor);
        Contributors.Enqueue(contributor);
    }

    /// <summary>Adds (or replaces) the handler of <paramref name="op"/>.</summary>
    public void Add(string op, RequestHandler handler, RequestTiming timing = RequestTiming.AnyTime)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(op);
        ArgumentNullException.ThrowIfNull(handler);
        handlers[op] = (handler, timing);
    }

    /// <summary>The handler of <paramref name="op"/>, if any.</summary>
    public bool TryGet(string op, out RequestHandler handler, out RequestTiming timing)
    {
        if (handlers.TryGetValue(op, out var h))
        {
            (handler, timing) = h;
            return true;
        }

        handler = null!;
        timing = default;
        return false;
    }
}
