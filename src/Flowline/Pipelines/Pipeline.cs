using System.Collections.Immutable;
using System.Reflection;
using Flowline.Documents;
using Flowline.Graph;
using Flowline.Plugins;
using Flowline.Runtime;
using Flowline.SharedMemory;

namespace Flowline.Pipelines;

/// <summary>Settings of a <see cref="Pipeline"/>.</summary>
public sealed record PipelineOptions
{
    /// <summary>The namespace of the streams and events (default: the pipeline's name).</summary>
    public string? Namespace { get; init; }

    /// <summary>How workers are pinned to CPUs (default none).</summary>
    public PlacementPolicy Placement { get; init; } = PlacementPolicy.None;

    /// <summary>How long <see cref="Pipeline.Start"/> waits for every task to attach its streams (default 10 s).</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The worker program for tasks placed in processes (default: <c>Flowline.Worker.dll</c> beside the application).</summary>
    public string? WorkerPath { get; init; }

    /// <summary>How the tasks' readers and writers wait, unless a stream says otherwise (<see cref="Pipeline.SetWait"/>); default hybrid.</summary>
    public WaitPolicy? Wait { get; init; }

    /// <summary>
    /// The most a predictive wait spins per frame, as a fraction of the frame interval (above 0, at most 1),
    /// unless a stream says otherwise; default <see cref="WaitTuning.DefaultSpinBudget"/>. Shrunk in proportion
    /// when the pipeline has more workers than cores.
    /// </summary>
    public double? SpinBudget { get; init; }
}

/// <summary>
/// A code-first pipeline (PYTHUSA's <c>Pipeline</c>): declare streams, events and tasks in C#, then
/// compile and run them on Flowline's runtime (the same streams, workers, manager and metrics as
/// pipeline documents). A task is a function that owns its loop and receives typed readers, writers and
/// events by its own parameter names; it runs in a worker process of its own (a static method of a
/// loadable type) or on a thread (any delegate, closures included).
/// </summary>
/// <example>
/// <code>
/// using var pipe = new Pipeline("demo");
/// pipe.AddStream&lt;float&gt;("samples", [8]).AddStream&lt;float&gt;("doubled", [8]);
/// pipe.AddTask("source", Tasks.Source, writes: new() { ["samples"] = "samples" });
/// pipe.AddTask("scale", Tasks.Scale, reads: new() { ["samples"] = "samples" }, writes: new() { ["doubled"] = "doubled" });
/// pipe.AddTask("sink", Tasks.Sink, reads: new() { ["doubled"] = "doubled" });
/// pipe.Run();
/// </code>
/// </example>
public sealed partial class Pipeline : IDisposable
{
    /// <summary>Ring depth of a stream that does not say (PYTHUSA's <c>frames=32</c>).</summary>
    public const int DefaultFrames = 32;

    private readonly List<StreamDeclaration> streams = [];
    private readonly List<EventSpec> events = [];
    private readonly List<TaskDeclaration> tasks = [];
    private readonly List<string> warnings = [];
    private readonly Lock gate = new();
    private readonly PipelineOptions options;
    private PipelineManager? manager;
    private ValidatedPipeline? compiled;
    private PipelineMonitor? monitor;
    private WorkerFailedException? failure;
    private bool started;
    private bool closed;

    /// <summary>Creates an empty pipeline named <paramref name="name"/> (also its namespace unless the options say otherwise).</summary>
    public Pipeline(string name, PipelineOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        this.options = options ?? new PipelineOptions();
        SharedMemoryNamespace.Validate(this.options.Namespace ?? name, "namespace");
        if (this.options.SpinBudget is { } budget)
        {
            WaitTuning.ValidateSpinBudget(budget, "options.SpinBudget");
        }

        Name = name;
    }

    /// <summary>The pipeline's name.</summary>
    public string Name { get; }

    /// <summary>The namespace of its streams and events.</summary>
    public string Namespace => options.Namespace ?? Name;

    /// <summary>Warnings of <see cref="Compile"/> (an event bound to more than two tasks) and of the monitor (a ring staying full).</summary>
    public IReadOnlyList<string> Warnings
    {
        get
        {
            lock (gate)
            {
                return [.. warnings];
            }
        }
    }

    /// <summary>True once compiled.</summary>
    public bool IsCompiled => compiled is not null;

    /// <summary>True once started.</summary>
    public bool IsStarted => started;

    /// <summary>True once closed.</summary>
    public bool IsClosed => closed;

    /// <summary>The streams declared, in order.</summary>
    public IReadOnlyList<string> Streams => [.. streams.Select(s => s.Name)];

    /// <summary>The events declared, in order.</summary>
    public IReadOnlyList<string> Events => [.. events.Select(e => e.Name)];

    /// <summary>The tasks declared, in order.</summary>
    public IReadOnlyList<string> Tasks => [.. tasks.Select(t => t.Spec.Name)];

    /// <summary>The manager that runs the pipeline (created by <see cref="Compile"/>): its status, snapshots and events, or a control plane over it.</summary>
    public PipelineManager Manager => manager ?? throw new InvalidOperationException("the pipeline is not compiled yet; call Compile() or Start() first");

    /// <summary>
    /// Declares a stream of <paramref name="frames"/> slots (a power of two; PYTHUSA's rings take any
    /// count, ours round up) of frames of <paramref name="shape"/> and <paramref name="elementType"/>.
    /// Slots are always cache-line aligned (<paramref name="cacheAlign"/> false is refused), and there are
    /// no reader-position refresh knobs: our writer reads the readers' positions only when the ring looks
    /// full, so there is nothing to tune.
    /// </summary>
    public Pipeline AddStream(string name, ReadOnlySpan<int> shape, ElementType elementType, int frames = DefaultFrames, bool cacheAlign = true, string? description = null)
    {
        ThrowIfClosed();
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(frames, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(frames, StreamOptions.MaxCapacityFrames);
        if (!cacheAlign)
        {
            throw new ArgumentException("Flowline's slots are always cache-line aligned; leave cacheAlign true", nameof(cacheAlign));
        }

        if (streams.Any(s => s.Name == name) || events.Any(e => e.Name == name))
        {
            throw new ArgumentException($"a stream or event named '{name}' is already declared (streams and events share the namespace's names)", nameof(name));
        }

        var format = new FrameFormat(elementType, shape);
        var slots = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(2, frames)); // a ring has at least two slots
        streams.Add(new StreamDeclaration(name, format, slots, description));
        return this;
    }

    /// <summary>Declares a stream of <typeparamref name="T"/> frames of <paramref name="shape"/>.</summary>
    public Pipeline AddStream<T>(string name, ReadOnlySpan<int> shape, int frames = DefaultFrames, string? description = null)
        where T : unmanaged
    {
        ThrowIfClosed();
        return AddStream(name, shape, ElementTypes.Of<T>() ?? throw new ArgumentException($"{typeof(T).Name} is not an element type of a stream"), frames, cacheAlign: true, description);
    }

    /// <summary>
    /// Sets how the readers and the writer of stream <paramref name="name"/> wait (the document's
    /// <c>wait</c> and <c>spin_budget</c> of a stream): <paramref name="spinBudget"/> is the most a
    /// predictive reader spins per frame, as a fraction of the frame interval (above 0, at most 1).
    /// </summary>
    public Pipeline SetWait(string name, WaitPolicy wait, double? spinBudget = null)
    {
        ThrowIfClosed();
        var index = streams.FindIndex(s => s.Name == name);
        if (index < 0)
        {
            throw new ArgumentException($"no stream named '{name}' is declared; declare it with AddStream first", nameof(name));
        }

        if (!Enum.IsDefined(wait))
        {
            throw new ArgumentOutOfRangeException(nameof(wait), wait, "not a wait policy");
        }

        if (spinBudget is { } budget)
        {
            WaitTuning.ValidateSpinBudget(budget, nameof(spinBudget));
        }

        streams[index] = streams[index] with { Wait = wait, SpinBudget = spinBudget };
        return this;
    }

    /// <summary>Declares an event (set at build when <paramref name="initialState"/>).</summary>
    public Pipeline AddEvent(string name, bool initialState = false, string? description = null)
    {
        ThrowIfClosed();
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (events.Any(e => e.Name == name) || streams.Any(s => s.Name == name))
        {
            throw new ArgumentException($"an event or stream named '{name}' is already declared (streams and events share the namespace's names)", nameof(name));
        }

        events.Add(new EventSpec(name, initialState, description));
        return this;
    }

    /// <summary>
    /// Declares a task: <paramref name="function"/> is called once in its worker and owns its loop.
    /// <paramref name="reads"/>, <paramref name="writes"/> and <paramref name="events"/> map the function's
    /// parameter names to the pipeline's stream and event names. A static method of a public or internal
    /// type runs in a worker process of its own unless <paramref name="placement"/> says thread; any other
    /// delegate (a lambda, a closure, an instance method) runs on a thread of this process.
    /// </summary>
    public Pipeline AddTask(
        string name,
        Delegate function,
        Dictionary<string, string>? reads = null,
        Dictionary<string, string>? writes = null,
        Dictionary<string, string>? events = null,
        WorkerPlacement? placement = null,
        string? description = null) =>
        Add(name, function, TaskControl.Plain, null, reads, writes, events, placement, description);

    /// <summary>A task that waits for event <paramref name="activateOn"/> (a key of <paramref name="events"/>), then reruns the function as long as the event stays set.</summary>
    public Pipeline AddSwitchableTask(
        string name,
        string activateOn,
        Delegate function,
        Dictionary<string, string>? reads = null,
        Dictionary<string, string>? writes = null,
        Dictionary<string, string>? events = null,
        WorkerPlacement? placement = null,
        string? description = null) =>
        Add(name, function, TaskControl.Switchable, activateOn, reads, writes, events, placement, description);

    /// <summary>A task that waits for an activation of event <paramref name="activateOn"/>, takes it (resetting the event), and runs the function once per activation.</summary>
    public Pipeline AddToggleableTask(
        string name,
        string activateOn,
        Delegate function,
        Dictionary<string, string>? reads = null,
        Dictionary<string, string>? writes = null,
        Dictionary<string, string>? events = null,
        WorkerPlacement? placement = null,
        string? description = null) =>
        Add(name, function, TaskControl.Toggleable, activateOn, reads, writes, events, placement, description);

    /// <summary>A built-in reader of <paramref name="reads"/> that stops holding their writers back (latest delivery) and returns: a stream's reader when nothing else reads it.</summary>
    public Pipeline AddTerminator(string name, Dictionary<string, string> reads, string? description = null)
    {
        ThrowIfClosed();
        ArgumentNullException.ThrowIfNull(reads);
        if (reads.Count == 0)
        {
            throw new ArgumentException($"terminator '{name}' must read at least one stream", nameof(reads));
        }

        return Add(name, null, TaskControl.Terminator, null, reads, null, null, WorkerPlacement.Thread, description);
    }

    /// <summary>Registers every static method of <paramref name="type"/> marked with <see cref="PipelineTaskAttribute"/> (the decorator form).</summary>
    public Pipeline AddTasksFrom(Type type)
    {
        ThrowIfClosed();
        ArgumentNullException.ThrowIfNull(type);
        foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static).OrderBy(m => m.MetadataToken))
        {
            if (method.GetCustomAttribute<PipelineTaskAttribute>() is not { } a)
            {
                continue;
            }

            var function = method.CreateDelegate(DelegateType(method));
            var control = a.ActivateOn is null ? TaskControl.Plain : a.Toggle ? TaskControl.Toggleable : TaskControl.Switchable;
            Add(a.Name ?? method.Name, function, control, a.ActivateOn, Map(a.Reads), Map(a.Writes), Map(a.Events), a.Thread ? WorkerPlacement.Thread : null, a.Description);
        }

        return this;
    }

    /// <summary>Registers the marked static methods of <typeparamref name="T"/>.</summary>
    public Pipeline AddTasksFrom<T>() => AddTasksFrom(typeof(T));

    /// <summary>
    /// Checks the declaration (PYTHUSA's rules: unique names, known streams and events, bindings that
    /// match the functions' parameters and types, one writer and at least one reader per stream, no
    /// cycle) and creates the manager. Once only.
    /// </summary>
    public void Compile()
    {
        lock (gate)
        {
            ThrowIfClosed();
            if (compiled is not null)
            {
                throw new InvalidOperationException("the pipeline has already been compiled");
            }

            var order = Check();
            var spec = new PipelineSpec
            {
                Namespace = Namespace,
                SpinBudget = options.SpinBudget,
                Streams =
                [
                    .. streams.Select(s => new StreamSpec
                    {
                        Name = s.Name, Shape = s.Format.Shape, Dtype = s.Format.ElementType, Depth = s.Frames, Delivery = Delivery.Lossless,
                        Wait = s.Wait ?? options.Wait, SpinBudget = s.SpinBudget,
                    }),
                ],
                Events = [.. events],
                Tasks = [.. order.Select(t => t.Spec)],
            };
            var validated = new ValidatedPipeline(spec, new PipelineGraph(spec), KindRegistry.BuiltIn);
            manager = new PipelineManager(validated, new PipelineManagerOptions
            {
                Namespace = Namespace,
                Placement = options.Placement,
                StartTimeout = options.StartTimeout,
                WorkerPath = options.WorkerPath,
                HungTimeout = TimeSpan.FromSeconds(30),
                TaskDelegates = tasks.Where(t => t.Spec.Placement == WorkerPlacement.Thread && t.Function is not null).ToDictionary(t => t.Spec.Name, t => t.Function!),
            });
            compiled = validated;
        }
    }

    /// <summary>Compiles if needed, creates the streams and events, and starts every task behind a start barrier (no task runs before every reader is attached). Once only.</summary>
    public void Start()
    {
        lock (gate)
        {
            ThrowIfClosed();
            if (started)
            {
                throw new InvalidOperationException("the pipeline has already been started");
            }

            started = true;
        }

        PipelineManager m;
        try
        {
            if (compiled is null)
            {
                Compile();
            }

            m = Manager;
        }
        catch
        {
            started = false; // nothing was started: fix the declaration and start again
            throw;
        }

        try
        {
            m.Build();
            m.Start();
        }
        catch
        {
            m.Shutdown(force: true);
            started = false; // nothing runs: the pipeline may be started again once the cause is fixed
            throw;
        }
    }

    /// <summary>Starts, then waits until every task has returned (<see cref="Join"/>); a failed task is rethrown.</summary>
    public void Run(TimeSpan? timeout = null)
    {
        Start();
        if (!Join(timeout))
        {
            throw new TimeoutException($"pipeline '{Name}' still runs after {timeout?.TotalSeconds} s");
        }
    }

    /// <summary>
    /// Waits until every task has returned; false if some still run after <paramref name="timeout"/>
    /// (null waits for ever). A task that threw or crashed is rethrown as <see cref="WorkerFailedException"/>
    /// with its error and stack trace. Before <see cref="Start"/> it returns at once.
    /// </summary>
    public bool Join(TimeSpan? timeout = null)
    {
        if (manager is not { } m || !started)
        {
            return true;
        }

        var deadline = MonotonicClock.DeadlineNs(timeout);
        var slice = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            if (failure is not null)
            {
                throw failure;
            }

            m.RaiseIfFailed();
            var leftNs = deadline - MonotonicClock.NowNs();
            if (m.WaitForWorkers(leftNs < slice.TotalNanoseconds ? TimeSpan.FromTicks(Math.Max(0, leftNs / 100)) : slice))
            {
                m.RaiseIfFailed();
                return true;
            }

            if (MonotonicClock.NowNs() >= deadline)
            {
                return false;
            }
        }
    }

    /// <summary>Stops every task still running (their stop tokens fire; a process that does not end in time is killed). The streams stay until <see cref="Close"/>.</summary>
    public void Stop(TimeSpan? timeout = null)
    {
        if (manager is not { } m || closed || m.State is not (PipelineState.Running or PipelineState.Paused or PipelineState.Failed))
        {
            return;
        }

        try
        {
            m.RaiseIfFailed();
        }
        catch (WorkerFailedException e)
        {
            failure = e; // stopping clears the manager's records; Join still reports the failure
        }

        m.Stop(timeout ?? TimeSpan.FromSeconds(5)); // a process that does not end within the timeout is killed
    }

    /// <summary>Samples every task's metrics every <paramref name="interval"/> and warns when a ring stays over 90 % full for a second.</summary>
    public Pipeline StartMonitor(TimeSpan? interval = null)
    {
        lock (gate)
        {
            ThrowIfClosed();
            monitor ??= new PipelineMonitor(this, interval ?? TimeSpan.FromMilliseconds(50), Warn);
        }

        return this;
    }

    /// <summary>The latest metrics of <paramref name="taskName"/>, or null before the first sample; <see cref="KeyNotFoundException"/> for an unknown task.</summary>
    public TaskMetrics? Metrics(string taskName)
    {
        if (tasks.All(t => t.Spec.Name != taskName))
        {
            throw new KeyNotFoundException($"the pipeline has no task '{taskName}'; tasks are: {string.Join(", ", tasks.Select(t => t.Spec.Name))}");
        }

        return Metrics()[taskName];
    }

    /// <summary>The latest metrics of every task (null values before the first sample).</summary>
    public IReadOnlyDictionary<string, TaskMetrics?> Metrics()
    {
        var sample = monitor?.Latest ?? (manager is { } m && started && !closed ? PipelineMonitor.Sample(m) : null);
        return tasks.ToDictionary(t => t.Spec.Name, t => sample?.GetValueOrDefault(t.Spec.Name));
    }

    /// <summary>Stops, then removes the streams and events; idempotent. Later declarations and starts throw.</summary>
    public void Close()
    {
        lock (gate)
        {
            if (closed)
            {
                return;
            }

            closed = true;
        }

        monitor?.Dispose();
        if (manager is { } m)
        {
            m.Shutdown(unlink: true); // up to 5 s for the tasks to end, then processes are killed
            m.Dispose();
        }
    }

    /// <summary>Same as <see cref="Close"/>.</summary>
    public void Dispose() => Close();

    /// <inheritdoc/>
    public override string ToString() =>
        $"Pipeline('{Name}', {streams.Count} streams, {tasks.Count} tasks, {events.Count} events, compiled={IsCompiled}, started={started}, closed={closed})";

    internal IReadOnlyList<StreamDeclaration> StreamDeclarations => streams;

    internal IReadOnlyList<EventSpec> EventDeclarations => events;

    internal IReadOnlyList<TaskDeclaration> TaskDeclarations => tasks;

    /// <summary>Adds a task from a saved file (the function named by type and method).</summary>
    internal void AddSaved(TaskSpec spec)
    {
        ThrowIfClosed();
        CheckNewTask(spec.Name, spec.Control, spec.ActivateOn, spec.Events);
        var method = spec.Control == TaskControl.Terminator ? null : Functions.Find(spec);
        tasks.Add(new TaskDeclaration(spec, method?.CreateDelegate(DelegateType(method)), method));
    }

    private Pipeline Add(
        string name,
        Delegate? function,
        TaskControl control,
        string? activateOn,
        Dictionary<string, string>? reads,
        Dictionary<string, string>? writes,
        Dictionary<string, string>? eventBindings,
        WorkerPlacement? placement,
        string? description)
    {
        ThrowIfClosed();
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (control != TaskControl.Terminator)
        {
            ArgumentNullException.ThrowIfNull(function);
        }

        var eventMap = Sorted(eventBindings);
        CheckNewTask(name, control, activateOn, eventMap);
        var method = function?.Method;
        var loadable = method is not null && function!.Target is null && Functions.IsLoadable(method);
        if (placement == WorkerPlacement.Process && function is not null && !loadable)
        {
            throw new ArgumentException($"task '{name}' cannot run in a process of its own: {Functions.WhyNotLoadable(method!)}; use a static method of a named type, or WorkerPlacement.Thread", nameof(placement));
        }

        var where = placement ?? (loadable ? WorkerPlacement.Process : WorkerPlacement.Thread);
        var spec = new TaskSpec
        {
            Name = name,
            Kind = control switch { TaskControl.Plain => "task", TaskControl.Terminator => "task.terminator", _ => $"task.{control.ToString().ToLowerInvariant()}" },
            Control = control,
            ActivateOn = activateOn,
            Reads = Sorted(reads),
            Writes = Sorted(writes),
            Events = eventMap,
            TypeName = loadable ? method!.DeclaringType!.AssemblyQualifiedName : null,
            Method = loadable ? method!.Name : null,
            AssemblyPath = loadable && method!.DeclaringType!.Assembly.Location is { Length: > 0 } location ? location : null,
            Placement = where,
            Description = description,
        };
        tasks.Add(new TaskDeclaration(spec, function, method));
        return this;
    }

    private void CheckNewTask(string name, TaskControl control, string? activateOn, IReadOnlyDictionary<string, string> eventMap)
    {
        if (tasks.Any(t => t.Spec.Name == name))
        {
            throw new ArgumentException($"a task named '{name}' is already declared", nameof(name));
        }

        if (control is TaskControl.Switchable or TaskControl.Toggleable && (activateOn is null || !eventMap.ContainsKey(activateOn)))
        {
            throw new ArgumentException(
                $"task '{name}': activateOn '{activateOn}' must be one of the task's event bindings ({(eventMap.Count == 0 ? "it has none" : string.Join(", ", eventMap.Keys))})",
                nameof(activateOn));
        }
    }

    private void Warn(string message)
    {
        lock (gate)
        {
            warnings.Add(message);
        }
    }

    private void ThrowIfClosed()
    {
        if (closed)
        {
            throw new InvalidOperationException("the pipeline is closed");
        }
    }

    private static ImmutableSortedDictionary<string, string> Sorted(Dictionary<string, string>? map) =>
        (map ?? []).ToImmutableSortedDictionary(StringComparer.Ordinal);

    private static Dictionary<string, string>? Map(string[]? bindings)
    {
        if (bindings is null)
        {
            return null;
        }

        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var binding in bindings)
        {
            var parts = binding.Split('=', 2, StringSplitOptions.TrimEntries);
            map[parts[0]] = parts.Length == 2 ? parts[1] : parts[0];
        }

        return map;
    }

    private static Type DelegateType(MethodInfo method)
    {
        var types = method.GetParameters().Select(p => p.ParameterType).Append(method.ReturnType).ToArray();
        return System.Linq.Expressions.Expression.GetDelegateType(types);
    }

    /// <summary>A stream as declared.</summary>
    internal sealed record StreamDeclaration(string Name, FrameFormat Format, int Frames, string? Description)
    {
        public WaitPolicy? Wait { get; init; }

        public double? SpinBudget { get; init; }
    }

    /// <summary>A task as declared: its spec, the delegate (null for terminators and reconstructed tasks) and its method.</summary>
    internal sealed record TaskDeclaration(TaskSpec Spec, Delegate? Function, MethodInfo? Method);
}
