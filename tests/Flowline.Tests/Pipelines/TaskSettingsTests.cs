using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Pipelines;
using Flowline.Runtime;
using Flowline.SharedMemory;
using Flowline.Tests.Runtime;

namespace Flowline.Tests.Pipelines;

/// <summary>The mode of <see cref="GainSettings"/> (a choice setting).</summary>
public enum GainMode
{
    /// <summary>Fast.</summary>
    Fast,

    /// <summary>Exact.</summary>
    Exact,
}

/// <summary>A task's settings record: its properties are the node's settings (decision 113).</summary>
public sealed record GainSettings
{
    /// <summary>The value written.</summary>
    [Setting(Minimum = 0, Maximum = 10, Unit = "V/V", Description = "the value written")]
    public double Gain { get; init; } = 2.0;

    /// <summary>Applies at the next start.</summary>
    [Setting(Live = false)]
    public string Label { get; init; } = "a";

    /// <summary>A choice.</summary>
    public GainMode Mode { get; init; } = GainMode.Fast;
}

/// <summary>Code-first tasks' typed live settings: schema from the record, validation, a change applied as a whole record.</summary>
public sealed class TaskSettingsTests : RuntimeTest
{
    [Fact]
    public async Task TaskSettings_SchemaFromTheRecord_ValidatedAndAppliedWhole()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("out", [16]);
        pipe.AddTask(
            "writer",
            (TaskWriter<float> output, TaskSettings<GainSettings> settings, CancellationToken stop) =>
            {
                var frame = new float[16];
                while (!stop.IsCancellationRequested)
                {
                    var now = settings.Current; // one record per frame: never half a change
                    Array.Fill(frame, (float)now.Gain, 0, 8);
                    Thread.Sleep(1);
                    Array.Fill(frame, (float)now.Gain, 8, 8);
                    output.Write(frame);
                }
            },
            writes: new() { ["output"] = "out" },
            placement: WorkerPlacement.Thread);
        pipe.Compile();
        var manager = pipe.Manager;

        var fields = manager.SettingsSchema().Nodes["writer"].Fields;
        Assert.Equal(["gain", "label", "mode"], fields.Select(f => f.Name));
        var gain = fields[0];
        Assert.Equal(("number", true, 0.0, 10.0, "V/V", 2.0), (gain.Type, gain.Live, gain.Minimum, gain.Maximum, gain.Unit, (double)gain.Default!));
        Assert.False(fields[1].Live);
        Assert.Equal(("choice", ["fast", "exact"]), (fields[2].Type, fields[2].Choices));
        Assert.Equal(2.0, (double)manager.Settings().Nodes["writer"]["gain"]!);

        pipe.Start();
        WaitUntil(() => Output(manager) is 2f, "the task writes the record's default gain");

        var tooBig = await Assert.ThrowsAsync<SettingsValidationException>(() => manager.PatchSettingsAsync("writer", new JsonObject { ["gain"] = 11.0 }));
        Assert.Equal("gain", tooBig.Field);
        var notLive = await Assert.ThrowsAsync<SettingsValidationException>(() => manager.PatchSettingsAsync("writer", new JsonObject { ["label"] = "b" }));
        Assert.Equal("label", notLive.Field);
        var badChoice = await Assert.ThrowsAsync<SettingsValidationException>(() => manager.PatchSettingsAsync("writer", new JsonObject { ["mode"] = "slow" }));
        Assert.Equal("mode", badChoice.Field);
        var direct = await Assert.ThrowsAsync<RequestException>(() => manager.RequestNodeAsync("writer", "update_setting", new JsonObject { ["values"] = new JsonObject { ["nope"] = 1 } }, TimeSpan.FromSeconds(10)));
        Assert.Equal((RequestErrorCode.InvalidRequest, "nope"), (direct.Code, direct.Field));

        var result = await manager.PatchSettingsAsync("writer", new JsonObject { ["gain"] = 4.5, ["mode"] = "exact" });
        Assert.Equal("live", result.AppliedBy);
        WaitUntil(() => Output(manager) is 4.5f, "the task writes the new gain");
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(4.5f, Output(manager));
        }

        Assert.Equal(["gain", "mode"], manager.SettingsLog.After(0).Events.Select(e => e.Event.Field).Order(StringComparer.Ordinal));
        pipe.Stop();
    }

    /// <summary>The first element of the newest frame of <c>out</c> (NaN if its elements differ), or null before one.</summary>
    private static float? Output(PipelineManager manager)
    {
        using var stream = SharedStream.Attach(manager.Namespace, "out");
        using var reader = stream.OpenReader<byte>(new ReaderOptions { Delivery = Delivery.Latest });
        if (!reader.PeekNewest(out var frame, out _))
        {
            return null;
        }

        var values = MemoryMarshal.Cast<byte, float>(frame.Span);
        return values.ToArray().Distinct().Count() == 1 ? values[0] : float.NaN;
    }
}
