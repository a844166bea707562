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
        if (policy == WaitPolicy.Predictive)
        {
            if (plan.IsValid)
            {
                return WaitPredicted(ref condition, ref signal, plan, deadline, nextPeerCheck, cancellationToken);
            }

            policy = WaitPolicy.Hybrid;
        }

        if (policy != WaitPolicy.Block)
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
                            return true;
                        }
                    }
                }
                else
                {
                    Thread.Yield();
                    if (condition.IsSatisfied())
                    {
                        return true;
                    }
                }

                var verdict = CheckTimeAndPeers(ref condition, deadline, ref nextPeerCheck, cancellationToken, out now);
                if (verdict != Verdict.KeepWaiting)
                {
                    return verdict == Verdict.Satisfied;
                }

                if (now >= awakeUntil)
                {
                    break;
                }
            }
        }

        return Sleep(ref condition, ref signal, deadline, ref nextPeerCheck, long.MaxValue, cancellationToken, out _) == Verdict.Satisfied;
    }

    /// <summary>Times a predictive wait spun across an expected arrival, and times the frame came within the window (process-wide, for benchmarks).</summary>
    public static long PredictedSpins => Volatile.Read(ref predictedSpins);

    /// <summary>Times a predictive wait found its frame while spinning in the window.</summary>
    public static long PredictedHits => Volatile.Read(ref predictedHits);

    private static long predictedSpins;
    private static long predictedHits;

    [ThreadStatic]
    private static bool fineTimerSlack;

    private static bool WaitPredicted<TCondition, TSignal>(ref TCondition condition, ref TSignal signal, WaitPlan plan, long deadline, long nextPeerCheck, CancellationToken cancellationToken)
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
        if (Stopwatch.GetTimestamp() < wakeAt)
        {
            // Asleep on the futex, not on clock_nanosleep: a frame that comes early still ends the sleep.
            var verdict = Sleep(ref condition, ref signal, deadline, ref nextPeerCheck, wakeAt, cancellationToken, out var woke);
            if (verdict != Verdict.KeepWaiting)
            {
                return verdict == Verdict.Satisfied;
            }

            TimerLateness.Shared.Record(ToNs(woke - wakeAt));
        }

        var spinEnd = Math.Min(FromNs(plan.CloseAtNs), Stopwatch.GetTimestamp() + FromNs(plan.BudgetNs));
        Interlocked.Increment(ref predictedSpins);
        while (true)
        {
            for (var i = 0; i < SpinsPerCheck; i++)
            {
                Pause();
                if (condition.IsSatisfied())
                {
                    Interlocked.Increment(ref predictedHits);
                    return true;
                }
            }

            var verdict = CheckTimeAndPeers(ref condition, deadline, ref nextPeerCheck, cancellationToken, out var now);
            if (verdict != Verdict.KeepWaiting)
            {
                return verdict == Verdict.Satisfied;
            }

            if (now >= spinEnd)
            {
                break;
            }
        }

        // The frame is late: wait for it as a blocking wait does (the writer's wake-up ends the sleep).
        return Sleep(ref condition, ref signal, deadline, ref nextPeerCheck, long.MaxValue, cancellationToken, out _) == Verdict.Satisfied;
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
    /// (<see cref="Verdict.KeepWaiting"/>, with the time it woke in <paramref name="woke"/>).
    /// </summary>
    private static Verdict Sleep<TCondition, TSignal>(ref TCondition condition, ref TSignal signal, long deadline, ref long nextPeerCheck, long wakeAt, CancellationToken cancellationToken, out long woke)
        where TCondition : struct, IWaitCondition, allows ref struct
        where TSignal : struct, ISleepSignal, allows ref struct
    {
        woke = 0;
        // A cancellation bumps the futex word, so a sleeper returns at once rather than at the end of its slice.
        using var registration = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static s => ((CancelWake)s!).Wake(), CancelWake.For(signal.CancelSignal))
            : default;
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

                var slice = Math.Min(Math.Min(deadline, nextPeerCheck), wakeAt) - now;
                signal.Sleep(TimeSpan.FromSeconds((double)slice / Stopwatch.Frequency));
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
