using Flowline.Documents;
using Flowline.SharedMemory;
using Flowline.SharedMemory.Liveness;

namespace Flowline.Runtime;

/// <summary>
/// Runs one worker of a plan, in a worker process or on a thread of the manager's process (the same
/// code either way): pins itself, attaches its streams, reports ready, waits at the start barrier, then
/// computes, pauses and stops as its control block commands. A failure is written to the control block
/// (type, message, stack trace) before the worker gives up.
/// </summary>
public static class WorkerHost
{
    /// <summary>Exit code of a worker that stopped when told to.</summary>
    public const int StoppedExitCode = 0;

    /// <summary>Exit code of a worker that failed (its error is in its control block).</summary>
    public const int FailedExitCode = 1;

    /// <summary>Exit code of a worker process that could not read its manifest or attach its control block.</summary>
    public const int UnusableExitCode = 2;

    /// <summary>
    /// Runs worker <paramref name="worker"/> of <paramref name="plan"/> on the calling thread until it is
    /// told to stop or fails; returns <see cref="StoppedExitCode"/> or <see cref="FailedExitCode"/>.
    /// </summary>
    public static int Run(PipelinePlan plan, WorkerPlan worker, ControlBlock control)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(worker);
        ArgumentNullException.ThrowIfNull(control);
        control.Pid = Environment.ProcessId;
        control.ThreadId = ThisProcess.CurrentThreadId();
        control.StartedNs = MonotonicClock.NowNs();
        control.State = WorkerState.Starting;
        control.Beat();
        try
        {
            if (worker.Cpu is { } cpu && ThisProcess.TryPinCurrentThread(cpu) is { } why)
            {
                throw new InvalidOperationException($"{worker.Role.ToString().ToLowerInvariant()} '{worker.Name}' could not be pinned: {why}");
            }

            using var runner = Create(plan, worker, control);
            runner.Reporter.OwnThreadsWaits = worker.Placement == WorkerPlacement.Thread;
            return Serve(runner, control, worker.Name);
        }
        catch (Exception e)
        {
            return Fail(control, WorkerError.From(e));
        }
    }

    /// <summary>Records <paramref name="error"/> in the control block and marks the worker failed.</summary>
    internal static int Fail(ControlBlock control, WorkerError error)
    {
        control.WriteError(error.ToJson());
        control.State = WorkerState.Failed;
        control.Beat();
        return FailedExitCode;
    }

    private static WorkerRunner Create(PipelinePlan plan, WorkerPlan worker, ControlBlock control) => worker.Node switch
    {
        KernelSpec k => new KernelRunner(plan, k, control),
        SourceSpec s => new SourceRunner(plan, s, control),
        SinkSpec s => new SinkRunner(plan, s, control),
        TaskSpec t => new TaskRunner(plan, t, control),
        _ => throw new InvalidOperationException($"unknown node type {worker.Node.GetType().Name}"),
    };

    private static int Serve(WorkerRunner runner, ControlBlock control, string node)
    {
        using var requests = new WorkerRequestService(control, node, runner.NodeObject, runner.TicksBetweenFrames);
        runner.Reporter.Requests = requests;
        control.State = WorkerState.Ready;
        runner.Reporter.Tick(force: true);
        using var watcher = new CommandWatcher(control);
        var command = control.Command;
        while (true)
        {
            switch (command)
            {
                case WorkerCommand.Stop:
                    control.State = WorkerState.Stopped;
                    return StoppedExitCode;
                case WorkerCommand.Run:
                    control.State = WorkerState.Running;
                    runner.Run(watcher.UntilChange(WorkerCommand.Run));
                    if (runner.Finished)
                    {
                        control.State = WorkerState.Stopped;
                        return StoppedExitCode;
                    }

                    break;
                default:
                    control.State = command == WorkerCommand.Pause ? WorkerState.Paused : WorkerState.Ready;
                    control.WaitForCommandChange(command, WorkerRunner.WaitSlice);
                    runner.Reporter.Tick();
                    break;
            }

            command = control.Command;
        }
    }

    /// <summary>
    /// A thread that sleeps on the command word and cancels the running loop's token when the command
    /// changes, so that a worker blocked waiting for input answers a pause or a stop at once.
    /// </summary>
    private sealed class CommandWatcher : IDisposable
    {
        private readonly ControlBlock control;
        private readonly Thread thread;
        private volatile bool disposed;
        private volatile CancellationTokenSource? current;
        private WorkerCommand watched;

        public CommandWatcher(ControlBlock control)
        {
            this.control = control;
            thread = new Thread(Watch) { IsBackground = true, Name = "flowline-command" };
            thread.Start();
        }

        /// <summary>A token that fires when the command is no longer <paramref name="command"/>.</summary>
        public CancellationToken UntilChange(WorkerCommand command)
        {
            current?.Dispose();
            watched = command;
            var source = new CancellationTokenSource();
            current = source;
            if (control.Command != command)
            {
                source.Cancel();
            }

            return source.Token;
        }

        public void Dispose()
        {
            disposed = true;
            control.WakeCommandWaiters();
            thread.Join(TimeSpan.FromSeconds(1));
            current?.Dispose();
        }

        private void Watch()
        {
            while (!disposed)
            {
                var command = control.Command;
                var source = current;
                if (source is not null && command != watched)
                {
                    try
                    {
                        source.Cancel();
                    }
                    catch (ObjectDisposedException)
                    {
                    }
                }

                control.WaitForCommandChange(command, TimeSpan.FromMilliseconds(200));
            }
        }
    }
}
