using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace Flowline.SharedMemory.Waiting;

/// <summary>A condition a <see cref="Waiter"/> waits for.</summary>
internal interface IWaitCondition
{
    /// <summary>True when the wait is over: the awaited thing happened, or a terminal state (end of stream) was reached.</summary>
    bool IsSatisfied();

    /// <summary>Called every <see cref="WaitTuning.LivenessInterval"/> while waiting: looks for dead peers.</summary>
    void CheckPeers();
}

/// <summary>What a sleeping <see cref="Waiter"/> sleeps on: one futex signal, or several at once.</summary>
internal interface ISleepSignal
{
    /// <summary>Registers as a sleeper on every signal (a full fence) and reads their words; the condition is re-checked after this.</summary>
    void BeginSleep();

    /// <summary>Sleeps while every word holds what <see cref="BeginSleep"/> read, for at most <paramref name="slice"/>.</summary>
    void Sleep(TimeSpan slice);

    /// <summary>Unregisters as a sleeper.</summary>
    void EndSleep();

    /// <summary>The signal a cancellation bumps, which ends a sleep at once.</summary>
    FutexSignal CancelSignal { get; }
}

/// <summary>One futex signal to sleep on.</summary>
internal struct OneSignal(FutexSignal signal) : ISleepSignal
{
    private int observed;

    public void BeginSleep() => observed = signal.BeginSleep();

    public readonly void Sleep(TimeSpan slice) => signal.Sleep(observed, slice);

    public readonly void EndSleep() => signal.EndSleep();

    public readonly FutexSignal CancelSignal => signal;
}

/// <summary>
/// The one wait loop of the shared-memory layer: spin, then yield, then sleep on one futex or on several
/// at once (D3), with a timeout and a cancellation token, and a liveness check of the peers at every
/// <see cref="WaitTuning.LivenessInterval"/>. A wait for one of several streams (<c>WaitAny</c>) runs
/// the same loop with the policy <see cref="Combine"/> makes of its readers' policies.
/// </summary>
internal static class Waiter
{
    private const int SpinsPerCheck = 64;
    private const int YieldPolls = 8;
    private static readonly long LivenessTicks = (long)(WaitTuning.LivenessInterval.TotalSeconds * Stopwatch.Frequency);

    /// <summary>
    /// Waits until <paramref name="condition"/> is satisfied (true) or the timeout elapses (false);
    /// throws <see cref="OperationCanceledException"/> if <paramref name="cancellationToken"/> fires.
    /// A null timeout waits without limit.
    /// </summary>
    public static bool Wait<TCondition>(
        ref TCondition condition,
        FutexSignal signal,
        WaitPolicy policy,
        TimeSpan spinTime,
        TimeSpan? timeout,
        CancellationToken cancellationToken)
        where TCondition : struct, IWaitCondition, allows ref struct
    {
        var one = new OneSignal(signal);
        return Wait(ref condition, ref one, policy, spinTime, timeout, cancellationToken);
    }

    /// <summary>
    /// Waits until <paramref name="condition"/> is satisfied (true) or the timeout elapses (false), sleeping
    /// on <paramref name="signal"/> (one futex word or several) once the policy stops spinning.
    /// </summary>
    public static bool Wait<TCondition, TSignal>(
        ref TCondition condition,
        ref TSignal signal,
        WaitPolicy policy,
        TimeSpan spinTime,
        TimeSpan? timeout,
        CancellationToken cancellationToken)
        where TCondition : struct, IWaitCondition, allows ref struct
        where TSignal : struct, ISleepSignal, allows ref struct =>
        Wait(ref condition, ref signal, policy, spinTime, default, timeout, cancellationToken);

    /// <summary>
    /// Waits as <see cref="Wait{TCondition, TSignal}(ref TCondition, ref TSignal, WaitPolicy, TimeSpan, TimeSpan?, CancellationToken)"/>
    /// does; a <see cref="WaitPolicy.Predictive"/> wait follows <paramref name="plan"/> (sleep on the futex
    /// until its wake time, so that an early frame still ends the sleep; spin across the expected arrival
    /// within its budget; then sleep until woken), and without a valid plan waits as a hybrid one.
    /// </summary>
    public static bool Wait<TCondition, TSignal>(
        ref TCondition condition,
        ref TSignal signal,
        WaitPolicy policy,
        TimeSpan spinTime,
        WaitPlan plan,
        TimeSpan? timeout,
        CancellationToken cancellationToken)
        where TCondition : struct, IWaitCondition, allows ref struct
        where TSignal : struct, ISleepSignal, allows ref struct
    {
        if (condition.IsSatisfied())
        {
            return true;
        }

        cancellationToken.ThrowIfCancellationRequested();
        var start = Stopwatch.GetTimestamp();
        var deadline = Deadline(start, timeout);
        if (deadline == start)
        {
            condition.CheckPeers();
            return condition.IsSatisfied();
        }

        var nextPeerCheck = start + LivenessTicks;
        var predictive = policy == WaitPolicy.Predictive;
        if (predictive)
        {
            if (plan.IsValid)
            {
                return WaitPredicted(ref condition, ref signal, plan, spinTime, deadline, nextPeerCheck, cancellationToken);
            }

            policy = WaitPolicy.Hybrid;
        }

        if (policy == WaitPolicy.Hybrid && predictive && expectEarlyWake)
        {
            // The writer woke this thread before its last frame: it will again, so the awake phase would
            // only burn the interval; asleep until the early wake-up instead. A frame that comes without
            // one ends the sleep as a blocking wait's does, and the next wait stays awake again.
            expectEarlyWake = false;
            return SleepUntilSatisfied(ref condition, ref signal, wakeable: true, spinTime, deadline, ref nextPeerCheck, cancellationToken);
        }

        if (policy != WaitPolicy.Block)
        {
            var verdict = StayAwake(ref condition, policy, spinTime, start, deadline, ref nextPeerCheck, cancellationToken);
            if (verdict != Verdict.KeepWaiting)
            {
                return verdict == Verdict.Satisfied;
            }
        }

        // Only a predictive wait answers a writer's early wake-up: hybrid and block waits sleep again, as they always did.
        return SleepUntilSatisfied(ref condition, ref signal, wakeable: predictive, spinTime, deadline, ref nextPeerCheck, cancellationToken);
    }

    /// <summary>The awake phase of a hybrid (or spin) wait: polls with pauses for a fifth of <paramref name="spinTime"/>, then yields until it ends.</summary>
    private static Verdict StayAwake<TCondition>(ref TCondition condition, WaitPolicy policy, TimeSpan spinTime, long start, long deadline, ref long nextPeerCheck, CancellationToken cancellationToken)
        where TCondition : struct, IWaitCondition, allows ref struct
    {
        var maxPausesPerPoll = policy == WaitPolicy.Spin ? 1 : 4;
        var spinUntil = policy == WaitPolicy.Spin ? long.MaxValue : start + ToTicks(spinTime / 5);
        var awakeUntil = policy == WaitPolicy.Spin ? long.MaxValue : start + ToTicks(spinTime);
        while (true)
        {
            var now = Stopwatch.GetTimestamp();
            if (now < spinUntil)
            {
                // Hybrid polls the shared line after 0, 1, 2, 3, then 4 pauses (a poller that never lets go
                // of the line slows the very writer it waits for); spin polls after every pause.
                for (var i = 0; i < SpinsPerCheck; i++)
                {
                    for (var p = Math.Min(i, maxPausesPerPoll); p > 0; p--)
                    {
                        Pause();
                    }

                    if (condition.IsSatisfied())
                    {
                        return Verdict.Satisfied;
                    }
                }
            }
            else
            {
                Thread.Yield();
                if (condition.IsSatisfied())
                {
                    return Verdict.Satisfied;
                }
            }

            var verdict = CheckTimeAndPeers(ref condition, deadline, ref nextPeerCheck, cancellationToken, out now);
            if (verdict != Verdict.KeepWaiting)
            {
                return verdict;
            }

            if (now >= awakeUntil)
            {
                return Verdict.KeepWaiting;
            }
        }
    }

    /// <summary>
    /// Polls, yielding the processor between polls, until the condition holds or <paramref name="until"/>
    /// (ticks) passes: how a wait spins across an expected arrival. A poller that yields lets every other
    /// runnable process of its core go first, so that more spinners than cores do not starve the one
    /// computing or publishing the frame they wait for.
    /// </summary>
    private static Verdict SpinYielding<TCondition>(ref TCondition condition, long until, long deadline, ref long nextPeerCheck, CancellationToken cancellationToken)
        where TCondition : struct, IWaitCondition, allows ref struct
    {
        while (true)
        {
            for (var i = 0; i < YieldPolls; i++)
            {
                Pause();
                if (condition.IsSatisfied())
                {
                    return Verdict.Satisfied;
                }
            }

            Thread.Yield();

            if (condition.IsSatisfied())
            {
                return Verdict.Satisfied;
            }

            var verdict = CheckTimeAndPeers(ref condition, deadline, ref nextPeerCheck, cancellationToken, out var now);
            if (verdict != Verdict.KeepWaiting)
            {
                return verdict;
            }

            if (now >= until)
            {
                return Verdict.KeepWaiting;
            }
        }
    }

    /// <summary>
    /// Sleeps on the signal until the condition holds or the deadline passes. With <paramref name="wakeable"/>
    /// (a predictive wait), a sleep ended by a writer's early wake-up (<c>StreamWriter.WakeReadersEarly</c>: a paced
    /// writer about to publish, or an upstream stage woken for the same frame) with no frame yet passes the
    /// wake-up on (<see cref="OnWokenEarly"/>), then spins yielding for <see cref="WaitTuning.EarlyWakeSpin"/> (or <paramref name="spinTime"/> if longer) before it sleeps again.
    /// </summary>
    private static bool SleepUntilSatisfied<TCondition, TSignal>(ref TCondition condition, ref TSignal signal, bool wakeable, TimeSpan spinTime, long deadline, ref long nextPeerCheck, CancellationToken cancellationToken)
        where TCondition : struct, IWaitCondition, allows ref struct
        where TSignal : struct, ISleepSignal, allows ref struct
    {
        while (true)
        {
            var verdict = Sleep(ref condition, ref signal, deadline, ref nextPeerCheck, long.MaxValue, wakeable, cancellationToken, out var woke);
            if (verdict != Verdict.WokenEarly)
            {
                return verdict == Verdict.Satisfied;
            }

            Interlocked.Increment(ref earlyWakes);

            threadEarlyWakes++;
            PassWakeOn();
            verdict = SpinYielding(ref condition, woke + ToTicks(spinTime > WaitTuning.EarlyWakeSpin ? spinTime : WaitTuning.EarlyWakeSpin), deadline, ref nextPeerCheck, cancellationToken);
            if (verdict != Verdict.KeepWaiting)
            {
                if (verdict == Verdict.Satisfied)
                {
                    Interlocked.Increment(ref earlyWakeHits);
                    threadEarlyWakeHits++;
                    expectEarlyWake = true;
                }

                return verdict == Verdict.Satisfied;
            }
        }
    }

    /// <summary>
    /// What this thread does when one of its waits is woken before its frame (early, by a writer's
    /// <c>StreamWriter.WakeReadersEarly</c>, or by its own timer in a predictive wait): a stage wakes the readers of its
    /// outputs in turn, so that every stage of a chain is awake when its frame comes and no futex wake-up is
    /// on the path of the frame. Null (the default) does nothing. Set once per worker thread.
    /// </summary>
    [ThreadStatic]
    private static Action? wokenEarly;

    /// <summary>True when this thread's last wait ended with its frame found after an early wake-up (a predictive wait then sleeps at once).</summary>
    [ThreadStatic]
    private static bool expectEarlyWake;

    /// <summary>Sets what this thread does when a wait of its own is woken before its frame (see <see cref="PassWakeOn"/>).</summary>
    public static void OnWokenEarly(Action? action) => wokenEarly = action;

    /// <summary>Runs this thread's <see cref="OnWokenEarly"/> action, if any.</summary>
    private static void PassWakeOn() => wokenEarly?.Invoke();

    /// <summary>Waits woken early (by a writer's early wake-up) with no frame yet, which then spun for it (process-wide, for the status).</summary>
    public static long EarlyWakes => Volatile.Read(ref earlyWakes);

    /// <summary>Waits woken early whose frame came while they spun.</summary>
    public static long EarlyWakeHits => Volatile.Read(ref earlyWakeHits);

    private static long earlyWakes;
    private static long earlyWakeHits;

    /// <summary>Times a predictive wait spun across an expected arrival, and times the frame came within the window (process-wide, for benchmarks).</summary>
    public static long PredictedSpins => Volatile.Read(ref predictedSpins);

    /// <summary>Times a predictive wait found its frame while spinning in the window.</summary>
    public static long PredictedHits => Volatile.Read(ref predictedHits);

    private static long predictedSpins;
    private static long predictedHits;

    /// <summary>The same four counts, of the calling thread's waits only (a worker on a thread of a process that runs others reports its own).</summary>
    public static (long PredictedSpins, long PredictedHits, long EarlyWakes, long EarlyWakeHits) ThisThread =>
        (threadPredictedSpins, threadPredictedHits, threadEarlyWakes, threadEarlyWakeHits);

    [ThreadStatic]
    private static long threadPredictedSpins;
    [ThreadStatic]
    private static long threadPredictedHits;
    [ThreadStatic]
    private static long threadEarlyWakes;
    [ThreadStatic]
    private static long threadEarlyWakeHits;

    [ThreadStatic]
    private static bool fineTimerSlack;

    private static bool WaitPredicted<TCondition, TSignal>(ref TCondition condition, ref TSignal signal, WaitPlan plan, TimeSpan spinTime, long deadline, long nextPeerCheck, CancellationToken cancellationToken)
        where TCondition : struct, IWaitCondition, allows ref struct
        where TSignal : struct, ISleepSignal, allows ref struct
    {
        if (!fineTimerSlack)
        {
            // The default slack (50 µs) would make every timed sleep that much late.
            fineTimerSlack = true;
            _ = Interop.LibC.Prctl(Interop.LibC.PrSetTimerSlack, 1, 0, 0, 0);
        }

        var wakeAt = FromNs(plan.WakeAtNs);
        var spinEnd = 0L;
        var wokenByWriter = false;
        if (Stopwatch.GetTimestamp() < wakeAt)
        {
            // Asleep on the futex, not on clock_nanosleep: a frame that comes early, or a writer's early
            // wake-up, still ends the sleep.
            var verdict = Sleep(ref condition, ref signal, deadline, ref nextPeerCheck, wakeAt, wakeable: true, cancellationToken, out var woke);
            if (verdict is Verdict.Satisfied or Verdict.TimedOut)
            {
                return verdict == Verdict.Satisfied;
            }

            if (verdict == Verdict.WokenEarly)
            {
                // The writer woke it before its own timer: spin as a hybrid wait woken early does.
                Interlocked.Increment(ref earlyWakes);
                threadEarlyWakes++;
                wokenByWriter = true;
                spinEnd = woke + ToTicks(spinTime > WaitTuning.EarlyWakeSpin ? spinTime : WaitTuning.EarlyWakeSpin);
            }
            else
            {
                TimerLateness.Shared.Record(ToNs(woke - wakeAt));
            }
        }

        PassWakeOn();
        if (spinEnd == 0)
        {
            spinEnd = Math.Min(FromNs(plan.CloseAtNs), Stopwatch.GetTimestamp() + FromNs(plan.BudgetNs));
        }

        Interlocked.Increment(ref predictedSpins);

        threadPredictedSpins++;
        var spun = SpinYielding(ref condition, spinEnd, deadline, ref nextPeerCheck, cancellationToken);
        if (spun != Verdict.KeepWaiting)
        {
            if (spun == Verdict.Satisfied)
            {
                Interlocked.Increment(ref predictedHits);
                threadPredictedHits++;
                if (wokenByWriter)
                {
                    Interlocked.Increment(ref earlyWakeHits);
                    threadEarlyWakeHits++;
                    expectEarlyWake = true;
                }
            }

            return spun == Verdict.Satisfied;
        }

        // The frame is late: wait for it as a blocking wait does (the writer's wake-up ends the sleep).
        return SleepUntilSatisfied(ref condition, ref signal, wakeable: true, spinTime, deadline, ref nextPeerCheck, cancellationToken);
    }

    /// <summary>
    /// The policy of a wait for any of several inputs, given the policy so far and one more input's: it
    /// spins if any input spins; otherwise it is predictive if any input is (following the plan of the
    /// input due first, and hybrid without one) or hybrid if any input is, awake for the longest spin time
    /// of those inputs; otherwise (every input blocks) it blocks. Start from <see cref="WaitPolicy.Block"/> and zero.
    /// </summary>
    public static (WaitPolicy Policy, TimeSpan SpinTime) Combine(WaitPolicy policy, TimeSpan spinTime, WaitPolicy inputPolicy, TimeSpan inputSpinTime) =>
        (policy, inputPolicy) switch
        {
            (WaitPolicy.Spin, _) or (_, WaitPolicy.Spin) => (WaitPolicy.Spin, spinTime),
            (WaitPolicy.Predictive, WaitPolicy.Hybrid or WaitPolicy.Predictive) or (WaitPolicy.Hybrid, WaitPolicy.Predictive) =>
                (WaitPolicy.Predictive, inputSpinTime > spinTime ? inputSpinTime : spinTime),
            (WaitPolicy.Hybrid, WaitPolicy.Hybrid) => (WaitPolicy.Hybrid, inputSpinTime > spinTime ? inputSpinTime : spinTime),
            (_, WaitPolicy.Hybrid or WaitPolicy.Predictive) => (inputPolicy, inputSpinTime),
            _ => (policy, spinTime),
        };

    /// <summary>
    /// Sleeps on the signal until the condition holds (<see cref="Verdict.Satisfied"/>), the deadline
    /// passes (<see cref="Verdict.TimedOut"/>), or <paramref name="wakeAt"/> comes
    /// (<see cref="Verdict.KeepWaiting"/>, with the time it woke in <paramref name="woke"/>); with
    /// <paramref name="wakeable"/>, a sleep ended before its time with no frame (a writer's early wake-up)
    /// returns <see cref="Verdict.WokenEarly"/>, with the time in <paramref name="woke"/>.
    /// </summary>
    private static Verdict Sleep<TCondition, TSignal>(ref TCondition condition, ref TSignal signal, long deadline, ref long nextPeerCheck, long wakeAt, bool wakeable, CancellationToken cancellationToken, out long woke)
        where TCondition : struct, IWaitCondition, allows ref struct
        where TSignal : struct, ISleepSignal, allows ref struct
    {
        woke = 0;
        // A cancellation bumps the futex word, so a sleeper returns at once rather than at the end of its slice.
        using var registration = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static s => ((CancelWake)s!).Wake(), CancelWake.For(signal.CancelSignal))
            : default;
        var slept = false;
        var sleepEnd = 0L;
        while (true)
        {
            signal.BeginSleep();
            try
            {
                if (condition.IsSatisfied())
                {
                    return Verdict.Satisfied;
                }

                var verdict = CheckTimeAndPeers(ref condition, deadline, ref nextPeerCheck, cancellationToken, out var now);
                if (verdict != Verdict.KeepWaiting)
                {
                    return verdict;
                }

                if (now >= wakeAt)
                {
                    woke = now;
                    return Verdict.KeepWaiting;
                }

                if (wakeable && slept && now < sleepEnd)
                {
                    // Woken before the slice ended and still no frame: a writer's early wake-up (or, rarely, a signal).
                    woke = now;
                    return Verdict.WokenEarly;
                }

                sleepEnd = Math.Min(Math.Min(deadline, nextPeerCheck), wakeAt);
                slept = true;
                signal.Sleep(TimeSpan.FromSeconds((double)(sleepEnd - now) / Stopwatch.Frequency));
            }
            finally
            {
                signal.EndSleep();
            }
        }
    }

    private enum Verdict
    {
        KeepWaiting,
        Satisfied,
        TimedOut,
        WokenEarly,
    }

    /// <summary>Between polls: ends the wait at the deadline, throws on cancellation, and checks the peers when it is time.</summary>
    private static Verdict CheckTimeAndPeers<TCondition>(ref TCondition condition, long deadline, ref long nextPeerCheck, CancellationToken cancellationToken, out long now)
        where TCondition : struct, IWaitCondition, allows ref struct
    {
        now = Stopwatch.GetTimestamp();
        if (now >= deadline)
        {
            // Peers are checked once more before giving up: a caller that waits in slices no longer than
            // the liveness interval (a worker keeping its heartbeat fresh) would otherwise never check
            // them. The endpoints limit their own checks to one per interval, across waits.
            condition.CheckPeers();
            return condition.IsSatisfied() ? Verdict.Satisfied : Verdict.TimedOut;
        }

        cancellationToken.ThrowIfCancellationRequested();
        if (now >= nextPeerCheck)
        {
            nextPeerCheck = now + LivenessTicks;
            condition.CheckPeers();
            if (condition.IsSatisfied())
            {
                return Verdict.Satisfied;
            }
        }

        return Verdict.KeepWaiting;
    }

    /// <summary>One processor pause: <c>PAUSE</c> on x64, <c>YIELD</c> on arm64.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Pause()
    {
        if (X86Base.IsSupported)
        {
            X86Base.Pause();
        }
        else if (ArmBase.IsSupported)
        {
            ArmBase.Yield();
        }
        else
        {
            Thread.SpinWait(1);
        }
    }

    public static long Deadline(long start, TimeSpan? timeout)
    {
        if (timeout is not { } t || t == Timeout.InfiniteTimeSpan)
        {
            return long.MaxValue;
        }

        if (t <= TimeSpan.Zero)
        {
            return start;
        }

        var ticks = ToTicks(t);
        return ticks >= long.MaxValue - start ? long.MaxValue : start + ticks;
    }

    private static long ToTicks(TimeSpan t) => (long)(t.TotalSeconds * Stopwatch.Frequency);

    /// <summary><see cref="MonotonicClock"/> nanoseconds as <see cref="Stopwatch"/> ticks (the same on Linux, both <c>CLOCK_MONOTONIC</c>).</summary>
    private static long FromNs(long ns) => Stopwatch.Frequency == 1_000_000_000 ? ns : (long)(ns * (Stopwatch.Frequency / 1e9));

    private static long ToNs(long ticks) => Stopwatch.Frequency == 1_000_000_000 ? ticks : (long)(ticks * (1e9 / Stopwatch.Frequency));

    /// <summary>The state a cancellation callback needs to wake a sleeper; one per signal address, reused.</summary>
    internal sealed unsafe class CancelWake
    {
        [ThreadStatic]
        private static CancelWake? cached;

        private FutexSignal signal;

        public static CancelWake For(FutexSignal signal)
        {
            // Only one sleep per thread is in progress at a time, so one object per thread serves them all.
            var wake = cached ??= new CancelWake();
            wake.signal = signal;
            return wake;
        }

        public void Wake() => signal.Wake();
    }
}
