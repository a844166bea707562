using System.Runtime.CompilerServices;
using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Liveness;
using Flowline.SharedMemory.Regions;
using Flowline.SharedMemory.Waiting;

namespace Flowline.SharedMemory;

/// <summary>
/// A process-shared event (PYTHUSA's control switches): a set flag that waiters wait for, and a count of
/// pending activations that consumers take one at a time.
/// </summary>
/// <remarks>
/// <code>
///  offset  size  what
///  0       128   region header (RegionHeader)
///  128     128   event line
///                  +0 u32 state: bit 0 = set, bits 1..31 = pending activations
///                  +4 i32 change word: futex, bumped to wake waiters
///                  +8 i32 sleeping waiters
/// </code>
/// <para>Semantics follow PYTHUSA's <c>WorkerEvent</c>: <see cref="Signal"/> adds an activation and sets the
/// flag; <see cref="Reset"/> takes one activation and clears the flag when none are left (or clears it if
/// there were none); <see cref="Wait"/> waits for the flag without consuming; <see cref="WaitActivation"/>
/// waits for an activation and takes it. <see cref="Set"/> sets the flag without adding an activation.</para>
/// <para>All operations are lock-free compare-and-swap loops on one word, safe from any thread of any process.</para>
/// </remarks>
public sealed unsafe class SharedEvent : IDisposable
{
    private const int EventLineOffset = RegionHeader.Size;
    private const int StateOffset = EventLineOffset + 0;
    private const int ChangeOffset = EventLineOffset + 4;
    private const int SleepersOffset = EventLineOffset + 8;
    private const int TotalBytes = EventLineOffset + 128;
    private const uint SetBit = 1;
    private const uint MaxCount = (uint.MaxValue >> 1) - 1;

    private static readonly string Signature = RegionHeader.Signature + $";event:state@{StateOffset},change@{ChangeOffset},sleepers@{SleepersOffset},total={TotalBytes}";

    /// <summary>The layout hash recorded in every event region's header.</summary>
    internal static readonly ulong LayoutHash = RegionHeader.Hash(Signature);

    private readonly SharedRegion region;
    private readonly FutexSignal signal;
    private bool disposed;

    private SharedEvent(SharedRegion region)
    {
        this.region = region;
        region.Mapping.AddReference();
        signal = new FutexSignal((int*)(region.Base + ChangeOffset), (int*)(region.Base + SleepersOffset));
    }

    /// <summary>The namespace the event lives in.</summary>
    public string Namespace => region.Namespace;

    /// <summary>The event's name.</summary>
    public string Name => region.Name;

    /// <summary>True if this open created the region.</summary>
    public bool Created => region.Created;

    /// <summary>The process that created the region.</summary>
    public ProcessIdentity Owner => region.Owner;

    /// <summary>True while the flag is set.</summary>
    public bool IsSet => (State & SetBit) != 0;

    /// <summary>Activations signalled and not yet taken.</summary>
    public int PendingActivations => (int)(State >> 1);

    private ref uint StateWord => ref Unsafe.AsRef<uint>(region.Base + StateOffset);

    private uint State => Volatile.Read(ref StateWord);

    /// <summary>
    /// Opens an event. A created event starts set with one pending activation when
    /// <paramref name="initialState"/> is true (PYTHUSA's <c>initial_state</c>), clear otherwise.
    /// </summary>
    public static SharedEvent Open(string @namespace, string name, RegionMode mode = RegionMode.CreateOrAttach, bool initialState = false)
    {
        var request = new RegionRequest(
            @namespace,
            name,
            mode,
            RegionKind.Event,
            LayoutHash,
            TotalBytes,
            (b, _) => Ordered.PutUInt(b + StateOffset, initialState ? (1u << 1) | SetBit : 0),
            null);
        var region = SharedRegion.Open(request);
        try
        {
            return new SharedEvent(region);
        }
        finally
        {
            region.Dispose(); // The event holds its own reference to the mapping.
        }
    }

    /// <summary>Sets the flag without adding an activation.</summary>
    public void Set() => Update(static s => s | SetBit);

    /// <summary>Adds one pending activation and sets the flag.</summary>
    public void Signal() => Update(static s => (Math.Min((s >> 1) + 1, MaxCount) << 1) | SetBit);

    /// <summary>Takes one pending activation if there is one; clears the flag when none are left.</summary>
    public void Reset() => Update(static s => TakeOne(s));

    /// <summary>Clears the flag and every pending activation.</summary>
    public void Clear() => Update(static _ => 0);

    /// <summary>Waits until the flag is set, without consuming anything. Returns false on timeout.</summary>
    public bool Wait(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var condition = new FlagCondition(this);
        return Waiter.Wait(ref condition, signal, WaitPolicy.Block, TimeSpan.Zero, timeout, cancellationToken);
    }

    /// <summary>Waits for a pending activation and takes it (the consumer side of <see cref="Signal"/>). Returns false on timeout.</summary>
    public bool WaitActivation(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var condition = new ActivationCondition(this);
        return Waiter.Wait(ref condition, signal, WaitPolicy.Block, TimeSpan.Zero, timeout, cancellationToken);
    }

    /// <summary>Takes a pending activation if there is one, without waiting.</summary>
    public bool TryTakeActivation()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ref var word = ref StateWord;
        while (true)
        {
            var s = Volatile.Read(ref word);
            if ((s >> 1) == 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref word, TakeOne(s), s) == s)
            {
                signal.NotifyIfSleeping();
                return true;
            }
        }
    }

    /// <summary>Removes the event's name if it still names this region. Returns true if removed.</summary>
    public bool Unlink()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        return region.UnlinkIfSame();
    }

    /// <summary>Lets go of the region.</summary>
    public void Dispose()
    {
        if (!disposed)
        {
            disposed = true;
            region.Mapping.DangerousRelease();
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"event '{region.DisplayName}' ({(IsSet ? "set" : "clear")}, {PendingActivations} pending)";

    private static uint TakeOne(uint s)
    {
        var count = s >> 1;
        if (count == 0)
        {
            return 0;
        }

        count--;
        return (count << 1) | (count > 0 ? SetBit : 0);
    }

    private void Update(Func<uint, uint> change)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ref var word = ref StateWord;
        while (true)
        {
            var s = Volatile.Read(ref word);
            var updated = change(s);
            if (updated == s)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref word, updated, s) == s)
            {
                signal.NotifyIfSleeping();
                return;
            }
        }
    }

    private readonly struct FlagCondition(SharedEvent owner) : IWaitCondition
    {
        public bool IsSatisfied() => owner.IsSet;

        public void CheckPeers()
        {
        }
    }

    private readonly struct ActivationCondition(SharedEvent owner) : IWaitCondition
    {
        public bool IsSatisfied() => owner.TryTakeActivation();

        public void CheckPeers()
        {
        }
    }
}
