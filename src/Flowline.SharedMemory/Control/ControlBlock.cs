using System.Runtime.CompilerServices;
using System.Text;
using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Regions;
using Flowline.SharedMemory.Waiting;

namespace Flowline.SharedMemory;

/// <summary>What the manager tells a worker to do.</summary>
public enum WorkerCommand
{
    /// <summary>Attach, then wait for <see cref="Run"/> (the start barrier).</summary>
    Hold = 0,

    /// <summary>Compute.</summary>
    Run = 1,

    /// <summary>Finish the current frame and wait.</summary>
    Pause = 2,

    /// <summary>Finish the current frame, let go of everything and exit.</summary>
    Stop = 3,
}

/// <summary>What a worker says it is doing.</summary>
public enum WorkerState
{
    /// <summary>Starting: loading, attaching streams.</summary>
    Starting = 0,

    /// <summary>Attached and waiting at the start barrier.</summary>
    Ready = 1,

    /// <summary>Running.</summary>
    Running = 2,

    /// <summary>Paused by the manager.</summary>
    Paused = 3,

    /// <summary>Stopped cleanly.</summary>
    Stopped = 4,

    /// <summary>Failed; the error is in the control block.</summary>
    Failed = 5,
}

/// <summary>
/// A worker's control block in shared memory (D8): the command the manager gives, the state and
/// heartbeat the worker reports, its metrics under a seqlock, and the text of its last error. The
/// manager reads health and metrics without messaging the worker.
/// </summary>
/// <remarks>
/// <code>
///  offset  size   what                                            written by
///  0       128    region header
///  128     128    command line: i32 command (futex)               manager
///  256     128    status line: i32 state, i32 pid, i32 tid,        worker
///                 i64 heartbeat ns, i64 started ns
///  384     512    metrics: i64 seqlock sequence, then WorkerMetrics worker
///  896     16384  error: i32 length, then UTF-8 text               worker
///  17280   16384  report: i64 seqlock sequence, i32 length, then    worker
///                 UTF-8 JSON (a source's or sink's plugin metrics)
///  33664   65600  request mailbox (<see cref="RequestMailbox"/>)   both
/// </code>
/// </remarks>
public sealed unsafe class ControlBlock : IDisposable
{
    private const int CommandOffset = RegionHeader.Size;
    private const int StatusOffset = CommandOffset + 128;
    private const int StateOffset = StatusOffset;
    private const int PidOffset = StatusOffset + 4;
    private const int TidOffset = StatusOffset + 8;
    private const int HeartbeatOffset = StatusOffset + 16;
    private const int StartedOffset = StatusOffset + 24;
    private const int MetricsOffset = StatusOffset + 128;
    private const int MetricsSequenceOffset = MetricsOffset;
    private const int MetricsDataOffset = MetricsOffset + 8;
    private const int MetricsBytes = 512;
    private const int ErrorOffset = MetricsOffset + MetricsBytes;
    private const int ErrorCapacity = 16_384 - 4;
    private const int ReportOffset = ErrorOffset + 4 + ErrorCapacity;
    private const int ReportCapacity = 16_384 - 16;
    private const int MailboxOffset = ReportOffset + 16 + ReportCapacity;
    private const int TotalBytes = MailboxOffset + RequestMailbox.TotalBytes;

    private static readonly string Signature =
        RegionHeader.Signature + $";control:command@{CommandOffset},status@{StatusOffset},metrics@{MetricsOffset}+{Unsafe.SizeOf<WorkerMetrics>()},error@{ErrorOffset}x{ErrorCapacity},report@{ReportOffset}x{ReportCapacity},mailbox@{MailboxOffset}:{RequestMailbox.SlotCount}x{RequestMailbox.SlotBytes}";

    /// <summary>The layout hash of control blocks.</summary>
    internal static readonly ulong LayoutHash = RegionHeader.Hash(Signature);

    private readonly SharedRegion region;
    private bool disposed;

    static ControlBlock()
    {
        if (Unsafe.SizeOf<WorkerMetrics>() > MetricsBytes - 8)
        {
            throw new InvalidOperationException("WorkerMetrics outgrew its place in the control block");
        }
    }

    private ControlBlock(SharedRegion region)
    {
        this.region = region;
        region.Mapping.AddReference();
        Mailbox = new RequestMailbox(region.Base + MailboxOffset);
    }

    /// <summary>The worker's request/response mailbox (routed requests, issue 12).</summary>
    public RequestMailbox Mailbox { get; }

    /// <summary>The region's name.</summary>
    public string Name => region.Name;

    /// <summary>The command; setting it wakes a worker waiting for a change.</summary>
    public WorkerCommand Command
    {
        get => (WorkerCommand)Volatile.Read(ref Int(CommandOffset));
        set
        {
            Interlocked.Exchange(ref Int(CommandOffset), (int)value);
            Futex.Wake((int*)(region.Base + CommandOffset));
        }
    }

    /// <summary>The state the worker reports.</summary>
    public WorkerState State
    {
        get => (WorkerState)Volatile.Read(ref Int(StateOffset));
        set => Interlocked.Exchange(ref Int(StateOffset), (int)value);
    }

    /// <summary>The worker's process id.</summary>
    public int Pid
    {
        get => Volatile.Read(ref Int(PidOffset));
        set => Volatile.Write(ref Int(PidOffset), value);
    }

    /// <summary>The worker's thread id (its main loop).</summary>
    public int ThreadId
    {
        get => Volatile.Read(ref Int(TidOffset));
        set => Volatile.Write(ref Int(TidOffset), value);
    }

    /// <summary>The last heartbeat (<see cref="MonotonicClock"/>, ns); 0 before the first.</summary>
    public long HeartbeatNs => Volatile.Read(ref Long(HeartbeatOffset));

    /// <summary>When the worker started (ns).</summary>
    public long StartedNs
    {
        get => Volatile.Read(ref Long(StartedOffset));
        set => Volatile.Write(ref Long(StartedOffset), value);
    }

    /// <summary>Creates (or replaces) a control block, holding <see cref="WorkerCommand.Hold"/>.</summary>
    public static ControlBlock Create(string @namespace, string name) => Open(@namespace, name, RegionMode.Replace);

    /// <summary>Attaches to the control block the manager created.</summary>
    public static ControlBlock Attach(string @namespace, string name) => Open(@namespace, name, RegionMode.Attach);

    /// <summary>Records that the worker is alive now.</summary>
    public void Beat() => Volatile.Write(ref Long(HeartbeatOffset), MonotonicClock.NowNs());

    /// <summary>Waits until the command differs from <paramref name="observed"/>; returns the command then (or on timeout).</summary>
    public WorkerCommand WaitForCommandChange(WorkerCommand observed, TimeSpan timeout)
    {
        var word = (int*)(region.Base + CommandOffset);
        var current = Command;
        if (current != observed)
        {
            return current;
        }

        Futex.Wait(word, (int)observed, timeout);
        return Command;
    }

    /// <summary>Wakes whoever waits for a command change, without changing the command.</summary>
    public void WakeCommandWaiters() => Futex.Wake((int*)(region.Base + CommandOffset));

    /// <summary>Publishes metrics under the seqlock (one writer: the worker).</summary>
    public void WriteMetrics(in WorkerMetrics metrics)
    {
        ref var sequence = ref Long(MetricsSequenceOffset);
        var s = Volatile.Read(ref sequence);
        Interlocked.Exchange(ref sequence, s + 1); // odd: writing
        Unsafe.WriteUnaligned(region.Base + MetricsDataOffset, metrics);
        Interlocked.Exchange(ref sequence, s + 2); // even: stable
    }

    /// <summary>Reads the last metrics published; false if the worker kept writing through every retry.</summary>
    public bool TryReadMetrics(out WorkerMetrics metrics)
    {
        ref var sequence = ref Long(MetricsSequenceOffset);
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var before = Volatile.Read(ref sequence);
            if ((before & 1) != 0)
            {
                Waiter.Pause();
                continue;
            }

            metrics = Unsafe.ReadUnaligned<WorkerMetrics>(region.Base + MetricsDataOffset);
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref sequence) == before)
            {
                return true;
            }
        }

        metrics = default;
        return false;
    }

    /// <summary>Records the worker's error (type, message, stack trace), cut to the space there is.</summary>
    public void WriteError(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var length = Math.Min(bytes.Length, ErrorCapacity);
        while (length < bytes.Length && length > 0 && (bytes[length] & 0xC0) == 0x80)
        {
            length--; // cut before a character, not inside one
        }

        bytes.AsSpan(0, length).CopyTo(new Span<byte>(region.Base + ErrorOffset + 4, ErrorCapacity));
        Volatile.Write(ref Int(ErrorOffset), length);
    }

    /// <summary>The error the worker recorded, or null.</summary>
    public string? ReadError()
    {
        var length = Volatile.Read(ref Int(ErrorOffset));
        return length <= 0 ? null : Encoding.UTF8.GetString(new ReadOnlySpan<byte>(region.Base + ErrorOffset + 4, Math.Min(length, ErrorCapacity)));
    }

    /// <summary>
    /// Publishes a short text report (a source's or sink's plugin metrics as JSON) under a seqlock; a
    /// report longer than the space there is (16 KiB) is replaced by an empty one. One writer: the worker.
    /// </summary>
    public void WriteReport(string text)
    {
        var data = new Span<byte>(region.Base + ReportOffset + 16, ReportCapacity);
        ref var sequence = ref Long(ReportOffset);
        var s = Volatile.Read(ref sequence);
        Interlocked.Exchange(ref sequence, s + 1);
        var length = Encoding.UTF8.TryGetBytes(text, data, out var written) ? written : 0;
        Volatile.Write(ref Int(ReportOffset + 8), length);
        Interlocked.Exchange(ref sequence, s + 2);
    }

    /// <summary>The last report published, or null if there is none (or the worker kept writing through every retry).</summary>
    public string? ReadReport()
    {
        ref var sequence = ref Long(ReportOffset);
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var before = Volatile.Read(ref sequence);
            if ((before & 1) != 0)
            {
                Waiter.Pause();
                continue;
            }

            var length = Math.Clamp(Volatile.Read(ref Int(ReportOffset + 8)), 0, ReportCapacity);
            var text = length == 0 ? null : Encoding.UTF8.GetString(new ReadOnlySpan<byte>(region.Base + ReportOffset + 16, length));
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref sequence) == before)
            {
                return text;
            }
        }

        return null;
    }

    /// <summary>Removes the control block's name.</summary>
    public bool Unlink() => region.UnlinkIfSame();

    /// <summary>Lets go of the region.</summary>
    public void Dispose()
    {
        if (!disposed)
        {
            disposed = true;
            region.Mapping.DangerousRelease();
            region.Dispose();
        }
    }

    private static ControlBlock Open(string @namespace, string name, RegionMode mode)
    {
        var region = SharedRegion.Open(new RegionRequest(@namespace, name, mode, RegionKind.ControlBlock, LayoutHash, TotalBytes, (_, _) => { }, null));
        return new ControlBlock(region);
    }

    private ref int Int(int offset) => ref Unsafe.AsRef<int>(region.Base + offset);

    private ref long Long(int offset) => ref Unsafe.AsRef<long>(region.Base + offset);
}
