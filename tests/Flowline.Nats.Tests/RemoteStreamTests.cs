using Flowline.Documents;
using Flowline.Nats.Tests.Infrastructure;
using Flowline.Runtime;
using Flowline.SharedMemory;

namespace Flowline.Nats.Tests;

/// <summary>Documents that name a stream living on another host: the managers start the bridges and stop them with the pipelines.</summary>
public sealed class RemoteStreamTests : BridgeTest
{
    private readonly DirectoryInfo directory = Directory.CreateTempSubdirectory("flowline-remote-");

    public RemoteStreamTests()
    {
        // Removed last, whatever the test did.
        Own(new Cleanup(directory));
    }

    private string Write(string name, string text)
    {
        var path = Path.Combine(directory.FullName, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public async Task TwoPipelinesJoinedThroughNats_FramesArriveIdenticalEndToEnd()
    {
        using var server = Own(NatsServer.Start(token: "t0ken", jetStream: true));
        Write("nats.token", "t0ken\n");
        var subject = NewSubject();
        var remote = $"""

                    nats: {server.Url}
                    subject: {subject}
                    delivery: lossless
                    token_file: nats.token
            """;

        // Host A: frames written to 'raw' are copied to 'wfs', which is published.
        var hostA = PipelineDocument.Load(Write("a.yaml", $$"""
            kernels:
              - {name: copy, kind: cpu.copy, input: raw, output: wfs, propagate_frame_id: true}
            shared_memory:
              - {name: raw, shape: [256], dtype: int32, delivery: lossless}
              - name: wfs
                shape: [256]
                dtype: int32
                delivery: lossless
                remote: {{remote}}
            """));

        // Host B: 'wfs' is received (no node writes it), then copied to 'out'.
        var hostB = PipelineDocument.Load(Write("b.yaml", $$"""
            kernels:
              - {name: copy, kind: cpu.copy, input: wfs, output: out, propagate_frame_id: true}
            shared_memory:
              - {name: out, shape: [256], dtype: int32, delivery: lossless}
              - name: wfs
                shape: [256]
                dtype: int32
                delivery: lossless
                remote: {{remote}}
            """));
        Assert.Equal(subject, hostB.Spec.FindStream("wfs")!.Remote!.Subject);

        var managerB = Own(new PipelineManager(hostB, new PipelineManagerOptions { Namespace = HostB }));
        var managerA = Own(new PipelineManager(hostA, new PipelineManagerOptions { Namespace = HostA }));
        managerB.Build();
        managerB.Start();
        managerA.Build();
        managerA.Start();

        var raw = Own(SharedStream.Attach(HostA, "raw"));
        var writer = Own(raw.OpenWriter<int>());
        var output = Own(SharedStream.Attach(HostB, "out"));
        var reader = Own(output.OpenReader<int>(new ReaderOptions { Delivery = Delivery.Lossless }));

        const int Frames = 200;
        var writing = OwnAsync(new Background()).Run(token =>
        {
            var frame = new int[256];
            for (var i = 0; i < Frames; i++)
            {
                for (var j = 0; j < frame.Length; j++)
                {
                    frame[j] = (i * 1_000_003) ^ j;
                }

                Assert.Equal(WriteStatus.Ok, writer.Write(frame, new FrameStamp((ulong)(5000 + i), 0), Bound, token));
            }
        });

        long sent = 0, received = 0;
        var buffer = new int[256];
        for (var i = 0; i < Frames; i++)
        {
            Assert.Equal(ReadStatus.Ok, reader.ReadInto(buffer, out var header, Bound));
            Assert.Equal((ulong)(5000 + i), header.FrameId);
            for (var j = 0; j < buffer.Length; j++)
            {
                Assert.Equal((i * 1_000_003) ^ j, buffer[j]);
                sent = (sent * 31) + ((i * 1_000_003) ^ j);
                received = (received * 31) + buffer[j];
            }
        }

        await writing.WaitAsync(Bound);
        Assert.Equal(sent, received);
        Assert.Equal(PipelineState.Running, managerA.State);
        Assert.Equal(PipelineState.Running, managerB.State);

        // The status shows each side's bridge with its figures (the counters follow the frames they count).
        var published = await BridgeFigures(managerA, "wfs", b => b.Frames >= Frames);
        Assert.Equal(("publish", subject, "lossless", true, null), (published.Direction, published.Subject, published.Delivery, published.Running, published.Error));
        Assert.Equal(Frames, published.Frames);
        var subscribed = await BridgeFigures(managerB, "wfs", b => b.Frames >= Frames);
        Assert.Equal(("subscribe", subject, "lossless", true), (subscribed.Direction, subscribed.Subject, subscribed.Delivery, subscribed.Running));
        Assert.Equal((Frames, 0L), (subscribed.Frames, subscribed.FramesLost));
        Assert.Null(managerA.Status().Bridges!.GetValueOrDefault("raw"));

        // Stopping the pipelines stops their bridges: nothing of them is left (teardown checks the namespaces too).
        managerA.Shutdown();
        managerB.Shutdown();
        Assert.False(SharedMemoryNamespace.Exists(HostB, "wfs"));
    }

    /// <summary>The status entry of a stream's bridge once <paramref name="reached"/> holds (bounded by <see cref="BridgeTest.Bound"/>).</summary>
    private static async Task<Flowline.Status.BridgeStatus> BridgeFigures(PipelineManager manager, string stream, Func<Flowline.Status.BridgeStatus, bool> reached)
    {
        using var bound = new CancellationTokenSource(Bound);
        while (true)
        {
            var bridge = manager.Status().Bridges![stream];
            if (reached(bridge) || bound.IsCancellationRequested)
            {
                return bridge;
            }

            await Task.Delay(10, CancellationToken.None);
        }
    }

    [Fact]
    public void RemoteEntry_InlineSecretOrBadUrl_IsAnErrorNamingFieldAndLine()
    {
        var path = Write("bad.yaml", """
            shared_memory:
              - name: wfs
                shape: [4]
                dtype: float32
                remote:
                  nats: http://hub
                  subject: rig1.*
                  token: s3cret
            sinks:
              - {name: sink, kind: null.sink, stream: wfs}
            """);

        var errors = PipelineDocument.CheckFile(path).Errors.Select(e => e.ToString()).ToList();
        Assert.Contains(errors, e => e.Contains("bad.yaml:6:", StringComparison.Ordinal) && e.Contains("shared_memory[0].remote.nats", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("bad.yaml:7:", StringComparison.Ordinal) && e.Contains("remote.subject", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("bad.yaml:8:", StringComparison.Ordinal) && e.Contains("token_file", StringComparison.Ordinal));
    }

    [Fact]
    public void RemoteStream_ServerRefusesOrIsAbsent_StartFailsNamingTheStreamAndLeavesNothing()
    {
        using var server = Own(NatsServer.Start(token: "right"));
        var pipeline = PipelineDocument.Load(Write("p.yaml", $$"""
            shared_memory:
              - name: wfs
                shape: [4]
                dtype: float32
                remote: {nats: '{{server.Url}}', subject: {{NewSubject()}}, token_env: FLOWLINE_TEST_NO_SUCH_VARIABLE }
            sinks:
              - {name: sink, kind: null.sink, stream: wfs}
            """));
        var manager = Own(new PipelineManager(pipeline, new PipelineManagerOptions { Namespace = HostB }));
        manager.Build();
        var error = Assert.Throws<InvalidOperationException>(manager.Start);
        Assert.Contains("stream 'wfs'", error.Message, StringComparison.Ordinal);
        Assert.Contains("FLOWLINE_TEST_NO_SUCH_VARIABLE", error.Message, StringComparison.Ordinal);
        Assert.Equal(PipelineState.Built, manager.State);
    }

    [Fact]
    public async Task ReceivingBridgeFails_IsReportedAndRestartStartsItAgain()
    {
        using var server = Own(NatsServer.Start());
        var subject = NewSubject();
        var pipeline = PipelineDocument.Load(Write("b.yaml", $$"""
            shared_memory:
              - name: wfs
                shape: [4]
                dtype: float32
                remote: {nats: '{{server.Url}}', subject: {{subject}}}
            sinks:
              - {name: sink, kind: null.sink, stream: wfs}
            """));
        var manager = Own(new PipelineManager(pipeline, new PipelineManagerOptions { Namespace = HostB }));
        manager.Build();
        manager.Start();

        // Another host publishes frames of another format on the subject: the receiving bridge stops, and the pipeline fails.
        var options = new NatsBridgeOptions { Url = server.Url, Subject = subject };
        using (var wrong = SharedStream.Open(HostA, "wrong", new FrameFormat(ElementType.Float32, 8)))
        using (var wrongWriter = wrong.OpenWriter<float>())
        {
            await using var rogue = await NatsPublisher.StartAsync(HostA, "wrong", options);
            using var failed = new CancellationTokenSource(Bound);
            while (manager.State != PipelineState.Failed)
            {
                wrongWriter.Write(new float[8], Bound);
                await Task.Delay(20, failed.Token);
            }
        }

        var failure = Assert.Single(manager.Events(), e => e.Type == "bridge_failed");
        Assert.Equal("wfs", (string?)failure.Data["stream"]);
        Assert.Contains("float32[8]", (string?)failure.Data["error"], StringComparison.Ordinal);

        // Restart starts the bridge again: frames of the right format come through.
        manager.Restart();
        Assert.Equal(PipelineState.Running, manager.State);
        var source = Own(SharedStream.Open(HostA, "wfs", new FrameFormat(ElementType.Float32, 4)));
        var writer = Own(source.OpenWriter<float>());
        OwnAsync(await NatsPublisher.StartAsync(HostA, "wfs", options));
        var local = Own(SharedStream.Attach(HostB, "wfs"));
        var reader = Own(local.OpenReader<float>(new ReaderOptions { Delivery = Delivery.Latest }));
        var received = new float[4];
        using var arrived = new CancellationTokenSource(Bound);
        while (reader.ReadInto(received, out _, TimeSpan.FromMilliseconds(50)) != ReadStatus.Ok)
        {
            writer.Write(new float[] { 1, 2, 3, 4 }, Bound);
            await Task.Delay(10, arrived.Token);
        }

        Assert.Equal(new float[] { 1, 2, 3, 4 }, received);
    }

    [Fact]
    public void RemoteEntry_WrittenBack_ReadsTheSame()
    {
        var pipeline = PipelineDocument.Parse("""
            shared_memory:
              - name: wfs
                shape: [4]
                dtype: float32
                remote: {nats: 'tls://hub:4222', subject: rig1.wfs, delivery: lossless, durable: lab1, user: rig1, password_env: RIG1_PASSWORD, tls_ca: ca.pem, tls_required: true}
            sinks:
              - {name: sink, kind: null.sink, stream: wfs}
            """);
        var again = PipelineDocument.Parse(PipelineDocument.ToYaml(pipeline.Spec));
        Assert.Equal(pipeline.Spec.FindStream("wfs")!.Remote, again.Spec.FindStream("wfs")!.Remote);
        Assert.Equal(Delivery.Lossless, again.Spec.FindStream("wfs")!.Remote!.Delivery);
        Assert.Equal("RIG1_PASSWORD", again.Spec.FindStream("wfs")!.Remote!.PasswordEnv);
    }

    private sealed class Cleanup(DirectoryInfo directory) : IDisposable
    {
        public void Dispose() => directory.Delete(recursive: true);
    }
}
