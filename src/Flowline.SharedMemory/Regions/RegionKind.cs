namespace Flowline.SharedMemory;

/// <summary>What a region holds; recorded in its header.</summary>
public enum RegionKind
{
    /// <summary>A stream: a ring of frame slots with one writer and a table of readers.</summary>
    Stream = 1,

    /// <summary>An event: a set flag and a count of pending activations.</summary>
    Event = 2,

    /// <summary>A probe: two cache lines that benchmarks bounce between processes to measure the machine's limits.</summary>
    Probe = 3,

    /// <summary>A worker's control block: command, state, heartbeat, metrics and last error.</summary>
    ControlBlock = 4,

    /// <summary>A worker's profile block: its latency and compute-time histograms, encoded (decision 90).</summary>
    Profile = 5,
}
