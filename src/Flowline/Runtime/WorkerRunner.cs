using Flowline.Documents;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// What every worker loop shares: its control block, its reporter, and waits cut into slices so that
/// the heartbeat and the figures stay fresh while it waits for input or for space.
/// </summary>
internal abstract class WorkerRunner : IDisposable
{
    /// <summary>The longest single wait: the heartbeat and the figures are refreshed at least this often.</summary>
    public static readonly TimeSpan WaitSlice = TimeSpan.FromMilliseconds(100);

    private readonly List<IDisposable> owned = [];
    private bool disposed;

    protected WorkerRunner(ControlBlock control)
    {
        Control = control;
        Reporter = new WorkerReporter(control, PluginMetrics);
    }

    public ControlBlock Control { get; }

    public WorkerReporter Reporter { get; }

    /// <summary>The node's kernel, source or sink (for its live settings and request handlers), or null.</summary>
    internal virtual object? NodeObject => null;

    /// <summary>False for a loop that does not tick between frames (a task): between-frame requests then run on the request thread.</summary>
    internal virtual bool TicksBetweenFrames => true;

    /// <summary>True when the work is done for good (a task whose function returned): the worker ends without being told to.</summary>
    public bool Finished { get; protected set; }

    /// <summary>Runs until <paramref name="stop"/> fires (a command other than run); the frame in progress is finished first.</summary>
    public void Run(CancellationToken stop)
    {
        try
        {
            Loop(stop);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        finally
        {
            OnStopped();
            Reporter.Tick(force: true);
        }
    }

    public void Dispose()
    {
        if (!disposed)
        {
            disposed = true;
            try
            {
                DisposeResources();
            }
            finally
            {
                for (var i = owned.Count - 1; i >= 0; i--)
                {
                    owned[i].Dispose();
                }
            }
        }
    }

    protected abstract void Loop(CancellationToken stop);

    /// <summary>Lets go of frames held when the loop ends.</summary>
    protected virtual void OnStopped()
    {
    }

    /// <summary>Disposes what the runner made besides its streams (a kernel, a source, a sink); the streams go after.</summary>
    protected virtual void DisposeResources()
    {
    }

    /// <summary>Disposes <paramref name="resource"/> if it is disposable.</summary>
    protected static void DisposeIfDisposable(object? resource) => (resource as IDisposable)?.Dispose();

    /// <summary>Opens a reader of stream <paramref name="name"/>, disposed with the runner.</summary>
    protected StreamReader<byte> OpenReader(PipelinePlan plan, string name, ReaderOptions options)
    {
        var stream = Own(SharedStream.Attach(plan.NamespaceOf(name), name));
        return Own(stream.OpenReader<byte>(options));
    }

    /// <summary>Opens the writer of stream <paramref name="name"/>, disposed with the runner.</summary>
    protected StreamWriter<byte> OpenWriter(PipelinePlan plan, string name)
    {
        var stream = Own(SharedStream.Attach(plan.NamespaceOf(name), name));
        return Own(stream.OpenWriter<byte>(plan.Writer(name)));
    }

    /// <summary>Opens <paramref name="node"/>'s auxiliary inputs, disposed with the runner; their torn copies count in the worker's figures.</summary>
    protected AuxiliaryInput[] OpenAuxiliary(PipelinePlan plan, NodeSpec node) =>
        [.. node.Auxiliary.Select(a => Own(new AuxiliaryInput(plan.NamespaceOf(a.Stream), a.Stream, Reporter)))];

    /// <summary>Disposes <paramref name="resource"/> with the runner (in reverse order of taking).</summary>
    protected T Own<T>(T resource)
        where T : IDisposable
    {
        owned.Add(resource);
        return resource;
    }

    /// <summary>An endpoint's own metrics, or null.</summary>
    protected virtual System.Text.Json.Nodes.JsonObject? PluginMetrics() => null;

    /// <summary>Takes the next slot of <paramref name="writer"/>, waiting in slices while a lossless reader keeps the ring full.</summary>
    protected Memory<byte> LookSlot(StreamWriter<byte> writer, CancellationToken stop)
    {
        Memory<byte> slot;
        Reporter.InFrame = true; // a tick while waiting for space is inside a frame: no settings change here
        try
        {
            while (writer.LookMemory(out slot, WaitSlice, stop) != WriteStatus.Ok)
            {
                Reporter.Tick();
            }
        }
        finally
        {
            Reporter.InFrame = false;
        }

        return slot;
    }
}
