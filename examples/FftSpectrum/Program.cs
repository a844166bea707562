using System.Diagnostics;
using System.Globalization;
using Flowline.Pipelines;

// A DSP pipeline declared in code: "adc" writes 4096-sample float32 frames (a tone plus noise), "fft"
// turns each into a 2049-bin magnitude spectrum (MathNet.Numerics' real FFT), "peak" finds the loudest
// bin and checks it is the tone's. Each task runs in a worker process of its own; streams are lossless,
// so the ADC runs at the pace of the FFT and no frame is lost. Prints throughput and end-to-end latency.
//
//   dotnet run -c Release --project examples/FftSpectrum -- [--frames N] [--rate HZ]
var frames = Option("--frames", 20_000);
var rate = Option("--rate", 0); // 0: as fast as the pipeline goes
Environment.SetEnvironmentVariable(FftTasks.FramesVariable, frames.ToString(CultureInfo.InvariantCulture)); // worker processes inherit it
Environment.SetEnvironmentVariable(FftTasks.RateVariable, rate.ToString(CultureInfo.InvariantCulture));

using var pipe = new Pipeline($"fft-{Environment.ProcessId}");
pipe.AddStream<float>("samples", [FftTasks.Samples], frames: 16)
    .AddStream<float>("spectrum", [FftTasks.Bins], frames: 16);
pipe.AddTask("adc", FftTasks.Adc, writes: new() { ["samples"] = "samples" });
pipe.AddTask("fft", FftTasks.Fft, reads: new() { ["samples"] = "samples" }, writes: new() { ["spectrum"] = "spectrum" });
pipe.AddTask("peak", FftTasks.Peak, reads: new() { ["spectrum"] = "spectrum" });

var clock = Stopwatch.StartNew();
pipe.Run(TimeSpan.FromMinutes(10));
var wall = clock.Elapsed;
var status = pipe.Manager.Status();
var latency = status.Workers["peak"].LatencyUs!;
var fft = status.Workers["fft"];
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"pipeline: {frames} frames in {wall.TotalSeconds:0.00} s including start and stop; FFT stage: {fft.AvgExecUs} µs per frame (mean over the last 1,000)"));
Console.WriteLine($"end-to-end latency (ADC write to spectrum read), last 1,000 frames: p50 {latency.P50} µs, p90 {latency.P90} µs, p99 {latency.P99} µs, max {latency.Max} µs");

static int Option(string name, int fallback)
{
    var args = Environment.GetCommandLineArgs();
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

/// <summary>The example's tasks: static methods, so each runs in a worker process of its own.</summary>
internal static class FftTasks
{
    public const int Samples = 4096;
    public const int Bins = (Samples / 2) + 1;
    public const int ToneBin = 440;
    public const string FramesVariable = "FLOWLINE_FFT_FRAMES";
    public const string RateVariable = "FLOWLINE_FFT_RATE";

    /// <summary>Writes the frames: a tone at <see cref="ToneBin"/> plus seeded noise, then ends the stream.</summary>
    public static void Adc(TaskWriter<float> samples)
    {
        var count = int.Parse(Environment.GetEnvironmentVariable(FramesVariable) ?? "1000", CultureInfo.InvariantCulture);
        var rate = int.Parse(Environment.GetEnvironmentVariable(RateVariable) ?? "0", CultureInfo.InvariantCulture);
        var random = new Random(7);
        var frame = new float[Samples];
        var pacer = Stopwatch.StartNew();
        for (var n = 0; n < count; n++)
        {
            for (var i = 0; i < Samples; i++)
            {
                frame[i] = MathF.Sin(2 * MathF.PI * ToneBin * i / Samples) + (0.1f * (float)(random.NextDouble() - 0.5));
            }

            if (rate > 0)
            {
                while (pacer.Elapsed.TotalSeconds < (double)n / rate)
                {
                    Thread.Sleep(0);
                }
            }

            samples.Write(frame);
        }

        samples.Close();
    }

    /// <summary>Magnitude spectrum of every frame, until the input ends.</summary>
    public static void Fft(TaskReader<float> samples, TaskWriter<float> spectrum)
    {
        var work = new float[Samples + 2];
        var magnitudes = new float[Bins];
        while (samples.ReadInto(work.AsSpan(0, Samples), Timeout.InfiniteTimeSpan))
        {
            MathNet.Numerics.IntegralTransforms.Fourier.ForwardReal(work, Samples, MathNet.Numerics.IntegralTransforms.FourierOptions.NoScaling);
            for (var k = 0; k < Bins; k++)
            {
                magnitudes[k] = MathF.Sqrt((work[2 * k] * work[2 * k]) + (work[(2 * k) + 1] * work[(2 * k) + 1]));
            }

            spectrum.Write(magnitudes);
        }

        spectrum.Close();
    }

    /// <summary>Checks the loudest bin of every spectrum; prints a summary when the input ends.</summary>
    public static void Peak(TaskReader<float> spectrum)
    {
        var bins = new float[Bins];
        long frames = 0, wrong = 0;
        var clock = new Stopwatch();
        while (spectrum.ReadInto(bins, Timeout.InfiniteTimeSpan))
        {
            if (frames++ == 0)
            {
                clock.Start();
            }

            var loudest = 0;
            for (var k = 1; k < Bins; k++)
            {
                if (bins[k] > bins[loudest])
                {
                    loudest = k;
                }
            }

            wrong += loudest == ToneBin ? 0 : 1;
        }

        var seconds = clock.Elapsed.TotalSeconds;
        var perSecond = frames > 1 ? (frames - 1) / seconds : 0;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"peak: {frames} spectra, {wrong} with the loudest bin not at {ToneBin}; {perSecond:0} frames/s, {perSecond * Samples * sizeof(float) / 1e6:0.0} MB/s of samples in, {perSecond * Bins * sizeof(float) / 1e6:0.0} MB/s of spectra out"));
    }
}
