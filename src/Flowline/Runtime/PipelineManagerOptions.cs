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

    /// <summary>
    /// The settings and topology event logs the manager appends to; by default a pair of its own. A control
    /// service gives each manager it creates the same pair, so that their sequence numbers go on across
    /// document replacements and a subscriber stays on one log (issue 12).
    /// </summary>
    public ObservabilityLogs? Logs { get; init; }
}

/// <summary>The settings and topology event logs of a pipeline, owned by whoever outlives its managers.</summary>
public sealed class ObservabilityLogs
{
    /// <summary>Creates a pair of empty logs.</summary>
    public ObservabilityLogs()
        : this(new SequencedLog<SettingsEvent>(), new SequencedLog<TopologyEvent>())
    {
    }

    /// <summary>Pairs existing logs (those of a manager made in code that a control service adopts).</summary>
    public ObservabilityLogs(SequencedLog<SettingsEvent> settings, SequencedLog<TopologyEvent> topology)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(topology);
        Settings = settings;
        Topology = topology;
    }

    /// <summary>The settings event log (<c>GET /settings/events</c>).</summary>
    public SequencedLog<SettingsEvent> Settings { get; }

    /// <summary>The topology event log (<c>GET /topology/events</c>).</summary>
    public SequencedLog<TopologyEvent> Topology { get; }

    /// <summary>
    /// Records that the document was replaced (revision <paramref name="revision"/>): one <c>document_replaced</c>
    /// event in each log, after which every node's settings and the topology are the new document's.
    /// </summary>
    public void DocumentReplaced(long revision, IReadOnlyList<string> nodes, IReadOnlyList<string> streams)
    {
        var time = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);
        Settings.Append(1, (s, _) => new SettingsEvent { Seq = s, Time = time, Type = "document_replaced", Revision = revision });
        Topology.Append(1, (s, _) => new TopologyEvent { Seq = s, Time = time, Type = "document_replaced", Nodes = nodes, Streams = streams, Revision = revision });
    }
}
