using Flowline.Pipelines;
using Flowline.Runtime;
using Flowline.Tests.Runtime;

namespace Flowline.Tests.Pipelines;

/// <summary>PYTHUSA's compile rules: bindings that match the functions, one writer and a reader per stream, no cycle, compile once, nothing after close.</summary>
public sealed class PipelineCompileTests : RuntimeTest
{
    /// <summary>A pipeline with streams "a" and "b" (float32, 8 values) and event "go".</summary>
    private Pipeline Declared()
    {
        var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("a", [8]).AddStream<float>("b", [8]).AddEvent("go");
        return pipe;
    }

    [Fact]
    public void Compile_UnknownStream_ThrowsKeyNotFoundExceptionNamingIt()
    {
        using var reads = Declared();
        reads.AddTask("t", (TaskReader<float> input) => { }, reads: new() { ["input"] = "nope" });
        var e = Assert.Throws<KeyNotFoundException>(reads.Compile);
        Assert.Contains("'nope'", e.Message, StringComparison.Ordinal);
        Assert.Contains("'t'", e.Message, StringComparison.Ordinal);
        Assert.False(reads.IsCompiled);

        using var writes = new Pipeline(Namespace + "w");
        writes.AddTask("t", (TaskWriter<float> output) => { }, writes: new() { ["output"] = "missing" });
        Assert.Contains("'missing'", Assert.Throws<KeyNotFoundException>(writes.Compile).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_UnknownEvent_ThrowsKeyNotFoundExceptionNamingIt()
    {
        using var pipe = Declared();
        pipe.AddTask("t", (TaskEvent stop) => { }, events: new() { ["stop"] = "halt" });
        var e = Assert.Throws<KeyNotFoundException>(pipe.Compile);
        Assert.Contains("'halt'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_LocalNameBoundTwice_ThrowsArgumentException()
    {
        using var streams = Declared();
        streams.AddTask("t", (TaskReader<float> x) => { }, reads: new() { ["x"] = "a" }, writes: new() { ["x"] = "b" });
        var e = Assert.Throws<ArgumentException>(streams.Compile);
        Assert.Contains("'x'", e.Message, StringComparison.Ordinal);
        Assert.Contains("more than once", e.Message, StringComparison.Ordinal);

        using var events = new Pipeline(Namespace + "e");
        events.AddStream<float>("a", [8]).AddEvent("go");
        events.AddTask("t", (TaskReader<float> x) => { }, reads: new() { ["x"] = "a" }, events: new() { ["x"] = "go" });
        Assert.Contains("more than once", Assert.Throws<ArgumentException>(events.Compile).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_BindingNotAParameter_ThrowsArgumentException()
    {
        using var pipe = Declared();
        pipe.AddTask("t", (TaskReader<float> input) => { }, reads: new() { ["input"] = "a", ["extra"] = "b" });
        var e = Assert.Throws<ArgumentException>(pipe.Compile);
        Assert.Contains("'extra' is not a parameter", e.Message, StringComparison.Ordinal);

        using var events = Declared();
        events.AddTask("t", (TaskReader<float> input) => { }, reads: new() { ["input"] = "a" }, events: new() { ["go"] = "go" });
        Assert.Contains("'go' is not a parameter", Assert.Throws<ArgumentException>(events.Compile).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_RequiredParameterUnbound_ThrowsArgumentException()
    {
        using var pipe = Declared();
        pipe.AddTask("t", (TaskReader<float> input, TaskWriter<float> output) => { }, reads: new() { ["input"] = "a" });
        var e = Assert.Throws<ArgumentException>(pipe.Compile);
        Assert.Contains("parameter 'output'", e.Message, StringComparison.Ordinal);
        Assert.Contains("not bound", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_UnboundParametersWithDefaultsTokensOrContexts_AreAccepted()
    {
        using var pipe = Declared();
        pipe.AddTask("source", (TaskWriter<float> output, CancellationToken stop, TaskContext context, int gain = 2) => { }, writes: new() { ["output"] = "a" });
        pipe.AddTask("sink", (TaskReader<float> input, TaskWriter<float> output) => { }, reads: new() { ["input"] = "a" }, writes: new() { ["output"] = "b" });
        pipe.AddTerminator("end", new() { ["b"] = "b" });
        pipe.Compile();
        Assert.True(pipe.IsCompiled);
    }

    [Fact]
    public void Compile_WriterParameterBoundAsARead_ThrowsArgumentException()
    {
        using var pipe = Declared();
        pipe.AddTask("t", (TaskWriter<float> input) => { }, reads: new() { ["input"] = "a" });
        var e = Assert.Throws<ArgumentException>(pipe.Compile);
        Assert.Contains("must be TaskReader<T>", e.Message, StringComparison.Ordinal);

        using var writes = Declared();
        writes.AddTask("t", (TaskReader<float> output) => { }, writes: new() { ["output"] = "a" });
        Assert.Contains("must be TaskWriter<T>", Assert.Throws<ArgumentException>(writes.Compile).Message, StringComparison.Ordinal);

        using var plain = Declared();
        plain.AddTask("t", (float[] output) => { }, writes: new() { ["output"] = "a" });
        Assert.Contains("must be TaskWriter<T>", Assert.Throws<ArgumentException>(plain.Compile).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_WrongElementType_ThrowsArgumentException()
    {
        using var pipe = Declared();
        pipe.AddTask("t", (TaskReader<double> input) => { }, reads: new() { ["input"] = "a" });
        var e = Assert.Throws<ArgumentException>(pipe.Compile);
        Assert.Contains("float32", e.Message, StringComparison.Ordinal);
        Assert.Contains("TaskReader<Single>", e.Message, StringComparison.Ordinal);
        Assert.Contains("<Double>", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_ByteBindingsOnAnyStream_AreAccepted()
    {
        using var pipe = Declared();
        pipe.AddTask("source", (TaskWriter<byte> output) => { }, writes: new() { ["output"] = "a" });
        pipe.AddTask("sink", (TaskReader<byte> input, TaskWriter<float> output) => { }, reads: new() { ["input"] = "a" }, writes: new() { ["output"] = "b" });
        pipe.AddTerminator("end", new() { ["b"] = "b" });
        pipe.Compile();
        Assert.True(pipe.IsCompiled);
    }

    [Fact]
    public void Compile_EventParameterNotATaskEvent_ThrowsArgumentException()
    {
        using var pipe = Declared();
        pipe.AddTask("t", (bool go) => { }, events: new() { ["go"] = "go" });
        var e = Assert.Throws<ArgumentException>(pipe.Compile);
        Assert.Contains("must be TaskEvent", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_ControlEventNotAParameter_IsAccepted()
    {
        using var pipe = Declared();
        pipe.AddToggleableTask("once", "go", (TaskWriter<float> output) => { }, writes: new() { ["output"] = "a" }, events: new() { ["go"] = "go" });
        pipe.AddSwitchableTask("loop", "on", (TaskReader<float> input) => { }, reads: new() { ["input"] = "a" }, events: new() { ["on"] = "go" });
        pipe.AddTask("source", (TaskWriter<float> output) => { }, writes: new() { ["output"] = "b" });
        pipe.AddTerminator("end", new() { ["b"] = "b" });
        pipe.Compile();
        Assert.True(pipe.IsCompiled);
    }

    [Fact]
    public void Compile_StreamWithTwoWriters_ThrowsArgumentException()
    {
        using var pipe = Declared();
        pipe.AddTask("one", (TaskWriter<float> output) => { }, writes: new() { ["output"] = "a" });
        pipe.AddTask("two", (TaskWriter<float> output) => { }, writes: new() { ["output"] = "a" });
        pipe.AddTerminator("end", new() { ["a"] = "a" });
        var e = Assert.Throws<ArgumentException>(pipe.Compile);
        Assert.Contains("stream 'a' has 2 writers (one, two)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_StreamWithoutWriter_ThrowsArgumentException()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("a", [8]);
        pipe.AddTerminator("end", new() { ["a"] = "a" });
        var e = Assert.Throws<ArgumentException>(pipe.Compile);
        Assert.Contains("stream 'a' has no writer", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_StreamWithoutReader_ThrowsArgumentExceptionMentioningAddTerminator()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("a", [8]);
        pipe.AddTask("source", (TaskWriter<float> output) => { }, writes: new() { ["output"] = "a" });
        var e = Assert.Throws<ArgumentException>(pipe.Compile);
        Assert.Contains("stream 'a' has no reader", e.Message, StringComparison.Ordinal);
        Assert.Contains("AddTerminator", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_Cycle_ThrowsArgumentExceptionNamingTheTasks()
    {
        using var pipe = Declared();
        pipe.AddStream<float>("c", [8]).AddStream<float>("out", [8]);
        pipe.AddTask("first", (TaskReader<float> input, TaskWriter<float> output) => { }, reads: new() { ["input"] = "b" }, writes: new() { ["output"] = "a" });
        pipe.AddTask("second", (TaskReader<float> input, TaskWriter<float> output, TaskWriter<float> side) => { }, reads: new() { ["input"] = "a" }, writes: new() { ["output"] = "b", ["side"] = "out" });
        pipe.AddTask("source", (TaskWriter<float> output) => { }, writes: new() { ["output"] = "c" });
        pipe.AddTask("sink", (TaskReader<float> x, TaskReader<float> y) => { }, reads: new() { ["x"] = "c", ["y"] = "out" });
        var e = Assert.Throws<ArgumentException>(pipe.Compile);
        Assert.Contains("cycle (", e.Message, StringComparison.Ordinal);
        Assert.Contains("first", e.Message, StringComparison.Ordinal);
        Assert.Contains("second", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("source", e.Message, StringComparison.Ordinal);
        Assert.False(pipe.IsCompiled);
    }

    [Fact]
    public void Compile_Cycle_NamesOnlyTheTasksOnTheCycle()
    {
        using var pipe = Declared();
        pipe.AddStream<float>("out", [8]);
        pipe.AddTask("first", (TaskReader<float> input, TaskWriter<float> output) => { }, reads: new() { ["input"] = "b" }, writes: new() { ["output"] = "a" });
        pipe.AddTask("second", (TaskReader<float> input, TaskWriter<float> output, TaskWriter<float> side) => { }, reads: new() { ["input"] = "a" }, writes: new() { ["output"] = "b", ["side"] = "out" });
        pipe.AddTask("sink", (TaskReader<float> x) => { }, reads: new() { ["x"] = "out" });
        var e = Assert.Throws<ArgumentException>(pipe.Compile);
        Assert.Contains("cycle (first, second)", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("sink", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_TaskReadingAndWritingOneStream_ThrowsArgumentException()
    {
        using var pipe = Declared();
        pipe.AddTask("loop", (TaskReader<float> input, TaskWriter<float> output) => { }, reads: new() { ["input"] = "a" }, writes: new() { ["output"] = "a" });
        var e = Assert.Throws<ArgumentException>(pipe.Compile);
        Assert.Contains("'loop' both reads and writes stream 'a'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_Twice_ThrowsInvalidOperationException()
    {
        using var pipe = Declared();
        pipe.AddTask("source", (TaskWriter<float> a, TaskWriter<float> b) => { }, writes: new() { ["a"] = "a", ["b"] = "b" });
        pipe.AddTerminator("end", new() { ["a"] = "a", ["b"] = "b" });
        pipe.Compile();
        var e = Assert.Throws<InvalidOperationException>(pipe.Compile);
        Assert.Contains("already been compiled", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Mutators_AfterClose_ThrowInvalidOperationException()
    {
        using var pipe = Declared();
        pipe.AddTask("source", (TaskWriter<float> a) => { }, writes: new() { ["a"] = "a" });
        pipe.Close();
        Assert.True(pipe.IsClosed);
        var calls = new Action[]
        {
            () => pipe.AddStream<float>("c", [8]),
            () => pipe.AddStream("d", [8], SharedMemory.ElementType.Float64),
            () => pipe.AddEvent("stop"),
            () => pipe.AddTask("t", () => { }),
            () => pipe.AddSwitchableTask("s", "go", () => { }, events: new() { ["go"] = "go" }),
            () => pipe.AddToggleableTask("g", "go", () => { }, events: new() { ["go"] = "go" }),
            () => pipe.AddTerminator("end", new() { ["a"] = "a" }),
            () => pipe.AddTasksFrom(typeof(MarkedTasks)),
            pipe.Compile,
            pipe.Start,
            () => pipe.StartMonitor(),
        };
        foreach (var call in calls)
        {
            var e = Assert.Throws<InvalidOperationException>(call);
            Assert.Equal("the pipeline is closed", e.Message);
        }

        Assert.Single(pipe.Tasks);
    }

    [Fact]
    public void Mutators_AfterClose_ThrowEvenWhenTheyWouldAddNothing()
    {
        using var pipe = Declared();
        pipe.Close();
        Assert.Equal("the pipeline is closed", Assert.Throws<InvalidOperationException>(() => pipe.AddTasksFrom(typeof(Overloads))).Message);
        Assert.Equal("the pipeline is closed", Assert.Throws<InvalidOperationException>(() => pipe.AddTerminator("end", [])).Message);
        Assert.Equal("the pipeline is closed", Assert.Throws<InvalidOperationException>(() => pipe.AddStream<decimal>("money", [1])).Message);
    }

    [Fact]
    public void Close_Twice_IsFine()
    {
        var pipe = Declared();
        pipe.Close();
        pipe.Close();
        pipe.Dispose();
        Assert.True(pipe.IsClosed);
        Assert.True(pipe.Join(TimeSpan.Zero));
    }

    [Fact]
    public void Compile_EventBoundToMoreThanTwoTasks_Warns()
    {
        using var two = Declared();
        two.AddTask("source", (TaskWriter<float> a, TaskWriter<float> b, TaskEvent go) => { }, writes: new() { ["a"] = "a", ["b"] = "b" }, events: new() { ["go"] = "go" });
        two.AddTask("sink", (TaskReader<float> a, TaskReader<float> b, TaskEvent go) => { }, reads: new() { ["a"] = "a", ["b"] = "b" }, events: new() { ["go"] = "go" });
        two.Compile();
        Assert.Empty(two.Warnings);

        using var three = Declared();
        three.AddTask("source", (TaskWriter<float> a, TaskWriter<float> b, TaskEvent go) => { }, writes: new() { ["a"] = "a", ["b"] = "b" }, events: new() { ["go"] = "go" });
        three.AddTask("sink", (TaskReader<float> a, TaskEvent go) => { }, reads: new() { ["a"] = "a" }, events: new() { ["go"] = "go" });
        three.AddToggleableTask("third", "trigger", (TaskReader<float> b) => { }, reads: new() { ["b"] = "b" }, events: new() { ["trigger"] = "go" });
        three.Compile();
        var warning = Assert.Single(three.Warnings);
        Assert.Contains("event 'go' is bound to 3 tasks (source, sink, third)", warning, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_StartOrder_IsReverseTopological()
    {
        using var pipe = Declared();
        pipe.AddStream<float>("c", [8]).AddStream<float>("d", [8]);
        // Declared out of order: a diamond source -> (left, right) -> join, plus an independent pair.
        pipe.AddTask("join", (TaskReader<float> x, TaskReader<float> y) => { }, reads: new() { ["x"] = "c", ["y"] = "d" });
        pipe.AddTask("left", (TaskReader<float> input, TaskWriter<float> output) => { }, reads: new() { ["input"] = "a" }, writes: new() { ["output"] = "c" });
        pipe.AddTask("source", (TaskWriter<float> output) => { }, writes: new() { ["output"] = "a" });
        pipe.AddTask("right", (TaskReader<float> input, TaskWriter<float> output) => { }, reads: new() { ["input"] = "a" }, writes: new() { ["output"] = "d" });
        pipe.AddTask("lone", (TaskWriter<float> output) => { }, writes: new() { ["output"] = "b" });
        pipe.AddTerminator("end", new() { ["b"] = "b" });
        pipe.Compile();
        var order = pipe.Manager.Plan.Workers.Where(w => w.Role == WorkerRole.Task).Select(w => w.Name).ToList();
        Assert.Equal(6, order.Count);
        foreach (var (reader, writer) in new[] { ("join", "left"), ("join", "right"), ("left", "source"), ("right", "source"), ("end", "lone") })
        {
            Assert.True(order.IndexOf(reader) < order.IndexOf(writer), $"{reader} starts before {writer}: {string.Join(", ", order)}");
        }
    }
}
