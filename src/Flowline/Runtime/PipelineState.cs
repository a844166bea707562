using System.Text.Json.Nodes;

namespace Flowline.Runtime;

/// <summary>The states of a pipeline (shmpipeline's).</summary>
public enum PipelineState
{
    /// <summary>Created; nothing exists yet.</summary>
    Initialized,

    /// <summary>Streams exist and hold their initial values; no worker runs.</summary>
    Built,

    /// <summary>Workers run.</summary>
    Running,

    /// <summary>Workers wait, holding their streams.</summary>
    Paused,

    /// <summary>A worker failed; the others keep running.</summary>
    Failed,

    /// <summary>Shut down: handles closed, owned streams removed.</summary>
    Stopped,
}

/// <summary>Names of states as documents, JSON and messages write them.</summary>
public static class PipelineStateNames
{
    /// <summary>"initialized", "built", "running", "paused", "failed" or "stopped".</summary>
    public static string ToName(this PipelineState state) => state.ToString().ToLowerInvariant();

    /// <summary>
    /// The manager's calls <paramref name="state"/> allows (<c>build</c>, <c>start</c>, <c>pause</c>,
    /// <c>resume</c>, <c>stop</c>, <c>restart</c>, <c>shutdown</c>): the state machine's one table, which the
    /// manager enforces and the control plane reports so that clients need no copy of it.
    /// </summary>
    public static IReadOnlyList<string> AllowedCalls(this PipelineState state) => state switch
    {
        PipelineState.Initialized => ["build", "shutdown"],
        PipelineState.Built => ["start", "stop", "shutdown"],
        PipelineState.Running => ["pause", "stop", "restart", "shutdown"],
        PipelineState.Paused => ["resume", "stop", "restart", "shutdown"],
        PipelineState.Failed => ["stop", "restart", "shutdown"],
        _ => ["build", "shutdown"],
    };
}

/// <summary>A call the pipeline's state does not allow; names the state and the calls it allows.</summary>
public sealed class StateTransitionException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public StateTransitionException(string operation, PipelineState state, IEnumerable<string> allowed)
        : base($"cannot {operation} a pipeline that is {state.ToName()}; allowed now: {string.Join(", ", allowed)}")
    {
        Operation = operation;
        State = state;
    }

    /// <summary>The call refused.</summary>
    public string Operation { get; } = "";

    /// <summary>The state it was refused in.</summary>
    public PipelineState State { get; }

    /// <summary>Creates the exception.</summary>
    public StateTransitionException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public StateTransitionException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public StateTransitionException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>A worker failed (shmpipeline's <c>WorkerProcessError</c>): "kernel 'x' failed: message".</summary>
public sealed class WorkerFailedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public WorkerFailedException(string message, IReadOnlyList<FailureRecord> failures)
        : base(message)
    {
        Failures = failures;
    }

    /// <summary>Creates the exception.</summary>
    public WorkerFailedException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public WorkerFailedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public WorkerFailedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The failure records.</summary>
    public IReadOnlyList<FailureRecord> Failures { get; } = [];
}

/// <summary>Something that happened to a pipeline, in the order it happened; the control plane publishes them.</summary>
/// <param name="Id">Its number: 1, 2, 3, ... for the life of the manager.</param>
/// <param name="Type">
/// <c>worker_started</c>, <c>worker_metrics</c>, <c>worker_failed</c>, <c>worker_stopped</c>,
/// <c>worker_hung</c>, <c>source_failed</c>, <c>sink_failed</c>, <c>state_changed</c>,
/// <c>synthetic_failed</c>.
/// </param>
/// <param name="Timestamp">When (seconds since the Unix epoch).</param>
/// <param name="Data">Its payload (shmpipeline's event dict).</param>
public sealed record PipelineEvent(long Id, string Type, double Timestamp, JsonObject Data);
