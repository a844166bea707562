using System.Diagnostics;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// Reads a manager's trace rings with a cursor per worker, as the server's trace stream does (decision 146),
/// and says when to read next: a worker's ring holds <see cref="ProfileBlock.TraceCapacity"/> records, so
/// the interval follows the busiest worker's rate to come back when its ring is about a quarter full,
/// between <see cref="Floor"/> and <see cref="Ceiling"/>. Sooner at once when traffic rises, at most twice
/// as late per read when it falls.
/// </summary>
public sealed class TraceFollower
{
    /// <summary>The shortest interval: at full rate the reader comes every 5 ms.</summary>
    public static readonly TimeSpan Floor = TimeSpan.FromMilliseconds(5);

    /// <summary>The longest interval, while traffic is light (and the interval the stream had before it adapted).</summary>
    public static readonly TimeSpan Ceiling = TimeSpan.FromMilliseconds(100);

    private readonly PipelineManager manager;
    private readonly long[] cursors;
    private readonly long[] before;
    private long lastRead;

    /// <summary>Starts at the ends of <paramref name="manager"/>'s rings: what was recorded before is not read.</summary>
    public TraceFollower(PipelineManager manager)
    {
        ArgumentNullException.ThrowIfNull(manager);
        this.manager = manager;
        cursors = new long[manager.WorkerCount];
        before = new long[cursors.Length];
        manager.ReadTraces(cursors, []);
        lastRead = Stopwatch.GetTimestamp();
    }

    /// <summary>The manager whose rings this follows.</summary>
    public PipelineManager Manager => manager;

    /// <summary>When to read next.</summary>
    public TimeSpan Interval { get; private set; } = Ceiling;

    /// <summary>The most records one worker wrote between the last two reads.</summary>
    public long LastMostWritten { get; private set; }

    /// <summary>Comes back soon: the interval starts again from <see cref="Floor"/> (traces were just switched on, at a rate not known yet).</summary>
    public void Hurry() => Interval = Floor;

    /// <summary>Reads the records written since the last read into <paramref name="into"/>; returns how many were overwritten before they were read.</summary>
    public long Read(List<TraceSample> into)
    {
        Array.Copy(cursors, before, cursors.Length);
        var lost = manager.ReadTraces(cursors, into);
        var now = Stopwatch.GetTimestamp();
        var most = 0L;
        for (var i = 0; i < cursors.Length; i++)
        {
            most = Math.Max(most, cursors[i] - before[i]);
        }

        LastMostWritten = most;
        Interval = Next(Interval, Stopwatch.GetElapsedTime(lastRead, now), most, ProfileBlock.TraceCapacity);
        lastRead = now;
        return lost;
    }

    /// <summary>
    /// The interval after a read that found <paramref name="mostWritten"/> records written by the busiest worker
    /// over <paramref name="elapsed"/> since the previous read, for rings of <paramref name="capacity"/> records:
    /// the time that worker takes to fill a quarter of its ring at that rate, within [<see cref="Floor"/>,
    /// <see cref="Ceiling"/>]; never more than twice <paramref name="current"/> (backing off step by step).
    /// </summary>
    public static TimeSpan Next(TimeSpan current, TimeSpan elapsed, long mostWritten, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        var longer = TimeSpan.FromTicks(Math.Min(Ceiling.Ticks, Math.Max(Floor.Ticks, current.Ticks) * 2));
        if (mostWritten <= 0 || elapsed <= TimeSpan.Zero)
        {
            return longer;
        }

        var ideal = TimeSpan.FromTicks((long)Math.Min(Ceiling.Ticks, elapsed.Ticks * (capacity / 4.0) / mostWritten));
        return ideal < current ? TimeSpan.FromTicks(Math.Max(Floor.Ticks, ideal.Ticks)) : TimeSpan.FromTicks(Math.Min(ideal.Ticks, longer.Ticks));
    }
}
