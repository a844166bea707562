using System.Diagnostics;
using Flowline.SharedMemory;

// A camera-like source writes 120x120 float32 frames at 1 kHz; a reader in another process reads
// them and prints the end-to-end latency. Run with no argument: it starts the reader itself.
const string Namespace = "quickstart";
const string StreamName = "frames";
const int Frames = 2_000;
var format = new FrameFormat(ElementType.Float32, 120, 120);

if (args is ["reader"])
{
    using var stream = SharedStream.Attach(Namespace, StreamName);
    using var reader = stream.OpenReader<float>();
    Console.WriteLine("reader: ready");
    var frame = new float[format.ElementCount];
    var latencies = new List<long>();
    while (reader.ReadInto(frame, out var header, TimeSpan.FromSeconds(10)) == ReadStatus.Ok)
    {
        latencies.Add(MonotonicClock.NowNs() - header.OriginTimestampNs);
    }

    latencies.Sort();
    Console.WriteLine($"reader: {latencies.Count} frames, end-to-end latency p50 {latencies[latencies.Count / 2] / 1e3:0.0} µs, p99 {latencies[latencies.Count * 99 / 100] / 1e3:0.0} µs");
    return 0;
}

// The writer creates the stream, starts the reader, and waits for it to attach before writing.
using (var stream = SharedStream.Open(Namespace, StreamName, format, RegionMode.Replace, new StreamOptions { CapacityFrames = 16 }))
{
    var self = Environment.ProcessPath!;
    var start = Path.GetFileNameWithoutExtension(self) == "dotnet"
        ? new ProcessStartInfo(self, [typeof(FrameFormat).Assembly.Location.Replace("Flowline.SharedMemory.dll", "StreamsQuickstart.dll", StringComparison.Ordinal), "reader"])
        : new ProcessStartInfo(self, ["reader"]);
    start.RedirectStandardOutput = true;
    using var child = Process.Start(start)!;
    Console.WriteLine(child.StandardOutput.ReadLine());

    using var writer = stream.OpenWriter<float>();
    var image = new float[format.ElementCount];
    for (var i = 0; i < Frames; i++)
    {
        image.AsSpan().Fill(i);
        writer.Write(image);
        Thread.Sleep(1);
    }

    writer.Close();
    Console.WriteLine($"writer: {Frames} frames written");
    Console.WriteLine(child.StandardOutput.ReadToEnd().Trim());
    child.WaitForExit();
    stream.Unlink();
    return child.ExitCode;
}
