using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.SharedMemory;
using Flowline.SharedMemory.Liveness;

namespace Flowline.Runtime;

/// <summary>
/// Owns one pipeline's life (shmpipeline's <c>PipelineManager</c>): builds its streams, starts its
/// workers (sinks, then kernels, then sources, behind a start barrier), pauses, resumes, stops and
/// restarts them, supervises them (a death is seen within milliseconds, a hung worker by its
/// heartbeat), and reports status, snapshots and events. Every operation is thread-safe.
/// </summary>
/// <example>
/// <code>
/// using var manager = PipelineManager.Open("examples/ao-basic/pipeline.yaml");
/// manager.Build();
/// manager.Start();
/// Thread.Sleep(1000);
/// Console.WriteLine(manager.Status().ToJsonString());
/// manager.Shutdown();
/// </code>
/// </example>
public sealed partial class PipelineManager : IDisposable
{
    private readonly object gate = new();
    private volatile PipelineStatus? lastStatus;

    /// <summary>How long a collection of the instruments waits for a busy manager before using the last status.</summary>
    private static readonly TimeSpan MetricsWait = TimeSpan.FromMilliseconds(100);

    private readonly PipelineMetrics? metrics;
    private readonly object dispatchGate = new();
    private readonly PipelineManagerOptions options;
    private readonly Dictionary<string, SharedStream> streams = new(StringComparer.Ordinal);
    private readonly HashSet<string> createdStreams = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SharedEvent> events = new(StringComparer.Ordinal);
    private readonly WorkerSlot?[] slots;
    private readonly ProfileBlock?[] profiles;
    private readonly Dictionary<int, FailureRecord> failures = [];
    private RemoteBridges? bridges;
    private readonly Dictionary<string, SyntheticInput> synthetic = new(StringComparer.Ordinal);
    private readonly Queue<PipelineEvent> history = new();
    private readonly ConcurrentQueue<PipelineEvent> pending = new();
    private readonly ConcurrentQueue<WorkerSlot> exits = new();
    private readonly ConcurrentQueue<JsonObject> syntheticErrors = new();
    private readonly AutoResetEvent wake = new(false);
    private readonly Thread supervisor;
    private readonly string? workerPath;
    private volatile bool disposed;
    private NamespaceLease? lease;
    private string? serverUrl;
    private long nextEventId = 1;
    private long lastMetricsNs;
    private long lastCpuNs;
    private string? lastStreamMetrics;
    private bool pausedBeforeFailure;

    /// <summary>Creates a manager for <paramref name="pipeline"/>; nothing is built until <see cref="Build"/>.</summary>
    public PipelineManager(ValidatedPipeline pipeline, PipelineManagerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        this.options = options ?? new PipelineManagerOptions();
        logs = this.options.Logs ?? new ObservabilityLogs();
        Pipeline = pipeline;
        Plan = new PipelinePlan(pipeline, this.options.Placement, this.options.Namespace) { TaskDelegates = this.options.TaskDelegates };
        SharedMemoryNamespace.Validate(Plan.Namespace, "namespace");
        slots = new WorkerSlot?[Plan.Workers.Count];
        profiles = new ProfileBlock?[Plan.Workers.Count];
        if (Plan.Workers.Any(w => w.Placement == WorkerPlacement.Process && !PythonWorker.Runs(w)))
        {
            workerPath = this.options.WorkerPath ?? Path.Combine(AppContext.BaseDirectory, "Flowline.Worker.dll");
        }

        supervisor = new Thread(Supervise) { IsBackground = true, Name = $"flowline-supervisor-{Plan.Namespace}" };
        supervisor.Start();
        metrics = this.options.PublishMetrics ? new PipelineMetrics(() => disposed ? null : TryStatus(MetricsWait), profiling: () => disposed ? null : Profiling(MetricsWait)) : null;
    }

    /// <summary>Raised for every event, in order, on a thread that holds no lock of the manager's.</summary>
    public event EventHandler<PipelineEvent>? EventRaised;

    /// <summary>The options it was created with.</summary>
    public PipelineManagerOptions Options => options;

    /// <summary>The pipeline.</summary>
    public ValidatedPipeline Pipeline { get; }

    /// <summary>How it runs: namespace, stream options, workers.</summary>
    public PipelinePlan Plan { get; }

    /// <summary>The namespace of its streams.</summary>
    public string Namespace => Plan.Namespace;

    /// <summary>The state now.</summary>
    public PipelineState State { get; private set; } = PipelineState.Initialized;

    /// <summary>
    /// The URL of the control server that serves this manager, if any: recorded with the namespace's
    /// lease, so that a second manager refused on the same namespace can say where this one is.
    /// </summary>
    public string? ServerUrl
    {
        get => serverUrl;
        set
        {
            lock (gate)
            {
                serverUrl = value;
                if (lease is not null)
                {
                    lease.ServerUrl = value;
                }
            }
        }
    }

    /// <summary>Loads and validates a document, and creates a manager for it.</summary>
    public static PipelineManager Open(string path, PipelineManagerOptions? options = null) => new(PipelineDocument.Load(path), options);

    /// <summary>Validates the pipeline again, creates its streams and applies their <c>initial</c> values. From initialized or stopped; to built.</summary>
    public void Build() => Operation("build", BuildCore);

    private void BuildCore()
    {
        lock (gate)
        {
            Require("build", PipelineState.Initialized, PipelineState.Stopped);
            var check = PipelineDocument.CheckWithTasks(PipelineDocument.ToJson(Pipeline.Spec), Pipeline.Spec.BaseDirectory, Pipeline.Kinds, Pipeline.Spec.Tasks, Pipeline.Spec.Events);
            if (!check.IsValid)
            {
                throw new DocumentValidationException(check.Errors);
            }

            // One manager per namespace, taken before anything is written; a dead holder's leftovers go.
            lease ??= NamespaceLease.Acquire(Namespace, serverUrl);
            try
            {
                if (lease.Previous is not null)
                {
                    // A manager died holding the namespace: its workers must be gone before its leftovers are judged.
                    OrphanWorkers.End(Namespace, TimeSpan.FromSeconds(3));
                }

                SharedMemoryCollector.Collect(Namespace);
                SharedMemoryCollector.Collect(Plan.ControlNamespace);
                foreach (var spec in Pipeline.Spec.Streams)
                {
                    SharedStream stream;
                    try
                    {
                        stream = SharedStream.Open(Plan.NamespaceOf(spec.Name), spec.Name, spec.Format, spec.Mode ?? RegionMode.CreateOrAttach, Plan.OptionsOf(spec.Name));
                    }
                    catch (Exception e) when (e is SharedMemoryException or IOException or UnauthorizedAccessException)
                    {
                        throw new InvalidOperationException($"cannot build stream '{spec.Name}': {e.Message}", e);
                    }

                    streams[spec.Name] = stream;
                    if (stream.Created)
                    {
                        createdStreams.Add(spec.Name);
                    }

                    if (spec.Initial is { } initial)
                    {
                        ApplyInitial(stream, spec, initial);
                    }
                }

                foreach (var spec in Pipeline.Spec.Events)
                {
                    var e = SharedEvent.Open(Namespace, spec.Name, RegionMode.Replace, spec.InitialState);
                    events[spec.Name] = e;
                }
            }
            catch
            {
                CloseStreams(unlink: true, unlinkExternal: false);
                throw;
            }

            failures.Clear();
            SetState(PipelineState.Built);
        }

        Flush();
    }

    /// <summary>
    /// Starts every worker (sinks, then kernels, then sources) and waits until all are attached, then
    /// lets them run. From built; to running. If any worker fails or the start times out, everything
    /// started is torn down, the pipeline stays built, and the error says why.
    /// </summary>
    public void Start() => Operation("start", StartCore);

    private void StartCore()
    {
        try
        {
            lock (gate)
            {
                Require("start", PipelineState.Built);
                try
                {
                    // The NATS bridges of remote streams first: a subscriber writes before the readers run, a publisher reads the first frame.
                    bridges = RemoteBridges.Start(Pipeline, Plan);
                    var all = Enumerable.Range(0, slots.Length).ToList();
                    Launch(all);
                    AwaitReady(all, options.StartTimeout);
                    PushSettings(all);
                    foreach (var role in new[] { WorkerRole.Sink, WorkerRole.Task, WorkerRole.Kernel, WorkerRole.Source })
                    {
                        Command(role, WorkerCommand.Run);
                    }
                }
                catch
                {
                    StopWorkers(TimeSpan.FromSeconds(2), force: true);
                    failures.Clear();
                    throw;
                }

                pausedBeforeFailure = false;
                SetState(PipelineState.Running);
            }
        }
        finally
        {
            Flush();
        }
    }

    /// <summary>Pauses every worker (each finishes the frame in hand). From running; to paused.</summary>
    public void Pause() => Operation("pause", PauseCore);

    private void PauseCore()
    {
        lock (gate)
        {
            Require("pause", PipelineState.Running);
            foreach (var role in new[] { WorkerRole.Source, WorkerRole.Kernel, WorkerRole.Task, WorkerRole.Sink })
            {
                Command(role, WorkerCommand.Pause);
            }

            AwaitState(WorkerState.Paused, TimeSpan.FromSeconds(2));
            SetState(PipelineState.Paused);
        }

        Flush();
    }

    /// <summary>Lets paused workers run again. From paused; to running.</summary>
    public void Resume() => Operation("resume", ResumeCore);

    private void ResumeCore()
    {
        lock (gate)
        {
            Require("resume", PipelineState.Paused);
            foreach (var role in new[] { WorkerRole.Sink, WorkerRole.Task, WorkerRole.Kernel, WorkerRole.Source })
            {
                Command(role, WorkerCommand.Run);
            }

            SetState(PipelineState.Running);
        }

        Flush();
    }

    /// <summary>
    /// Stops every worker (sources, then kernels, then sinks), waiting up to <paramref name="timeout"/>
    /// (default 5 s; at most 1 s when <paramref name="force"/>) before killing a process that has not
    /// stopped. The streams stay. From running, paused or failed; to built (a no-op when built).
    /// </summary>
    public void Stop(TimeSpan? timeout = null, bool force = false) => Operation("stop", () => StopCore(timeout, force));

    private void StopCore(TimeSpan? timeout, bool force)
    {
        lock (gate)
        {
            if (State == PipelineState.Built)
            {
                return;
            }

            Require("stop", PipelineState.Running, PipelineState.Paused, PipelineState.Failed);
            StopWorkers(timeout ?? TimeSpan.FromSeconds(5), force);
            failures.Clear();
            SetState(PipelineState.Built);
        }

        Flush();
    }

    /// <summary>
    /// Starts again the workers that failed, died or hung (ending a hung process first); the others keep
    /// running. From running, paused or failed; a failed pipeline with no failure left runs again.
    /// </summary>
    public void Restart(TimeSpan? timeout = null) => Operation("restart", () => RestartCore(timeout));

    private void RestartCore(TimeSpan? timeout)
    {
        try
        {
            lock (gate)
            {
                Require("restart", PipelineState.Running, PipelineState.Paused, PipelineState.Failed);
                // A task whose function returned has finished, not failed: it is not run again.
                var broken = Enumerable.Range(0, slots.Length)
                    .Where(i => failures.ContainsKey(i) || slots[i] is null || (slots[i]!.HasExited && !Finished(slots[i]!)))
                    .ToList();
                foreach (var i in broken)
                {
                    var slot = slots[i];
                    if (slot is not null)
                    {
                        slot.StopRequested = true;
                        if (!slot.HasExited && !slot.Kill())
                        {
                            throw new InvalidOperationException($"cannot restart {Describe(slot.Plan)}: it runs on a thread of this process and does not answer; stop the pipeline instead");
                        }

                        slot.WaitForExit(TimeSpan.FromSeconds(5));
                        slot.Control.Unlink();
                        slot.Dispose();
                        slots[i] = null;
                    }

                    failures.Remove(i);
                }

                Launch(broken);
                AwaitReady(broken, timeout ?? options.StartTimeout);
                PushSettings(broken);
                var command = State == PipelineState.Paused || (State == PipelineState.Failed && pausedBeforeFailure) ? WorkerCommand.Pause : WorkerCommand.Run;
                foreach (var i in broken.OrderBy(i => slots[i]!.Plan.Role switch { WorkerRole.Sink => 0, WorkerRole.Task => 1, WorkerRole.Kernel => 2, _ => 3 }))
                {
                    slots[i]!.Control.Command = command;
                }

                bridges?.RestartFailed(Pipeline, Plan);
                if (State == PipelineState.Failed && failures.Count == 0)
                {
                    SetState(command == WorkerCommand.Pause ? PipelineState.Paused : PipelineState.Running);
                }
            }
        }
        finally
        {
            Flush();
        }
    }

    /// <summary>
    /// Stops synthetic inputs and workers, closes every handle, and removes the streams this manager
    /// created (when <paramref name="unlink"/>) and those it attached to (when <paramref name="unlinkExternal"/>).
    /// From any state; to stopped.
    /// </summary>
    public void Shutdown(bool unlink = true, bool unlinkExternal = false, bool force = false) => Operation("shutdown", () => ShutdownCore(unlink, unlinkExternal, force));

    private void ShutdownCore(bool unlink, bool unlinkExternal, bool force)
    {
        lock (gate)
        {
            foreach (var input in synthetic.Values)
            {
                input.Dispose();
            }

            synthetic.Clear();
            if (State is PipelineState.Running or PipelineState.Paused or PipelineState.Failed)
            {
                StopWorkers(TimeSpan.FromSeconds(force ? 1 : 5), force);
            }

            failures.Clear();
            CloseStreams(unlink, unlinkExternal);
            if (State != PipelineState.Stopped)
            {
                SetState(PipelineState.Stopped);
            }
        }

        Flush();
    }

    /// <summary>
    /// Waits until every started worker has ended (tasks whose functions returned, failed workers);
    /// false if some still run after <paramref name="timeout"/> (null waits for ever).
    /// </summary>
    public bool WaitForWorkers(TimeSpan? timeout = null)
    {
        var deadline = MonotonicClock.DeadlineNs(timeout);
        while (true)
        {
            lock (gate)
            {
                if (slots.All(s => s is null || s.HasExited))
                {
                    Drain();
                    break;
                }
            }

            if (MonotonicClock.NowNs() >= deadline)
            {
                return false;
            }

            Thread.Sleep(5);
        }

        Flush();
        return true;
    }

    /// <summary>Throws <see cref="WorkerFailedException"/> if a worker failed ("kernel 'x' failed: message").</summary>
    public void RaiseIfFailed()
    {
        lock (gate)
        {
            Drain();
            if (failures.Count == 0)
            {
                return;
            }

            var records = failures.OrderBy(f => f.Key).Select(f => f.Value).ToList();
            var first = records[0];
            var more = records.Count > 1 ? $" (and {records.Count - 1} more)" : "";
            throw new WorkerFailedException($"{first.ComponentType} '{first.Kernel}' failed: {first.Error}{more}", records);
        }
    }

    /// <summary>The events after <paramref name="afterId"/> still in the history (the last <see cref="PipelineManagerOptions.EventHistory"/>).</summary>
    public IReadOnlyList<PipelineEvent> Events(long afterId = 0)
    {
        lock (gate)
        {
            return [.. history.Where(e => e.Id > afterId)];
        }
    }

    /// <summary>Shuts down (forcing) and lets go of everything.</summary>
    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        try
        {
            Shutdown(force: true);
        }
        finally
        {
            disposed = true;
            wake.Set();
            supervisor.Join(TimeSpan.FromSeconds(2));
            wake.Dispose();
            metrics?.Dispose();
        }
    }

    /// <summary>Runs a lifecycle operation as an activity (<c>flowline.pipeline.{name}</c>), and records its duration.</summary>
    private void Operation(string name, Action action)
    {
        using var activity = PipelineMetrics.ActivitySource.StartActivity("flowline.pipeline." + name);
        activity?.SetTag("flowline.namespace", Namespace);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var failed = true;
        try
        {
            action();
            failed = false;
        }
        catch (Exception e)
        {
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, e.Message);
            throw;
        }
        finally
        {
            metrics?.RecordOperation(name, Namespace, System.Diagnostics.Stopwatch.GetElapsedTime(started), failed);
        }
    }

    private static void ApplyInitial(SharedStream stream, StreamSpec spec, InitialSpec initial)
    {
        StreamWriter<byte> writer;
        try
        {
            writer = stream.OpenWriter<byte>();
        }
        catch (SharedMemoryException e)
        {
            throw new InvalidOperationException($"cannot apply the initial values of stream '{spec.Name}': {e.Message}", e);
        }

        using (writer)
        {
            writer.Look(out var slot);
            InitialValues.Fill(spec, initial, slot);
            writer.Publish();
        }
    }

    private static string Describe(WorkerPlan worker) => $"{worker.Role.ToString().ToLowerInvariant()} '{worker.Name}'";

    private void Require(string operation, params PipelineState[] allowed)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        Drain();
        if (!allowed.Contains(State))
        {
            throw new StateTransitionException(operation, State, AllowedCalls(State));
        }
    }

    private static IEnumerable<string> AllowedCalls(PipelineState state) => state.AllowedCalls();

    private void SetState(PipelineState state)
    {
        var previous = State;
        State = state;
        Emit("state_changed", new JsonObject { ["state"] = state.ToName(), ["previous"] = previous.ToName() });
    }

    /// <summary>Creates control blocks and starts workers <paramref name="indices"/>.</summary>
    private void Launch(IEnumerable<int> indices)
    {
        if (workerPath is not null && !File.Exists(workerPath))
        {
            throw new InvalidOperationException(
                $"cannot find the worker program '{workerPath}'; reference the Flowline.Worker project (or package) from the application, " +
                "set PipelineManagerOptions.WorkerPath, or place workers on threads (placement: thread)");
        }

        foreach (var i in indices)
        {
            var worker = Plan.Workers[i];
            var control = ControlBlock.Create(Plan.ControlNamespace, worker.ControlName);
            ReplaceProfile(i, worker);
            var slot = new WorkerSlot(worker, control, OnExit);
            slots[i] = slot;
            Registered(slot);
            if (worker.Placement == WorkerPlacement.Thread)
            {
                slot.StartThread(Plan);
            }
            else if (PythonWorker.Runs(worker))
            {
                PythonWorker.Start(slot, Plan);
            }
            else
            {
                slot.StartProcess(workerPath!, WorkerManifest.For(Plan, worker));
            }
        }
    }

    /// <summary>Waits until workers <paramref name="indices"/> are attached; throws, naming the worker and why, if one fails or the time runs out.</summary>
    private void AwaitReady(IReadOnlyCollection<int> indices, TimeSpan timeout)
    {
        var deadline = MonotonicClock.NowNs() + (long)(timeout.TotalSeconds * 1e9);
        var waiting = new HashSet<int>(indices);
        while (waiting.Count > 0)
        {
            foreach (var i in waiting.ToList())
            {
                var slot = slots[i]!;
                var state = slot.Control.State;
                if (state == WorkerState.Failed || slot.HasExited)
                {
                    slot.WaitForExit(TimeSpan.FromSeconds(1));
                    var record = RecordFailure(i, slot);
                    throw new WorkerFailedException($"{Describe(slot.Plan)} failed to start: {record.Error}", [record]);
                }

                if (state is WorkerState.Ready or WorkerState.Running or WorkerState.Paused)
                {
                    waiting.Remove(i);
                    ReportStarted(slot);
                }
            }

            if (waiting.Count == 0)
            {
                break;
            }

            if (MonotonicClock.NowNs() > deadline)
            {
                var names = string.Join(", ", waiting.Select(i => Describe(Plan.Workers[i])));
                throw new TimeoutException($"{names} did not start within {timeout.TotalSeconds:0.###} s");
            }

            Thread.Sleep(2);
        }
    }

    private void AwaitState(WorkerState state, TimeSpan timeout)
    {
        var deadline = MonotonicClock.NowNs() + (long)(timeout.TotalSeconds * 1e9);
        while (slots.Any(s => s is not null && !s.HasExited && !failures.ContainsKey(s.Plan.Index) && s.Control.State != state) && MonotonicClock.NowNs() < deadline)
        {
            Thread.Sleep(1);
        }
    }

    private void Command(WorkerRole role, WorkerCommand command)
    {
        foreach (var slot in slots)
        {
            if (slot is not null && slot.Plan.Role == role && !slot.HasExited)
            {
                slot.Control.Command = command;
            }
        }
    }

    /// <summary>Stops every worker: sources, then kernels, then sinks; kills processes that do not stop in time (in a second at most when forced).</summary>
    private void StopWorkers(TimeSpan timeout, bool force)
    {
        if (force && timeout > TimeSpan.FromSeconds(1))
        {
            timeout = TimeSpan.FromSeconds(1);
        }

        var deadline = MonotonicClock.NowNs() + (long)(timeout.TotalSeconds * 1e9);
        foreach (var role in new[] { WorkerRole.Source, WorkerRole.Kernel, WorkerRole.Task, WorkerRole.Sink })
        {
            var group = slots.Where(s => s is not null && s.Plan.Role == role).Select(s => s!).ToList();
            foreach (var slot in group)
            {
                slot.StopRequested = true;
                slot.Control.Command = WorkerCommand.Stop;
            }

            foreach (var slot in group)
            {
                var left = TimeSpan.FromTicks(Math.Max(0, (deadline - MonotonicClock.NowNs()) / 100));
                if (!slot.WaitForExit(left) && slot.Kill())
                {
                    slot.WaitForExit(TimeSpan.FromSeconds(5));
                }
            }
        }

        for (var i = 0; i < slots.Length; i++)
        {
            if (slots[i] is { } slot)
            {
                if (slot.HasExited && !slot.ExitHandled && !failures.ContainsKey(i))
                {
                    slot.ExitHandled = true;
                    Emit("worker_stopped", WorkerEventData(slot, "worker_stopped"));
                }
                else if (!slot.HasExited)
                {
                    Emit("worker_stopped", WorkerEventData(slot, "worker_stopped").With("error", $"{Describe(slot.Plan)} did not stop within the timeout; it runs on a thread and was abandoned"));
                }

                slot.Control.Unlink();
                slot.Dispose();
                slots[i] = null;
            }
        }

        DropProfiles();
        bridges?.Dispose();
        bridges = null;
    }

    private void CloseStreams(bool unlink, bool unlinkExternal)
    {
        foreach (var e in events.Values)
        {
            if (unlink)
            {
                e.Unlink();
            }

            e.Dispose();
        }

        events.Clear();
        foreach (var (name, stream) in streams)
        {
            var created = createdStreams.Contains(name);
            if ((created && unlink) || (!created && unlinkExternal))
            {
                stream.Unlink();
            }

            stream.Dispose();
        }

        streams.Clear();
        createdStreams.Clear();
        lease?.Dispose();
        lease = null;
    }

    /// <summary>True for a worker that ended by itself without failing (a task whose function returned).</summary>
    private bool Finished(WorkerSlot slot) =>
        slot.HasExited && !slot.StopRequested && slot.Control.State == WorkerState.Stopped && !failures.ContainsKey(slot.Plan.Index);

    /// <summary>Called on any thread when a worker's process or thread ends.</summary>
    private void OnExit(WorkerSlot slot)
    {
        Unregistered(slot);
        exits.Enqueue(slot);
        try
        {
            wake.Set();
        }
        catch (ObjectDisposedException)
        {
            // An abandoned thread worker ended after the manager was disposed: nobody is waiting.
        }
    }

    /// <summary>Handles the exits and synthetic input errors seen so far (under the lock).</summary>
    private void Drain()
    {
        while (syntheticErrors.TryDequeue(out var error))
        {
            Emit("synthetic_failed", error);
        }

        while (exits.TryDequeue(out var slot))
        {
            var index = slot.Plan.Index;
            if (!ReferenceEquals(slots[index], slot) || slot.ExitHandled)
            {
                continue;
            }

            slot.ExitHandled = true;
            if ((slot.StopRequested || slot.Control.State == WorkerState.Stopped) && slot.Control.State != WorkerState.Failed)
            {
                Emit("worker_stopped", WorkerEventData(slot, "worker_stopped"));
                continue;
            }

            RecordFailure(index, slot);
        }
    }

    /// <summary>Records the failure of <paramref name="slot"/> (its error if it wrote one, else how it ended) and moves a running pipeline to failed.</summary>
    private FailureRecord RecordFailure(int index, WorkerSlot slot, string? reason = null)
    {
        var type = slot.Plan.Role switch { WorkerRole.Source => "source_failed", WorkerRole.Sink => "sink_failed", _ => "worker_failed" };
        var record = FailureOf(slot, type);
        if (reason is not null)
        {
            record = record with { Error = reason, ExceptionType = "hung", Traceback = "" };
        }
        else if (slot.Control.State == WorkerState.Failed && slot.Control.ReadError() is { } text)
        {
            var error = WorkerError.Parse(text);
            record = record with { Error = error.Error, ExceptionType = error.Type, Traceback = error.Traceback };
        }
        else
        {
            slot.WaitForExit(TimeSpan.FromMilliseconds(200));
            record = record with { Error = $"worker {slot.DescribeExit()}", ExceptionType = "crash", Traceback = slot.OutputTail };
        }

        record = record with { Exitcode = slot.ExitCode };
        if (failures.TryGetValue(index, out var existing) && existing.ExceptionType is not ("crash" or "hung") && reason is null)
        {
            return existing; // a detailed record is not replaced by a generic one
        }

        failures[index] = record;
        Emit(type, StatusJson.ToJsonObject(record));
        if (State is PipelineState.Running or PipelineState.Paused)
        {
            pausedBeforeFailure = State == PipelineState.Paused;
            SetState(PipelineState.Failed);
        }

        return record;
    }

    private void ReportStarted(WorkerSlot slot)
    {
        if (!slot.StartReported)
        {
            slot.StartReported = true;
            Emit("worker_started", WorkerEventData(slot, "worker_started"));
        }
    }

    /// <summary>The payload of a worker's events: its identity (shmpipeline's failure record, before the error is known).</summary>
    private static FailureRecord FailureOf(WorkerSlot slot, string type) => new()
    {
        Type = type,
        Kernel = slot.Plan.Name,
        ComponentType = slot.Plan.Role.ToString().ToLowerInvariant(),
        Kind = slot.Plan.Node.Kind,
        Pid = slot.Pid,
        CpuSlot = slot.Plan.Cpu,
        Stream = slot.Plan.Node switch { SourceSpec s => s.Streams[0], SinkSpec s => s.Stream, _ => null },
        Streams = (slot.Plan.Node as SourceSpec)?.Streams,
        Outputs = (slot.Plan.Node as SinkSpec)?.Outputs,
    };

    /// <summary>The payload of a worker's event of <paramref name="type"/>: its identity, as its failure record has it, without the error fields.</summary>
    private static JsonObject WorkerEventData(WorkerSlot slot, string type)
    {
        var data = StatusJson.ToJsonObject(FailureOf(slot, type));
        foreach (var key in (string[])["error", "exception_type", "traceback", "exitcode"])
        {
            data.Remove(key);
        }

        return data;
    }

    private void Emit(string type, JsonObject data)
    {
        var e = new PipelineEvent(nextEventId++, type, Clock.UnixNow(), data);
        history.Enqueue(e);
        while (history.Count > Math.Max(1, options.EventHistory))
        {
            history.Dequeue();
        }

        pending.Enqueue(e);
    }

    /// <summary>Hands pending events to the handlers, outside the manager's lock.</summary>
    private void Flush()
    {
        // No shortcut when nothing is pending: another thread may be handing out the last events, and the
        // caller's own events (a command's snapshot, published after this returns) must come after them.
        lock (dispatchGate)
        {
            while (pending.TryDequeue(out var e))
            {
                try
                {
                    EventRaised?.Invoke(this, e);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // A handler's failure is not the pipeline's.
                }
            }
        }
    }

    /// <summary>The supervisor: exits, start and metrics events, hung workers, CPU samples.</summary>
    private void Supervise()
    {
        while (!disposed)
        {
            wake.WaitOne(TimeSpan.FromMilliseconds(50));
            if (disposed)
            {
                break;
            }

            lock (gate)
            {
                Drain();
                var now = MonotonicClock.NowNs();
                if (State is PipelineState.Running or PipelineState.Paused or PipelineState.Failed)
                {
                    Watch(now);
                    foreach (var failure in bridges?.NewFailures() ?? [])
                    {
                        Emit("bridge_failed", failure);
                        if (State != PipelineState.Failed)
                        {
                            SetState(PipelineState.Failed);
                        }
                    }
                }
            }

            Flush();
        }
    }

    private void Watch(long now)
    {
        var metricsDue = now - lastMetricsNs >= WorkerReporter.IntervalNs;
        var cpuDue = now - lastCpuNs >= 1_000_000_000;
        lastMetricsNs = metricsDue ? now : lastMetricsNs;
        lastCpuNs = cpuDue ? now : lastCpuNs;
        for (var i = 0; i < slots.Length; i++)
        {
            if (slots[i] is not { } slot || slot.HasExited || failures.ContainsKey(i))
            {
                continue;
            }

            var state = slot.Control.State;
            if (state is WorkerState.Running or WorkerState.Paused)
            {
                ReportStarted(slot);
            }

            if (state == WorkerState.Running && !slot.HungReported && now - slot.Control.HeartbeatNs > options.HungTimeout.Ticks * 100)
            {
                slot.HungReported = true;
                var age = (now - slot.Control.HeartbeatNs) / 1e9;
                Emit("worker_hung", WorkerEventData(slot, "worker_hung").With("heartbeat_age_s", Math.Round(age, 3)));
                RecordFailure(i, slot, $"worker is hung: no heartbeat for {age:0.0} s (limit {options.HungTimeout.TotalSeconds:0.###} s)");
                continue;
            }

            if (cpuDue)
            {
                SampleCpu(slot, now);
            }

            // Sent when the worker made progress or its health changed (active to idle, paused, ...), with its
            // health, so that a client following the events needs no polling for either.
            if (metricsDue && slot.Control.TryReadMetrics(out var metrics)
                && Health(slot.Plan, slot, now, out _) is var health && (metrics.FramesProcessed != slot.ReportedFrames || health != slot.ReportedHealth))
            {
                slot.ReportedFrames = metrics.FramesProcessed;
                slot.ReportedHealth = health;
                var data = WorkerEventData(slot, "worker_metrics");
                foreach (var (key, value) in StatusJson.ToJsonObject(Figures(slot.Plan, slot, metrics, now)).ToList())
                {
                    data[key] = value?.DeepClone();
                }

                data["health"] = health;
                Emit("worker_metrics", data);
            }
        }

        if (cpuDue)
        {
            EmitStreamMetrics();
        }
    }

    /// <summary>The streams' figures as a <c>stream_metrics</c> event, once a second while they change.</summary>
    private void EmitStreamMetrics()
    {
        var data = StatusJson.ToJsonObject(new StreamMetricsEvent { Streams = StreamFigures() });
        var text = data.ToJsonString();
        if (text != lastStreamMetrics)
        {
            lastStreamMetrics = text;
            Emit("stream_metrics", data);
        }
    }

    private static void SampleCpu(WorkerSlot slot, long now)
    {
        if (slot.IsThread ? ThisProcess.TryReadThreadCpuTime(slot.Control.ThreadId, out var cpu) : ThisProcess.TryReadUsage(slot.Pid, out cpu, out _))
        {
            var (lastCpu, at) = slot.LastCpuSample;
            if (at != 0 && now > at)
            {
                slot.CpuPercent = Math.Round((cpu - lastCpu).TotalSeconds * 1e9 / (now - at) * 100, 2);
            }

            slot.LastCpuSample = (cpu, now);
        }
    }
}
