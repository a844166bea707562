using Flowline.Documents;
using Flowline.Pipelines;
using Flowline.SharedMemory;

namespace Flowline.Tests.Pipelines;

/// <summary>Task functions a saved pipeline names by type and method.</summary>
public static class SavedTasks
{
    /// <summary>Writes one frame of ones.</summary>
    public static void Produce(TaskWriter<float> output) => output.Write(new float[] { 1, 1, 1, 1 });

    /// <summary>Reads one frame.</summary>
    public static void Consume(TaskReader<float> input) => input.Read(TimeSpan.FromSeconds(5));

    /// <summary>Runs once per activation of its event.</summary>
    public static void OnFlush(TaskWriter<float> output) => output.Write(new float[] { 0, 0, 0, 0 });

    /// <summary>Overloaded: cannot be saved.</summary>
    public static void Twice(TaskReader<float> input) => input.Read();

    /// <summary>Overloaded: cannot be saved.</summary>
    public static void Twice(TaskReader<double> input) => input.Read();
}

/// <summary>
/// <see cref="Pipeline.Save"/> and <see cref="Pipeline.Reconstruct"/>: PYTHUSA's TOML (format_version 1),
/// deterministic output, round trips, and the errors of malformed files and unsaveable tasks.
/// </summary>
public sealed class PipelineTomlTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("flowline-toml-").FullName;

    [Fact]
    public void Save_ThenReconstruct_GivesTheSameDeclaration()
    {
        using var pipe = Declared("radar");
        var path = pipe.Save(Path.Combine(directory, "nested", "radar.toml"));

        Assert.True(File.Exists(path));
        using var back = Pipeline.Reconstruct(path);
        Assert.Equal("radar", back.Name);
        Assert.Equal(pipe.Streams.Order(), back.Streams.Order());
        Assert.Equal(pipe.Events, back.Events);
        Assert.Equal(pipe.Tasks.Order(), back.Tasks.Order());

        // Saving the reconstruction gives the same text: the format is deterministic and complete.
        var again = back.Save(Path.Combine(directory, "again.toml"));
        Assert.Equal(File.ReadAllText(path), File.ReadAllText(again));
    }

    [Fact]
    public void Save_WritesPythusasFields_SortedByName()
    {
        using var pipe = Declared("fields");
        var text = File.ReadAllText(pipe.Save(Path.Combine(directory, "fields.toml")));

        Assert.StartsWith("format_version = 1", text, StringComparison.Ordinal);
        Assert.Contains("name = \"fields\"", text, StringComparison.Ordinal);
        Assert.Contains("[[streams]]", text, StringComparison.Ordinal);
        Assert.Contains("dtype = \"float32\"", text, StringComparison.Ordinal);
        Assert.Contains("frames = 8", text, StringComparison.Ordinal);
        Assert.Contains("[[events]]", text, StringComparison.Ordinal);
        Assert.Contains("initial_state = true", text, StringComparison.Ordinal);
        Assert.Contains("control_mode = \"toggleable\"", text, StringComparison.Ordinal);
        Assert.Contains("control_event = \"flush\"", text, StringComparison.Ordinal);
        Assert.Contains("control_mode = \"terminator\"", text, StringComparison.Ordinal);
        Assert.Contains($"method = \"{nameof(SavedTasks.Produce)}\"", text, StringComparison.Ordinal);
        Assert.True(text.IndexOf("name = \"a_input\"", StringComparison.Ordinal) < text.IndexOf("name = \"b_output\"", StringComparison.Ordinal), "streams are sorted by name");
        Assert.True(text.IndexOf("name = \"consume\"", StringComparison.Ordinal) < text.IndexOf("name = \"produce\"", StringComparison.Ordinal), "tasks are sorted by name");
    }

    [Fact]
    public void Reconstruct_KeepsBindingsControlAndPlacement()
    {
        using var pipe = Declared("bindings");
        using var back = Pipeline.Reconstruct(pipe.Save(Path.Combine(directory, "bindings.toml")));
        back.Compile();

        var tasks = back.Manager.Pipeline.Spec.Tasks.ToDictionary(t => t.Name);
        Assert.Equal("a_input", tasks["produce"].Writes["output"]);
        Assert.Equal("a_input", tasks["consume"].Reads["input"]);
        Assert.Equal(TaskControl.Toggleable, tasks["flusher"].Control);
        Assert.Equal("flush", tasks["flusher"].ActivateOn);
        Assert.Equal("flush", tasks["flusher"].Events["flush"]);
        Assert.Equal(TaskControl.Terminator, tasks["drain"].Control);
        Assert.Equal(WorkerPlacement.Thread, tasks["consume"].Placement);
        Assert.Equal(WorkerPlacement.Process, tasks["produce"].Placement);
        Assert.Equal(8, back.Manager.Plan.OptionsOf("a_input").CapacityFrames);
    }

    [Fact]
    public void Save_AClosure_IsRefusedNamingTheTask()
    {
        using var pipe = new Pipeline("closure");
        var seen = 0;
        pipe.AddStream<float>("s", [4]);
        pipe.AddTask("producer", SavedTasks.Produce, writes: new() { ["output"] = "s" });
        pipe.AddTask("counter", (TaskReader<float> input) => seen += input.Read() is null ? 0 : 1, reads: new() { ["input"] = "s" });

        var e = Assert.Throws<InvalidOperationException>(() => pipe.Save(Path.Combine(directory, "closure.toml")));
        Assert.Contains("task 'counter' cannot be saved", e.Message, StringComparison.Ordinal);
        Assert.Contains("lambda", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(directory, "closure.toml")));
    }

    [Fact]
    public void AddTask_AnOverloadedMethod_RunsOnAThreadAndCannotBeSaved()
    {
        using var pipe = new Pipeline("overload");
        pipe.AddStream<float>("s", [4]);
        pipe.AddTask("producer", SavedTasks.Produce, writes: new() { ["output"] = "s" });
        pipe.AddTask("twice", (Action<TaskReader<float>>)SavedTasks.Twice, reads: new() { ["input"] = "s" });

        var e = Assert.Throws<InvalidOperationException>(() => pipe.Save(Path.Combine(directory, "overload.toml")));
        Assert.Contains("overloaded", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("format_version = 2\nname = \"x\"\n", "format_version 2 is not supported")]
    [InlineData("format_version = 1\n", "needs a 'name'")]
    [InlineData("name = \"x\"\n[[streams]]\nshape = [4]\ndtype = \"float32\"\n", "each saved stream must include 'name'")]
    [InlineData("name = \"x\"\n[[streams]]\nname = \"s\"\ndtype = \"float32\"\n", "each saved stream must include 'shape'")]
    [InlineData("name = \"x\"\n[[streams]]\nname = \"s\"\nshape = [4]\n", "each saved stream must include 'dtype'")]
    [InlineData("name = \"x\"\n[[streams]]\nname = \"s\"\nshape = [4]\ndtype = \"float128\"\n", "unknown dtype 'float128'")]
    [InlineData("name = \"x\"\n[[events]]\ninitial_state = true\n", "each saved event must include 'name'")]
    [InlineData("name = \"x\"\n[[tasks]]\nname = \"t\"\n", "must include 'type' and 'method'")]
    [InlineData("name = \"x\"\n[[tasks]]\nname = \"t\"\ntype = \"No.Such.Type\"\nmethod = \"M\"\n", "cannot find type 'No.Such.Type'")]
    [InlineData("name = \"x\"\n[[tasks]]\nname = \"t\"\ncontrol_mode = \"sometimes\"\n", "unknown control_mode 'sometimes'")]
    [InlineData("name = \"x\"\nstreams = 3\n", "'streams' must be an array of tables")]
    public void Reconstruct_AMalformedFile_SaysWhatIsWrongAndNamesTheFile(string toml, string expected)
    {
        var path = Path.Combine(directory, "bad.toml");
        File.WriteAllText(path, toml);

        var e = Assert.Throws<FormatException>(() => Pipeline.Reconstruct(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reconstruct_InvalidToml_NamesTheLine()
    {
        var path = Path.Combine(directory, "broken.toml");
        File.WriteAllText(path, "name = \"x\"\n\n[[streams]\nname = 3\n");

        var e = Assert.Throws<FormatException>(() => Pipeline.Reconstruct(path));
        Assert.StartsWith($"{path}:3", e.Message, StringComparison.Ordinal);
        Assert.Contains("not valid TOML", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reconstruct_PythusasNumpyDtypes_AndMissingVersion_AreAccepted()
    {
        var path = Path.Combine(directory, "pythusa.toml");
        File.WriteAllText(path, "name = \"legacy\"\n\n[[streams]]\nname = \"samples\"\nshape = [4096]\ndtype = \"<f4\"\nframes = 64\ncache_align = true\nmin_reader_pos_refresh_interval = 64\nmin_reader_pos_refresh_s = 0.005\n");

        using var back = Pipeline.Reconstruct(path);
        Assert.Equal(["samples"], back.Streams);
        back.AddTask("w", SavedTasks.Produce, writes: new() { ["output"] = "samples" });
        var e = Assert.Throws<ArgumentException>(back.Compile); // a 4-value frame task on a 4096-value stream still compiles; the missing reader does not
        Assert.Contains("no reader", e.Message, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static Pipeline Declared(string name)
    {
        var pipe = new Pipeline(name);
        pipe.AddStream("b_output", [4], ElementType.Float32, frames: 8, description: "what the flusher writes")
            .AddStream<float>("a_input", [4], frames: 5)
            .AddEvent("flush", initialState: true, description: "flush now");
        pipe.AddTask("produce", SavedTasks.Produce, writes: new() { ["output"] = "a_input" }, description: "makes frames");
        pipe.AddTask("consume", SavedTasks.Consume, reads: new() { ["input"] = "a_input" }, placement: WorkerPlacement.Thread);
        pipe.AddToggleableTask("flusher", "flush", SavedTasks.OnFlush, writes: new() { ["output"] = "b_output" }, events: new() { ["flush"] = "flush" });
        pipe.AddTerminator("drain", new() { ["b_output"] = "b_output" });
        return pipe;
    }
}
