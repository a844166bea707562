using System.Collections.Concurrent;
using Flowline.Pipelines;
using Flowline.SharedMemory;
using Flowline.Tests.Runtime;

namespace Flowline.Tests.Pipelines;

/// <summary>Controlled tasks (toggleable, switchable), terminators, and the backpressure a terminator lifts.</summary>
public sealed class PipelineControlTests : RuntimeTest
{
    private static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(300);

    [Fact]
    public void ToggleableTask_InAProcess_RunsOncePerSignalFromOutside()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("pulses", [1], frames: 8).AddEvent("fire");
        var received = new ConcurrentQueue<int>();
        pipe.AddToggleableTask("pulse", "fire", PipelineTasks.Pulse, writes: new() { ["pulsed"] = "pulses" }, events: new() { ["fire"] = "fire" });
        pipe.AddTask(
            "collect",
            (TaskReader<int> pulses) =>
            {
                while (pulses.Read(Timeout.InfiniteTimeSpan) is { } frame)
                {
                    received.Enqueue(frame[0]);
                }
            },
            reads: new() { ["pulses"] = "pulses" });
        pipe.Start();
        using var fire = SharedEvent.Open(Namespace, "fire", RegionMode.Attach);
        Thread.Sleep(Settle);
        Assert.Empty(received);
        fire.Signal();
        fire.Signal();
        fire.Signal();
        WaitUntil(() => received.Count >= 3, "the task ran three times");
        Thread.Sleep(Settle);
        Assert.Equal(new[] { 1, 2, 3 }, received);
        Assert.False(fire.IsSet);
        Assert.Equal(0, fire.PendingActivations);
        fire.Signal();
        WaitUntil(() => received.Count >= 4, "the task ran a fourth time");
        Assert.Equal(new[] { 1, 2, 3, 4 }, received);
        pipe.Stop();
        Assert.True(pipe.Join(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void ToggleableTask_OnAThread_RunsOncePerSignalFromAnotherTask()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("runs", [1]).AddEvent("fire");
        var runCount = 0;
        var triggered = false;
        pipe.AddToggleableTask("counter", "fire", (TaskWriter<int> runs) => runs.Write([Interlocked.Increment(ref runCount)]), writes: new() { ["runs"] = "runs" }, events: new() { ["fire"] = "fire" });
        pipe.AddTerminator("end", new() { ["runs"] = "runs" });
        pipe.AddTask(
            "trigger",
            (TaskEvent fire) =>
            {
                fire.Signal();
                fire.Signal();
                fire.Signal();
                triggered = true;
            },
            events: new() { ["fire"] = "fire" });
        pipe.Start();
        WaitUntil(() => Volatile.Read(ref runCount) >= 3, "the task ran three times");
        Thread.Sleep(Settle);
        Assert.True(triggered);
        Assert.Equal(3, Volatile.Read(ref runCount));
        Assert.False(pipe.Join(TimeSpan.Zero), "a toggleable task waits for more activations until stopped");
        pipe.Stop();
        Assert.True(pipe.Join(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void ToggleableTask_EventInitiallySet_RunsOnceWithoutASignal()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("runs", [1]).AddEvent("armed", initialState: true);
        var runCount = 0;
        pipe.AddToggleableTask("once", "armed", (TaskWriter<int> runs) => runs.Write([Interlocked.Increment(ref runCount)]), writes: new() { ["runs"] = "runs" }, events: new() { ["armed"] = "armed" });
        pipe.AddTerminator("end", new() { ["runs"] = "runs" });
        pipe.Start();
        WaitUntil(() => Volatile.Read(ref runCount) >= 1, "the task ran");
        Thread.Sleep(Settle);
        Assert.Equal(1, Volatile.Read(ref runCount));
        pipe.Stop();
        Assert.True(pipe.Join(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void SwitchableTask_RerunsWhileItsEventIsSet_AndStopsWhenItIsCleared()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("runs", [1]).AddEvent("on");
        var runCount = 0;
        pipe.AddSwitchableTask(
            "loop",
            "on",
            (TaskWriter<int> runs) =>
            {
                runs.Write([Interlocked.Increment(ref runCount)]);
                Thread.Sleep(2);
            },
            writes: new() { ["runs"] = "runs" },
            events: new() { ["on"] = "on" });
        pipe.AddTerminator("end", new() { ["runs"] = "runs" });
        pipe.Start();
        using var on = SharedEvent.Open(Namespace, "on", RegionMode.Attach);
        Thread.Sleep(Settle);
        Assert.Equal(0, Volatile.Read(ref runCount));

        on.Signal();
        WaitUntil(() => Volatile.Read(ref runCount) >= 10, "the task reran while the event was set");
        Assert.True(on.IsSet, "a switchable task never resets its event");
        Assert.Equal(1, on.PendingActivations);

        on.Clear();
        Thread.Sleep(TimeSpan.FromMilliseconds(100));
        var settled = Volatile.Read(ref runCount);
        Thread.Sleep(Settle);
        Assert.Equal(settled, Volatile.Read(ref runCount));

        on.Set();
        WaitUntil(() => Volatile.Read(ref runCount) >= settled + 5, "the task reran once the event was set again");
        pipe.Stop();
        Assert.True(pipe.Join(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void Terminator_LetsTheWriterWriteMoreFramesThanTheRingHolds()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("values", [1], frames: 4);
        const int Frames = 100;
        var accepted = 0;
        pipe.AddTask(
            "writer",
            (TaskWriter<int> values) =>
            {
                for (var i = 0; i < Frames; i++)
                {
                    accepted += values.Write([i], TimeSpan.FromSeconds(2)) ? 1 : 0;
                }

                values.Close();
            },
            writes: new() { ["values"] = "values" });
        pipe.AddTerminator("end", new() { ["values"] = "values" });
        var watch = System.Diagnostics.Stopwatch.StartNew();
        pipe.Run(TimeSpan.FromSeconds(20));
        Assert.Equal(Frames, accepted);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"no write waited for room ({watch.Elapsed.TotalSeconds:0.0} s)");
        var end = pipe.Manager.Status().Json()["workers"]!["end"]!;
        Assert.True((bool)end["task"]!);
        Assert.True((bool)end["finished"]!);
    }

    [Fact]
    public void Write_RingFullOfAnUnreadLosslessReader_TimesOut()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("values", [1], frames: 4).AddEvent("full");
        var accepted = new List<bool>();
        var received = new List<int>();
        pipe.AddTask(
            "writer",
            (TaskWriter<int> values, TaskEvent full) =>
            {
                for (var i = 0; i < 5; i++)
                {
                    accepted.Add(values.Write([i], TimeSpan.FromMilliseconds(200)));
                }

                full.Signal();
                values.Close();
            },
            writes: new() { ["values"] = "values" },
            events: new() { ["full"] = "full" });
        pipe.AddTask(
            "reader",
            (TaskReader<int> values, TaskEvent full) =>
            {
                full.WaitActivation(TimeSpan.FromSeconds(10));
                while (values.Read(TimeSpan.FromSeconds(5)) is { } frame)
                {
                    received.Add(frame[0]);
                }
            },
            reads: new() { ["values"] = "values" },
            events: new() { ["full"] = "full" });
        pipe.Run(TimeSpan.FromSeconds(20));
        Assert.Equal(new[] { true, true, true, true, false }, accepted);
        Assert.Equal(new[] { 0, 1, 2, 3 }, received);
    }
}
