namespace Flowline.Tests.Documents;

/// <summary>
/// Runs a check of a hostile or generated input on a thread of its own, failing the test if it hangs or
/// allocates out of proportion. The time bound detects hangs (minutes, or forever); it is no measure of speed.
/// </summary>
internal static class Bounded
{
    /// <summary>A case still running after this long is a hang.</summary>
    public static readonly TimeSpan HangAfter = TimeSpan.FromSeconds(60);

    /// <summary>Runs <paramref name="action"/>; fails if it runs longer than <see cref="HangAfter"/> or allocates <paramref name="maxAllocatedBytes"/> or more.</summary>
    public static void Run(string what, long maxAllocatedBytes, Action action)
    {
        long allocated = 0;
        var task = Task.Factory.StartNew(
            () =>
            {
                var before = GC.GetAllocatedBytesForCurrentThread();
                action();
                allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
        Assert.True(task.Wait(HangAfter), $"still running after {HangAfter.TotalSeconds} s (a hang) on:\n{Shown(what)}");
        Assert.True(allocated < maxAllocatedBytes, $"{allocated:N0} bytes allocated on:\n{Shown(what)}");
    }

    private static string Shown(string what) => what.Length <= 2000 ? what : what[..2000] + $"... ({what.Length:N0} characters)";
}
