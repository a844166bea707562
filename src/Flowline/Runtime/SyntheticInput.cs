using Flowline.SharedMemory;
using Flowline.SharedMemory.Diagnostics;

namespace Flowline.Runtime;

/// <summary>
/// A pattern writer started at run time on a stream no configured node writes (shmpipeline's synthetic
/// inputs): a thread of the manager's process, paced at its rate without catch-up bursts, or as fast as
/// possible. A failure only sets <c>last_error</c>; it does not fail the pipeline.
/// </summary>
internal sealed class SyntheticInput : IDisposable
{
    private readonly SharedStream stream;
    private readonly StreamWriter<byte> writer;
    private readonly SyntheticPattern pattern;
    private readonly CancellationTokenSource stop = new();
    private readonly Thread thread;
    private readonly long startedNs = MonotonicClock.NowNs();
    private readonly double startedAt = Clock.UnixNow();
    private long framesWritten;
    private long lastWriteNs;
    private long lastWriteDurationNs;
    private string? lastError;

    public SyntheticInput(string @namespace, string streamName, SyntheticSettings settings, Action<SyntheticInput, Exception> onError)
    {
        StreamName = streamName;
        Settings = settings;
        stream = SharedStream.Attach(@namespace, streamName);
        try
        {
            pattern = new SyntheticPattern(stream.Format, settings);
            writer = stream.OpenWriter<byte>();
        }
        catch
        {
            stream.Dispose();
            throw;
        }

        thread = new Thread(() => Run(onError)) { IsBackground = true, Name = $"flowline-synthetic-{streamName}" };
        thread.Start();
    }

    public string StreamName { get; }

    public SyntheticSettings Settings { get; }

    public bool Alive => thread.IsAlive;

    /// <summary>Stops the writer; true if its thread ended within <paramref name="timeout"/>.</summary>
    public bool Stop(TimeSpan timeout)
    {
        stop.Cancel();
        return thread.Join(timeout);
    }

    /// <summary>shmpipeline's synthetic input status.</summary>
    public SyntheticInputStatus Status()
    {
        var frames = Interlocked.Read(ref framesWritten);
        var elapsed = (MonotonicClock.NowNs() - startedNs) / 1e9;
        var last = Interlocked.Read(ref lastWriteNs);
        return new SyntheticInputStatus
        {
            StreamName = StreamName,
            Pattern = Settings.Pattern,
            RateHz = Settings.RateHz,
            RequestedRateHz = Settings.RateHz,
            Seed = Settings.Seed,
            Amplitude = Settings.Amplitude,
            Offset = Settings.Offset,
            Period = Settings.Period,
            Constant = Settings.Constant,
            ImpulseInterval = Settings.ImpulseInterval,
            FramesWritten = frames,
            Alive = Alive,
            EffectiveRateHz = elapsed > 0 ? Math.Round(frames / elapsed, 3) : 0.0,
            StartedAt = startedAt,
            LastWriteTime = last == 0 ? null : Clock.ToUnix(last),
            LastWriteDurationMs = Math.Round(Interlocked.Read(ref lastWriteDurationNs) / 1e6, 6),
            LastError = Volatile.Read(ref lastError),
        };
    }

    public void Dispose()
    {
        Stop(TimeSpan.FromSeconds(5));
        writer.Dispose();
        stream.Dispose();
        stop.Dispose();
    }

    private void Run(Action<SyntheticInput, Exception> onError)
    {
        var token = stop.Token;
        try
        {
            var pacer = Settings.RateHz is { } rate ? new Pacer(rate, sleep: true, catchUp: false) : null;
            while (!token.IsCancellationRequested)
            {
                pacer?.WaitNext(token);
                var start = MonotonicClock.NowNs();
                Memory<byte> slot;
                while (writer.LookMemory(out slot, WorkerRunner.WaitSlice, token) != WriteStatus.Ok)
                {
                }

                pattern.Next(slot.Span);
                writer.Publish(new FrameStamp(unchecked((ulong)framesWritten), 0));
                var end = MonotonicClock.NowNs();
                Interlocked.Exchange(ref lastWriteDurationNs, end - start);
                Interlocked.Exchange(ref lastWriteNs, end);
                Interlocked.Increment(ref framesWritten);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            Volatile.Write(ref lastError, $"{e.GetType().Name}: {e.Message}");
            onError(this, e);
        }
    }
}

/// <summary>Wall-clock times for status payloads, from the monotonic clock frames are stamped with.</summary>
internal static class Clock
{
    /// <summary>Now, in seconds since the Unix epoch.</summary>
    public static double UnixNow() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

    /// <summary>A <see cref="MonotonicClock"/> time in seconds since the Unix epoch.</summary>
    public static double ToUnix(long monotonicNs) => Math.Round(UnixNow() - ((MonotonicClock.NowNs() - monotonicNs) / 1e9), 6);
}
