namespace Flowline.Runtime;

/// <summary>How a manager runs its pipeline.</summary>
public sealed record PipelineManagerOptions
{
    /// <summary>How workers are pinned to CPUs (default none: the scheduler places them).</summary>
    public PlacementPolicy Placement { get; init; } = PlacementPolicy.None;

    /// <summary>How long <see cref="PipelineManager.Start"/> waits for every worker to attach (shmpipeline's <c>worker_start_timeout</c>, 10 s).</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>A running worker whose heartbeat is older than this is reported hung (default 5 s).</summary>
    public TimeSpan HungTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The namespace of the streams, instead of the document's (or one derived from its file name).</summary>
    public string? Namespace { get; init; }

    /// <summary>The worker program (<c>Flowline.Worker.dll</c>); by default the one beside the application.</summary>
    public string? WorkerPath { get; init; }

    /// <summary>Functions of tasks placed on threads, by task name (a code-first pipeline's closures).</summary>
    public IReadOnlyDictionary<string, Delegate> TaskDelegates { get; init; } = new Dictionary<string, Delegate>();

    /// <summary>How many events the manager keeps for late readers (default 512).</summary>
    public int EventHistory { get; init; } = 512;

    /// <summary>
    /// Publish the pipeline's figures as instruments of the <c>Flowline</c> meter (<see cref="PipelineMetrics"/>;
    /// default true). A control plane sets it false for the managers it creates: it publishes the figures itself.
    /// </summary>
    public bool PublishMetrics { get; init; } = true;
}
