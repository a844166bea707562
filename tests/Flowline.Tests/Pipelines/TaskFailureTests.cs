using Flowline.Documents;
using Flowline.Pipelines;
using Flowline.Runtime;
using Flowline.SharedMemory;
using Flowline.Tests.Runtime;

namespace Flowline.Tests.Pipelines;

/// <summary>A task that throws or crashes is reported with its cause by Join and Run, and Close still leaves nothing behind.</summary>
public sealed class TaskFailureTests : RuntimeTest
{
    /// <summary>Adds a stream written by a thread task that waits until stopped, read by a terminator: something for Close to stop and remove.</summary>
    private static void AddIdleStream(Pipeline pipe)
    {
        pipe.AddStream<float>("values", [4]);
        pipe.AddTask("idle", (TaskWriter<float> values, CancellationToken stop) => stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(15)), writes: new() { ["values"] = "values" });
        pipe.AddTerminator("end", new() { ["values"] = "values" });
    }

    private void AssertClosedWithoutLeftovers(Pipeline pipe)
    {
        Assert.True(Directory.Exists(SharedMemoryNamespace.DirectoryOf(Namespace)), "the streams exist until Close");
        pipe.Close();
        Assert.False(Directory.Exists(SharedMemoryNamespace.DirectoryOf(Namespace)));
        Assert.False(Directory.Exists(SharedMemoryNamespace.DirectoryOf(Namespace + ".control")));
        Assert.Empty(WorkerChildren());
    }

    [Fact]
    public void Run_ProcessTaskThrows_RethrowsItsMessageAndStackTrace()
    {
        using var pipe = new Pipeline(Namespace);
        AddIdleStream(pipe);
        pipe.AddTask("boom", PipelineTasks.Explode);
        pipe.Compile();
        Assert.Equal(WorkerPlacement.Process, pipe.Manager.Plan.Workers.Single(w => w.Name == "boom").Placement);
        var e = Assert.Throws<WorkerFailedException>(() => pipe.Run(TimeSpan.FromSeconds(20)));
        Assert.Contains(PipelineTasks.ExplodeMessage, e.Message, StringComparison.Ordinal);
        Assert.Contains("'boom'", e.Message, StringComparison.Ordinal);
        var failure = Assert.Single(e.Failures).Json();
        Assert.Equal("boom", (string?)failure["kernel"]);
        Assert.Equal("System.InvalidOperationException", (string?)failure["exception_type"]);
        Assert.Contains("PipelineTasks.Explode", (string?)failure["traceback"], StringComparison.Ordinal);
        Assert.Equal(WorkerHost.FailedExitCode, (int?)failure["exitcode"]);
        Assert.Throws<WorkerFailedException>(() => pipe.Join(TimeSpan.Zero));
        AssertClosedWithoutLeftovers(pipe);
    }

    [Fact]
    public void Stop_AfterAFailure_JoinStillReportsIt()
    {
        using var pipe = new Pipeline(Namespace);
        AddIdleStream(pipe);
        pipe.AddTask("boom", new Action(() => throw new FormatException("lost if stop forgot it")));
        pipe.Start();
        WaitUntil(() => pipe.Manager.State == PipelineState.Failed, "the pipeline fails");
        pipe.Stop();
        var e = Assert.Throws<WorkerFailedException>(() => pipe.Join(TimeSpan.FromSeconds(5)));
        Assert.Contains("lost if stop forgot it", e.Message, StringComparison.Ordinal);
        AssertClosedWithoutLeftovers(pipe);
    }

    [Fact]
    public void Run_TaskEndsWithItsOwnCancellation_IsAFailure_NotALoop()
    {
        using var pipe = new Pipeline(Namespace);
        AddIdleStream(pipe);
        var calls = 0;
        pipe.AddTask("cancelled", new Action(() =>
        {
            Interlocked.Increment(ref calls);
            throw new OperationCanceledException("the task's own timeout");
        }));
        var e = Assert.Throws<WorkerFailedException>(() => pipe.Run(TimeSpan.FromSeconds(20)));
        Assert.Contains("ended with OperationCanceledException", e.Message, StringComparison.Ordinal);
        Assert.Equal(1, Volatile.Read(ref calls));
        AssertClosedWithoutLeftovers(pipe);
    }

    [Fact]
    public void Restart_AfterAFailure_DoesNotRunAFinishedTaskAgain()
    {
        using var pipe = new Pipeline(Namespace);
        AddIdleStream(pipe);
        var once = 0;
        var failed = 0;
        pipe.AddTask("once", new Action(() => Interlocked.Increment(ref once)));
        pipe.AddTask("fails-first", new Action<CancellationToken>(stop =>
        {
            if (Interlocked.Increment(ref failed) == 1)
            {
                throw new InvalidOperationException("first time");
            }

            stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(15));
        }));
        pipe.Start();
        WaitUntil(() => pipe.Manager.State == PipelineState.Failed, "the pipeline fails");
        pipe.Manager.Restart();
        WaitUntil(() => Volatile.Read(ref failed) == 2, "the failed task runs again");
        Assert.Equal(PipelineState.Running, pipe.Manager.State);
        Assert.Equal(1, Volatile.Read(ref once));
        AssertClosedWithoutLeftovers(pipe);
    }

    [Fact]
    public void Join_InfiniteTimeout_WaitsForTheTasks()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddEvent("unused");
        pipe.AddTask("short", new Action(() => Thread.Sleep(200)));
        pipe.Start();
        Assert.True(pipe.Join(Timeout.InfiniteTimeSpan));
        Assert.True(pipe.Join(TimeSpan.MaxValue));
    }

    [Fact]
    public void Run_ThreadTaskThrows_RethrowsItsMessageAndStackTrace()
    {
        using var pipe = new Pipeline(Namespace);
        AddIdleStream(pipe);
        var code = 7;
        pipe.AddTask("boom", () => { throw new FormatException($"thread failure {code}"); });
        var e = Assert.Throws<WorkerFailedException>(() => pipe.Run(TimeSpan.FromSeconds(20)));
        Assert.Contains("thread failure 7", e.Message, StringComparison.Ordinal);
        var failure = Assert.Single(e.Failures).Json();
        Assert.Equal("System.FormatException", (string?)failure["exception_type"]);
        Assert.Contains(nameof(Run_ThreadTaskThrows_RethrowsItsMessageAndStackTrace), (string?)failure["traceback"], StringComparison.Ordinal);
        Assert.Equal(Environment.ProcessId, (int?)failure["pid"]);
        AssertClosedWithoutLeftovers(pipe);
    }

    [Fact]
    public void Join_ProcessTaskCrashes_ReportsACrash()
    {
        using var pipe = new Pipeline(Namespace);
        AddIdleStream(pipe);
        pipe.AddTask("crash", PipelineTasks.Crash);
        pipe.Start();
        var e = Assert.Throws<WorkerFailedException>(() => pipe.Join(TimeSpan.FromSeconds(20)));
        Assert.Contains("exited with code 3", e.Message, StringComparison.Ordinal);
        var failure = Assert.Single(e.Failures).Json();
        Assert.Equal("crash", (string?)failure["exception_type"]);
        Assert.Equal("crash", (string?)failure["kernel"]);
        Assert.Equal(3, (int?)failure["exitcode"]);
        Assert.Contains(pipe.Manager.Events(), ev => ev.Type == "worker_failed" && (string?)ev.Data["kernel"] == "crash");
        AssertClosedWithoutLeftovers(pipe);
    }
}
