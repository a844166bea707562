namespace Flowline.SharedMemory.Waiting;

/// <summary>
/// Learns a stream's inter-arrival time from the writer's publish timestamps, for a predictive wait:
/// the median of the last <see cref="Window"/> intervals (robust to single late or early frames), their
/// median absolute deviation as the jitter, and a reset when a gap (an interval over
/// <see cref="GapFactor"/> times the median) or a restart of the sequence shows the rate has changed.
/// </summary>
/// <remarks>
/// <para>It is fed (sequence, publish time) pairs of the newest frame a reader sees when it starts to
/// wait; an interval spanning several frames counts as their average. It costs nothing per frame: a
/// reader that never waits never feeds it.</para>
/// <para>Pure arithmetic on its inputs (no clock): tests feed it exact sequences.</para>
/// </remarks>
internal sealed class ArrivalEstimator
{
    /// <summary>Intervals kept (and needed before a prediction is made).</summary>
    public const int Window = 16;

    /// <summary>Intervals needed before the first prediction.</summary>
    public const int MinSamples = 8;

    /// <summary>An interval this many times the median is a gap: the estimate starts over.</summary>
    public const int GapFactor = 4;

    /// <summary>The least spin allowed on either side of an expected arrival (the jitter of a clock read and a cache miss).</summary>
    public const long MinJitterNs = 2_000;

    private readonly long[] intervals = new long[Window];
    private readonly long[] sorted = new long[Window];
    private int count;
    private int nextIndex;
    private long lastSequence = -1;
    private long lastPublishNs;
    private bool dirty;
    private long periodNs;
    private long jitterNs;

    /// <summary>Intervals held now.</summary>
    public int Count => count;

    /// <summary>Times the estimate started over (gaps and restarts).</summary>
    public long Resets { get; private set; }

    /// <summary>The sequence of the newest frame seen, or -1.</summary>
    public long LastSequence => lastSequence;

    /// <summary>The publish time of the newest frame seen (ns).</summary>
    public long LastPublishNs => lastPublishNs;

    /// <summary>The median interval (ns), or 0 before <see cref="MinSamples"/> intervals.</summary>
    public long PeriodNs
    {
        get
        {
            Update();
            return periodNs;
        }
    }

    /// <summary>The median absolute deviation of the intervals (ns), or 0 before <see cref="MinSamples"/> intervals.</summary>
    public long JitterNs
    {
        get
        {
            Update();
            return jitterNs;
        }
    }

    /// <summary>Records that frame <paramref name="sequence"/> was published at <paramref name="publishNs"/>.</summary>
    public void Observe(long sequence, long publishNs)
    {
        if (sequence == lastSequence)
        {
            return;
        }

        if (lastSequence < 0 || sequence < lastSequence || publishNs <= lastPublishNs)
        {
            // First frame, or a writer that restarted the sequence or the clock: nothing to measure yet.
            if (lastSequence >= 0)
            {
                Reset();
            }

            lastSequence = sequence;
            lastPublishNs = publishNs;
            return;
        }

        var interval = (publishNs - lastPublishNs) / (sequence - lastSequence);
        lastSequence = sequence;
        lastPublishNs = publishNs;
        if (count >= MinSamples && interval > GapFactor * PeriodNs)
        {
            // A pause of the writer: the rate after it may be another; the interval across it is no sample.
            Reset();
            return;
        }

        intervals[nextIndex] = interval;
        nextIndex = (nextIndex + 1) % Window;
        if (count < Window)
        {
            count++;
        }

        dirty = true;
    }

    /// <summary>Forgets every interval (the newest frame seen is kept as the start of the next one).</summary>
    public void Reset()
    {
        count = 0;
        nextIndex = 0;
        periodNs = 0;
        jitterNs = 0;
        dirty = false;
        Resets++;
    }

    /// <summary>
    /// Plans the wait for frame <paramref name="sequence"/>: when to wake (a timer lateness
    /// <paramref name="marginNs"/> before the spin window), when the window opens and closes. No plan
    /// (the wait is then a hybrid one) while fewer than <see cref="MinSamples"/> intervals are known, or
    /// when the window (twice the allowed jitter, plus <paramref name="cushionNs"/> of the margin that the
    /// timer is not expected to use) does not fit in <paramref name="spinBudget"/> of the interval.
    /// </summary>
    public bool TryPlan(long sequence, double spinBudget, long marginNs, long cushionNs, out WaitPlan plan)
    {
        plan = default;
        if (count < MinSamples || lastSequence < 0 || sequence <= lastSequence)
        {
            return false;
        }

        Update();
        var allowed = Math.Max(MinJitterNs, 3 * jitterNs);
        var budgetNs = (long)(spinBudget * periodNs);
        if ((2 * allowed) + cushionNs > budgetNs)
        {
            return false;
        }

        var expected = lastPublishNs + (periodNs * (sequence - lastSequence));
        plan = new WaitPlan(expected - allowed - marginNs, expected - allowed, expected + allowed, budgetNs);
        return true;
    }

    private void Update()
    {
        if (!dirty)
        {
            return;
        }

        dirty = false;
        if (count < MinSamples)
        {
            periodNs = 0;
            jitterNs = 0;
            return;
        }

        var span = sorted.AsSpan(0, count);
        intervals.AsSpan(0, count).CopyTo(span);
        span.Sort();
        periodNs = Median(span);
        for (var i = 0; i < span.Length; i++)
        {
            span[i] = Math.Abs(intervals[i] - periodNs);
        }

        span.Sort();
        jitterNs = Median(span);
    }

    private static long Median(Span<long> sortedValues) =>
        sortedValues.Length % 2 == 1
            ? sortedValues[sortedValues.Length / 2]
            : (sortedValues[(sortedValues.Length / 2) - 1] + sortedValues[sortedValues.Length / 2]) / 2;
}

/// <summary>
/// The plan of one predictive wait, in <see cref="MonotonicClock"/> nanoseconds: sleep until
/// <paramref name="WakeAtNs"/>, spin from about <paramref name="SpinFromNs"/> until the frame comes or
/// <paramref name="CloseAtNs"/>, never more than <paramref name="BudgetNs"/> in all, then sleep on the futex.
/// </summary>
internal readonly record struct WaitPlan(long WakeAtNs, long SpinFromNs, long CloseAtNs, long BudgetNs)
{
    /// <summary>True for a plan (the default value is none).</summary>
    public bool IsValid => BudgetNs > 0;

    /// <summary>The earlier of two plans (a wait for several inputs follows the input due first); an invalid plan loses.</summary>
    public static WaitPlan Earliest(WaitPlan a, WaitPlan b) =>
        !a.IsValid ? b : !b.IsValid ? a : a.WakeAtNs <= b.WakeAtNs ? a : b;
}

/// <summary>
/// How late an absolute timer wakes on this machine, learnt from the predictive waits that slept to
/// their planned time: a running mean and mean deviation (1/16 weights), from which the margin a wait
/// wakes early by is the mean plus four deviations. Shared by the process (the lateness is the machine's).
/// </summary>
internal sealed class TimerLateness
{
    /// <summary>The least margin.</summary>
    public const long MinMarginNs = 2_000;

    /// <summary>The greatest margin: a timer later than this is not worth predicting around.</summary>
    public const long MaxMarginNs = 500_000;

    private long meanNs;
    private long deviationNs;

    /// <summary>Starts with a guess: 20 µs late, 5 µs deviation (a 2-vCPU virtual machine with timer slack at 1 ns).</summary>
    public TimerLateness(long initialMeanNs = 20_000, long initialDeviationNs = 5_000)
    {
        meanNs = initialMeanNs;
        deviationNs = initialDeviationNs;
    }

    /// <summary>The process's estimate.</summary>
    public static TimerLateness Shared { get; } = new();

    /// <summary>The mean lateness (ns).</summary>
    public long MeanNs => Volatile.Read(ref meanNs);

    /// <summary>How early a wait asks to wake (ns): mean plus four deviations, within [<see cref="MinMarginNs"/>, <see cref="MaxMarginNs"/>].</summary>
    public long MarginNs => Math.Clamp(Volatile.Read(ref meanNs) + (4 * Volatile.Read(ref deviationNs)), MinMarginNs, MaxMarginNs);

    /// <summary>The part of the margin a wait is expected to spend spinning (ns): the margin less the mean lateness.</summary>
    public long CushionNs => Math.Max(0, MarginNs - MeanNs);

    /// <summary>Records that a timer set for some time woke <paramref name="latenessNs"/> after it.</summary>
    public void Record(long latenessNs)
    {
        // Races between threads lose a sample at worst: the estimate is advice, not state.
        var sample = Math.Clamp(latenessNs, 0, MaxMarginNs);
        var mean = Volatile.Read(ref meanNs);
        var error = sample - mean;
        Volatile.Write(ref meanNs, mean + (error / 16));
        var deviation = Volatile.Read(ref deviationNs);
        Volatile.Write(ref deviationNs, deviation + ((Math.Abs(error) - deviation) / 16));
    }
}
