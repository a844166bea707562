using Flowline.Documents;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>Profiling: the stream counters and the workers' histograms, read from shared memory (decision 90).</summary>
public sealed partial class PipelineManager
{
    private ProfilingSnapshot? lastProfiling;

    /// <summary>
    /// A profiling snapshot of the whole pipeline: every stream's writer and reader counters, each worker's
    /// input-latency histograms (matched to its reader entries) and compute-time histogram. Read from shared
    /// memory without asking any worker. Waits at most <paramref name="wait"/> for an operation in progress;
    /// then returns the last snapshot with <c>stale: true</c> (or an empty one).
    /// </summary>
    public ProfilingSnapshot Profiling(TimeSpan? wait = null)
    {
        if (!Monitor.TryEnter(gate, wait ?? TimeSpan.FromSeconds(1)))
        {
            return (lastProfiling ?? new ProfilingSnapshot(DateTimeOffset.UtcNow, [], [])) with { Stale = true };
        }

        try
        {
            lastProfiling = BuildProfiling();
            return lastProfiling;
        }
        finally
        {
            Monitor.Exit(gate);
        }
    }

    private ProfilingSnapshot BuildProfiling()
    {
        // Which node reads which reader entry, from the workers' profile blocks; the histograms decoded once.
        var readerNodes = new Dictionary<(string Stream, int Index), (string Node, HistogramSummary? Latency)>();
        var nodes = new List<NodeProfile>();
        for (var i = 0; i < profiles.Length; i++)
        {
            var worker = Plan.Workers[i];
            int? pid = slots[i] is { } slot && slot.Pid != 0 ? slot.Pid : null;
            HistogramSummary? computeSummary = null;
            if (profiles[i] is { } block)
            {
                foreach (var entry in block.Read())
                {
                    var summary = ProfileHistograms.Summarize(ProfileHistograms.Decode(entry.Encoded));
                    if (entry.Kind == ProfileEntryKind.InputLatency)
                    {
                        readerNodes[(entry.Name, entry.ReaderIndex)] = (worker.Name, summary);
                    }
                    else if (entry.Kind == ProfileEntryKind.Compute)
                    {
                        computeSummary = summary;
                    }
                }
            }

            if (worker.Node is KernelSpec)
            {
                nodes.Add(new NodeProfile(worker.Name, computeSummary) { Pid = pid });
            }
        }

        var streamProfiles = new List<StreamProfile>();
        foreach (var (name, stream) in streams.OrderBy(s => s.Key, StringComparer.Ordinal))
        {
            StreamStatistics statistics;
            try
            {
                statistics = stream.GetStatistics();
            }
            catch (ObjectDisposedException)
            {
                continue;
            }

            var writer = new WriterProfile(statistics.Cursor, statistics.BytesPublished, statistics.WriterBlockedNs / 1e9, null)
            {
                Node = WriterNode(name),
                Pid = statistics.WriterPid == 0 ? null : statistics.WriterPid,
                State = statistics.WriterState,
                SpaceWaits = statistics.SpaceWaits,
            };
            var readers = statistics.Readers.Select(r =>
            {
                readerNodes.TryGetValue((name, r.Index), out var owner);
                return new ReaderProfile(
                    owner.Node,
                    null,
                    r.FramesRead,
                    r.BytesRead,
                    r.WaitNs / 1e9,
                    r.FramesSkipped,
                    statistics.CapacityFrames == 0 ? 0 : Math.Clamp((double)(statistics.Cursor - r.Position) / statistics.CapacityFrames, 0, 1),
                    owner.Latency)
                {
                    Index = r.Index,
                    Pid = r.Pid,
                    Delivery = r.Delivery == Delivery.Lossless ? "lossless" : "latest",
                    Torn = r.TornCopies,
                };
            }).ToList();
            streamProfiles.Add(new StreamProfile(name, writer, readers) { CapacityFrames = statistics.CapacityFrames, Fill = statistics.Fill });
        }

        return new ProfilingSnapshot(DateTimeOffset.UtcNow, streamProfiles, nodes);
    }

    /// <summary>The node of the pipeline that writes <paramref name="stream"/>, or null.</summary>
    private string? WriterNode(string stream)
    {
        foreach (var worker in Plan.Workers)
        {
            var writes = worker.Node switch
            {
                KernelSpec k => k.Outputs.Contains(stream),
                SourceSpec s => s.Streams.Contains(stream),
                SinkSpec s => s.Outputs.Contains(stream),
                _ => false,
            };
            if (writes)
            {
                return worker.Name;
            }
        }

        return null;
    }

    /// <summary>Makes worker <paramref name="index"/>'s profile block anew (its histograms start empty with the worker).</summary>
    private void ReplaceProfile(int index, WorkerPlan worker)
    {
        DropProfile(index);
        if (!ProfileHistograms.Enabled)
        {
            return;
        }

        profiles[index] = ProfileBlock.Create(Plan.ControlNamespace, ProfileBlock.NameFor(worker.ControlName));
    }

    private void DropProfile(int index)
    {
        if (profiles[index] is { } block)
        {
            block.Unlink();
            block.Dispose();
            profiles[index] = null;
        }
    }

    private void DropProfiles()
    {
        for (var i = 0; i < profiles.Length; i++)
        {
            DropProfile(i);
        }
    }
}
