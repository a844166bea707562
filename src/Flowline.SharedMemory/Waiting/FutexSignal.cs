using System.Runtime.CompilerServices;
using Flowline.SharedMemory.Interop;

namespace Flowline.SharedMemory.Waiting;

/// <summary>
/// A futex word and a count of sleepers on it, in shared memory: the waiter-flag protocol of D3.
/// </summary>
/// <remarks>
/// <para>Waiter: increment the sleeper count (a full fence), read the word, re-check the condition,
/// then sleep while the word still holds what it read. Notifier: change the state the waiter checks,
/// issue a full fence, and only if a sleeper is counted bump the word and wake.</para>
/// <para>Invariant: a notifier that changed the state before a waiter re-checked it is seen by that
/// re-check; a notifier that changed it after sees the sleeper (both sides fence between their store and
/// their load), and its bump makes the waiter's futex call return at once. So no wake-up is lost, and a
/// busy stream makes no system call at all, because nobody sleeps.</para>
/// <para>A waiter with an entry of its own (a reader) also raises a flag there while it is counted, so
/// that whoever reclaims the entry of a process killed in its sleep can take its count back
/// (<see cref="ForgetDeadSleeper"/>); otherwise every later notification would make a system call.</para>
/// </remarks>
internal readonly unsafe struct FutexSignal(int* word, int* sleepers, int* sleepingFlag = null)
{
    /// <summary>Registers as a sleeper and returns the word to pass to <see cref="Sleep"/>; re-check the condition after this.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int BeginSleep()
    {
        Interlocked.Increment(ref *sleepers);
        if (sleepingFlag != null)
        {
            Volatile.Write(ref *sleepingFlag, 1);
        }

        return Volatile.Read(ref *word);
    }

    /// <summary>Sleeps while the word equals <paramref name="observed"/>, for at most <paramref name="slice"/>.</summary>
    public FutexWaitResult Sleep(int observed, TimeSpan slice) => Futex.Wait(word, observed, slice);

    /// <summary>Unregisters as a sleeper.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void EndSleep()
    {
        if (sleepingFlag != null)
        {
            Volatile.Write(ref *sleepingFlag, 0);
        }

        Interlocked.Decrement(ref *sleepers);
    }

    /// <summary>
    /// Takes back the count of a waiter whose process died while sleeping, given its flag; called only by
    /// whoever proved the death and owns the entry now. A process killed between counting itself and
    /// raising its flag leaves one count behind (extra wake-up calls, never a lost wake-up).
    /// </summary>
    public void ForgetDeadSleeper(int* deadSleepingFlag)
    {
        if (Interlocked.Exchange(ref *deadSleepingFlag, 0) == 1)
        {
            Interlocked.Decrement(ref *sleepers);
        }
    }

    /// <summary>Wakes sleepers if there are any. The caller has made its change visible with a full fence.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void NotifyIfSleeping()
    {
        if (Volatile.Read(ref *sleepers) != 0)
        {
            Wake();
        }
    }

    /// <summary>Bumps the word and wakes every sleeper.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void Wake()
    {
        Interlocked.Increment(ref *word);
        Futex.Wake(word);
    }

    /// <summary>The futex word (for waits on several signals at once).</summary>
    public int* Word => word;

    /// <summary>The number of sleepers now.</summary>
    public int Sleepers => Volatile.Read(ref *sleepers);
}
