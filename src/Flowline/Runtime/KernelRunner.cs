using Flowline.Documents;
using Flowline.Kernels;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// The loop of a kernel's worker: waits for its trigger inputs per <c>trigger_policy</c> and
/// <c>synchronization</c>, points the kernel at the input frames and output slots in place (no copy, no
/// lock held while it computes), publishes the outputs stamped with the inputs' origin, and keeps the
/// figures the manager reads.
/// </summary>
/// <remarks>
/// Inputs read with latest delivery are held while the kernel computes: their writer skips the held slot
/// (decision 100). Only in a ring smaller than latest readers + 2 can one be overwritten; that is detected
/// after the computation and its outputs are not published (counted as torn, reported as discarded
/// computes). Auxiliary inputs are private copies refreshed when they change.
/// </remarks>
internal sealed class KernelRunner : WorkerRunner
{
    private readonly KernelSpec spec;
    private readonly IKernel kernel;
    private readonly KernelIo io;
    private readonly StreamReader<byte>[] inputs;
    private readonly AuxiliaryInput[] auxiliary;
    private readonly StreamWriter<byte>[] outputs;
    private readonly bool[] looked;
    private readonly bool[] peeked;
    private readonly FrameHeader[] headers;
    private readonly byte[][] zeros;
    private readonly bool anyNew;
    private readonly bool matchFrameIds;
    private readonly long maxWaitNs;
    private readonly bool propagateFrameId;
    private readonly Func<bool> inputsIntact;
    private readonly HdrHistogram.LongHistogram?[] latency;
    private readonly HdrHistogram.LongHistogram? compute;
    private readonly WorkerProfiler? profiler;
    private long generationStartNs;
    private long tornFrames;
    private bool ended;

    public KernelRunner(PipelinePlan plan, KernelSpec spec, ControlBlock control)
        : base(control)
    {
        this.spec = spec;
        var pipeline = plan.Pipeline;
        try
        {
            inputs = [.. spec.Inputs.Select(name => OpenReader(plan, name, plan.TriggerReader(spec, name)))];
            auxiliary = OpenAuxiliary(plan, spec);
            outputs = [.. spec.Outputs.Select(name => OpenWriter(plan, name))];
            kernel = pipeline.CreateKernel(spec.Name);
        }
        catch
        {
            Dispose();
            throw;
        }

        io = new KernelIo(inputs.Length, auxiliary.Length, outputs.Length);
        looked = new bool[inputs.Length];
        peeked = new bool[inputs.Length];
        headers = new FrameHeader[inputs.Length];
        zeros = [.. spec.Inputs.Select(name => new byte[pipeline.Spec.FindStream(name)!.Format.FrameBytes])];
        anyNew = spec.EffectiveTriggerPolicy == TriggerPolicy.AnyNew && inputs.Length > 1;
        matchFrameIds = spec.Synchronization?.Mode == SynchronizationMode.MatchingFrameId;
        maxWaitNs = spec.Synchronization?.MaxWaitS is { } wait ? (long)(wait * 1e9) : long.MaxValue;
        propagateFrameId = spec.PropagateFrameId == true;
        inputsIntact = InputsIntact; // one delegate, not one per frame

        // Profiling (decision 90): per-input latency and compute-time histograms, published with the figures.
        profiler = WorkerProfiler.Open(plan.ControlNamespace, control.Name, d => Own(d));
        latency = [.. inputs.Select((reader, i) => profiler?.AddInputLatency(spec.Inputs[i], reader.Index))];
        compute = profiler?.AddCompute(spec.Name);
        Reporter.Profiler = profiler;
    }

    protected override void Loop(CancellationToken stop)
    {
        // Woken before its input's frame (decision 138), the kernel wakes its outputs' readers in turn.
        WaitCounters.OnWokenEarly(WakeReadersEarly);
        while (!stop.IsCancellationRequested)
        {
            if (ended)
            {
                // A trigger input ended (its writer closed it): the outputs were closed; wait to be stopped.
                stop.WaitHandle.WaitOne(WaitSlice);
                Reporter.Tick(Collect);
                continue;
            }

            if (!Gather(stop))
            {
                Reporter.Tick(Collect);
                continue;
            }

            for (var i = 0; i < auxiliary.Length; i++)
            {
                io.SetAuxiliary(i, auxiliary[i].Refresh());
            }

            for (var i = 0; i < outputs.Length; i++)
            {
                io.SetOutput(i, LookSlot(outputs[i], stop));
            }

            var start = MonotonicClock.NowNs();
            io.ExpectInputsConsumed(inputsIntact);
            kernel.Compute(io);
            var intact = io.InputsIntactWhenConsumed ?? InputsIntact();
            if (io.OutputsHeld)
            {
                // A closed gate took the frame and publishes nothing (neither processed nor torn).
                ReleaseInputs();
                Reporter.Tick(Collect);
                continue;
            }

            var origin = 0L;
            for (var i = 0; i < inputs.Length; i++)
            {
                var o = headers[i].OriginTimestampNs;
                if (looked[i] && o > 0)
                {
                    ProfileHistograms.Record(latency[i], start - o);
                    if (origin == 0 || o < origin)
                    {
                        origin = o;
                    }
                }
            }

            if (intact)
            {
                for (var i = 0; i < outputs.Length; i++)
                {
                    var id = propagateFrameId ? headers[0].FrameId : unchecked((ulong)outputs[i].Position);
                    outputs[i].Publish(new FrameStamp(id, origin));
                }
            }
            else
            {
                tornFrames++;
            }

            if (intact && profiler is not null)
            {
                TraceFrame(profiler, start);
            }

            ReleaseInputs();
            var end = MonotonicClock.NowNs();
            if (intact)
            {
                Reporter.Window.Record(end - start, end, origin);
                ProfileHistograms.Record(compute, end - start);
                Reporter.Counters.OutputFrames += outputs.Length;
            }

            Reporter.Tick(Collect);
        }
    }

    internal override object? NodeObject => kernel;

    private void WakeReadersEarly()
    {
        foreach (var output in outputs)
        {
            output.WakeReadersEarly();
        }
    }

    protected override void OnStopped() => ReleaseInputs();

    /// <summary>Opt-in traces (decision 94): one record per input taken, when this frame is due.</summary>
    private void TraceFrame(WorkerProfiler tracer, long start)
    {
        if (!tracer.TraceDue(out var now))
        {
            return;
        }

        for (var i = 0; i < inputs.Length; i++)
        {
            if (looked[i])
            {
                tracer.Trace(i, headers[i], start, now - start);
            }
        }
    }

    /// <summary>Whether every input frame of this computation is still intact (no writer lapped it).</summary>
    private bool InputsIntact()
    {
        for (var i = 0; i < inputs.Length; i++)
        {
            if ((looked[i] || peeked[i]) && !inputs[i].IsStillIntact(headers[i].Sequence))
            {
                return false;
            }
        }

        return true;
    }

    protected override void DisposeResources() => DisposeIfDisposable(kernel);

    /// <summary>Takes one frame from every input that the policy needs; false if the wait slice ended first.</summary>
    private bool Gather(CancellationToken stop)
    {
        if (inputs.Length == 1)
        {
            return Take(0, WaitSlice, stop);
        }

        if (anyNew)
        {
            if (StreamReader<byte>.WaitAny(inputs, WaitSlice, stop) < 0)
            {
                return false;
            }

            var any = false;
            for (var i = 0; i < inputs.Length; i++)
            {
                if (Take(i, TimeSpan.Zero, stop))
                {
                    any = true;
                }
                else if (!ended)
                {
                    // No new frame here: compute with the stream's newest (zeros before its first).
                    peeked[i] = inputs[i].PeekNewest(out var frame, out var header);
                    io.SetInput(i, peeked[i] ? frame : zeros[i], header);
                    headers[i] = header;
                }
            }

            return any && !ended;
        }

        // all_new: hold the frames taken so far and wait for the others, lining frame ids up if asked.
        for (var i = 0; i < inputs.Length; i++)
        {
            if (!looked[i])
            {
                if (!Take(i, WaitSlice, stop))
                {
                    if (generationStartNs != 0 && MonotonicClock.NowNs() - generationStartNs > maxWaitNs)
                    {
                        Reporter.Counters.SyncTimeouts++;
                        ReleaseInputs();
                    }

                    return false;
                }

                if (generationStartNs == 0)
                {
                    generationStartNs = MonotonicClock.NowNs();
                }
            }
        }

        if (matchFrameIds && !FrameIdsMatch())
        {
            return false;
        }

        return true;
    }

    /// <summary>
    /// With every input held: true if their frame ids agree; otherwise drops the older frames (drop_older)
    /// and counts the skew. A <c>latest</c> frame the writer overwrote while the others were awaited is let
    /// go first (counted as torn by its reader) and taken again: its frame id says nothing.
    /// </summary>
    private bool FrameIdsMatch()
    {
        var intact = true;
        for (var i = 0; i < inputs.Length; i++)
        {
            if (!inputs[i].IsStillIntact(headers[i].Sequence))
            {
                inputs[i].Increment();
                looked[i] = false;
                intact = false;
            }
        }

        if (!intact)
        {
            return false;
        }

        var newest = headers[0].FrameId;
        var agree = true;
        for (var i = 1; i < inputs.Length; i++)
        {
            agree &= headers[i].FrameId == newest;
            newest = Math.Max(newest, headers[i].FrameId);
        }

        if (agree)
        {
            return true;
        }

        Reporter.Counters.SkewEvents++;
        for (var i = 0; i < inputs.Length; i++)
        {
            if (headers[i].FrameId < newest)
            {
                inputs[i].Increment();
                looked[i] = false;
                Reporter.Counters.SkippedGenerations++;
            }
        }

        return false;
    }

    /// <summary>Looks at input <paramref name="index"/>'s next frame; false on timeout or when its stream ended.</summary>
    private bool Take(int index, TimeSpan timeout, CancellationToken stop)
    {
        var status = inputs[index].LookMemory(out var frame, out var header, timeout, stop);
        switch (status)
        {
            case ReadStatus.Ok:
                looked[index] = true;
                headers[index] = header;
                io.SetInput(index, frame, header);
                return true;
            case ReadStatus.EndOfStream:
            case ReadStatus.WriterGone:
                End();
                return false;
            default:
                return false;
        }
    }

    private void End()
    {
        ended = true;
        ReleaseInputs();
        foreach (var output in outputs)
        {
            output.Close();
        }
    }

    private void ReleaseInputs()
    {
        for (var i = 0; i < inputs.Length; i++)
        {
            if (looked[i])
            {
                inputs[i].Increment();
                looked[i] = false;
            }

            peeked[i] = false;
        }

        generationStartNs = 0;
    }

    private void Collect(WorkerReporter reporter)
    {
        ref var counters = ref reporter.Counters;
        for (var i = 0; i < Math.Min(inputs.Length, WorkerMetrics.MaxInputs); i++)
        {
            counters.SkippedPerInput[i] = inputs[i].FramesSkipped;
        }

        counters.TornFrames = tornFrames;
    }
}
