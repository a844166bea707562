using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Flowline.SharedMemory;

namespace Flowline.Cli.Tests;

/// <summary>Bridge processes killed with SIGKILL and started again, through a real nats-server with JetStream.</summary>
public sealed class BridgeKillTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task LosslessSubscriberProcess_KilledAndRestarted_ResumesWithNoLossAndNoDuplicate()
    {
        var hostA = "flcli-na-" + Guid.NewGuid().ToString("N")[..8];
        var hostB = "flcli-nb-" + Guid.NewGuid().ToString("N")[..8];
        var store = Directory.CreateTempSubdirectory("flowline-nats-");
        var port = FreePort();
        var url = $"nats://127.0.0.1:{port}";
        var subject = "flowline.kill." + Guid.NewGuid().ToString("N")[..8];
        var processes = new List<Process>();
        using var stopWriting = new CancellationTokenSource();
        Task writing = Task.CompletedTask;
        try
        {
            processes.Add(StartServer(port, store.FullName));
            var format = new FrameFormat(ElementType.Int64, 16);
            using var source = SharedStream.Open(hostA, "s", format, options: new StreamOptions { CapacityFrames = 64 });
            using var writer = source.OpenWriter<long>();
            string[] subscribe = ["bridge", "subscribe", "--namespace", hostB, "--stream", "s", "--subject", subject, "--nats", url, "--delivery", "lossless", "--dtype", "int64", "--shape", "16"];
            processes.Add(Cli.Start(null, subscribe));
            processes.Add(Cli.Start(null, "bridge", "publish", "--namespace", hostA, "--stream", "s", "--subject", subject, "--nats", url, "--delivery", "lossless"));
            WaitUntil(() => SharedMemoryNamespace.Exists(hostB, "s") && source.GetStatistics().Readers.Count > 0, "both bridges are up", processes);

            using var remote = SharedStream.Attach(hostB, "s");
            using var reader = remote.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Lossless, WaitThroughWriterChanges = true });
            const int Frames = 300;
            writing = Task.Run(() =>
            {
                var frame = new long[16];
                for (var i = 0; i < Frames; i++)
                {
                    frame.AsSpan().Fill(i * 1_000_003L);
                    Assert.Equal(WriteStatus.Ok, writer.Write(frame, new FrameStamp((ulong)i, 0), Bound, stopWriting.Token));
                }
            });

            var received = new long[16];
            for (var i = 0; i < Frames; i++)
            {
                if (i == 100)
                {
                    // The receiving bridge dies mid-stream, without a chance to clean up; a new one takes over.
                    Assert.Equal(0, Signals.Kill(processes[1].Id, 9));
                    Assert.True(processes[1].WaitForExit(10_000));
                    processes.Add(Cli.Start(null, subscribe));
                }

                var status = reader.ReadInto(received, out var header, Bound);
                Assert.True(status == ReadStatus.Ok, $"frame {i}: {status}");
                Assert.Equal((ulong)i, header.FrameId);
                Assert.All(received, v => Assert.Equal(i * 1_000_003L, v));
            }

            await writing.WaitAsync(Bound);

            // Nothing more: no frame came twice.
            Assert.Equal(ReadStatus.Timeout, reader.ReadInto(received, out _, TimeSpan.FromMilliseconds(500)));
        }
        finally
        {
            stopWriting.Cancel();
            try
            {
                await writing.WaitAsync(Bound);
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException or Xunit.Sdk.XunitException)
            {
                // The test reports its own failure; teardown only waits for the writer to stop.
            }

            foreach (var process in processes)
            {
                if (!process.HasExited)
                {
                    process.Kill();
                    process.WaitForExit(10_000);
                }

                process.Dispose();
            }

            foreach (var ns in new[] { hostA, hostB })
            {
                SharedMemoryNamespace.UnlinkAll(ns);
                var dir = SharedMemoryNamespace.DirectoryOf(ns);
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir, recursive: true);
                }
            }

            store.Delete(recursive: true);
        }
    }

    private static void WaitUntil(Func<bool> condition, string what, List<Process> processes)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(watch.Elapsed < Bound, $"timed out waiting until {what}");
            Assert.True(processes.TrueForAll(p => !p.HasExited), $"a process exited while waiting until {what}");
            Thread.Sleep(20);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>A nats-server with JetStream on <paramref name="port"/>; the caller kills it.</summary>
    private static Process StartServer(int port, string storeDirectory)
    {
        var path = new[] { "/usr/sbin/nats-server", "/usr/bin/nats-server" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("nats-server is not installed (Debian: apt-get install nats-server); .ci/run installs it");
        var info = new ProcessStartInfo(path) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var argument in new[] { "-a", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-js", "-sd", storeDirectory })
        {
            info.ArgumentList.Add(argument);
        }

        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var watch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, port);
                return process;
            }
            catch (SocketException) when (watch.Elapsed < TimeSpan.FromSeconds(20) && !process.HasExited)
            {
                Thread.Sleep(20);
            }
        }
    }
}
