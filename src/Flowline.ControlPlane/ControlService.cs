using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Plugins;
using Flowline.Runtime;
using Flowline.Status;

namespace Flowline.ControlPlane;

/// <summary>Settings of a <see cref="ControlService"/>.</summary>
public sealed record ControlServiceOptions
{
    /// <summary>Options of every manager the service creates (namespace, placement, timeouts).</summary>
    public PipelineManagerOptions Manager { get; init; } = new();

    /// <summary>Directories <c>POST /document/load</c> may read from, besides the served document's own directory.</summary>
    public IReadOnlyList<string> LoadRoots { get; init; } = [];

    /// <summary>Events kept for <c>Last-Event-ID</c> replay (default 512).</summary>
    public int EventHistory { get; init; } = 512;

    /// <summary>Events queued per subscriber before a subscriber that does not keep up is cut off (default 128).</summary>
    public int SubscriberQueue { get; init; } = 128;

    /// <summary>
    /// The largest document accepted, in bytes (default 4 MiB): a request body (the server refuses a
    /// longer one with 413 before reading past the limit) or a file of <c>POST /document/load</c>.
    /// </summary>
    public int MaxDocumentBytes { get; init; } = 4 * 1024 * 1024;
}

/// <summary>
/// One pipeline manager and its editable document, with a revision number, behind the control plane.
/// Commands are serialised (one at a time, in arrival order) and go straight to the manager: the
/// service adds no state machine of its own. Reads (status, snapshot) do not wait behind a command.
/// A command whose caller cancels (its HTTP client went away) while it waits for its turn is not run.
/// A new document is read and validated before its command takes its turn: only the swap is serialised.
/// </summary>
public sealed class ControlService : IDisposable
{
    /// <summary>The commands of <c>/info</c>.</summary>
    public static readonly IReadOnlyList<string> Commands = ["build", "start", "pause", "resume", "stop", "shutdown", "restart"];

    /// <summary>Errors a validation result lists at most; <c>error_count</c> gives the total.</summary>
    internal const int MaxReportedErrors = 100;

    /// <summary>Characters of one reported error at most (an error may quote a long value of the document).</summary>
    internal const int MaxErrorLength = 1000;

    /// <summary>How long a read waits for a command in progress before it answers with the last status (marked <c>stale</c>).</summary>
    private static readonly TimeSpan ReadWait = TimeSpan.FromMilliseconds(100);

    // Invariant: `document`, `pipeline`, `manager`, `configPath`, `configBasePath` and `revision` change
    // only while `commands` is held, and together; readers take the volatile `current` snapshot of them.
    // A semaphore rather than a lock: a waiting command can give up its turn when its caller cancels.
    private readonly SemaphoreSlim commands = new(1, 1);
    private readonly ControlServiceOptions options;
    private readonly bool ownsManager;
    private readonly ObservabilityLogs logs;
    private volatile Current current;
    private bool disposed;
    private string? serverUrl;
    private int waitingCommands;

    /// <summary>Serves the document at <paramref name="configPath"/>; throws <see cref="DocumentValidationException"/> if it is not valid.</summary>
    public ControlService(string configPath, ControlServiceOptions? options = null)
    {
        this.options = options ?? new ControlServiceOptions();
        Events = new EventHub(Math.Max(1, this.options.EventHistory), Math.Max(1, this.options.SubscriberQueue));
        var full = Path.GetFullPath(configPath);
        LoadRoots = [Path.GetDirectoryName(full)!, .. this.options.LoadRoots.Select(Path.GetFullPath)];
        // The text is read once, and both checked and kept (GET /document/yaml shows it with its comments);
        // a file that cannot be read so is left to Load, whose error names it.
        string? source = null;
        try
        {
            source = DocumentFile.ReadText(full, full, this.options.MaxDocumentBytes);
        }
        catch (Exception e) when (e is IOException or ControlException)
        {
        }

        var pipeline = source is null ? PipelineDocument.Load(full) : PipelineDocument.Parse(source, full, Path.GetDirectoryName(full));
        ownsManager = true;
        logs = this.options.Manager.Logs ?? new ObservabilityLogs();
        current = Create(pipeline, full, revision: 1, source: source);
        Metrics = new PipelineMetrics(StatusForMetrics, profiling: ProfilingForMetrics);
    }

    /// <summary>
    /// Serves a manager made in code: a code-first <c>Pipeline</c>'s (<c>pipeline.Manager</c>), or one of
    /// a document built in code. The service adopts it (and shuts it down when disposed). A pipeline with
    /// tasks cannot have its document replaced over HTTP: its tasks are code.
    /// </summary>
    public ControlService(PipelineManager manager, ControlServiceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(manager);
        logs = manager.Options.Logs ?? new ObservabilityLogs(manager.SettingsLog, manager.TopologyLog);
        this.options = (options ?? new ControlServiceOptions()) with { Manager = manager.Options with { Logs = logs } };
        Events = new EventHub(Math.Max(1, this.options.EventHistory), Math.Max(1, this.options.SubscriberQueue));
        manager.EventRaised += OnManagerEvent;
        var spec = manager.Pipeline.Spec;
        var basePath = spec.BaseDirectory ?? Environment.CurrentDirectory;
        current = new Current(manager.Pipeline, manager, DocumentOf(spec), spec.File, basePath, Revision: 1);
        LoadRoots = [basePath, .. this.options.LoadRoots.Select(Path.GetFullPath)];
        Metrics = new PipelineMetrics(StatusForMetrics, profiling: ProfilingForMetrics);
    }

    /// <summary>
    /// The instruments of the served pipeline (whichever manager serves it now), with the document's
    /// revision; <c>GET /metrics</c> exports this meter only.
    /// </summary>
    public PipelineMetrics Metrics { get; }

    /// <summary>The directories <c>POST /document/load</c> may read from.</summary>
    public IReadOnlyList<string> LoadRoots { get; }

    /// <summary>The largest document accepted, in bytes (<see cref="ControlServiceOptions.MaxDocumentBytes"/>).</summary>
    public int MaxDocumentBytes => options.MaxDocumentBytes;

    /// <summary>Commands waiting for their turn now.</summary>
    internal int WaitingCommands => Volatile.Read(ref waitingCommands);

    /// <summary>The event stream of <c>GET /events</c>.</summary>
    internal EventHub Events { get; }

    /// <summary>The manager now (a new one after the document is replaced).</summary>
    public PipelineManager Manager => current.Manager;

    /// <summary>The document's revision: 1 at start, +1 at each replacement.</summary>
    public long Revision => current.Revision;

    /// <summary>The server's trace stream (<c>GET /profiling/traces</c>), once its endpoints are mapped; null before.</summary>
    internal TraceHub? Traces { get; set; }

    /// <summary>
    /// The URL this service is served at, recorded by every manager it creates with its namespace's lease
    /// (a second manager refused on that namespace names it).
    /// </summary>
    public string? ServerUrl
    {
        get => serverUrl;
        set
        {
            commands.Wait();
            try
            {
                serverUrl = value;
                current.Manager.ServerUrl = value;
            }
            finally
            {
                commands.Release();
            }
        }
    }

    /// <summary>The served document's path (a document sent with <c>PUT /document</c> keeps it; <c>/document/load</c> changes it).</summary>
    public string? ConfigPath => current.ConfigPath;

    /// <summary>The directory relative paths of the document resolve against.</summary>
    public string ConfigBasePath => current.ConfigBasePath;

    // ---- reads -------------------------------------------------------------------------------

    /// <summary><c>GET /health</c>.</summary>
    public JsonObject Health()
    {
        var c = current;
        return new JsonObject { ["ok"] = true, ["state"] = c.Manager.State.ToName(), ["document_revision"] = c.Revision };
    }

    /// <summary>
    /// The commands this service accepts in <paramref name="state"/>: the state machine's calls
    /// (<see cref="PipelineStateNames.AllowedCalls"/>), plus <c>start</c> from initialized and stopped, which
    /// builds first (a stopped pipeline with a new manager).
    /// </summary>
    public static IReadOnlyList<string> AllowedCommands(PipelineState state)
    {
        var calls = state.AllowedCalls();
        return state is PipelineState.Initialized or PipelineState.Stopped && !calls.Contains("start")
            ? [.. Commands.Where(c => c == "start" || calls.Contains(c))]
            : [.. Commands.Where(calls.Contains)];
    }

    /// <summary>The kinds the served document may use (the built-in ones and its plugins').</summary>
    internal KindRegistry Kinds => current.Pipeline.Kinds;

    /// <summary>
    /// The served document as YAML text (<c>GET /document/yaml</c>), its revision, and whether the text is the
    /// document's own (read from its file, loaded, or put as YAML: with its comments and layout) rather than
    /// written from the document (given as JSON or in code).
    /// </summary>
    internal (string Yaml, long Revision, bool IsSource) DocumentYaml()
    {
        var c = current;
        return c.Source is { } source ? (source, c.Revision, true) : (PipelineDocument.ToYaml(c.Pipeline.Spec), c.Revision, false);
    }

    /// <summary><c>GET /info</c>.</summary>
    public JsonObject Info()
    {
        var c = current;
        var kinds = c.Pipeline.Kinds;
        return new JsonObject
        {
            ["config_path"] = c.ConfigPath,
            ["config_base_path"] = c.ConfigBasePath,
            ["state"] = c.Manager.State.ToName(),
            ["commands"] = Names(Commands),
            ["allowed_commands"] = Names(AllowedCommands(c.Manager.State)),
            ["kernel_kinds"] = Names(kinds.Kernels.Keys.Order(StringComparer.Ordinal)),
            ["source_kinds"] = Names(kinds.Sources.Keys.Order(StringComparer.Ordinal)),
            ["sink_kinds"] = Names(kinds.Sinks.Keys.Order(StringComparer.Ordinal)),
            ["synthetic_patterns"] = Names(SyntheticSettings.Patterns),
            ["document_revision"] = c.Revision,
            ["server"] = "flowline",
            ["version"] = typeof(ControlService).Assembly.GetName().Version?.ToString(3),
            ["namespace"] = c.Manager.Namespace,
        };
    }

    /// <summary><c>GET /document</c>.</summary>
    public JsonObject Document()
    {
        var c = current;
        return new JsonObject
        {
            ["config_path"] = c.ConfigPath,
            ["config_base_path"] = c.ConfigBasePath,
            ["revision"] = c.Revision,
            ["document"] = WithCurrentSettings(c),
        };
    }

    /// <summary>The document with every node's parameters as they are now (live settings changes included, issue 12).</summary>
    private static JsonObject WithCurrentSettings(Current c)
    {
        var document = (JsonObject)c.Document.DeepClone();
        var settings = c.Manager.Settings();
        foreach (var section in new[] { "kernels", "sources", "sinks", "tasks" })
        {
            if (document[section] is not JsonArray nodes)
            {
                continue;
            }

            foreach (var node in nodes.OfType<JsonObject>())
            {
                if ((string?)node["name"] is { } name && settings.Nodes.TryGetValue(name, out var values))
                {
                    var parameters = node["parameters"] as JsonObject;
                    foreach (var (field, value) in values)
                    {
                        // Only what differs from the document (a default not written stays unwritten).
                        var original = parameters?[field];
                        if (parameters?.ContainsKey(field) == true ? !JsonNode.DeepEquals(original, value) : c.Manager.SettingChanged(name, field))
                        {
                            parameters ??= [];
                            parameters[field] = value?.DeepClone();
                        }
                    }

                    if (parameters is not null && node["parameters"] is null)
                    {
                        node["parameters"] = parameters;
                    }
                }
            }
        }

        return document;
    }

    /// <summary><c>GET /status</c>: the manager's status plus the document's revision and paths.</summary>
    public PipelineStatus Status()
    {
        var c = current;
        return (c.Manager.TryStatus(ReadWait) ?? c.Manager.Status()) with
        {
            DocumentRevision = c.Revision,
            ConfigPath = c.ConfigPath,
            ConfigBasePath = c.ConfigBasePath,
        };
    }

    /// <summary><c>GET /snapshot</c>: the runtime snapshot plus the document's revision and path.</summary>
    public PipelineStatus Snapshot()
    {
        var c = current;
        return (c.Manager.TryRuntimeSnapshot(ReadWait) ?? c.Manager.RuntimeSnapshot()) with { DocumentRevision = c.Revision, ConfigPath = c.ConfigPath };
    }

    /// <summary><c>GET /graph</c>.</summary>
    public JsonObject Graph() => current.Pipeline.Graph.ToJson();

    /// <summary><c>POST /document/validate</c>: the given document, or the current one when null.</summary>
    public JsonObject Validate(JsonObject? document)
    {
        var c = current;
        var check = document is null
            ? new DocumentCheck(c.Pipeline, [])
            : PipelineDocument.CheckJson(document, c.ConfigBasePath, null);
        return CheckResult(check);
    }

    // ---- document ----------------------------------------------------------------------------

    /// <summary><c>PUT /document</c>: validates, then replaces the document atomically (refused while the pipeline is active).</summary>
    public JsonObject ReplaceDocument(JsonObject document, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(document);
        var basePath = current.ConfigBasePath;
        var check = PipelineDocument.CheckJson(document, basePath, null);
        return Serialised(cancellationToken, () =>
        {
            var c = current;
            var checkedHere = c.ConfigBasePath == basePath ? check : PipelineDocument.CheckJson(document, c.ConfigBasePath, null); // a load moved the base meanwhile
            return Replace(checkedHere, c.ConfigPath, c.ConfigBasePath, "document_updated");
        });
    }

    /// <summary>
    /// <c>PUT /document</c> with a YAML body: as <see cref="ReplaceDocument"/>, the text checked as a file would be
    /// (relative paths against the served document's directory) and kept, comments and all, as the document's
    /// text (<c>GET /document/yaml</c>).
    /// </summary>
    public JsonObject ReplaceDocumentYaml(string yaml, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        var basePath = current.ConfigBasePath;
        var check = PipelineDocument.Check(yaml, null, basePath);
        return Serialised(cancellationToken, () =>
        {
            var c = current;
            var checkedHere = c.ConfigBasePath == basePath ? check : PipelineDocument.Check(yaml, null, c.ConfigBasePath);
            return Replace(checkedHere, c.ConfigPath, c.ConfigBasePath, "document_updated", yaml);
        });
    }

    /// <summary>
    /// <c>POST /document/load</c>: reads a YAML file under the allowed roots and serves it. Only a regular
    /// file of at most <see cref="MaxDocumentBytes"/> is read (a FIFO, a device or a directory is refused
    /// at once), and it is read and validated before the command takes its turn.
    /// </summary>
    public JsonObject LoadDocument(string path, CancellationToken cancellationToken = default)
    {
        var (full, real) = Allowed(path);
        var text = DocumentFile.ReadText(real, full, options.MaxDocumentBytes);
        var check = PipelineDocument.Check(text, real, Path.GetDirectoryName(real));
        return Serialised(cancellationToken, () => Replace(check, full, Path.GetDirectoryName(full)!, "document_loaded", text));
    }

    /// <summary>The full and the real path of <paramref name="path"/> (relative to the served document's directory); 403 outside <see cref="LoadRoots"/>.</summary>
    private (string Full, string Real) Allowed(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var full = Path.GetFullPath(Path.IsPathRooted(path) ? path : Path.Combine(current.ConfigBasePath, path));
        var real = RealPath(full);
        if (!LoadRoots.Any(root => IsUnder(real, RealPath(root))))
        {
            throw new ControlException(403, $"'{path}' is outside the directories this server may read ({string.Join(", ", LoadRoots)}); start the server with --load-root to allow another");
        }

        return (full, real);
    }

    /// <summary>
    /// The real path of a document another server may be launched for: a regular file under
    /// <see cref="LoadRoots"/> of at most <see cref="MaxDocumentBytes"/> that is a valid document
    /// (403 outside, 404 missing, 400 with its errors when invalid).
    /// </summary>
    internal string AllowedDocument(string path)
    {
        var (full, real) = Allowed(path);
        var text = DocumentFile.ReadText(real, full, options.MaxDocumentBytes);
        var check = PipelineDocument.Check(text, real, Path.GetDirectoryName(real));
        if (!check.IsValid)
        {
            throw new DocumentValidationException(check.Errors, check.TotalErrors);
        }

        return real;
    }

    private JsonObject Replace(DocumentCheck check, string? configPath, string basePath, string reason, string? source = null)
    {
        var c = current;
        if (!c.Pipeline.Spec.Tasks.IsEmpty)
        {
            throw new ControlException(409, "this pipeline was declared in code (its tasks are functions of the serving program); its document cannot be replaced over HTTP");
        }

        if (check.Pipeline is not { } pipeline)
        {
            throw new ControlException(400, InvalidDetail(check.Errors, check.TotalErrors), CheckResult(check));
        }

        if (c.Manager.State is PipelineState.Running or PipelineState.Paused or PipelineState.Failed)
        {
            throw new StateTransitionException(
                $"cannot replace the document while the pipeline is {c.Manager.State.ToName()}; stop or shut it down first (allowed in: initialized, built, stopped)");
        }

        var next = Create(pipeline, configPath, c.Revision + 1, basePath, source);
        Retire(c.Manager, next);
        logs.DocumentReplaced(next.Revision, [.. next.Manager.Plan.Workers.Select(w => w.Name)], [.. pipeline.Spec.Streams.Select(s => s.Name)]);
        var body = DocumentResult(next, check);
        Events.Publish("document_updated", ((JsonObject)body.DeepClone()).With("reason", reason));
        return body;
    }

    // ---- commands ----------------------------------------------------------------------------

    /// <summary><c>POST /commands/build</c>: from initialized or stopped (a stopped pipeline is rebuilt by a new manager).</summary>
    public PipelineStatus Build(CancellationToken cancellationToken = default) => Command("build", cancellationToken, m =>
    {
        if (m.State == PipelineState.Stopped)
        {
            m = Renew();
        }

        m.Build();
    });

    /// <summary><c>POST /commands/start</c>: builds first from initialized or stopped.</summary>
    public PipelineStatus Start(CancellationToken cancellationToken = default) => Command("start", cancellationToken, m =>
    {
        if (m.State is PipelineState.Initialized or PipelineState.Stopped)
        {
            if (m.State == PipelineState.Stopped)
            {
                m = Renew();
            }

            m.Build();
        }

        m.Start();
    });

    /// <summary><c>POST /commands/pause</c>.</summary>
    public PipelineStatus Pause(CancellationToken cancellationToken = default) => Command("pause", cancellationToken, m => m.Pause());

    /// <summary><c>POST /commands/resume</c>.</summary>
    public PipelineStatus Resume(CancellationToken cancellationToken = default) => Command("resume", cancellationToken, m => m.Resume());

    /// <summary><c>POST /commands/stop</c>.</summary>
    public PipelineStatus Stop(TimeSpan timeout, bool force, CancellationToken cancellationToken = default) => Command("stop", cancellationToken, m => m.Stop(timeout, force));

    /// <summary><c>POST /commands/restart</c>: restarts failed or dead workers only.</summary>
    public PipelineStatus Restart(TimeSpan? timeout, CancellationToken cancellationToken = default) => Command("restart", cancellationToken, m => m.Restart(timeout));

    /// <summary><c>POST /commands/shutdown</c>.</summary>
    public PipelineStatus Shutdown(bool unlink, bool unlinkExternal, bool force, CancellationToken cancellationToken = default) =>
        Command("shutdown", cancellationToken, m => m.Shutdown(unlink, unlinkExternal, force));

    /// <summary><c>POST /synthetic/start</c>.</summary>
    public SyntheticStartResult StartSynthetic(string streamName, SyntheticSettings settings, CancellationToken cancellationToken = default) => Serialised(cancellationToken, () =>
    {
        var status = current.Manager.StartSyntheticInput(streamName, settings);
        return new SyntheticStartResult { SyntheticSource = status, Snapshot = PublishSnapshot("synthetic_start") };
    });

    /// <summary><c>POST /synthetic/stop</c>.</summary>
    public SyntheticStopResult StopSynthetic(string streamName, TimeSpan timeout, CancellationToken cancellationToken = default) => Serialised(cancellationToken, () =>
    {
        current.Manager.StopSyntheticInput(streamName, timeout);
        return new SyntheticStopResult { StreamName = streamName, Snapshot = PublishSnapshot("synthetic_stop") };
    });

    /// <summary>Shuts the pipeline down (forcing), removes its streams and ends every event stream.</summary>
    public void Dispose()
    {
        commands.Wait();
        try
        {
            if (disposed)
            {
                return;
            }

            disposed = true;
            try
            {
                current.Manager.Shutdown(unlink: true, unlinkExternal: false, force: true);
            }
            finally
            {
                current.Manager.Dispose();
                Events.CompleteAll();
                Metrics.Dispose();
            }
        }
        finally
        {
            commands.Release();
        }
    }

    private PipelineStatus Command(string name, CancellationToken cancellationToken, Action<PipelineManager> action) => Serialised(cancellationToken, () =>
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var failed = true;
        try
        {
            action(current.Manager);
            failed = false;
        }
        finally
        {
            Metrics.RecordOperation(name, current.Manager.Namespace, System.Diagnostics.Stopwatch.GetElapsedTime(started), failed);
        }

        return PublishSnapshot(name);
    });

    /// <summary>The status for the instruments; null once the service is disposed.</summary>
    private ProfilingSnapshot? ProfilingForMetrics()
    {
        try
        {
            return disposed ? null : current.Manager.Profiling(ReadWait);
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
    }

    private PipelineStatus? StatusForMetrics()
    {
        try
        {
            return disposed ? null : Status();
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> when its turn comes, one command at a time. Throws
    /// <see cref="OperationCanceledException"/> without running it when <paramref name="cancellationToken"/>
    /// is cancelled first (the caller went away while it waited), and <see cref="ObjectDisposedException"/>
    /// once the service is disposed.
    /// </summary>
    internal T Serialised<T>(CancellationToken cancellationToken, Func<T> action)
    {
        Interlocked.Increment(ref waitingCommands);
        try
        {
            commands.Wait(cancellationToken);
        }
        finally
        {
            Interlocked.Decrement(ref waitingCommands);
        }

        try
        {
            cancellationToken.ThrowIfCancellationRequested(); // cancelled just as the turn came
            ObjectDisposedException.ThrowIf(disposed, this);
            return action();
        }
        finally
        {
            commands.Release();
        }
    }

    /// <summary>A new manager for the same document (after a stop, the old one's plan is spent).</summary>
    private PipelineManager Renew()
    {
        var c = current;
        if (!ownsManager)
        {
            return c.Manager; // an adopted manager (a code-first pipeline's) is built again as it is: its owner keeps hold of it
        }

        var next = Create(c.Pipeline, c.ConfigPath, c.Revision, c.ConfigBasePath, c.Source);
        next.Manager.AdoptSettings(c.Manager); // the same document: live changes survive a stop and start
        Retire(c.Manager, next);
        return next.Manager;
    }

    /// <summary>Shuts <paramref name="old"/> down and disposes it, and makes <paramref name="next"/> current whatever happens.</summary>
    private void Retire(PipelineManager old, Current next)
    {
        try
        {
            old.Shutdown(unlink: true, unlinkExternal: false, force: true);
        }
        finally
        {
            old.EventRaised -= OnManagerEvent;
            old.Dispose();
            current = next;
        }
    }

    /// <summary>Lets go of an adopted manager without shutting it down (the server failed to start; its owner keeps it).</summary>
    internal void Detach()
    {
        commands.Wait();
        try
        {
            disposed = true;
            current.Manager.EventRaised -= OnManagerEvent;
            Events.CompleteAll();
        }
        finally
        {
            commands.Release();
        }
    }

    private PipelineStatus PublishSnapshot(string reason)
    {
        // After a command, the snapshot is the state the command left: it waits for the manager (its
        // supervisor holds it only for moments) rather than answering with a stale status.
        var c = current;
        var snapshot = c.Manager.RuntimeSnapshot() with { DocumentRevision = c.Revision, ConfigPath = c.ConfigPath };
        Events.Publish("snapshot", StatusJson.Serialize(new SnapshotEvent { Reason = reason, Snapshot = snapshot }));
        return snapshot;
    }

    private Current Create(ValidatedPipeline pipeline, string? configPath, long revision, string? basePath = null, string? source = null)
    {
        // The service publishes the figures of whichever manager it serves (Metrics); its managers do not.
        // Every manager appends to the service's logs: their sequence numbers go on across replacements.
        var manager = new PipelineManager(pipeline, options.Manager with { PublishMetrics = false, Logs = logs }) { ServerUrl = serverUrl };
        try
        {
            var document = DocumentOf(pipeline.Spec);
            manager.EventRaised += OnManagerEvent;
            return new Current(pipeline, manager, document, configPath, basePath ?? pipeline.Spec.BaseDirectory ?? Path.GetDirectoryName(configPath) ?? Environment.CurrentDirectory, revision) { Source = source };
        }
        catch
        {
            manager.Dispose();
            throw;
        }
    }

    /// <summary>The document as JSON; a code-first pipeline's tasks and events are shown too (read only).</summary>
    private static JsonObject DocumentOf(PipelineSpec spec)
    {
        var document = PipelineDocument.ToJson(spec);
        if (!spec.Tasks.IsEmpty)
        {
            document["tasks"] = new JsonArray([.. spec.Tasks.Select(t => (JsonNode)t.ToJson())]);
            document["events"] = new JsonArray([.. spec.Events.Select(e => (JsonNode)e.ToJson())]);
        }

        return document;
    }

    private void OnManagerEvent(object? sender, PipelineEvent e)
    {
        try
        {
            Events.Publish(e.Type, e.Data);
        }
        catch (Exception error) when (error is InvalidOperationException or NotSupportedException or ArgumentException)
        {
            Events.Publish("service_error", new JsonObject { ["error"] = $"{error.GetType().Name}: {error.Message}", ["event"] = e.Type });
        }
    }

    private static JsonObject CheckResult(DocumentCheck check) =>
        ValidationResult(check.Errors, check.TotalErrors).With("graph", check.Pipeline?.Graph.ToJson());

    /// <summary>
    /// <c>{valid, errors, error_count}</c>: the first <see cref="MaxReportedErrors"/> errors, each cut at
    /// <see cref="MaxErrorLength"/> characters, and how many there are in all, so that the answer about
    /// a document stays small however broken the document is. <paramref name="total"/> counts the errors the
    /// document layer found beyond those it kept.
    /// </summary>
    internal static JsonObject ValidationResult(IReadOnlyList<SpecError> errors, int total) => new()
    {
        ["valid"] = errors.Count == 0,
        ["errors"] = new JsonArray([.. errors.Take(MaxReportedErrors).Select(e => (JsonNode)JsonValue.Create(Cut(e.ToString()))!)]),
        ["error_count"] = Math.Max(total, errors.Count),
    };

    /// <summary>The <c>detail</c> of an invalid document: its first errors and how many more there are.</summary>
    internal static string InvalidDetail(IReadOnlyList<SpecError> errors, int total)
    {
        const int Shown = 10;
        total = Math.Max(total, errors.Count);
        var first = string.Join("; ", errors.Take(Shown).Select(e => Cut(e.ToString())));
        return total > Shown
            ? $"the document is not valid ({total} problems): {first}; and {total - Shown} more"
            : $"the document is not valid: {first}";
    }

    private static string Cut(string text) => text.Length <= MaxErrorLength ? text : string.Concat(text.AsSpan(0, MaxErrorLength), "...");

    private static JsonObject DocumentResult(Current c, DocumentCheck check) => new JsonObject
    {
        ["config_path"] = c.ConfigPath,
        ["config_base_path"] = c.ConfigBasePath,
        ["revision"] = c.Revision,
        ["document"] = c.Document.DeepClone(),
    }.Merge(CheckResult(check));

    private static JsonArray Names(IEnumerable<string> names) => new([.. names.Select(n => (JsonNode)JsonValue.Create(n)!)]);

    /// <summary>
    /// The path with every symbolic link resolved, component by component (realpath(3)), so that neither a
    /// linked file nor a linked directory can lead outside the allowed roots. Missing parts stay as given.
    /// </summary>
    internal static string RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        var resolved = Path.GetPathRoot(full)!;
        foreach (var part in full[resolved.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Path.Combine(resolved, part);
            for (var hops = 0; hops < 40; hops++)
            {
                FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
                if (info.LinkTarget is not { } target)
                {
                    break;
                }

                next = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(next)!, target));
            }

            resolved = next;
        }

        return resolved;
    }

    private static bool IsUnder(string path, string root)
    {
        var r = Path.EndsInDirectorySeparator(root) ? root : root + Path.DirectorySeparatorChar;
        return path.StartsWith(r, StringComparison.Ordinal);
    }

    private sealed record Current(ValidatedPipeline Pipeline, PipelineManager Manager, JsonObject Document, string? ConfigPath, string ConfigBasePath, long Revision)
    {
        /// <summary>The YAML text the document was read from (its file, a load, a YAML <c>PUT /document</c>); null when it came as JSON or code.</summary>
        public string? Source { get; init; }
    }
}

internal static class JsonObjectMerge
{
    /// <summary>Adds every field of <paramref name="other"/> to <paramref name="o"/>; returns <paramref name="o"/>.</summary>
    public static JsonObject Merge(this JsonObject o, JsonObject other)
    {
        foreach (var (key, value) in other.ToList())
        {
            other.Remove(key);
            o[key] = value;
        }

        return o;
    }
}
