namespace Flowline.Cli.Commands;

/// <summary>The exit codes of every flowline command.</summary>
internal static class ExitCodes
{
    /// <summary>The command did what was asked.</summary>
    public const int Ok = 0;

    /// <summary>The command failed, or its command line did not parse; the reason is on standard error.</summary>
    public const int Failed = 1;
}
