namespace Flowline.Cli.Commands;

/// <summary>The exit codes of every flowline command.</summary>
internal static class ExitCodes
{
    /// <summary>The command did what was asked.</summary>
    public const int Ok = 0;

    /// <summary>The command failed, or its command line did not parse; the reason is on standard error.</summary>
    public const int Failed = 1;

    /// <summary><c>bridge</c>: the bridge could not start. <c>run</c>, <c>benchmark</c>: the pipeline could not be built or started (a stream, a worker, the start timeout), or the measurement could not be set up.</summary>
    public const int StartFailed = 2;

    /// <summary><c>run</c>, <c>benchmark</c>: a worker failed while the pipeline ran; the failures are on standard error.</summary>
    public const int WorkerFailed = 3;

    /// <summary><c>bench soak</c>: a figure that must be zero was not (frames lost, torn frames accepted, a failed restart, something left behind, ...).</summary>
    public const int SoakFailed = 4;
}
