using System.Diagnostics;
using Flowline.SharedMemory;
using Flowline.SharedMemory.Diagnostics;
using Flowline.SharedMemory.Liveness;

namespace Flowline.Runtime;

/// <summary>
/// One launch of one worker: its control block and its process (or thread), the output it printed
/// last, and how it ended. The manager makes a new one for every start and restart.
/// </summary>
internal sealed class WorkerSlot : IDisposable
{
    private const int OutputTailLines = 40;
    private readonly Queue<string> output = new();
    private readonly Action<WorkerSlot> onExit;
    private Process? process;
    private Thread? thread;
    private int threadExitCode = -1;
    private int exitReported;

    public WorkerSlot(WorkerPlan plan, ControlBlock control, Action<WorkerSlot> onExit)
    {
        Plan = plan;
        Control = control;
        this.onExit = onExit;
        Requests = new MailboxClient(control, plan.Name);
    }

    /// <summary>The UUID the manager gave this launch (a restart is a new process, with a new id).</summary>
    public Guid ProcessId { get; } = Guid.NewGuid();

    /// <summary>When this launch started (wall clock).</summary>
    public DateTimeOffset StartedAt { get; private set; } = DateTimeOffset.UtcNow;

    /// <summary>The manager's side of the worker's request mailbox.</summary>
    public MailboxClient Requests { get; }

    public WorkerPlan Plan { get; }

    public ControlBlock Control { get; }

    public int Pid { get; private set; }

    /// <summary>True once the manager asked it to stop (an exit then is not a failure).</summary>
    public bool StopRequested { get; set; }

    /// <summary>True once worker_started was reported.</summary>
    public bool StartReported { get; set; }

    /// <summary>True once its exit was handled.</summary>
    public bool ExitHandled { get; set; }

    /// <summary>True once it was reported hung.</summary>
    public bool HungReported { get; set; }

    public long LaunchedNs { get; private set; }

    /// <summary>The frames count last reported in a worker_metrics event.</summary>
    public long ReportedFrames { get; set; } = -1;

    /// <summary>The health last reported in a worker_metrics event.</summary>
    public string? ReportedHealth { get; set; }

    /// <summary>CPU time and time of the last sample, for the CPU use figure.</summary>
    public (TimeSpan Cpu, long AtNs) LastCpuSample { get; set; }

    public double CpuPercent { get; set; }

    public bool IsThread => Plan.Placement == Documents.WorkerPlacement.Thread;

    public bool HasExited => process is { } p ? p.HasExited : thread is { } t ? !t.IsAlive : true;

    /// <summary>The exit code, once exited (a thread reports what the worker loop returned).</summary>
    public int? ExitCode => process is { } p ? (p.HasExited ? p.ExitCode : null) : thread is { IsAlive: false } ? threadExitCode : null;

    /// <summary>The last lines the worker process printed (standard output and error).</summary>
    public string OutputTail
    {
        get
        {
            lock (output)
            {
                return string.Join('\n', output);
            }
        }
    }

    /// <summary>Starts the worker process: <c>dotnet Flowline.Worker.dll</c> reading <paramref name="manifest"/> on its standard input.</summary>
    public void StartProcess(string workerPath, WorkerManifest manifest)
    {
        var info = new ProcessStartInfo(DotnetHost.Path)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(workerPath);
        info.ArgumentList.Add(manifest.Namespace);
        info.ArgumentList.Add(Plan.Name);
        StartProcess(info, manifest.ToJson());
    }

    /// <summary>Starts the worker process <paramref name="info"/> describes (a Python worker), writing <paramref name="input"/> on its standard input.</summary>
    public void StartProcess(ProcessStartInfo info, string input)
    {
        RemoveSecrets(info.Environment);
        LaunchedNs = MonotonicClock.NowNs();
        var p = new Process { StartInfo = info, EnableRaisingEvents = true };
        // A task is the user's own code: what it prints goes to the program's output, as a thread's would.
        var forward = Plan.Role == WorkerRole.Task;
        p.OutputDataReceived += (_, e) =>
        {
            Remember(e.Data);
            if (forward && e.Data is not null)
            {
                Console.Out.WriteLine(e.Data);
            }
        };
        p.ErrorDataReceived += (_, e) =>
        {
            Remember(e.Data);
            if (forward && e.Data is not null)
            {
                Console.Error.WriteLine(e.Data);
            }
        };
        p.Exited += (_, _) => ReportExit();
        p.Start();
        process = p;
        Pid = p.Id;
        StartedAt = DateTimeOffset.UtcNow;
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        p.StandardInput.Write(input);
        p.StandardInput.Close();
    }

    /// <summary>
    /// Removes what a worker must not inherit: the control plane's tokens (<c>FLOWLINE_TOKEN</c>,
    /// <c>FLOWLINE_TOKEN_FILE</c> and any other <c>FLOWLINE_TOKEN*</c> variable). A worker runs kinds from
    /// plugins, which must not be able to read an admin token.
    /// </summary>
    internal static void RemoveSecrets(IDictionary<string, string?> environment)
    {
        foreach (var name in environment.Keys.Where(k => k.StartsWith("FLOWLINE_TOKEN", StringComparison.Ordinal)).ToList())
        {
            environment.Remove(name);
        }
    }

    /// <summary>Starts the worker on a thread of this process.</summary>
    public void StartThread(PipelinePlan plan)
    {
        LaunchedNs = MonotonicClock.NowNs();
        Pid = Environment.ProcessId;
        thread = new Thread(() =>
        {
            try
            {
                threadExitCode = WorkerHost.Run(plan, Plan, Control);
            }
            finally
            {
                ReportExit();
                if (Volatile.Read(ref controlOrphaned) == 1)
                {
                    DisposeControl(); // abandoned by the manager: the thread let go of its control block only now
                }
            }
        })
        {
            IsBackground = true,
            Name = $"flowline-{Plan.Name}",
        };
        thread.Start();
    }

    /// <summary>Waits for the worker to end; true if it did.</summary>
    public bool WaitForExit(TimeSpan timeout) => process is { } p ? p.WaitForExit(timeout) : thread?.Join(timeout) ?? true;

    /// <summary>Kills a worker process (SIGKILL: workers ignore SIGINT and SIGTERM); false for a thread, which cannot be ended from outside.</summary>
    public bool Kill()
    {
        if (process is not { } p)
        {
            return false;
        }

        if (!p.HasExited)
        {
            _ = ThisProcess.SendSignal(p.Id, 9);
        }

        return true;
    }

    /// <summary>Describes how it ended: "exited with code 1", "was killed by signal 9 (SIGKILL)".</summary>
    public string DescribeExit()
    {
        var code = ExitCode;
        if (code is null)
        {
            return "is still running";
        }

        if (process is not null && code > 128 && code < 128 + 65)
        {
            var signal = code.Value - 128;
            return $"was killed by signal {signal}{SignalName(signal)}";
        }

        return code == ParentWatch.ParentDiedExitCode ? "exited because its manager died" : $"exited with code {code}";
    }

    /// <summary>
    /// Lets go of the process handle and the control block. A thread that still runs (abandoned after a
    /// stop timeout) keeps using its control block: the block is then released when the thread ends.
    /// </summary>
    public void Dispose()
    {
        Requests.Dispose();
        process?.Dispose();
        if (thread is { IsAlive: true } running)
        {
            Volatile.Write(ref controlOrphaned, 1);
            if (running.IsAlive)
            {
                return;
            }
        }

        DisposeControl();
    }

    private void DisposeControl()
    {
        if (Interlocked.Exchange(ref controlDisposed, 1) == 0)
        {
            Control.Dispose();
        }
    }

    private static string SignalName(int signal) => signal switch
    {
        6 => " (SIGABRT)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        15 => " (SIGTERM)",
        2 => " (SIGINT)",
        7 => " (SIGBUS)",
        4 => " (SIGILL)",
        8 => " (SIGFPE)",
        _ => "",
    };

    private void Remember(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            output.Enqueue(line);
            while (output.Count > OutputTailLines)
            {
                output.Dequeue();
            }
        }
    }

    private int controlOrphaned;
    private int controlDisposed;

    private void ReportExit()
    {
        if (Interlocked.Exchange(ref exitReported, 1) == 0)
        {
            Requests.Fail($"{Plan.Role.ToString().ToLowerInvariant()} '{Plan.Name}' exited before it answered");
            onExit(this);
        }
    }
}
