using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Kernels;
using Flowline.SharedMemory;
using Flowline.SharedMemory.Diagnostics;

namespace Flowline.Runtime;

/// <summary>
/// The loop of a source's worker: paces generations at the source's rate without catch-up bursts
/// (deadlines it was too late for count as missed writes), lets the source fill its output slots in
/// place, and publishes them stamped with one frame id per generation.
/// </summary>
internal sealed class SourceRunner : WorkerRunner
{
    private readonly ISource source;
    private readonly SourceSpec spec;
    private readonly StreamWriter<byte>[] outputs;
    private readonly AuxiliaryInput[] auxiliary;
    private readonly TimeSpan pollInterval;
    private readonly HdrHistogram.LongHistogram? compute;
    private Pacer? pacer;
    private PacerCounts earlier;
    private long generation;

    public SourceRunner(PipelinePlan plan, SourceSpec spec, ControlBlock control)
        : base(control)
    {
        this.spec = spec;
        try
        {
            outputs = [.. spec.Streams.Select(name => OpenWriter(plan, name))];
            auxiliary = OpenAuxiliary(plan, spec);
            source = plan.Pipeline.CreateSource(spec.Name);
        }
        catch
        {
            Dispose();
            throw;
        }

        pollInterval = TimeSpan.FromSeconds(spec.PollInterval ?? 0.01);

        // Profiling (decision 90; sources since decision 110): the time Produce takes, published with the figures.
        var profiler = WorkerProfiler.Open(plan.ControlNamespace, control.Name, d => Own(d));
        compute = profiler?.AddCompute(spec.Name);
        Reporter.Profiler = profiler;
    }

    protected override void Loop(CancellationToken stop)
    {
        var io = new SourceIo(outputs.Length, auxiliary.Length, i => LookSlot(outputs[i], stop), stop);
        Action? wakeEarly = null;
        if (pacer is not null)
        {
            earlier.Add(pacer);
            pacer = null;
        }

        if (source.RateHz is { } rate)
        {
            pacer = new Pacer(rate, sleep: true, catchUp: false);
            // A paced source knows when it will publish: it wakes its readers a little before (decision 138).
            wakeEarly = WakeReadersEarly;
        }

        while (!stop.IsCancellationRequested)
        {
            pacer?.WaitNext(wakeEarly, stop);
            io.Begin(generation);
            for (var i = 0; i < auxiliary.Length; i++)
            {
                io.SetAuxiliary(i, auxiliary[i].Refresh());
            }

            var start = MonotonicClock.NowNs();
            if (!source.Produce(io))
            {
                Reporter.Tick(Collect);
                stop.WaitHandle.WaitOne(pollInterval);
                continue;
            }

            var written = 0;
            for (var i = 0; i < outputs.Length; i++)
            {
                if (io.WasWritten(i))
                {
                    var id = io.PerStreamFrameIds ? unchecked((ulong)outputs[i].Position) : io.FrameId ?? unchecked((ulong)generation);
                    outputs[i].Publish(new FrameStamp(id, io.OriginTimestampNs));
                    written++;
                }
            }

            generation++;
            var end = MonotonicClock.NowNs();
            Reporter.Window.Record(end - start, end, 0);
            ProfileHistograms.Record(compute, end - start);
            Reporter.Counters.OutputFrames += written;
            Reporter.Tick(Collect);
        }
    }

    internal override object? NodeObject => source;

    private void WakeReadersEarly()
    {
        foreach (var output in outputs)
        {
            output.WakeReadersEarly();
        }
    }

    protected override JsonObject? PluginMetrics() => source?.Metrics();

    protected override void DisposeResources() => DisposeIfDisposable(source);

    private void Collect(WorkerReporter reporter)
    {
        ref var m = ref reporter.Counters;
        m.MissedWrites = earlier.Missed + (pacer?.Missed ?? 0);
        if (pacer is not null)
        {
            // The pacer's own figures (decision 161): the status's `pacer` object of the source. Counted
            // since the worker started: a pause ends a run, and the next run paces with a new pacer.
            m.PacerIntervalNs = pacer.IntervalNs;
            m.PacerWakeLeadNs = pacer.WakeLeadNs;
            m.PacerIntervals = earlier.Intervals + pacer.Intervals;
            m.PacerEarlyWakes = earlier.EarlyWakes + pacer.EarlyWakes;
            m.PacerBoundSkips = earlier.BoundSkips + pacer.BoundSkips;
            m.PacerLateWakes = earlier.LateWakes + pacer.LateWakes;
            m.PacerOverdue = earlier.Overdue + pacer.Overdue;
            m.PacerTimerLatenessNs = pacer.TimerLatenessNs;
        }
    }

    /// <summary>The counts of the pacers of earlier runs (before a pause).</summary>
    private struct PacerCounts
    {
        public long Missed, Intervals, EarlyWakes, BoundSkips, LateWakes, Overdue;

        public void Add(Pacer p)
        {
            Missed += p.Missed;
            Intervals += p.Intervals;
            EarlyWakes += p.EarlyWakes;
            BoundSkips += p.BoundSkips;
            LateWakes += p.LateWakes;
            Overdue += p.Overdue;
        }
    }
}

/// <summary>
/// The loop of a sink's worker: reads its stream (frames it skipped count as missed writes), lets the
/// sink consume each frame in place, and publishes a stateful sink's feedback stamped with the input's
/// frame id and origin. The latency it reports is the pipeline's end to end.
/// </summary>
internal sealed class SinkRunner : WorkerRunner
{
    private readonly ISink sink;
    private readonly StreamReader<byte> input;
    private readonly StreamWriter<byte>[] outputs;
    private readonly AuxiliaryInput[] auxiliary;
    private readonly WorkerProfiler? profiler;
    private readonly HdrHistogram.LongHistogram? latency;
    private readonly HdrHistogram.LongHistogram? compute;
    private long tornFrames;

    public SinkRunner(PipelinePlan plan, SinkSpec spec, ControlBlock control)
        : base(control)
    {
        try
        {
            input = OpenReader(plan, spec.Stream, plan.TriggerReader(spec, spec.Stream));
            outputs = [.. spec.Outputs.Select(name => OpenWriter(plan, name))];
            auxiliary = OpenAuxiliary(plan, spec);
            sink = plan.Pipeline.CreateSink(spec.Name);
        }
        catch
        {
            Dispose();
            throw;
        }

        // Profiling (decision 90; sinks since decision 110): its input's latency from the frame's origin and the time Consume takes.
        profiler = WorkerProfiler.Open(plan.ControlNamespace, control.Name, d => Own(d));
        latency = profiler?.AddInputLatency(spec.Stream, input.Index);
        compute = profiler?.AddCompute(spec.Name);
        Reporter.Profiler = profiler;
    }

    protected override void Loop(CancellationToken stop)
    {
        var io = new SinkIo(outputs.Length, auxiliary.Length, i => LookSlot(outputs[i], stop), stop);
        if (outputs.Length > 0)
        {
            // A sink with feedback outputs passes an early wake-up on, as a kernel does (decision 138).
            WaitCounters.OnWokenEarly(() =>
            {
                foreach (var output in outputs)
                {
                    output.WakeReadersEarly();
                }
            });
        }

        var ended = false;
        while (!stop.IsCancellationRequested)
        {
            if (ended)
            {
                stop.WaitHandle.WaitOne(WaitSlice);
                Reporter.Tick(Collect);
                continue;
            }

            var status = input.LookMemory(out var frame, out var header, WaitSlice, stop);
            if (status != ReadStatus.Ok)
            {
                if (status is ReadStatus.EndOfStream or ReadStatus.WriterGone)
                {
                    ended = true;
                    foreach (var output in outputs)
                    {
                        output.Close();
                    }
                }

                Reporter.Tick(Collect);
                continue;
            }

            io.Begin(frame, header);
            for (var i = 0; i < auxiliary.Length; i++)
            {
                io.SetAuxiliary(i, auxiliary[i].Refresh());
            }

            var start = MonotonicClock.NowNs();
            try
            {
                sink.Consume(io);
            }
            finally
            {
                if (!input.Increment())
                {
                    tornFrames++;
                }
            }

            for (var i = 0; i < outputs.Length; i++)
            {
                if (io.WasWritten(i))
                {
                    outputs[i].Publish(FrameStamp.From(header));
                    Reporter.Counters.OutputFrames++;
                }
            }

            var end = MonotonicClock.NowNs();
            Reporter.Window.Record(end - start, end, header.OriginTimestampNs);
            if (header.OriginTimestampNs > 0)
            {
                ProfileHistograms.Record(latency, start - header.OriginTimestampNs);
            }

            ProfileHistograms.Record(compute, end - start);
            if (profiler is not null && profiler.TraceDue(out var now))
            {
                profiler.Trace(0, header, start, now - start);
            }

            Reporter.Tick(Collect);
        }
    }

    internal override object? NodeObject => sink;

    protected override JsonObject? PluginMetrics() => sink?.Metrics();

    protected override void DisposeResources() => DisposeIfDisposable(sink);

    private void Collect(WorkerReporter reporter)
    {
        reporter.Counters.MissedWrites = input.FramesSkipped;
        reporter.Counters.SkippedPerInput[0] = input.FramesSkipped;
        reporter.Counters.TornFrames = tornFrames;
    }
}
