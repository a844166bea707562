using System.Reflection;
using Flowline.Documents;
using Flowline.Pipelines;
using Flowline.Plugins;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// Runs a task of a code-first pipeline: binds the function's parameters by name to typed readers,
/// writers and events (all attached before the start barrier, so no early writer loses frames), then
/// calls it once (plain), once per activation (toggleable) or again and again while its event is set
/// (switchable). The function owns its loop; when it returns the worker has finished, which is not a
/// failure. A thread beats the heartbeat and turns a stop command into the task's stop token, so a task
/// busy in its own code is never reported hung and ends at its next binding call.
/// </summary>
internal sealed class TaskRunner : WorkerRunner
{
    private readonly TaskSpec spec;
    private readonly MethodInfo method;
    private readonly object? target;
    private readonly object?[] arguments;
    private readonly List<Action<bool>> readers = [];
    private readonly Dictionary<string, TaskEvent> events = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource stopping = new();
    private readonly TaskGate gate;
    private WorkerProfiler? profiler;
    private bool profilerOpened;
    private ILiveSettings? settings;

    public TaskRunner(PipelinePlan plan, TaskSpec spec, ControlBlock control)
        : base(control)
    {
        this.spec = spec;
        (method, target) = Resolve(plan, spec);
        gate = new TaskGate(control, Reporter, stopping) { CountsReads = spec.Writes.Count == 0 };
        try
        {
            foreach (var (local, name) in spec.Events)
            {
                events[local] = new TaskEvent(name, Own(SharedEvent.Open(plan.Namespace, name, RegionMode.Attach)), gate);
            }

            if (spec.Control == TaskControl.Terminator)
            {
                foreach (var name in spec.Reads.Values)
                {
                    var stream = Own(SharedStream.Attach(plan.Namespace, name));
                    var reader = Own(stream.OpenReader<byte>(new ReaderOptions { Delivery = Delivery.Latest }));
                    readers.Add(reader.SetBlocking);
                }

                arguments = [];
                return;
            }

            var parameters = method.GetParameters();
            arguments = new object?[parameters.Length];
            for (var i = 0; i < parameters.Length; i++)
            {
                arguments[i] = Bind(plan, parameters[i]);
            }

            // Profiling (decision 110): each reader's latency (added as it was bound) and the time from a frame in to a frame out.
            gate.Compute = Profiler(plan)?.AddCompute(spec.Name);
        }
        catch
        {
            Dispose(); // the streams, readers and events taken so far
            throw;
        }
    }

    protected override void Loop(CancellationToken stop)
    {
        if (stopping.IsCancellationRequested)
        {
            Finished = true; // the function is called once: a loop that ended is not started again
            return;
        }

        var watcher = new Thread(Watch) { IsBackground = true, Name = $"flowline-task-{spec.Name}" };
        watcher.Start();
        try
        {
            switch (spec.Control)
            {
                case TaskControl.Terminator:
                    foreach (var setBlocking in readers)
                    {
                        setBlocking(false);
                    }

                    break;
                case TaskControl.Switchable:
                    var on = events[spec.ActivateOn!];
                    while (on.Wait())
                    {
                        Invoke();
                    }

                    break;
                case TaskControl.Toggleable:
                    var trigger = events[spec.ActivateOn!];
                    while (trigger.WaitActivation())
                    {
                        Invoke();
                    }

                    break;
                default:
                    Invoke();
                    break;
            }

            Finished = true;
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Stopped by the manager.
        }
        catch (OperationCanceledException e)
        {
            // The task's own cancellation (its token, a timeout of its own), not a stop: that is a failure.
            throw new InvalidOperationException($"task '{spec.Name}' ended with {e.GetType().Name}: {e.Message}", e);
        }
        finally
        {
            stopping.Cancel();
            watcher.Join();
        }
    }

    /// <summary>The task's settings (its <see cref="TaskSettings{T}"/> parameter), whose changes the worker applies between frames; or null.</summary>
    internal override object? NodeObject => settings;

    /// <summary>
    /// A task with settings ticks between frames at each binding call (and while ready or paused): its
    /// settings changes run there, on its own thread. One without keeps between-frame requests on the request thread.
    /// </summary>
    internal override bool TicksBetweenFrames => settings is not null;

    protected override void DisposeResources() => stopping.Dispose();

    /// <summary>Calls the function; what it throws comes out as itself, not wrapped.</summary>
    private void Invoke() => method.Invoke(target, BindingFlags.DoNotWrapExceptions, null, arguments, null);

    /// <summary>
    /// Beats while the task runs and cancels the task's token on stop. Pauses are the bindings' business:
    /// the worker says paused only once its task is held at a binding call.
    /// </summary>
    private void Watch()
    {
        while (!stopping.IsCancellationRequested)
        {
            var command = Control.Command;
            if (command == WorkerCommand.Stop)
            {
                stopping.Cancel();
                return;
            }

            Control.Beat();
            Control.WaitForCommandChange(command, WaitSlice);
        }
    }

    private object? Bind(PipelinePlan plan, ParameterInfo parameter)
    {
        var name = parameter.Name!;
        var type = parameter.ParameterType;
        if (spec.Reads.TryGetValue(name, out var read))
        {
            return Stream(plan, read, type, typeof(TaskReader<>), reader: true);
        }

        if (spec.Writes.TryGetValue(name, out var write))
        {
            return Stream(plan, write, type, typeof(TaskWriter<>), reader: false);
        }

        if (spec.Events.TryGetValue(name, out _))
        {
            return type == typeof(TaskEvent)
                ? events[name]
                : throw new InvalidOperationException($"task '{spec.Name}': parameter '{name}' is bound to an event, so its type must be TaskEvent, not {type.Name}");
        }

        if (type == typeof(CancellationToken))
        {
            return stopping.Token;
        }

        if (type == typeof(TaskContext))
        {
            return new TaskContext(spec.Name, plan.Namespace, stopping.Token);
        }

        if (TaskSettingsType.RecordOf(type) is { } record)
        {
            // The record's defaults, with the node's parameters over them; the manager sends the current values once the worker is ready.
            var described = TaskSettingsType.Of(record);
            var initial = new System.Text.Json.Nodes.JsonObject();
            foreach (var field in spec.Parameters.Names)
            {
                initial[field] = spec.Parameters.Get(field);
            }

            var holder = Activator.CreateInstance(type, BindingFlags.NonPublic | BindingFlags.Instance, null, [described, described.With(initial)], null)!;
            settings = (ILiveSettings)holder;
            return holder;
        }

        return parameter.HasDefaultValue
            ? parameter.DefaultValue
            : throw new InvalidOperationException($"task '{spec.Name}': parameter '{name}' of {method.Name} is not bound to a stream or an event");
    }

    private object Stream(PipelinePlan plan, string name, Type parameterType, Type binding, bool reader)
    {
        if (!parameterType.IsGenericType || parameterType.GetGenericTypeDefinition() != binding)
        {
            throw new InvalidOperationException($"task '{spec.Name}': a parameter bound to stream '{name}' must be a {binding.Name[..^2]}<T>, not {parameterType.Name}");
        }

        var element = parameterType.GetGenericArguments()[0];
        var stream = Own(SharedStream.Attach(plan.Namespace, name));
        if (element != typeof(byte) && element != stream.Format.ElementType.ClrType())
        {
            throw new InvalidOperationException($"task '{spec.Name}': stream '{name}' holds {stream.Format.ElementType.ToName()} ({stream.Format.ElementType.ClrType().Name}), not {element.Name}");
        }

        var open = typeof(TaskRunner).GetMethod(reader ? nameof(OpenReaderBinding) : nameof(OpenWriterBinding), BindingFlags.NonPublic | BindingFlags.Instance)!.MakeGenericMethod(element);
        return open.Invoke(this, BindingFlags.DoNotWrapExceptions, null, [plan, stream], null)!;
    }

    private TaskReader<T> OpenReaderBinding<T>(PipelinePlan plan, SharedStream stream)
        where T : unmanaged
    {
        var options = plan.TriggerReader(spec, stream.Name) with { Delivery = Delivery.Lossless };
        var raw = Own(stream.OpenReader<T>(options));
        return new TaskReader<T>(stream.Name, stream.Format, raw, gate) { Latency = Profiler(plan)?.AddInputLatency(stream.Name, raw.Index) };
    }

    /// <summary>The task's profiler (opened once, when the first histogram is added), or null without profiling.</summary>
    private WorkerProfiler? Profiler(PipelinePlan plan)
    {
        if (!profilerOpened)
        {
            profilerOpened = true;
            profiler = WorkerProfiler.Open(plan.ControlNamespace, Control.Name, d => Own(d));
            Reporter.Profiler = profiler;
        }

        return profiler;
    }

    private TaskWriter<T> OpenWriterBinding<T>(PipelinePlan plan, SharedStream stream)
        where T : unmanaged =>
        new(stream.Name, stream.Format, Own(stream.OpenWriter<T>(plan.Writer(stream.Name))), gate);

    /// <summary>The function: a delegate given to the manager (thread placement), or a static method found by type and name.</summary>
    internal static (MethodInfo Method, object? Target) Resolve(PipelinePlan plan, TaskSpec spec)
    {
        if (plan.TaskDelegates.TryGetValue(spec.Name, out var function))
        {
            return (function.Method, function.Target);
        }

        if (spec.Control == TaskControl.Terminator)
        {
            return (typeof(TaskRunner).GetMethod(nameof(Resolve), BindingFlags.NonPublic | BindingFlags.Static)!, null);
        }

        if (spec.TypeName is null || spec.Method is null)
        {
            throw new InvalidOperationException($"task '{spec.Name}' has no function: it was declared with a delegate, which only runs on a thread of the program that declared it");
        }

        var type = Type.GetType(spec.TypeName, throwOnError: false);
        if (type is null && spec.AssemblyPath is { } path && File.Exists(path))
        {
            var assembly = PluginLoader.LoadAssembly(path);
            type = assembly.GetType(spec.TypeName.Split(',')[0].Trim(), throwOnError: false);
        }

        if (type is null)
        {
            throw new InvalidOperationException($"task '{spec.Name}': cannot find type '{spec.TypeName}'{(spec.AssemblyPath is null ? "" : $" (assembly '{spec.AssemblyPath}')")}");
        }

        var methods = type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static).Where(m => m.Name == spec.Method).ToList();
        return methods.Count switch
        {
            1 => (methods[0], null),
            0 => throw new InvalidOperationException($"task '{spec.Name}': {type.FullName} has no static method '{spec.Method}'"),
            _ => throw new InvalidOperationException($"task '{spec.Name}': {type.FullName} has {methods.Count} static methods named '{spec.Method}'; a task's method must not be overloaded"),
        };
    }
}
