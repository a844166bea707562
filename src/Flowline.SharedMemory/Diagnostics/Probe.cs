using System.Diagnostics;
using System.Runtime.CompilerServices;
using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Regions;
using Flowline.SharedMemory.Waiting;

namespace Flowline.SharedMemory.Diagnostics;

/// <summary>
/// Two counters on separate cache lines of a shared region, bounced between two processes to measure
/// the machine's floor: a cache-line hand-off when both sides spin, a wake-up when both sides sleep on
/// futexes. Stream latencies are reported beside these limits.
/// </summary>
/// <remarks>
/// <code>
///  0     128   region header
///  128   128   ping line: i32 counter (futex word), then at +8 the i64 send time (ns) of that ping
///  256   128   pong line: i32 counter (futex word)
/// </code>
/// </remarks>
internal sealed unsafe class Probe : IDisposable
{
    private const int PingOffset = RegionHeader.Size;
    private const int PingTimeOffset = PingOffset + 8;
    private const int PongOffset = PingOffset + 128;
    private const int TotalBytes = PongOffset + 128;
    private static readonly ulong LayoutHash = RegionHeader.Hash(RegionHeader.Signature + $";probe:ping@{PingOffset},time@{PingTimeOffset},pong@{PongOffset},total={TotalBytes}");
    private static readonly TimeSpan Slice = TimeSpan.FromMilliseconds(100);

    private readonly SharedRegion region;

    private Probe(SharedRegion region) => this.region = region;

    private int* Ping => (int*)(region.Base + PingOffset);

    private int* Pong => (int*)(region.Base + PongOffset);

    public static Probe Open(string @namespace, string name, RegionMode mode) =>
        new(SharedRegion.Open(new RegionRequest(@namespace, name, mode, RegionKind.Probe, LayoutHash, TotalBytes, (_, _) => { }, null)));

    /// <summary>
    /// The pinging side: sends <paramref name="rounds"/> pings and returns each round trip's half, in ns.
    /// The other process runs <see cref="RunPonger"/> with the same arguments.
    /// </summary>
    public long[] RunPinger(int rounds, bool futex, TimeSpan timeout)
    {
        var samples = new long[rounds];
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        for (var i = 1; i <= rounds; i++)
        {
            var start = Stopwatch.GetTimestamp();
            Volatile.Write(ref *Ping, i);
            if (futex)
            {
                Futex.Wake(Ping);
            }

            AwaitValue(Pong, i, futex, deadline);
            samples[i - 1] = (long)((Stopwatch.GetTimestamp() - start) * (1e9 / Stopwatch.Frequency) / 2);
        }

        return samples;
    }

    /// <summary>The answering side of <see cref="RunPinger"/>.</summary>
    public void RunPonger(int rounds, bool futex, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        for (var i = 1; i <= rounds; i++)
        {
            AwaitValue(Ping, i, futex, deadline);
            Volatile.Write(ref *Pong, i);
            if (futex)
            {
                Futex.Wake(Pong);
            }
        }
    }

    /// <summary>
    /// Sends <paramref name="count"/> timed pings at <paramref name="rateHz"/>, sleeping between them, each
    /// with a futex wake: the other process (<see cref="ReceiveWakes"/>) measures how late it wakes.
    /// </summary>
    public void SendWakes(int count, double rateHz)
    {
        var pacer = new Pacer(rateHz);
        for (var i = 1; i <= count; i++)
        {
            pacer.WaitNext();
            Ordered.PutLongOrdered(region.Base + PingTimeOffset, MonotonicClock.NowNs());
            Volatile.Write(ref *Ping, i);
            Futex.Wake(Ping);
        }
    }

    /// <summary>
    /// Sleeps on the ping futex until the last of <paramref name="count"/> pings, and returns for each ping
    /// it saw how long after its send time this process woke (ns). A ping overtaken by the next is not seen.
    /// </summary>
    public long[] ReceiveWakes(int count, TimeSpan timeout)
    {
        var samples = new long[count];
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var last = 0;
        var taken = 0;
        while (last < count)
        {
            var seen = Volatile.Read(ref *Ping);
            if (seen != last)
            {
                samples[taken++] = MonotonicClock.NowNs() - Ordered.GetLongVolatile(region.Base + PingTimeOffset);
                last = seen;
                continue;
            }

            Futex.Wait(Ping, seen, Slice);
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException("the other side of the probe stopped sending.");
            }
        }

        return samples[..taken];
    }

    public bool Unlink() => region.UnlinkIfSame();

    public void Dispose() => region.Dispose();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AwaitValue(int* word, int value, bool futex, long deadline)
    {
        var spins = 0;
        int seen;
        while ((seen = Volatile.Read(ref *word)) != value)
        {
            if (futex)
            {
                Futex.Wait(word, seen, Slice);
            }
            else
            {
                Waiter.Pause();
            }

            if ((futex || (++spins & 0xFFF) == 0) && Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException("the other side of the probe stopped answering.");
            }
        }
    }
}
