using System.Diagnostics;

namespace Flowline.SharedMemory;

/// <summary>The header every frame carries in its slot.</summary>
/// <param name="Sequence">The frame's position in the stream: 0 for the first frame the stream ever carried.</param>
/// <param name="FrameId">An identifier the writer chose (by default the sequence), carried downstream to match frames.</param>
/// <param name="PublishTimestampNs">When the writer published the frame (<see cref="MonotonicClock"/>, ns).</param>
/// <param name="OriginTimestampNs">When the data this frame was computed from entered the pipeline (ns): end-to-end latency is now minus this.</param>
public readonly record struct FrameHeader(long Sequence, ulong FrameId, long PublishTimestampNs, long OriginTimestampNs);

/// <summary>What a writer stamps on a frame besides its sequence and publish time.</summary>
/// <param name="FrameId">The frame id to publish.</param>
/// <param name="OriginTimestampNs">The origin timestamp (ns, <see cref="MonotonicClock"/>); 0 means "now", for frames that enter the pipeline here.</param>
public readonly record struct FrameStamp(ulong FrameId, long OriginTimestampNs)
{
    /// <summary>Carries the id and origin of the frame this one was computed from.</summary>
    public static FrameStamp From(in FrameHeader input) => new(input.FrameId, input.OriginTimestampNs);
}

/// <summary>The clock of frame timestamps: <c>CLOCK_MONOTONIC</c> in nanoseconds, the same in every process of the machine.</summary>
public static class MonotonicClock
{
    /// <summary>The clock reading <paramref name="timeout"/> from now: <see cref="long.MaxValue"/> (never) for null, <see cref="Timeout.InfiniteTimeSpan"/> or anything beyond a century; now for a negative timeout.</summary>
    public static long DeadlineNs(TimeSpan? timeout) => timeout switch
    {
        null => long.MaxValue,
        { } t when t == Timeout.InfiniteTimeSpan || t > TimeSpan.FromDays(36_500) => long.MaxValue,
        { } t when t <= TimeSpan.Zero => NowNs(),
        { } t => NowNs() + (long)(t.TotalSeconds * 1e9),
    };

    private static readonly double NsPerTick = 1e9 / Stopwatch.Frequency;

    /// <summary>Now, in nanoseconds.</summary>
    public static long NowNs() => Stopwatch.Frequency == 1_000_000_000 ? Stopwatch.GetTimestamp() : (long)(Stopwatch.GetTimestamp() * NsPerTick);
}
