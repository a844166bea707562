using Flowline.Runtime;
using Flowline.SharedMemory;

namespace Flowline.Tests.Runtime;

/// <summary>What flows: synthetic inputs, trigger policies, frame synchronisation, plugin sources and sinks with feedback.</summary>
public sealed class PipelineDataTests : RuntimeTest
{
    private const string Undriven = """
        shared_memory:
          - {name: input, shape: [32], dtype: float32}
          - {name: output, shape: [32], dtype: float32}
        kernels:
          - {name: copy, kind: cpu.copy, input: input, output: output}
        sinks:
          - {name: sink, kind: null.sink, stream: output}
        """;

    [Fact]
    public void SyntheticInput_DrivesAnUndrivenStream_AndReportsShmpipelinesStatus()
    {
        var manager = Manager(Undriven);
        manager.Build();
        var started = manager.StartSyntheticInput("input", new SyntheticSettings { Pattern = "constant", Constant = 3.0, RateHz = 200 });
        Assert.Equal("input", started.StreamName);
        WaitUntil(() => (long)manager.SyntheticInputs().Json()["input"]!["frames_written"]! > 5, "it writes while the pipeline is only built");

        manager.Start();
        WaitUntil(() => Frames(manager, "sink") > 20, "the synthetic frames reach the sink");
        Assert.All(Newest(manager, "output"), v => Assert.Equal(3.0f, v));
        var status = manager.Status().Json()["synthetic_sources"]!["input"]!;
        foreach (var key in new[] { "stream_name", "pattern", "rate_hz", "requested_rate_hz", "seed", "amplitude", "offset", "period", "constant", "impulse_interval", "frames_written", "alive", "effective_rate_hz", "started_at", "last_write_time", "last_write_duration_ms", "last_error" })
        {
            Assert.True(status.AsObject().ContainsKey(key), $"synthetic status lacks '{key}'");
        }

        Assert.True((bool)status["alive"]!);
        Assert.Equal("constant", (string?)status["pattern"]);
        Assert.InRange((double)status["effective_rate_hz"]!, 50, 260);

        Assert.Throws<InvalidOperationException>(() => manager.StartSyntheticInput("input", new SyntheticSettings()));
        var written = Assert.Throws<InvalidOperationException>(() => manager.StartSyntheticInput("output", new SyntheticSettings()));
        Assert.Contains("is written by 'copy'", written.Message, StringComparison.Ordinal);
        Assert.Throws<KeyNotFoundException>(() => manager.StartSyntheticInput("nowhere", new SyntheticSettings()));

        manager.StopSyntheticInput("input");
        Assert.Empty(manager.SyntheticInputs());
        Assert.Throws<KeyNotFoundException>(() => manager.StopSyntheticInput("input"));
        Assert.Throws<ArgumentException>(() => manager.StartSyntheticInput("input", new SyntheticSettings { Pattern = "plaid" }));
        Assert.Throws<ArgumentException>(() => manager.StartSyntheticInput("input", new SyntheticSettings { RateHz = -1 }));

        manager.StartSyntheticInput("input", new SyntheticSettings { Pattern = "ramp", Period = 1e6, Amplitude = 1e6 });
        WaitUntil(() => Newest(manager, "output")[0] > 100, "an unthrottled ramp goes through");
        Assert.Contains(manager.Events(), e => e.Type == "synthetic_started");
        Assert.Contains(manager.Events(), e => e.Type == "synthetic_stopped");
    }

    [Fact]
    public void AnyNew_ComputesOnEveryNewFrameOfEitherInput_WithTheOthersNewestValue()
    {
        var manager = Manager("""
            plugins: [plugins/Flowline.Tests.Plugin.dll]
            shared_memory:
              - {name: a, shape: [8], dtype: float32}
              - {name: b, shape: [8], dtype: float32}
              - {name: sum, shape: [8], dtype: float32}
            sources:
              - {name: fast, kind: synthetic.array, stream: a, parameters: {pattern: constant, constant: 1, rate_hz: 200}}
              - {name: slow, kind: synthetic.array, stream: b, parameters: {pattern: constant, constant: 2, rate_hz: 100}}
            kernels:
              - {name: add, kind: test.sum, inputs: [a, b], output: sum, trigger_policy: any_new}
            sinks:
              - {name: sink, kind: null.sink, stream: sum}
            """);
        manager.Build();
        manager.Start();
        WaitUntil(() => Frames(manager, "add") > 600, "the kernel computes on frames of both inputs");
        var add = manager.Status().Json()["workers"]!["add"]!;
        Assert.InRange((double)add["throughput_hz"]!, 220, 330);
        Assert.All(Newest(manager, "sum"), v => Assert.Equal(3.0f, v));
    }

    [Fact]
    public void MatchingFrameId_NeverCombinesDifferentGenerations_AndCountsTheSkew()
    {
        var path = Path.Combine(Path.GetTempPath(), $"{Namespace}-ids.bin");
        try
        {
            var manager = Manager($$$"""
                plugins: [plugins/Flowline.Tests.Plugin.dll]
                shared_memory:
                  - {name: left, shape: [4], dtype: float32, delivery: lossless}
                  - {name: right, shape: [4], dtype: float32, delivery: lossless}
                  - {name: ids, shape: [2], dtype: float32, delivery: lossless}
                sources:
                  - name: cameras
                    kind: synthetic.frame_set
                    streams: [left, right]
                    parameters: {rate_hz: 400, drop_probability: 0.3, seed: 7}
                kernels:
                  - name: pair
                    kind: test.frame_ids
                    inputs: [left, right]
                    output: ids
                    trigger_policy: all_new
                    synchronization: {mode: matching_frame_id, on_skew: drop_older}
                    propagate_frame_id: true
                sinks:
                  - {name: capture, kind: test.capture, stream: ids, placement: thread, parameters: {path: "{{{path}}}"}}
                """);
            manager.Build();
            manager.Start();
            WaitUntil(() => Frames(manager, "pair") > 100, "matched generations are computed");
            var pair = manager.Status().Json()["workers"]!["pair"]!;
            Assert.True((long)pair["frame_sync_skew_events"]! > 0, "drops make the inputs disagree");
            Assert.True((long)pair["frame_sync_skipped_generations"]! > 0, "older frames are dropped");
            manager.Stop();

            var frames = Captured(path);
            Assert.True(frames.Count > 100);
            long previous = -1;
            foreach (var (header, values) in frames)
            {
                Assert.Equal(values[0], values[1]);
                Assert.Equal((ulong)values[0], header.FrameId);
                Assert.True(values[0] > previous, "generations arrive in order, each once");
                previous = (long)values[0];
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// A <c>latest</c> frame held while the other input is awaited can be overwritten meanwhile: its frame id
    /// is not matched on; the frame is let go and the input's newest frame taken instead.
    /// </summary>
    [Fact]
    public void MatchingFrameId_MatchesTheHeldLatestFrame_WhileTheOtherInputIsAwaited()
    {
        // A latest reader holds the slot it reads (decision 100): frame 1 of 'left', held while the kernel
        // waits for 'right', is not overwritten by frames 2 and 3, so it is matched, not torn.
        var manager = Manager("""
            plugins: [plugins/Flowline.Tests.Plugin.dll]
            shared_memory:
              - {name: left, shape: [4], dtype: float32, depth: 4}
              - {name: right, shape: [4], dtype: float32, depth: 4}
              - {name: ids, shape: [2], dtype: float32, delivery: lossless}
            kernels:
              - name: pair
                kind: test.frame_ids
                inputs: [left, right]
                output: ids
                trigger_policy: all_new
                synchronization: {mode: matching_frame_id, on_skew: drop_older}
                propagate_frame_id: true
                placement: thread
            """);
        manager.Build();
        using var left = SharedStream.Attach(manager.Namespace, "left");
        using var right = SharedStream.Attach(manager.Namespace, "right");
        using var ids = SharedStream.Attach(manager.Namespace, "ids");
        using var leftWriter = left.OpenWriter<float>();
        using var rightWriter = right.OpenWriter<float>();
        using var output = ids.OpenReader<float>(new ReaderOptions { Delivery = Delivery.Lossless });
        manager.Start();

        leftWriter.Write(new float[4], new FrameStamp(1, 0));
        WaitUntil(() => right.GetStatistics().SleepingReaders > 0, "the kernel holds left's frame 1 and sleeps on right");
        leftWriter.Write(new float[4], new FrameStamp(2, 0));
        leftWriter.Write(new float[4], new FrameStamp(3, 0)); // the writer skips the held slot of frame 1
        rightWriter.Write(new float[4], new FrameStamp(1, 0));

        var frame = new float[2];
        Assert.Equal(ReadStatus.Ok, output.ReadInto(frame, out var header, TimeSpan.FromSeconds(20)));
        Assert.Equal([1f, 1f], frame);
        Assert.Equal(1UL, header.FrameId);

        // Then the newest of each: left's 3 with right's 3.
        WaitUntil(() => right.GetStatistics().Readers.Single().Position == 1, "the kernel took right's frame 1");
        rightWriter.Write(new float[4], new FrameStamp(3, 0));
        Assert.Equal(ReadStatus.Ok, output.ReadInto(frame, out header, TimeSpan.FromSeconds(20)));
        Assert.Equal([3f, 3f], frame);
        Assert.Equal(3UL, header.FrameId);
        WaitUntil(() => Frames(manager, "pair") >= 2, "the kernel publishes its figures");
        var pair = manager.Status().Json()["workers"]!["pair"]!;
        Assert.Equal(0, (long)pair["torn_frames"]!);
        Assert.Equal(0, (long)pair["discarded_computes"]!);
        Assert.Equal(0, left.GetStatistics().Readers.Single().TornCopies);
        Assert.Equal(ReadStatus.Timeout, output.ReadInto(frame, TimeSpan.Zero));
    }

    [Fact]
    public void PluginSourceAndStatefulSink_RunInWorkers_WithFeedbackAndPluginMetrics()
    {
        var manager = Manager("""
            plugins: [plugins/Flowline.Tests.Plugin.dll]
            shared_memory:
              - {name: counts, shape: [4], dtype: float32}
              - {name: squares, shape: [4], dtype: float32}
              - {name: feedback, shape: [4], dtype: float32}
            sources:
              - {name: counter, kind: test.counter, stream: counts, parameters: {start: 10, rate_hz: 200}}
            kernels:
              - {name: square, kind: test.square, input: counts, output: squares}
            sinks:
              - {name: recorder, kind: test.recorder, stream: squares, outputs: [feedback]}
            """);
        manager.Build();
        manager.Start();
        WaitUntil(() => Frames(manager, "recorder") > 20, "frames reach the recorder");
        Thread.Sleep(300);
        var status = manager.Status().Json();
        Assert.True((long)status["sources"]!["counter"]!["plugin_metrics"]!["next"]! > 20);
        Assert.True((long)status["sinks"]!["recorder"]!["plugin_metrics"]!["recorded"]! > 10);
        Assert.True((long)status["sinks"]!["recorder"]!["last_output_count"]! > 10);
        var feedback = Newest(manager, "feedback")[0];
        var root = Math.Sqrt(feedback - 1);
        Assert.True(root >= 10 && Math.Abs(root - Math.Round(root)) < 1e-6, $"feedback {feedback} is a count squared plus one");
    }

    /// <summary>The newest frame of <paramref name="stream"/> as float32 values.</summary>
    private static float[] Newest(PipelineManager manager, string stream)
    {
        using var shared = SharedStream.Attach(manager.Namespace, stream);
        using var reader = shared.OpenReader<byte>(new ReaderOptions { Delivery = Delivery.Latest });
        Assert.True(reader.PeekNewest(out var frame, out _));
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(frame.Span).ToArray();
    }

    /// <summary>The frames a <c>test.capture</c> sink wrote.</summary>
    internal static List<(FrameHeader Header, float[] Values)> Captured(string path)
    {
        var frames = new List<(FrameHeader, float[])>();
        using var reader = new BinaryReader(File.OpenRead(path));
        while (reader.BaseStream.Position < reader.BaseStream.Length)
        {
            var sequence = reader.ReadInt64();
            var id = reader.ReadUInt64();
            var origin = reader.ReadInt64();
            var bytes = reader.ReadBytes(reader.ReadInt32());
            frames.Add((new FrameHeader(sequence, id, 0, origin), System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray()));
        }

        return frames;
    }
}
