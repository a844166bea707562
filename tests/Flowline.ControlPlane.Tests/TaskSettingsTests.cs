using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Flowline.Client;
using Flowline.Pipelines;

namespace Flowline.ControlPlane.Tests;

/// <summary>How a scaling task's output is shaped (a choice setting).</summary>
public enum ScaleMode
{
    /// <summary>As is.</summary>
    Plain,

    /// <summary>Twice.</summary>
    Doubled,
}

/// <summary>A code-first task's typed settings record (issue 12).</summary>
public sealed record ScaleSettings
{
    /// <summary>The factor the task writes.</summary>
    [Setting("multiplies each frame", Minimum = 0, Maximum = 100, Unit = "x")]
    public double Gain { get; init; } = 1.0;

    /// <summary>A setting that needs a restart.</summary>
    [Setting("added to each frame", Live = false)]
    public int Offset { get; init; }

    /// <summary>A choice.</summary>
    public ScaleMode Mode { get; init; } = ScaleMode.Plain;
}

/// <summary>Task functions with settings (static, so that the writer runs in a worker process of its own).</summary>
public static class SettingsTasks
{
    /// <summary>Writes, per frame, the gain it computed with and how many changes it had taken.</summary>
    public static void Scale(TaskWriter<double> output, TaskSettings<ScaleSettings> settings, CancellationToken stopping)
    {
        var frame = new double[2];
        while (!stopping.IsCancellationRequested)
        {
            var now = settings.Value; // once per frame: one record throughout
            frame[0] = now.Gain;
            frame[1] = settings.Version;
            output.Write(frame);
            Thread.Sleep(2);
        }
    }
}

/// <summary>Settings of code-first tasks: schema from the record, validation, live changes acknowledged once applied, a restart keeping them.</summary>
[Collection(nameof(ServerTestCollection))]
public sealed class TaskSettingsTests : ServerTest
{
    protected override bool StartServer => false;

    [Fact]
    public async Task TypedTaskSettings_SchemaValidationLiveChangeAndRestart()
    {
        TaskSettings<ScaleSettings>? held = null;
        var firstGains = new ConcurrentQueue<double>();
        var regressed = 0;
        double lastGain = 0;
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<double>("scaled", [2], frames: 8);
        pipe.AddTask("scale", SettingsTasks.Scale, writes: new() { ["output"] = "scaled" });
        pipe.AddTask("tally", (TaskReader<double> input, TaskSettings<ScaleSettings> settings, CancellationToken stopping) =>
        {
            Volatile.Write(ref held, settings);
            var first = true;
            var top = 0.0;
            while (!stopping.IsCancellationRequested)
            {
                if (input.Read(TimeSpan.FromMilliseconds(100)) is { } frame)
                {
                    if (first)
                    {
                        firstGains.Enqueue(frame[0]);
                        first = false;
                    }

                    if (frame[0] < top)
                    {
                        Interlocked.Increment(ref regressed); // an old gain after a new one
                    }

                    top = Math.Max(top, frame[0]);
                    Interlocked.Exchange(ref lastGain, frame[0]);
                }
            }
        }, reads: new() { ["input"] = "scaled" });
        pipe.Compile();

        await using (var server = await ControlServer.StartAsync(pipe.Manager, Complete(new ControlServerOptions()), TestContext.Current.CancellationToken))
        {
            using var client = new RemoteManagerClient(server.Address);
            using var http = new HttpClient { BaseAddress = server.Address };

            // The schema comes from the record, before anything runs.
            var schema = (await client.SettingsSchemaAsync()).Nodes["scale"];
            Assert.Equal("task", schema.Kind);
            Assert.Equal(["gain", "offset", "mode"], schema.Fields.Select(f => f.Name));
            var gain = schema.Fields[0];
            Assert.Equal(("number", 0.0, 100.0, "x", true, "multiplies each frame"), (gain.Type, gain.Minimum, gain.Maximum, gain.Unit, gain.Live, gain.Description));
            Assert.Equal(1.0, (double)gain.Default!);
            Assert.Equal(("integer", false), (schema.Fields[1].Type, schema.Fields[1].Live));
            Assert.Equal("choice", schema.Fields[2].Type);
            Assert.Equal(["plain", "doubled"], schema.Fields[2].Choices!);
            Assert.Equal(1.0, (double)(await client.SettingsAsync()).Nodes["scale"]["gain"]!);

            Assert.Equal("running", (await client.StartAsync()).State);
            await WaitUntilAsync(() => Task.FromResult(Interlocked.CompareExchange(ref lastGain, 0, 0) == 1.0), "the tally sees the scale task's first frames");

            var seq = (await client.SettingsAsync()).Seq;

            // Refused: out of bounds, of the wrong type, not live, unknown; nothing changes.
            foreach (var (patch, field) in new[] { ("""{"gain": 500}""", "gain"), ("""{"gain": "high"}""", "gain"), ("""{"offset": 3}""", "offset"), ("""{"mode": "tripled"}""", "mode"), ("""{"nope": 1}""", "nope") })
            {
                using var refused = await http.PatchAsync(new Uri("settings/scale", UriKind.Relative), new StringContent(patch, System.Text.Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
                Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
                var body = JsonNode.Parse(await refused.Content.ReadAsStringAsync(TestContext.Current.CancellationToken))!;
                Assert.Equal(field, (string?)body["field"]);
            }

            Assert.Equal(seq, (await client.SettingsAsync()).Seq);

            // Applied live by the worker process, between two frames.
            var changed = await client.PatchSettingsAsync("scale", new JsonObject { ["gain"] = 2.5, ["mode"] = "doubled" });
            Assert.True(changed.Applied);
            Assert.Equal("live", changed.AppliedBy);
            Assert.Equal((2.5, "doubled"), ((double)changed.Values["gain"]!, (string?)changed.Values["mode"]));
            await WaitUntilAsync(() => Task.FromResult(Interlocked.CompareExchange(ref lastGain, 0, 0) == 2.5), "the scale task's frames carry the new gain");

            // The acknowledgement means applied: the thread task's record has changed when the PATCH returns.
            var tally = Volatile.Read(ref held)!;
            Assert.Equal(0, tally.Version);
            await client.PatchSettingsAsync("tally", new JsonObject { ["gain"] = 4.0 });
            Assert.Equal((4.0, 1L), (tally.Value.Gain, tally.Version));
            Assert.Equal(ScaleMode.Plain, tally.Value.Mode);

            var events = (await client.SettingsEventsAsync(seq)).Events;
            Assert.Equal(["gain", "mode", "gain"], events.Select(e => e.Field));
            var document = (await client.DocumentAsync()).Document;
            var scale = document["tasks"]!.AsArray().Single(t => (string?)t!["name"] == "scale")!;
            Assert.Equal(2.5, (double)scale["parameters"]!["gain"]!);

            // A restart starts with the current values, not the record's defaults.
            Assert.Equal("built", (await client.StopAsync()).State);
            Assert.Equal("running", (await client.StartAsync()).State);
            await WaitUntilAsync(() => Task.FromResult(firstGains.Count >= 2), "the tally runs again");
            Assert.Equal([1.0, 2.5], firstGains.ToArray());
            await WaitUntilAsync(() => Task.FromResult(!ReferenceEquals(Volatile.Read(ref held), tally)), "the tally takes its new settings holder");
            Assert.Equal(4.0, Volatile.Read(ref held)!.Value.Gain);
            Assert.Equal(0, Volatile.Read(ref regressed));

            Assert.Equal("built", (await client.StopAsync(force: true)).State);
        }

        AssertNothingLeft(Namespace);
    }

    [Fact]
    public void CheckBindings_RefusesBadSettings_NamingTheTask()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<double>("scaled", [2], frames: 8);
        pipe.AddTask("scale", SettingsTasks.Scale, writes: new() { ["output"] = "scaled" });
        pipe.AddTask("bad", (TaskReader<double> input, TaskSettings<BadSettings> settings) => { }, reads: new() { ["input"] = "scaled" });
        var e = Assert.Throws<ArgumentException>(pipe.Compile);
        Assert.Contains("task 'bad'", e.Message, StringComparison.Ordinal);
        Assert.Contains("'where'", e.Message, StringComparison.Ordinal);

        using var twice = new Pipeline(Namespace + "b");
        twice.AddStream<double>("scaled", [2], frames: 8);
        twice.AddTask("scale", SettingsTasks.Scale, writes: new() { ["output"] = "scaled" });
        twice.AddTask("two", (TaskReader<double> input, TaskSettings<ScaleSettings> a, TaskSettings<ScaleSettings> b) => { }, reads: new() { ["input"] = "scaled" });
        Assert.Contains("one settings record", Assert.Throws<ArgumentException>(twice.Compile).Message, StringComparison.Ordinal);
    }
}

/// <summary>A record whose setting cannot be described.</summary>
public sealed record BadSettings
{
    /// <summary>Not a number, a boolean, a string or an enum.</summary>
    public Uri? Where { get; init; }
}
