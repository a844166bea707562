using Flowline.Documents;
using Flowline.Pipelines;
using Flowline.Tests.Runtime;

namespace Flowline.Tests.Pipelines;

/// <summary>PYTHUSA's declaration rules (add_stream, add_event, add_task and its controlled forms), checked when a stream, event or task is added.</summary>
public sealed class PipelineDeclarationTests : RuntimeTest
{
    [Fact]
    public void AddStream_DuplicateName_ThrowsArgumentException()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("samples", [8]);
        var e = Assert.Throws<ArgumentException>(() => pipe.AddStream<double>("samples", [4]));
        Assert.Contains("'samples'", e.Message, StringComparison.Ordinal);
        Assert.Equal(new[] { "samples" }, pipe.Streams);
    }

    [Fact]
    public void AddEvent_DuplicateName_ThrowsArgumentException()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddEvent("go");
        var e = Assert.Throws<ArgumentException>(() => pipe.AddEvent("go", initialState: true));
        Assert.Contains("'go'", e.Message, StringComparison.Ordinal);
        Assert.Equal(new[] { "go" }, pipe.Events);
    }

    [Fact]
    public void AddTask_DuplicateName_ThrowsArgumentException()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("samples", [8]).AddEvent("go");
        pipe.AddTask("worker", PipelineTasks.Source, writes: new() { ["samples"] = "samples" });
        var duplicates = new Action[]
        {
            () => pipe.AddTask("worker", () => { }),
            () => pipe.AddTerminator("worker", new() { ["samples"] = "samples" }),
            () => pipe.AddToggleableTask("worker", "go", () => { }, events: new() { ["go"] = "go" }),
            () => pipe.AddSwitchableTask("worker", "go", () => { }, events: new() { ["go"] = "go" }),
        };
        foreach (var add in duplicates)
        {
            Assert.Contains("a task named 'worker' is already declared", Assert.Throws<ArgumentException>(add).Message, StringComparison.Ordinal);
        }

        Assert.Equal(new[] { "worker" }, pipe.Tasks);
    }

    [Fact]
    public void AddEvent_NameOfAStream_ThrowsArgumentException()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("shared", [8]);
        Assert.Throws<ArgumentException>(() => pipe.AddEvent("shared"));
        using var other = new Pipeline(Namespace + "b");
        other.AddEvent("shared");
        Assert.Throws<ArgumentException>(() => other.AddStream<float>("shared", [8]));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void AddStream_FramesBelowOne_ThrowsArgumentOutOfRangeException(int frames)
    {
        using var pipe = new Pipeline(Namespace);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => pipe.AddStream<float>("samples", [8], frames));
        Assert.Equal("frames", e.ParamName);
        Assert.Empty(pipe.Streams);
    }

    [Theory]
    [InlineData(3, 4)]
    [InlineData(4, 4)]
    [InlineData(5, 8)]
    [InlineData(32, 32)]
    [InlineData(33, 64)]
    [InlineData(1000, 1024)]
    public void Compile_Frames_RoundUpToAPowerOfTwo(int frames, int slots)
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("samples", [8], frames).AddStream<float>("default", [8]);
        pipe.AddTask("source", (TaskWriter<float> a, TaskWriter<float> b) => { }, writes: new() { ["a"] = "samples", ["b"] = "default" });
        pipe.AddTerminator("end", new() { ["a"] = "samples", ["b"] = "default" });
        pipe.Compile();
        Assert.Equal(slots, pipe.Manager.Plan.OptionsOf("samples").CapacityFrames);
        Assert.Equal(Pipeline.DefaultFrames, pipe.Manager.Plan.OptionsOf("default").CapacityFrames);
    }

    [Fact]
    public void Start_StreamOfOneFrame_RunsWithTwoSlots()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("values", [1], frames: 1);
        var received = new List<int>();
        pipe.AddTask("source", (TaskWriter<int> values) =>
        {
            for (var i = 0; i < 10; i++)
            {
                values.Write([i]);
            }

            values.Close();
        }, writes: new() { ["values"] = "values" });
        pipe.AddTask("sink", (TaskReader<int> values) =>
        {
            while (values.Read(Timeout.InfiniteTimeSpan) is { } frame)
            {
                received.Add(frame[0]);
            }
        }, reads: new() { ["values"] = "values" });
        pipe.Compile();
        Assert.Equal(2, pipe.Manager.Plan.OptionsOf("values").CapacityFrames);
        pipe.Run(TimeSpan.FromSeconds(20));
        Assert.Equal(Enumerable.Range(0, 10), received);
    }

    [Fact]
    public void AddStream_FramesAboveTheMaximumRing_ThrowsArgumentOutOfRangeException()
    {
        using var pipe = new Pipeline(Namespace);
        Assert.Throws<ArgumentOutOfRangeException>(() => pipe.AddStream<float>("samples", [8], (1 << 20) + 1));
        pipe.AddStream<float>("largest", [8], 1 << 20);
        Assert.Equal(new[] { "largest" }, pipe.Streams);
    }

    [Fact]
    public void AddStream_CacheAlignFalse_ThrowsArgumentException()
    {
        using var pipe = new Pipeline(Namespace);
        var e = Assert.Throws<ArgumentException>(() => pipe.AddStream("samples", [8], SharedMemory.ElementType.Float32, cacheAlign: false));
        Assert.Equal("cacheAlign", e.ParamName);
        Assert.Empty(pipe.Streams);
        pipe.AddStream("samples", [8], SharedMemory.ElementType.Float32, cacheAlign: true);
        Assert.Equal(new[] { "samples" }, pipe.Streams);
    }

    [Fact]
    public void AddStreamOfT_NotAnElementType_ThrowsArgumentException()
    {
        using var pipe = new Pipeline(Namespace);
        var e = Assert.Throws<ArgumentException>(() => pipe.AddStream<decimal>("money", [4]));
        Assert.Contains("Decimal", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => pipe.AddStream<DateTime>("when", [4]));
        Assert.Empty(pipe.Streams);
    }

    [Fact]
    public void AddSwitchableTask_ActivateOnNotAnEventBinding_ThrowsAtRegistration()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddEvent("go");
        var none = Assert.Throws<ArgumentException>(() => pipe.AddSwitchableTask("run", "go", () => { }));
        Assert.Equal("activateOn", none.ParamName);
        Assert.Contains("it has none", none.Message, StringComparison.Ordinal);
        var other = Assert.Throws<ArgumentException>(() => pipe.AddSwitchableTask("run", "stop", () => { }, events: new() { ["go"] = "go" }));
        Assert.Contains("'stop'", other.Message, StringComparison.Ordinal);
        Assert.Empty(pipe.Tasks);
    }

    [Fact]
    public void AddToggleableTask_ActivateOnIsTheEventsNameNotItsParameter_ThrowsAtRegistration()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddEvent("go");
        // activateOn names the function's side of the binding (the key), as PYTHUSA's activate_on does.
        Assert.Throws<ArgumentException>(() => pipe.AddToggleableTask("run", "go", () => { }, events: new() { ["trigger"] = "go" }));
        pipe.AddToggleableTask("run", "trigger", () => { }, events: new() { ["trigger"] = "go" });
        Assert.Equal(new[] { "run" }, pipe.Tasks);
    }

    [Fact]
    public void AddTerminator_NoReads_ThrowsArgumentException()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("samples", [8]);
        var e = Assert.Throws<ArgumentException>(() => pipe.AddTerminator("end", []));
        Assert.Contains("at least one stream", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentNullException>(() => pipe.AddTerminator("end", null!));
        Assert.Empty(pipe.Tasks);
    }

    [Fact]
    public void AddTask_ClosureInAProcess_IsRefusedSayingWhy()
    {
        using var pipe = new Pipeline(Namespace);
        var calls = 0;
        var closure = Assert.Throws<ArgumentException>(() => pipe.AddTask("closure", () => calls++, placement: WorkerPlacement.Process));
        Assert.Equal("placement", closure.ParamName);
        Assert.Contains("cannot run in a process of its own", closure.Message, StringComparison.Ordinal);
        Assert.Contains("a lambda, a local function or a closure", closure.Message, StringComparison.Ordinal);

        var instance = Assert.Throws<ArgumentException>(() => pipe.AddTask("instance", new Counter().Count, placement: WorkerPlacement.Process));
        Assert.Contains("Count is an instance method", instance.Message, StringComparison.Ordinal);

        var overloaded = Assert.Throws<ArgumentException>(() => pipe.AddTask("overloaded", (Action)Overloads.Run, placement: WorkerPlacement.Process));
        Assert.Contains("is overloaded", overloaded.Message, StringComparison.Ordinal);
        Assert.Empty(pipe.Tasks);
    }

    [Fact]
    public void AddTask_Placement_StaticMethodsInProcessesAndOtherDelegatesOnThreads()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("samples", [8]).AddStream<float>("doubled", [8]);
        var seen = 0;
        pipe.AddTask("source", PipelineTasks.Source, writes: new() { ["samples"] = "samples" });
        pipe.AddTask("scale", PipelineTasks.Scale, reads: new() { ["samples"] = "samples" }, writes: new() { ["doubled"] = "doubled" }, placement: WorkerPlacement.Thread);
        pipe.AddTask("sink", (TaskReader<float> doubled) => { seen++; }, reads: new() { ["doubled"] = "doubled" });
        pipe.Compile();
        var placements = pipe.Manager.Plan.Workers.ToDictionary(w => w.Name, w => w.Placement);
        Assert.Equal(WorkerPlacement.Process, placements["source"]);
        Assert.Equal(WorkerPlacement.Thread, placements["scale"]);
        Assert.Equal(WorkerPlacement.Thread, placements["sink"]);
        Assert.Equal(new[] { "scale", "sink" }, pipe.Manager.Plan.TaskDelegates.Keys.Order());
    }

    [Fact]
    public void AddTasksFrom_MarkedMethods_RegistersTasksWithTheirBindings()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("samples", [8]).AddEvent("go");
        pipe.AddTasksFrom(typeof(MarkedTasks));
        Assert.Equal(new[] { "produce", "Consume", "Flush" }, pipe.Tasks);
        pipe.Compile();
        var tasks = pipe.Manager.Pipeline.Spec.Tasks.ToDictionary(t => t.Name);
        Assert.Equal("samples", tasks["produce"].Writes["output"]);
        Assert.Equal("samples", tasks["Consume"].Reads["samples"]);
        Assert.Equal(TaskControl.Toggleable, tasks["Flush"].Control);
        Assert.Equal("go", tasks["Flush"].ActivateOn);
        Assert.Equal(WorkerPlacement.Process, tasks["produce"].Placement);
        Assert.Equal(WorkerPlacement.Thread, tasks["Consume"].Placement);
    }

    /// <summary>A type with an instance method, which cannot run in a process of its own.</summary>
    private sealed class Counter
    {
        private int count;

        public void Count() => count++;
    }
}

/// <summary>An overloaded method: a worker process could not tell which one to run.</summary>
internal static class Overloads
{
    public static void Run()
    {
    }

    public static void Run(int times) => _ = times;
}

/// <summary>Tasks in the attribute form (PYTHUSA's decorator).</summary>
internal static class MarkedTasks
{
    [PipelineTask("produce", Writes = ["output=samples"])]
    public static void Produce(TaskWriter<float> output) => output.Close();

    [PipelineTask(Reads = ["samples"], Thread = true)]
    public static void Consume(TaskReader<float> samples) => samples.Read();

    [PipelineTask(Events = ["go"], ActivateOn = "go", Toggle = true)]
    public static void Flush()
    {
    }
}
