using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Flowline.Nats;
using Flowline.SharedMemory;
using Flowline.SharedMemory.Diagnostics;

namespace Flowline.Cli.Commands;

/// <summary>
/// <c>flowline bench nats</c>: frames/s, bytes/s and one-way latency of the NATS bridges through a
/// loopback nats-server that the command starts, beside the same frames over a plain loopback TCP
/// socket measured in the same run (the limit). docs/performance.md reports it.
/// </summary>
internal static class BenchNatsCommand
{
    private static readonly int[] Sizes = [64, 16 * 1024, 1024 * 1024];

    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "The nats-server executable to start on a free loopback port.", DefaultValueFactory = _ => "nats-server" };
        var seconds = new Option<double>("--latency-seconds") { Description = "How long each latency measurement paces frames at 1 kHz.", DefaultValueFactory = _ => 2.0 };
        var megabytes = new Option<int>("--megabytes") { Description = "MiB of frames in each throughput run (at least 500 frames).", DefaultValueFactory = _ => 64 };
        var command = new Command("nats", "Frames/s, bytes/s and one-way latency (p50/p99 at 1 kHz) of the NATS bridges (latest and lossless) through a loopback nats-server, beside a plain loopback TCP socket.")
        {
            server,
            seconds,
            megabytes,
        };
        command.SetAction(parse =>
        {
            if (parse.GetValue(megabytes) < 1 || parse.GetValue(seconds) <= 0)
            {
                Console.Error.WriteLine("flowline bench nats: --megabytes and --latency-seconds must be positive");
                return ExitCodes.Failed;
            }

            try
            {
                var bytes = (long)parse.GetValue(megabytes) << 20;
                using var nats = LocalServer.Start(parse.GetValue(server)!);
                Console.WriteLine($"nats-server on {nats.Url}; {Environment.ProcessorCount} CPUs, load average {LoadAverage()}");
                Console.WriteLine("size      transport             frames/s      MB/s   lost   | latency at 1 kHz  p50 us    p99 us");
                foreach (var size in Sizes)
                {
                    var tcp = TcpThroughput(size, bytes);
                    var tcpLatency = TcpLatency(size, parse.GetValue(seconds));
                    Row(size, "tcp (limit)", tcp.Rate, 0, tcpLatency);
                    // Lossless twice: with the receiver's default window (1, exact after a crash) and with a window of 64.
                    foreach (var (delivery, ackWindow, name) in Cases)
                    {
                        var rate = NatsThroughput(nats.Url, size, delivery, ackWindow, bytes);
                        var latency = NatsLatency(nats.Url, size, delivery, ackWindow, parse.GetValue(seconds));
                        Row(size, name, rate.Rate, rate.Lost, latency);
                    }
                }

                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is NatsBridgeException or SharedMemoryException or InvalidOperationException or IOException or SocketException or System.ComponentModel.Win32Exception)
            {
                Console.Error.WriteLine($"flowline bench nats: {e.Message}");
                return ExitCodes.Failed;
            }
        });
        return command;
    }

    private static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

    private static void Row(int size, string transport, double rate, long lost, (double P50, double P99) latency) =>
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"{SizeName(size),-9} {transport,-18} {rate,12:N0} {rate * size / 1e6,9:N1} {lost,6}   |                  {latency.P50,7:N0}   {latency.P99,7:N0}"));

    private static string SizeName(int size) => size >= 1 << 20 ? $"{size >> 20} MiB" : size >= 1024 ? $"{size >> 10} KiB" : $"{size} B";

    /// <summary>The bridges measured: latest, and lossless with the receiver's window at its default (1) and at 64 (the publisher's is 64).</summary>
    private static readonly (Delivery Delivery, int AckWindow, string Name)[] Cases =
    [
        (Delivery.Latest, 1, "nats latest"),
        (Delivery.Lossless, 1, "nats lossless"),
        (Delivery.Lossless, 64, "nats lossless r64"),
    ];

    /// <summary>Frames for a throughput run: <paramref name="bytes"/> of frames, at least 500 and at most 50,000 frames.</summary>
    private static int FramesFor(int size, long bytes) => (int)Math.Clamp(bytes / size, 500, 50_000);

    /// <summary>The rate at which frames written on host A are written on host B: the writer runs flat out, the publisher reads every frame.</summary>
    private static (double Rate, long Lost) NatsThroughput(string url, int size, Delivery delivery, int ackWindow, long bytes)
    {
        var frames = FramesFor(size, bytes);
        using var pair = BridgePair.Start(url, size, delivery, ackWindow, pendingFrames: 8192);
        var frame = new byte[size];
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < frames; i++)
        {
            frame[0] = (byte)i;
            if (pair.Writer.Write(frame, new FrameStamp((ulong)i, 0), TimeSpan.FromSeconds(30)) != WriteStatus.Ok)
            {
                throw new InvalidOperationException("the bench's writer could not write");
            }
        }

        // Done when every frame is written on host B or counted lost, or when nothing has moved for 2 s.
        var last = -1L;
        var still = Stopwatch.StartNew();
        while (pair.Subscriber.FramesWritten + pair.Subscriber.FramesLost < frames && still.Elapsed < TimeSpan.FromSeconds(2))
        {
            var now = pair.Subscriber.FramesWritten;
            if (now != last)
            {
                last = now;
                still.Restart();
            }

            Thread.Sleep(1);
        }

        var elapsed = watch.Elapsed.TotalSeconds - (still.Elapsed.TotalSeconds >= 2 ? 2 : 0);
        return (pair.Subscriber.FramesWritten / elapsed, frames - pair.Subscriber.FramesWritten);
    }

    /// <summary>One frame every millisecond on host A, read on host B: now minus the frame's origin, moved onto B's clock by the bridge.</summary>
    private static (double P50, double P99) NatsLatency(string url, int size, Delivery delivery, int ackWindow, double seconds)
    {
        using var pair = BridgePair.Start(url, size, delivery, ackWindow, pendingFrames: 64);
        using var reader = pair.Remote.OpenReader<byte>(new ReaderOptions { Delivery = Delivery.Lossless });
        var frames = (int)(seconds * 1000);
        var samples = new List<double>(frames);
        var frame = new byte[size];
        var received = new byte[size];
        var reading = Task.Run(() =>
        {
            while (samples.Count < frames && reader.ReadInto(received, out var header, TimeSpan.FromSeconds(5)) == ReadStatus.Ok)
            {
                samples.Add((MonotonicClock.NowNs() - header.OriginTimestampNs) / 1e3);
            }
        });
        var pacer = new Pacer(1000);
        for (var i = 0; i < frames && !reading.IsCompleted; i++)
        {
            pacer.WaitNext();
            pair.Writer.Write(frame, new FrameStamp((ulong)i, 0), TimeSpan.FromSeconds(5));
        }

        reading.Wait(TimeSpan.FromSeconds(10));
        return Percentiles(samples);
    }

    private static (double P50, double P99) Percentiles(List<double> samples)
    {
        if (samples.Count == 0)
        {
            return (double.NaN, double.NaN);
        }

        samples.Sort();
        return (samples[samples.Count / 2], samples[Math.Min(samples.Count - 1, (int)(samples.Count * 0.99))]);
    }

    /// <summary>The same frames (the bridge's 96-byte prefix and the payload) over one loopback TCP connection, flat out.</summary>
    private static (double Rate, long Lost) TcpThroughput(int size, long bytes)
    {
        var frames = FramesFor(size, bytes);
        var message = new byte[FrameEnvelopeBytes + size];
        using var link = TcpLink.Open();
        var watch = Stopwatch.StartNew();
        var receiving = Task.Run(() =>
        {
            var buffer = new byte[message.Length];
            for (var i = 0; i < frames; i++)
            {
                ReceiveExactly(link.Receiver, buffer);
            }
        });
        for (var i = 0; i < frames; i++)
        {
            link.Sender.Send(message);
        }

        receiving.Wait();
        return (frames / watch.Elapsed.TotalSeconds, 0);
    }

    private static (double P50, double P99) TcpLatency(int size, double seconds)
    {
        var frames = (int)(seconds * 1000);
        var message = new byte[FrameEnvelopeBytes + size];
        using var link = TcpLink.Open();
        var samples = new List<double>(frames);
        var receiving = Task.Run(() =>
        {
            var buffer = new byte[message.Length];
            for (var i = 0; i < frames; i++)
            {
                ReceiveExactly(link.Receiver, buffer);
                samples.Add((MonotonicClock.NowNs() - BitConverter.ToInt64(buffer)) / 1e3);
            }
        });
        var pacer = new Pacer(1000);
        for (var i = 0; i < frames; i++)
        {
            pacer.WaitNext();
            BitConverter.TryWriteBytes(message, MonotonicClock.NowNs());
            link.Sender.Send(message);
        }

        receiving.Wait();
        return Percentiles(samples);
    }

    private const int FrameEnvelopeBytes = 96;

    private static void ReceiveExactly(Socket socket, byte[] buffer)
    {
        for (var got = 0; got < buffer.Length;)
        {
            var n = socket.Receive(buffer, got, buffer.Length - got, SocketFlags.None);
            if (n == 0)
            {
                throw new IOException("the TCP peer closed the connection");
            }

            got += n;
        }
    }

    /// <summary>A publisher on host A and a subscriber on host B (two namespaces of their own), removed with everything they made.</summary>
    private sealed class BridgePair : IDisposable
    {
        private readonly string hostA = "bench-nats-a-" + Guid.NewGuid().ToString("N")[..8];
        private readonly string hostB = "bench-nats-b-" + Guid.NewGuid().ToString("N")[..8];
        private SharedStream? source;

        public StreamWriter<byte> Writer { get; private set; } = null!;

        public NatsPublisher Publisher { get; private set; } = null!;

        public NatsSubscriber Subscriber { get; private set; } = null!;

        public SharedStream Remote { get; private set; } = null!;

        public static BridgePair Start(string url, int size, Delivery delivery, int ackWindow, int pendingFrames)
        {
            var pair = new BridgePair();
            try
            {
                var format = new FrameFormat(ElementType.UInt8, size);
                var options = new NatsBridgeOptions { Url = url, Subject = "bench." + Guid.NewGuid().ToString("N")[..12], Delivery = delivery, JetStreamMaxBytes = 1L << 30 };
                pair.source = SharedStream.Open(pair.hostA, "s", format, options: new StreamOptions { CapacityFrames = 64 });
                pair.Writer = pair.source.OpenWriter<byte>();
                pair.Subscriber = NatsSubscriber.StartAsync(pair.hostB, "s", options, new NatsSubscriberOptions { Format = format, PendingFrames = pendingFrames, AckWindow = ackWindow, StreamOptions = new StreamOptions { CapacityFrames = 64 } }).GetAwaiter().GetResult();
                pair.Remote = SharedStream.Attach(pair.hostB, "s");
                pair.Publisher = NatsPublisher.StartAsync(pair.hostA, "s", options, Delivery.Lossless).GetAwaiter().GetResult();
                return pair;
            }
            catch
            {
                pair.Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            Publisher?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            Subscriber?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            Remote?.Dispose();
            Writer?.Dispose();
            source?.Dispose();
            foreach (var ns in new[] { hostA, hostB })
            {
                SharedMemoryNamespace.UnlinkAll(ns);
                var dir = SharedMemoryNamespace.DirectoryOf(ns);
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir, recursive: true);
                }
            }
        }
    }

    /// <summary>One loopback TCP connection, Nagle off.</summary>
    private sealed class TcpLink : IDisposable
    {
        private TcpLink(Socket sender, Socket receiver)
        {
            Sender = sender;
            Receiver = receiver;
        }

        public Socket Sender { get; }

        public Socket Receiver { get; }

        public static TcpLink Open()
        {
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(1);
            var sender = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            sender.Connect(listener.LocalEndPoint!);
            var receiver = listener.Accept();
            receiver.NoDelay = true;
            return new TcpLink(sender, receiver);
        }

        public void Dispose()
        {
            Sender.Dispose();
            Receiver.Dispose();
        }
    }

    /// <summary>A nats-server on a free loopback port, with JetStream in a temporary directory and a max_payload for 1 MiB frames; killed and removed at the end.</summary>
    private sealed class LocalServer : IDisposable
    {
        private readonly Process process;
        private readonly string directory;

        private LocalServer(Process process, string directory, int port)
        {
            this.process = process;
            this.directory = directory;
            Url = $"nats://127.0.0.1:{port}";
        }

        public string Url { get; }

        public static LocalServer Start(string executable)
        {
            var directory = Directory.CreateTempSubdirectory("flowline-bench-nats-").FullName;
            int port;
            using (var probe = new TcpListener(IPAddress.Loopback, 0))
            {
                probe.Start();
                port = ((IPEndPoint)probe.LocalEndpoint).Port;
            }

            var config = Path.Combine(directory, "server.conf");
            File.WriteAllText(config, $"listen: 127.0.0.1:{port}\nmax_payload: 4MB\njetstream {{ store_dir: \"{Path.Combine(directory, "store")}\" }}\n");
            var info = new ProcessStartInfo(executable) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(config);
            Process process;
            try
            {
                process = Process.Start(info)!;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                Directory.Delete(directory, recursive: true);
                throw new InvalidOperationException($"cannot start '{executable}': install nats-server (Debian: apt-get install nats-server) or give --server");
            }

            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var server = new LocalServer(process, directory, port);
            var watch = Stopwatch.StartNew();
            while (true)
            {
                try
                {
                    using var client = new TcpClient();
                    client.Connect(IPAddress.Loopback, port);
                    return server;
                }
                catch (SocketException) when (watch.Elapsed < TimeSpan.FromSeconds(10) && !process.HasExited)
                {
                    Thread.Sleep(20);
                }
                catch
                {
                    server.Dispose();
                    throw new InvalidOperationException($"nats-server did not listen on port {port}");
                }
            }
        }

        public void Dispose()
        {
            if (!process.HasExited)
            {
                process.Kill();
                process.WaitForExit(10_000);
            }

            process.Dispose();
            Directory.Delete(directory, recursive: true);
        }
    }
}
