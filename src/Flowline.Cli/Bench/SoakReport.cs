namespace Flowline.Cli.Bench;

/// <summary>How <c>flowline bench soak</c> runs.</summary>
/// <param name="Document">The pipeline (ao-basic by default).</param>
/// <param name="Duration">How long the pipeline is soaked, from its start.</param>
/// <param name="KillInterval">How often a worker is killed (SIGKILL) and restarted.</param>
/// <param name="Readers">Threads attaching readers to the pipeline's streams and leaving them, in a loop.</param>
/// <param name="StatusClients">Clients calling <c>GET /status</c> back to back.</param>
/// <param name="Lossless">Make every stream lossless (false: the document's delivery).</param>
/// <param name="RateHz">The sources' <c>rate_hz</c>; null leaves the document's.</param>
/// <param name="Seed">Seeds the readers' choices of stream, delivery and session length.</param>
/// <param name="Victims">The workers to kill, in turn; empty for every source and kernel (and sink, with the document's delivery).</param>
internal sealed record SoakOptions(
    string Document,
    TimeSpan Duration,
    TimeSpan KillInterval,
    int Readers,
    int StatusClients,
    bool Lossless,
    double? RateHz,
    int Seed,
    IReadOnlyList<string> Victims);

/// <summary>
/// The figures that must be zero. <c>frames_lost</c>: gaps in the sequences an external lossless reader
/// read between attaching and leaving, frames a pipeline lossless reader skipped, and frames published
/// on the sink's stream that the sink did not consume. <c>torn_frames_accepted</c>: frames a reader
/// accepted whose payload is not the frame the stream must hold.
/// </summary>
internal sealed record SoakChecks(
    long FramesLost,
    long TornFramesAccepted,
    long OutOfOrderFrames,
    long ReaderErrors,
    long RestartsFailed,
    long UnexpectedFailures,
    long StatusErrors,
    long Leftovers)
{
    /// <summary>The names of the figures that are not zero.</summary>
    public IReadOnlyList<string> NotZero() =>
    [
        .. new (string Name, long Value)[]
        {
            ("frames_lost", FramesLost),
            ("torn_frames_accepted", TornFramesAccepted),
            ("out_of_order_frames", OutOfOrderFrames),
            ("reader_errors", ReaderErrors),
            ("restarts_failed", RestartsFailed),
            ("unexpected_failures", UnexpectedFailures),
            ("status_errors", StatusErrors),
            ("leftovers", Leftovers),
        }.Where(f => f.Value != 0).Select(f => f.Name),
    ];
}

/// <summary>One kill and restart.</summary>
/// <param name="AtS">When the worker was killed, in seconds from the start.</param>
/// <param name="Worker">The worker killed.</param>
/// <param name="Pid">Its process.</param>
/// <param name="NewPid">The process that replaced it (null if the restart failed).</param>
/// <param name="DetectedMs">From the kill to the status showing the pipeline failed.</param>
/// <param name="RestartMs">The <c>POST /commands/restart</c> call.</param>
/// <param name="ResumedMs">From the restart's answer until the new process has processed a frame and the sink has consumed more after that.</param>
/// <param name="Error">What went wrong, or null.</param>
internal sealed record SoakKill(double AtS, string Worker, int Pid, int? NewPid, double? DetectedMs, double? RestartMs, double? ResumedMs, string? Error);

/// <summary>What the external readers of one delivery did.</summary>
/// <param name="Delivery">lossless or latest.</param>
/// <param name="Sessions">Readers attached and disposed.</param>
/// <param name="Frames">Frames read.</param>
/// <param name="FramesVerified">Frames whose payload was checked (streams with a known content).</param>
/// <param name="FramesLost">Sequences missing between two frames (lossless readers).</param>
/// <param name="OutOfOrder">Frames whose sequence did not follow the previous one.</param>
/// <param name="TornAccepted">Frames accepted whose payload failed the check.</param>
/// <param name="TornCopiesDiscarded">Copies the reader itself found overwritten and discarded (latest delivery).</param>
/// <param name="FramesSkipped">Frames passed over (latest delivery).</param>
/// <param name="Errors">Attaches or reads that threw, or reads that ended (end of stream).</param>
internal sealed record SoakReaderFigures(
    string Delivery,
    long Sessions,
    long Frames,
    long FramesVerified,
    long FramesLost,
    long OutOfOrder,
    long TornAccepted,
    long TornCopiesDiscarded,
    long FramesSkipped,
    long Errors);

/// <summary>How the payload of a stream's frames is checked.</summary>
/// <param name="Stream">The stream.</param>
/// <param name="Check"><c>frame_id</c>: the payload is the source's pattern frame of the header's frame id; <c>set</c>: the payload is one of the frames a stateless kernel computes from the possible input frames.</param>
/// <param name="DistinctFrames">How many frames the stream can hold.</param>
internal sealed record SoakStreamCheck(string Stream, string Check, int DistinctFrames);

/// <summary>The sink's count against its writer's, after the sources were killed and the pipeline drained.</summary>
/// <param name="Sink">The sink (never killed).</param>
/// <param name="Stream">Its stream.</param>
/// <param name="FramesPublished">Frames its writer published on the stream.</param>
/// <param name="FramesConsumed">Frames the sink reports it consumed.</param>
/// <param name="Lost">Published minus consumed.</param>
internal sealed record SoakSinkCount(string Sink, string Stream, long FramesPublished, long FramesConsumed, long Lost);

/// <summary>The <c>GET /status</c> load.</summary>
/// <param name="Clients">Clients calling back to back.</param>
/// <param name="Requests">Answers received.</param>
/// <param name="Errors">Calls that failed (an error status, no answer, or the client's time limit of 10 s).</param>
/// <param name="RequestsPerSecond">Answers per second.</param>
/// <param name="Latency">Latency of the answers.</param>
/// <param name="FirstError">The first failure's message.</param>
internal sealed record SoakStatusLoad(int Clients, long Requests, long Errors, double RequestsPerSecond, LatencySummary Latency, string? FirstError);

/// <summary>The resident memory of one process over the soak (sampled from /proc every second).</summary>
/// <param name="Name">server, soak (this process: readers, clients and their samples) or a worker's name.</param>
/// <param name="Pid">The process.</param>
/// <param name="FromS">The first sample, in seconds from the start.</param>
/// <param name="ToS">The last sample (a killed worker's is before its kill).</param>
/// <param name="FirstBytes">Resident memory at the first sample.</param>
/// <param name="LastBytes">At the last.</param>
/// <param name="MaxBytes">The most sampled.</param>
/// <param name="GrowthBytes">Last minus first.</param>
/// <param name="WarmBytes">At the first sample once the process had run the warm-up (a quarter of the soak, at most 60 s: the runtime's JIT tiers and heaps settle); null if it did not live that long.</param>
/// <param name="GrowthAfterWarmupBytes">Last minus warm: the figure a leak shows in.</param>
internal sealed record SoakProcessMemory(string Name, int Pid, double FromS, double ToS, long FirstBytes, long LastBytes, long MaxBytes, long GrowthBytes, long? WarmBytes, long? GrowthAfterWarmupBytes);

/// <summary>Everything <c>flowline bench soak</c> measured.</summary>
internal sealed record SoakReport(
    string Command,
    DateTimeOffset Timestamp,
    MachineInfo Machine,
    string Document,
    string Namespace,
    string Delivery,
    double? RateHz,
    double DurationS,
    double KillIntervalS,
    int Workers,
    bool Passed,
    IReadOnlyList<string> NotZero,
    SoakChecks Checks,
    int RestartsDone,
    IReadOnlyList<SoakKill> Kills,
    IReadOnlyList<SoakReaderFigures> Readers,
    long PipelineLosslessSkipped,
    long WorkerTornFramesDiscarded,
    IReadOnlyList<SoakStreamCheck> FrameChecks,
    SoakSinkCount? SinkCount,
    SoakStatusLoad Status,
    IReadOnlyList<SoakProcessMemory> Processes,
    int? ServerExitCode,
    IReadOnlyList<string> Leftovers,
    IReadOnlyList<string> Problems);
