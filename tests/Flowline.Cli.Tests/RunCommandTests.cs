using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Flowline.SharedMemory;

namespace Flowline.Cli.Tests;

/// <summary>
/// <c>flowline run</c> and <c>flowline benchmark</c>, run as child processes with real worker processes
/// (Flowline.Worker.dll beside Flowline.Cli.dll). Every test checks that its namespace is gone from
/// /dev/shm/flowline and that no worker of it is left.
/// </summary>
/// <remarks>The tests of a class run one at a time; each run is 1-3 s of pipeline time (the machine has 2 cores).</remarks>
public sealed class RunCommandTests : IDisposable
{
    private const int SigInt = 2;
    private const int SigTerm = 15;
    private const string ShmRoot = "/dev/shm/flowline";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private static readonly string WorkerDll = Path.Combine(AppContext.BaseDirectory, "Flowline.Worker.dll");
    private static readonly string Copy64 = Path.Combine("examples", "copy-64", "pipeline.yaml");

    private readonly string directory = Directory.CreateTempSubdirectory("flowline-cli-run-").FullName;
    private readonly List<Child> children = [];
    private readonly List<string> ownNamespaces = [];

    /// <summary>The worker program the CLI starts must be where the CLI looks for it: beside it.</summary>
    [Fact]
    public void TheWorkerProgram_IsBesideTheCli()
    {
        Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "Flowline.Cli.dll")));
        Assert.True(File.Exists(WorkerDll), $"{WorkerDll} is missing: run would exit 2 (cannot find the worker program)");
        Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "Flowline.Worker.runtimeconfig.json")));
    }

    [Fact]
    public void Run_Copy64_JsonStatus_PrintsTheFinalSnapshot_AndLeavesNothing()
    {
        var watch = Stopwatch.StartNew();
        var result = Run(Copy64, "--duration", "1.5", "--json-status");
        watch.Stop();

        AssertExit(0, result);
        Assert.Equal("", result.Error);
        var snapshot = Json(result);

        // The snapshot is taken when the duration is over, before the shutdown.
        Assert.Equal("running", (string?)snapshot["state"]);
        Assert.Equal("copy-64", (string?)snapshot["namespace"]); // no namespace: field; derived from the directory
        Assert.Empty(snapshot["failures"]!.AsArray());
        Assert.True((long)snapshot["workers"]!["copy"]!["frames_processed"]! > 0);
        Assert.True((long)snapshot["sinks"]!["sink"]!["frames_consumed"]! > 0);

        // A 1 kHz source for 1.5 s: the run lasted about --duration, not much less nor much more.
        var written = (long)snapshot["sources"]!["camera"]!["frames_written"]!;
        Assert.InRange(written, 500, 1700);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(15), $"flowline run --duration 1.5 took {watch.Elapsed.TotalSeconds:0.0} s");

        var graph = snapshot["graph"]!.AsObject();
        Assert.Equal(["input_vector"], graph["source_streams"]!.AsArray().Select(n => (string?)n));
        Assert.Equal(["output_vector"], graph["sink_streams"]!.AsArray().Select(n => (string?)n));
        Assert.NotNull(snapshot["timestamp"]);
        AssertNothingLeft("copy-64");
    }

    [Fact]
    public async Task Run_OtlpEndpointSet_SendsTheMetricsAndTracesToIt()
    {
        // A real HTTP server in the role of an OpenTelemetry collector (OTLP over HTTP with protobuf).
        int port;
        using (var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        }

        using var collector = new System.Net.HttpListener();
        collector.Prefixes.Add($"http://127.0.0.1:{port}/");
        collector.Start();
        var received = new System.Collections.Concurrent.ConcurrentBag<(string Path, byte[] Body)>();
        var serving = Task.Run(async () =>
        {
            while (collector.IsListening)
            {
                System.Net.HttpListenerContext context;
                try
                {
                    context = await collector.GetContextAsync();
                }
                catch (Exception e) when (e is System.Net.HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }

                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                received.Add((context.Request.Url!.AbsolutePath, body.ToArray()));
                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/x-protobuf";
                context.Response.Close();
            }
        });

        var result = Cli.Run(
            new Dictionary<string, string>
            {
                ["OTEL_EXPORTER_OTLP_ENDPOINT"] = $"http://127.0.0.1:{port}",
                ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
                ["OTEL_METRIC_EXPORT_INTERVAL"] = "500",
            },
            "run", Path.Combine(AppContext.BaseDirectory, Copy64), "--duration", "1.5", "--json-status");
        collector.Stop();
        await serving;

        AssertExit(0, result);
        var metrics = received.Where(r => r.Path == "/v1/metrics").ToList();
        Assert.NotEmpty(metrics);
        Assert.Contains(metrics, m => System.Text.Encoding.UTF8.GetString(m.Body).Contains("flowline.worker.frames", StringComparison.Ordinal));
        Assert.Contains(received, r => r.Path == "/v1/traces" && System.Text.Encoding.UTF8.GetString(r.Body).Contains("flowline.pipeline.start", StringComparison.Ordinal));
        AssertNothingLeft("copy-64");
    }

    [Fact]
    public void Run_WithoutJsonStatus_StdoutRedirected_PrintsTheSummaryTable()
    {
        var result = Run(Copy64, "--duration", "1");

        AssertExit(0, result);
        Assert.Equal("", result.Error);
        Assert.Contains("final figures", result.Output, StringComparison.Ordinal);
        Assert.Contains("namespace copy-64", result.Output, StringComparison.Ordinal);
        foreach (var worker in new[] { "camera", "copy", "sink" })
        {
            Assert.Contains(worker, result.Output, StringComparison.Ordinal);
        }

        Assert.Contains("0 failures", result.Output, StringComparison.Ordinal);
        AssertNothingLeft("copy-64");
    }

    [Fact]
    public void Run_WithALatencyTarget_PrintsEachSinksFrameInToCommandOutLatencyBesideIt_AndTheDiscardedComputes()
    {
        var result = Run(Copy64, "--duration", "1.5", "--latency-target", "60,200");

        AssertExit(0, result);
        var line = Assert.Single(result.Output.Split('\n'), l => l.StartsWith("frame in to command out (sink 'sink'): p50 ", StringComparison.Ordinal));
        Assert.Matches(@"p50 [0-9.]+ µs, p99 [0-9.]+ µs; target p50 <= 60\.0 µs, p99 <= 200\.0 µs: (met|missed)$", line.TrimEnd());
        Assert.Contains("discarded computes (a latest input overwritten while a kernel computed): 0", result.Output, StringComparison.Ordinal);
        AssertNothingLeft("copy-64");
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("4000")]
    public void Run_AStartTimeoutOutOfRange_SaysWhatItMustBe_AndExitsOne(string seconds)
    {
        var result = Run(Copy64, "--duration", "1", "--start-timeout", seconds);

        AssertExit(1, result);
        Assert.Contains("--start-timeout must be a number of seconds above 0 and at most 3600", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_WorkersNotReadyWithinTheStartTimeout_FailsTheStartNamingIt_AndLeavesNothing()
    {
        var result = Run(Copy64, "--duration", "1", "--start-timeout", "0.001");

        AssertExit(2, result);
        Assert.Contains("did not start within 0.001 s", result.Error, StringComparison.Ordinal);
        AssertNothingLeft("copy-64");
    }

    [Theory]
    [InlineData("60")]
    [InlineData("200,60")]
    [InlineData("fast,slow")]
    public void Run_AnInvalidLatencyTarget_SaysWhatItMustBe_AndExitsOne(string target)
    {
        var result = Run(Copy64, "--duration", "1", "--latency-target", target);

        AssertExit(1, result);
        Assert.Contains($"--latency-target must be P50,P99 in µs with 0 < P50 <= P99 (e.g. 60,200), not '{target}'", result.Error, StringComparison.Ordinal);
        Assert.Equal("", result.Output);
    }

    [Fact]
    public void Run_AnInvalidDocument_NamesTheFieldAndLine_AndExitsOne()
    {
        var ns = OwnNamespace();
        var file = Document("bad.yaml", $$$"""
            namespace: {{{ns}}}
            shared_memory:
              - {name: input, shape: [4], dtype: float32}
              - {name: output, shape: [4], dtype: float32}
            kernels:
              - {name: k, kind: cpu.frobnicate, input: input, output: output}
            """);

        var result = Run(file, "--duration", "1");

        AssertExit(1, result);
        Assert.Contains($"{file}:6:", result.Error, StringComparison.Ordinal);
        Assert.Contains("kernels[0].kind", result.Error, StringComparison.Ordinal);
        Assert.Contains("unknown kernel kind 'cpu.frobnicate'", result.Error, StringComparison.Ordinal);
        Assert.Equal("", result.Output);
        AssertNothingLeft(ns);
    }

    [Fact]
    public void Run_AStreamToAttachThatDoesNotExist_CannotStart_AndExitsTwo()
    {
        var ns = OwnNamespace();
        var file = Document("attach.yaml", $$$"""
            namespace: {{{ns}}}
            shared_memory:
              - {name: input, shape: [4], dtype: float32}
              - {name: external, shape: [4], dtype: float32, mode: attach}
              - {name: output, shape: [4], dtype: float32}
            sources:
              - {name: camera, kind: synthetic.array, stream: input, parameters: {pattern: sine, rate_hz: 200}}
            kernels:
              - {name: copy, kind: cpu.copy, input: input, output: output}
            sinks:
              - {name: sink, kind: null.sink, stream: output}
              - {name: side, kind: null.sink, stream: external}
            """);

        var result = Run(file, "--duration", "1");

        AssertExit(2, result);
        Assert.Contains($"{file}: cannot start:", result.Error, StringComparison.Ordinal);
        Assert.Contains("stream 'external'", result.Error, StringComparison.Ordinal);
        Assert.Equal("", result.Output);
        AssertNothingLeft(ns); // the stream 'input' it created before failing is removed too
    }

    [Fact]
    public void Run_AKernelThatFails_StopsByItself_SaysWhichAndWhy_AndExitsThree()
    {
        var ns = OwnNamespace();
        var file = Document("fail.yaml", $$$"""
            namespace: {{{ns}}}
            shared_memory:
              - {name: input, shape: [4], dtype: float32}
              - {name: output, shape: [4], dtype: float32}
            sources:
              - {name: camera, kind: synthetic.array, stream: input, parameters: {pattern: sine, rate_hz: 200}}
            kernels:
              - {name: exploder, kind: cpu.raise_error, input: input, output: output, parameters: {message: boom}}
            sinks:
              - {name: sink, kind: null.sink, stream: output}
            """);

        // No --duration: the failure alone ends the run.
        var result = Run(file, TimeSpan.FromSeconds(30), "--json-status");

        AssertExit(3, result);
        Assert.Contains("kernel 'exploder' failed: boom", result.Error, StringComparison.Ordinal);
        var snapshot = Json(result);
        Assert.Equal("failed", (string?)snapshot["state"]);
        var failure = Assert.Single(snapshot["failures"]!.AsArray())!;
        Assert.Equal("exploder", (string?)failure["kernel"]);
        Assert.Equal("boom", (string?)failure["error"]);
        Assert.Equal("failed", (string?)snapshot["workers"]!["exploder"]!["health"]);
        AssertNothingLeft(ns);
    }

    [Theory]
    [InlineData(SigTerm)]
    [InlineData(SigInt)]
    public void Run_ASignalToTheCli_ShutsDownCleanly_AndExitsZero(int signal)
    {
        var ns = OwnNamespace();
        var file = Document("copy.yaml", Copy64WithNamespace(ns));
        var child = Start(newSession: false, "run", file, "--json-status");
        WaitUntilRunning(child, ns, workers: 3, flowing: "output_vector");

        Assert.Equal(0, Kill(child.Process.Id, signal));
        var result = child.Finish(TimeSpan.FromSeconds(5));

        Assert.True(result is not null, $"flowline run did not exit within 5 s of signal {signal}");
        AssertExit(0, result);
        Assert.Equal("", result.Error);
        var snapshot = Json(result);
        Assert.Equal(ns, (string?)snapshot["namespace"]);
        Assert.Empty(snapshot["failures"]!.AsArray());
        Assert.True((long)snapshot["sinks"]!["sink"]!["frames_consumed"]! > 0);
        AssertNothingLeft(ns);
    }

    /// <summary>
    /// Ctrl-C in a terminal sends SIGINT to the whole foreground process group: the CLI and its workers.
    /// The CLI runs in a session of its own (setsid) so that the signal reaches its group and nothing else.
    /// </summary>
    [Fact]
    public void Run_CtrlC_SigintToTheProcessGroup_ShutsDownCleanly_AndExitsZero()
    {
        Assert.SkipUnless(File.Exists("/usr/bin/setsid") || File.Exists("/bin/setsid"), "needs setsid (util-linux)");
        var ns = OwnNamespace();
        var file = Document("copy.yaml", Copy64WithNamespace(ns));
        var child = Start(newSession: true, "run", file, "--json-status");
        WaitUntilRunning(child, ns, workers: 3);
        var pid = child.Process.Id;
        Assert.Equal(pid, ProcessGroupOf(pid));
        Assert.NotEqual(ProcessGroupOf(Environment.ProcessId), pid);

        Assert.Equal(0, Kill(-pid, SigInt));
        var result = child.Finish(TimeSpan.FromSeconds(5));

        Assert.True(result is not null, "flowline run did not exit within 5 s of Ctrl-C");
        AssertNothingLeft(ns);
        var snapshot = Json(result);
        Assert.True(
            result.ExitCode == 0,
            $"exit code {result.ExitCode} after Ctrl-C; stderr: '{result.Error}'; snapshot: state {snapshot["state"]}, failures {snapshot["failures"]!.ToJsonString()}");
        Assert.Equal("", result.Error);
        Assert.Empty(snapshot["failures"]!.AsArray());
    }

    [Fact]
    public void Benchmark_Copy64_Json_MeasuresThroughputAndLatency()
    {
        var child = Start(newSession: false, "benchmark", Copy64, "--duration", "1", "--warmup", "0.5", "--json");
        var result = child.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");

        AssertExit(0, result);
        Assert.Contains("warming up", result.Error, StringComparison.Ordinal); // progress goes to standard error
        var report = Json(result).AsObject();
        string[] keys =
        [
            "pipeline", "output_stream", "state", "failures", "warmup_s", "duration_s", "build_s", "start_s", "frames", "frames_skipped",
            "throughput_hz", "inter_arrival_us", "latency_us", "worker_cpu_percent", "worker_cpu_percent_total", "workers", "sources", "sinks",
            "synthetic_sources", "machine", "os", "runtime", "flowline_version", "timestamp",
        ];
        Assert.Empty(keys.Except(report.Select(p => p.Key)));
        foreach (var summary in new[] { "inter_arrival_us", "latency_us" })
        {
            Assert.Equal(["samples", "mean", "std", "p50", "p90", "p99", "p99_9", "max"], report[summary]!.AsObject().Select(p => p.Key));
        }

        Assert.Equal(["cpu", "logical_cpus", "kernel", "steal_percent"], report["machine"]!.AsObject().Select(p => p.Key));
        Assert.Equal(Path.Combine(AppContext.BaseDirectory, Copy64), (string?)report["pipeline"]);
        Assert.Equal("output_vector", (string?)report["output_stream"]); // the sink's stream
        Assert.Equal("ok", (string?)report["state"]);
        Assert.Empty(report["failures"]!.AsArray());
        Assert.Equal(0.5, (double)report["warmup_s"]!);
        Assert.InRange((double)report["duration_s"]!, 0.9, 10); // at least the second asked for (a loaded machine stretches it)

        // Never above the source's 1 kHz (a loaded machine delivers fewer frames: speed is the
        // benchmark's business, not this test's).
        var frames = (int)report["frames"]!;
        Assert.True(frames > 0);
        Assert.InRange((double)report["throughput_hz"]!, 1, 1500);
        Assert.Equal(frames, (int)report["latency_us"]!["samples"]!);
        Assert.Equal(frames - 1, (int)report["inter_arrival_us"]!["samples"]!);
        var latency = report["latency_us"]!;
        Assert.True((double)latency["p50"]! > 0);
        Assert.True((double)latency["p50"]! <= (double)latency["p99"]!);
        Assert.True((double)latency["p99"]! <= (double)latency["max"]!);
        Assert.True((double)report["build_s"]! > 0);
        Assert.True((double)report["start_s"]! > 0);

        Assert.Equal(["camera", "copy", "sink"], report["worker_cpu_percent"]!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.True((long)report["workers"]!["copy"]!["frames_processed"]! > 0);
        Assert.Empty(report["synthetic_sources"]!.AsObject());
        Assert.Equal(Environment.ProcessorCount, (int)report["machine"]!["logical_cpus"]!);
        Assert.StartsWith(".NET ", (string?)report["runtime"], StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty((string?)report["flowline_version"]));
        Assert.True(DateTimeOffset.TryParse((string?)report["timestamp"], CultureInfo.InvariantCulture, DateTimeStyles.None, out _));

        // The 1 kHz camera's pacer (decision 161), as the status has it: every interval counted once.
        var pacer = report["sources"]!["camera"]!["pacer"]!;
        Assert.Equal(1000.0, (double)pacer["interval_us"]!);
        Assert.True((long)pacer["intervals"]! > 0);
        Assert.Equal((long)pacer["intervals"]!, (long)pacer["early_wakes"]! + (long)pacer["bound_skips"]! + (long)pacer["overdue"]!);
        AssertNothingLeft(child.BenchNamespace);
    }

    [Fact]
    public void Benchmark_Copy64_Text_PrintsThePacedSourcesPacer()
    {
        var child = Start(newSession: false, "benchmark", Copy64, "--duration", "1", "--warmup", "0.3");
        var result = child.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");

        AssertExit(0, result);
        Assert.Contains("paced source", result.Output, StringComparison.Ordinal);
        Assert.Contains("skipped by the share bound", result.Output, StringComparison.Ordinal);
        Assert.Single(result.Output.Split('\n'), l => l.Contains("camera", StringComparison.Ordinal) && l.Contains(" intervals (", StringComparison.Ordinal));
        AssertNothingLeft(child.BenchNamespace);
    }

    [Fact]
    public void Benchmark_OnThreads_RunsEveryNodeOnAThreadOfItsOwnProcess()
    {
        var child = Start(newSession: false, "benchmark", Copy64, "--duration", "1", "--warmup", "0.5", "--on-threads", "--json");
        var pid = child.Process.Id;
        var result = child.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");

        AssertExit(0, result);
        var report = Json(result).AsObject();
        Assert.True((bool)report["on_threads"]!);
        Assert.True((int)report["frames"]! > 0);
        foreach (var (group, name) in new[] { ("sources", "camera"), ("workers", "copy"), ("sinks", "sink") })
        {
            var worker = report[group]![name]!;
            Assert.Equal("thread", (string?)worker["placement"]);
            Assert.Equal(pid, (int)worker["pid"]!); // the benchmark's own process
        }

        // Each thread's CPU is measured (PipelineManagerTests.WorkerCpuTimes_... checks it is the thread's own).
        Assert.Equal(["camera", "copy", "sink"], report["worker_cpu_percent"]!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal));
        AssertNothingLeft(child.BenchNamespace);
    }

    [Fact]
    public void Benchmark_APipelineWithoutASource_IsDrivenBySource_AndMeasured()
    {
        var ns = OwnNamespace();
        var file = Document("no-source.yaml", $$$"""
            namespace: {{{ns}}}
            shared_memory:
              - {name: input, shape: [16], dtype: float32}
              - {name: output, shape: [16], dtype: float32}
            kernels:
              - {name: copy, kind: cpu.copy, input: input, output: output}
            sinks:
              - {name: sink, kind: null.sink, stream: output}
            """);

        var child = Start(newSession: false, "benchmark", file, "--duration", "1", "--warmup", "0.3", "--source", "input:constant:200", "--json");
        var result = child.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");

        AssertExit(0, result);
        var report = Json(result);
        Assert.Equal("ok", (string?)report["state"]);
        Assert.Equal("output", (string?)report["output_stream"]);
        Assert.True((int)report["frames"]! > 0);
        Assert.InRange((double)report["throughput_hz"]!, 1, 300); // driven at 200 Hz: never more
        var input = report["synthetic_sources"]!["input"]!;
        Assert.Equal("constant", (string?)input["pattern"]);
        Assert.True((long)input["frames_written"]! > 0);
        Assert.Empty(report["sources"]!.AsObject());
        AssertNothingLeft(ns, child.BenchNamespace);
    }

    /// <summary>
    /// <c>--first-frames N</c> reports the first N frames after the start apart from the steady state (the
    /// warm-up's frames count), and every run reports each worker process's PSS and ready time.
    /// </summary>
    [Fact]
    public void Benchmark_FirstFrames_ReportsTheFirstFramesApart_WithEachWorkersMemoryAndReadyTime()
    {
        var child = Start(newSession: false, "benchmark", Copy64, "--duration", "1", "--warmup", "1", "--first-frames", "50", "--json");
        var result = child.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");

        AssertExit(0, result);
        var report = Json(result).AsObject();
        var first = report["first_frames"]!.AsObject();
        Assert.Equal(50, (int)first["requested"]!);
        var frames = (int)first["frames"]!;
        Assert.InRange(frames, 1, 50); // a loaded machine may deliver fewer in the run, never more than asked
        Assert.Equal(frames, (int)first["latency_us"]!["samples"]!);
        Assert.True((double)first["latency_us"]!["p50"]! <= (double)first["latency_us"]!["max"]!);
        Assert.True((double)first["span_s"]! >= 0);

        // copy-64's three workers (its camera source, the copy kernel, the sink) each run in a process of their own.
        string[] workers = ["camera", "copy", "sink"];
        var pss = report["worker_pss_mb"]!.AsObject();
        var ready = report["worker_ready_s"]!.AsObject();
        Assert.Equal(workers.Order(), pss.Select(p => p.Key).Order());
        Assert.All(pss, p => Assert.True((double)p.Value! > 0, $"{p.Key}: PSS {p.Value}"));
        Assert.Equal(workers.Order(), ready.Select(p => p.Key).Order());
        Assert.All(ready, p => Assert.InRange((double)p.Value!, 0, (double)report["start_s"]! + 1));
        AssertNothingLeft(child.BenchNamespace);
    }

    /// <summary><c>--trace-poll-ms</c> traces every frame of every kernel and sink while measuring and counts what was read and lost.</summary>
    [Fact]
    public void Benchmark_TracePoll_ReportsTraceRecordsReadAndLost()
    {
        var child = Start(newSession: false, "benchmark", Copy64, "--duration", "1", "--warmup", "0.5", "--trace-poll-ms", "20", "--json");
        var result = child.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");

        AssertExit(0, result);
        var report = Json(result).AsObject();
        Assert.True((bool)report["profiling"]!);
        var traces = report["traces"]!.AsObject();
        Assert.Equal(["copy", "sink"], traces["nodes"]!.AsArray().Select(n => (string?)n).Order());
        Assert.Equal(20.0, (double)traces["poll_ms"]!);
        // copy-64's source runs at 1 kHz: two traced workers record about 2,000 frames a second, far below what a ring holds per read.
        Assert.True((long)traces["records_read"]! > 100, traces.ToJsonString());
        Assert.Equal(0, (long)traces["records_lost"]!);
        Assert.True((long)traces["reads"]! >= 2, traces.ToJsonString());
        AssertNothingLeft(child.BenchNamespace);
    }

    /// <summary><c>--trace-adaptive</c> reads the rings as the server does: from 5 ms after traces are switched on, backing off to 100 ms while traffic is light.</summary>
    [Fact]
    public void Benchmark_TraceAdaptive_BacksOffAtLowTraffic_AndLosesNothing()
    {
        var both = Start(newSession: false, "benchmark", Copy64, "--duration", "1", "--trace-poll-ms", "20", "--trace-adaptive", "--json");
        var refused = both.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");
        AssertExit(1, refused);

        var child = Start(newSession: false, "benchmark", Copy64, "--duration", "1", "--warmup", "0.5", "--trace-adaptive", "--json");
        var result = child.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");

        AssertExit(0, result);
        var traces = Json(result).AsObject()["traces"]!.AsObject();
        Assert.True((bool)traces["adaptive"]!, traces.ToJsonString());
        Assert.Null(traces["poll_ms"]);

        // copy-64's source runs at 1 kHz: about 100 records per worker per 100 ms, a fortieth of a ring, so the
        // interval starts at 5 ms and doubles up to 100 ms.
        Assert.Equal(5.0, (double)traces["min_interval_ms"]!);
        Assert.True((double)traces["mean_interval_ms"]! > 5.0, traces.ToJsonString());
        Assert.True((long)traces["records_read"]! > 100, traces.ToJsonString());
        Assert.Equal(0, (long)traces["records_lost"]!);
        AssertNothingLeft(child.BenchNamespace);
    }

    [Fact]
    public void Benchmark_FirstFrames_Negative_ExitsOne()
    {
        var child = Start(newSession: false, "benchmark", Copy64, "--duration", "1", "--first-frames", "-1", "--json");
        var result = child.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");

        AssertExit(1, result);
        Assert.Contains("--first-frames must be at least 0", result.Error, StringComparison.Ordinal);
        Assert.Equal("", result.Output);
        AssertNothingLeft(child.BenchNamespace);
    }

    [Fact]
    public void Benchmark_AnUnknownSourcePattern_ExitsOne_NamingIt()
    {
        var child = Start(newSession: false, "benchmark", Copy64, "--duration", "1", "--source", "input:plaid", "--json");
        var result = child.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");

        AssertExit(1, result);
        Assert.Contains("--source 'input:plaid'", result.Error, StringComparison.Ordinal);
        Assert.Contains("unknown pattern 'plaid'", result.Error, StringComparison.Ordinal);
        Assert.Equal("", result.Output);
        AssertNothingLeft(child.BenchNamespace);
    }

    [Fact]
    public void Benchmark_AnOutputStreamThePipelineLacks_ExitsTwo_NamingIt()
    {
        var child = Start(newSession: false, "benchmark", Copy64, "--duration", "1", "--output-stream", "nowhere", "--json");
        var result = child.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");

        AssertExit(2, result);
        Assert.Contains("--output-stream: the pipeline has no stream 'nowhere'", result.Error, StringComparison.Ordinal);
        Assert.Equal("", result.Output);
        AssertNothingLeft(child.BenchNamespace);
    }

    [Fact]
    public void Benchmark_ASourceOnAStreamThePipelineLacks_ExitsTwo_AndStopsTheWorkersItStarted()
    {
        // Found only after the pipeline was built and started: its workers must still be stopped.
        var child = Start(newSession: false, "benchmark", Copy64, "--duration", "1", "--source", "nowhere:constant", "--json");
        var result = child.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");

        AssertExit(2, result);
        Assert.Contains("no stream 'nowhere'", result.Error, StringComparison.Ordinal);
        Assert.Equal("", result.Output);
        AssertNothingLeft(child.BenchNamespace);
    }

    /// <summary>A second pipeline on the namespace of a running one is refused before it writes anything, naming the first.</summary>
    [Fact]
    public void Benchmark_OnTheNamespaceOfARunningPipeline_IsRefused_NamingItsManager()
    {
        var ns = OwnNamespace();
        var producer = Document("producer.yaml", Producer(ns));
        var consumer = Document("consumer.yaml", Consumer(ns, streamNamespace: null));
        var running = Start(newSession: false, "run", producer, "--json-status");
        WaitUntilRunning(running, ns, workers: 1);

        var bench = Start(newSession: false, "benchmark", consumer, "--duration", "1", "--warmup", "0.3", "--json");
        var result = bench.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");
        Assert.Equal(0, Kill(running.Process.Id, SigTerm));
        var producerResult = running.Finish(TimeSpan.FromSeconds(10));

        AssertExit(2, result);
        Assert.Contains($"namespace '{ns}' is in use by the pipeline manager of process {running.Process.Id}", result.Error, StringComparison.Ordinal);
        Assert.NotNull(producerResult);
        Assert.True((long)Json(producerResult)["sources"]!["camera"]!["frames_written"]! > 0, "the running pipeline was not disturbed");
        AssertExit(0, producerResult);
        AssertNothingLeft(ns, bench.BenchNamespace);
    }

    /// <summary>A document that attaches to a stream of another pipeline's namespace can be benchmarked while that pipeline runs.</summary>
    [Fact]
    public void Benchmark_APipelineThatAttachesToAnotherNamespacesStream_MeasuresIt()
    {
        var producerNs = OwnNamespace();
        var consumerNs = OwnNamespace();
        var producer = Document("producer.yaml", Producer(producerNs));
        var consumer = Document("consumer.yaml", Consumer(consumerNs, streamNamespace: producerNs));
        var running = Start(newSession: false, "run", producer, "--json-status");
        WaitUntilRunning(running, producerNs, workers: 1);

        var bench = Start(newSession: false, "benchmark", consumer, "--duration", "1", "--warmup", "0.3", "--json");
        var result = bench.Finish(Timeout) ?? throw new TimeoutException("flowline benchmark did not finish");
        Assert.True(SharedMemoryNamespace.Exists(producerNs, "camera_frames"), "the consumer left the producer's stream in place");
        Assert.Equal(0, Kill(running.Process.Id, SigTerm));
        var producerResult = running.Finish(TimeSpan.FromSeconds(10));

        AssertExit(0, result);
        Assert.True((int)Json(result)["frames"]! > 0);
        Assert.NotNull(producerResult);
        AssertExit(0, producerResult);
        AssertNothingLeft(producerNs, consumerNs, bench.BenchNamespace);
    }

    /// <summary>SIGKILL cannot be handled: the workers notice that their manager died and exit by themselves within a second.</summary>
    [Fact]
    public void Run_KilledWithSigkill_ItsWorkersExitByThemselves()
    {
        var ns = OwnNamespace();
        var file = Document("copy.yaml", Copy64WithNamespace(ns));
        var child = Start(newSession: false, "run", file);
        WaitUntilRunning(child, ns, workers: 3);

        Assert.Equal(0, Kill(child.Process.Id, 9));
        Assert.NotNull(child.Finish(TimeSpan.FromSeconds(5)));
        var watch = Stopwatch.StartNew();
        while (WorkerProcesses([ns]).Count > 0 && watch.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(20);
        }

        Assert.Empty(WorkerProcesses([ns]));

        // The regions stay until the next build of the namespace, or flowline gc, removes them: each worker's
        // control block and its profile block (decision 90).
        var left = SharedMemoryNamespace.List(ns + ".control");
        string[] blocks = ["w0", "w1", "w2", "w0.profile", "w1.profile", "w2.profile"];
        Assert.Equal(blocks.Order(StringComparer.Ordinal), left.Order(StringComparer.Ordinal));
        var dry = Start(newSession: false, "gc", "--dry-run", "--namespace", ns + ".control", "--json").Finish(Timeout)!;
        AssertExit(0, dry);
        Assert.Equal(6, Json(dry)["garbage"]!.AsArray().Count);
        Assert.Equal(left, SharedMemoryNamespace.List(ns + ".control"));

        var gc = Start(newSession: false, "gc", "--namespace", ns + ".control").Finish(Timeout)!;
        AssertExit(0, gc);
        Assert.Contains("removed 6 leftovers", gc.Output, StringComparison.Ordinal);
        Assert.Empty(SharedMemoryNamespace.List(ns + ".control"));
    }

    /// <summary>The next run on the namespace of a killed one takes it over and removes what the dead one left.</summary>
    [Fact]
    public void Run_AfterARunKilledWithSigkill_TakesItsNamespaceOver_AndRemovesItsLeftovers()
    {
        var ns = OwnNamespace();

        // The killed run has a stream and a worker (control block w3) that the next run does not have.
        var bigger = Document("bigger.yaml", Copy64WithNamespace(ns)
            .Replace("shared_memory:\n", "shared_memory:\n  - {name: extra, shape: [4], dtype: float32}\n", StringComparison.Ordinal)
            .Replace("sinks:\n", "sinks:\n  - {name: extra_sink, kind: null.sink, stream: extra}\n", StringComparison.Ordinal));
        var killed = Start(newSession: false, "run", bigger);
        WaitUntilRunning(killed, ns, workers: 4);
        Assert.Equal(0, Kill(killed.Process.Id, 9));
        Assert.NotNull(killed.Finish(TimeSpan.FromSeconds(5)));
        Assert.Contains("extra", SharedMemoryNamespace.List(ns));
        Assert.Contains("w3", SharedMemoryNamespace.List(ns + ".control"));

        var next = Run(Document("copy.yaml", Copy64WithNamespace(ns)), "--duration", "1", "--json-status");

        AssertExit(0, next);
        Assert.Equal(ns, (string?)Json(next)["namespace"]);
        AssertNothingLeft(ns); // the dead run's stream and control block went with the next build
    }

    public void Dispose()
    {
        foreach (var child in children)
        {
            child.Dispose();
        }

        // Nothing of a failed test may outlive it: its workers, and its own namespaces' regions.
        var namespaces = ownNamespaces.Concat(children.Select(c => c.BenchNamespace)).ToList();
        foreach (var pid in WorkerProcesses(namespaces))
        {
            try
            {
                using var worker = Process.GetProcessById(pid);
                worker.Kill();
                worker.WaitForExit(TimeSpan.FromSeconds(5));
            }
            catch (ArgumentException)
            {
                // Already gone.
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
        }

        foreach (var ns in namespaces.SelectMany(n => new[] { n, n + ".control" }))
        {
            var path = Path.Combine(ShmRoot, ns);
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }

        Directory.Delete(directory, recursive: true);
    }

    private static int Kill(int pid, int signal) => Signals.Kill(pid, signal);

    private string OwnNamespace()
    {
        var ns = "cli-test-" + Guid.NewGuid().ToString("N")[..10];
        ownNamespaces.Add(ns);
        return ns;
    }

    private string Document(string name, string yaml)
    {
        var path = Path.Combine(directory, name);
        File.WriteAllText(path, yaml + "\n");
        return path;
    }

    /// <summary>The copy-64 example (a 1 kHz source, a copy, a null sink) in a namespace of the test's own.</summary>
    /// <summary>A pipeline of one source writing camera_frames at 500 Hz, in namespace <paramref name="ns"/>.</summary>
    private static string Producer(string ns) => $$$"""
        namespace: {{{ns}}}
        shared_memory:
          - {name: camera_frames, shape: [16], dtype: float32}
        sources:
          - {name: camera, kind: synthetic.array, stream: camera_frames, parameters: {pattern: sine, rate_hz: 500}}
        """;

    /// <summary>A copy stage and a sink in namespace <paramref name="ns"/>, attached to camera_frames (of <paramref name="streamNamespace"/> if given).</summary>
    private static string Consumer(string ns, string? streamNamespace)
    {
        var where = streamNamespace is null ? "" : $", namespace: {streamNamespace}";
        return $$$"""
            namespace: {{{ns}}}
            shared_memory:
              - {name: camera_frames, shape: [16], dtype: float32, mode: attach{{{where}}}}
              - {name: out, shape: [16], dtype: float32}
            kernels:
              - {name: copy, kind: cpu.copy, input: camera_frames, output: out}
            sinks:
              - {name: sink, kind: null.sink, stream: out}
            """;
    }

    private static string Copy64WithNamespace(string ns) =>
        $"namespace: {ns}\n" + File.ReadAllText(Path.Combine(AppContext.BaseDirectory, Copy64));

    /// <summary>
    /// shmpipeline's examples/tomographic_ao_stress/pipeline_cpu.yaml, unchanged: eight synchronised cameras
    /// into the fused tomographic controller (a 1 GiB reconstructor) and two tip/tilt loops. Every loop
    /// computes commands and the sinks receive them.
    /// </summary>
    [Fact]
    public void Run_ShmpipelinesTomographicExample_Unchanged_RunsEveryLoop()
    {
        // Its controller takes about 8 s to be ready on a quiet 2-vCPU machine (its streams hold a 4096x65536
        // reconstructor): more than shmpipeline's default 10 s under a loaded test run.
        var result = Run(Path.Combine("examples", "tomographic-ao-stress", "pipeline.yaml"), TimeSpan.FromSeconds(180), "--duration", "6", "--json-status", "--start-timeout", "60");

        AssertExit(0, result);
        var snapshot = Json(result);
        Assert.Equal("tomographic-ao-stress", (string?)snapshot["namespace"]);
        Assert.Empty(snapshot["failures"]!.AsArray());
        foreach (var kernel in new[] { "tomo_controller", "tt_a_controller", "tt_b_controller" })
        {
            Assert.True((long)snapshot["workers"]![kernel]!["frames_processed"]! > 0, $"{kernel} computed nothing");
        }

        foreach (var sink in new[] { "tomo_dm_command_sink", "tt_a_command_sink", "tt_b_command_sink" })
        {
            Assert.True((long)snapshot["sinks"]![sink]!["frames_consumed"]! > 0, $"{sink} received nothing");
        }

        AssertNothingLeft("tomographic-ao-stress");
    }

    private Cli.Result Run(string file, params string[] options) => Run(file, Timeout, options);

    private Cli.Result Run(string file, TimeSpan timeout, params string[] options)
    {
        var child = Start(newSession: false, ["run", file, .. options]);
        return child.Finish(timeout) ?? throw new TimeoutException($"flowline run {file} did not finish within {timeout.TotalSeconds} s");
    }

    /// <summary>Starts the CLI (in a session and process group of its own when <paramref name="newSession"/>).</summary>
    private Child Start(bool newSession, params string[] arguments)
    {
        var info = new ProcessStartInfo(newSession ? "setsid" : DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        if (newSession)
        {
            info.ArgumentList.Add(DotnetHost());
        }

        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Flowline.Cli.dll"));
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        var child = new Child(Process.Start(info)!, string.Join(' ', arguments));
        children.Add(child);
        return child;
    }

    /// <summary>Waits until <paramref name="workers"/> worker processes of <paramref name="ns"/> run, and then a second, so that frames flow.</summary>
    private static void WaitUntilRunning(Child child, string ns, int workers, string? flowing = null)
    {
        var watch = Stopwatch.StartNew();
        while (!(Directory.Exists(Path.Combine(ShmRoot, ns)) && WorkerProcesses([ns]).Count == workers && (flowing is null || HasBeenRead(ns, flowing))))
        {
            if (child.Process.HasExited)
            {
                var early = child.Finish(TimeSpan.FromSeconds(5));
                Assert.Fail($"flowline {child.Arguments} exited with {early?.ExitCode} before it ran: {early?.Error}");
            }

            if (watch.Elapsed > TimeSpan.FromSeconds(20))
            {
                Assert.Fail($"timed out waiting for {workers} workers of namespace {ns}");
            }

            Thread.Sleep(20);
        }

        Thread.Sleep(1000);
    }

    /// <summary>True once a reader of stream <paramref name="name"/> has read a frame (the pipeline delivers end to end).</summary>
    private static bool HasBeenRead(string ns, string name)
    {
        try
        {
            using var stream = Flowline.SharedMemory.SharedStream.Attach(ns, name);
            return stream.GetStatistics().Readers.Any(r => r.FramesRead > 0);
        }
        catch (Flowline.SharedMemory.SharedMemoryException)
        {
            return false; // not created yet
        }
    }

    private static void AssertExit(int expected, Cli.Result result)
    {
        if (result.ExitCode != expected)
        {
            Assert.Fail($"exit code {result.ExitCode}, expected {expected}\nstderr:\n{result.Error}\nstdout:\n{Head(result.Output)}");
        }
    }

    private static JsonNode Json(Cli.Result result)
    {
        try
        {
            return JsonNode.Parse(result.Output) ?? throw new InvalidDataException("null");
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidDataException)
        {
            Assert.Fail($"standard output is not JSON ({e.Message}):\n{Head(result.Output)}\nstderr:\n{result.Error}");
            throw;
        }
    }

    private static string Head(string text) => text.Length > 1500 ? text[..1500] + "..." : text;

    private static void AssertNothingLeft(params string[] namespaces) => Leftovers.AssertNothingLeft(namespaces);

    private static List<int> WorkerProcesses(IEnumerable<string> namespaces) => Leftovers.WorkerProcesses(namespaces);

    private static int ProcessGroupOf(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[2], CultureInfo.InvariantCulture);
    }

    private static string DotnetHost() => Cli.DotnetHost();

    /// <summary>A CLI process and what it prints.</summary>
    private sealed class Child(Process process, string arguments) : IDisposable
    {
        private readonly Task<string> output = process.StandardOutput.ReadToEndAsync();
        private readonly Task<string> error = process.StandardError.ReadToEndAsync();

        public Process Process { get; } = process;

        public string Arguments { get; } = arguments;

        /// <summary>The namespace <c>flowline benchmark</c> runs its pipeline in: <c>bench-PID</c>, whatever the document says.</summary>
        public string BenchNamespace { get; } = $"bench-{process.Id}";

        /// <summary>Waits for it to exit; null if it did not within <paramref name="timeout"/>.</summary>
        public Cli.Result? Finish(TimeSpan timeout)
        {
            if (!Process.WaitForExit(timeout))
            {
                return null;
            }

            // The output ends when the CLI exits (its workers do not hold its standard output).
            if (!Task.WaitAll([output, error], TimeSpan.FromSeconds(10)))
            {
                throw new TimeoutException($"the output of flowline {Arguments} did not end after it exited");
            }

            return new Cli.Result(Process.ExitCode, output.Result, error.Result);
        }

        /// <summary>Ends it (and its workers) if it still runs.</summary>
        public void Dispose()
        {
            try
            {
                if (!Process.HasExited)
                {
                    Process.Kill(entireProcessTree: true);
                    Process.WaitForExit(TimeSpan.FromSeconds(10));
                }
            }
            catch (InvalidOperationException)
            {
                // It has exited meanwhile.
            }

            Process.Dispose();
        }
    }
}
