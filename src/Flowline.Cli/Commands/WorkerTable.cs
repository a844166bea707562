using Flowline.Status;
using Spectre.Console;

namespace Flowline.Cli.Commands;

/// <summary>The one table of workers the CLI prints (<c>flowline run</c>, <c>flowline status</c>, <c>flowline benchmark</c>).</summary>
internal static class WorkerTable
{
    /// <summary>
    /// Sources, kernels and tasks, then sinks: health, frames, rate, execution time and jitter (µs, over the
    /// metrics window), end-to-end latency (µs, not for sources) and CPU (percent of one core). Figures a
    /// worker has not measured yet are blank.
    /// </summary>
    /// <param name="status">The status or snapshot.</param>
    /// <param name="title">The table's title (markup), or null.</param>
    /// <param name="cpuPercent">The CPU figure to show instead of the status's (e.g. over a benchmark's window), or null.</param>
    public static Table Of(PipelineStatus status, string? title = null, Func<WorkerEntry, double?>? cpuPercent = null)
    {
        var table = new Table().AddColumns("worker", "role", "health", "frames", "Hz", "exec µs", "jitter µs", "latency p50/p99 µs", "CPU %");
        if (title is not null)
        {
            table.Title(title);
        }

        foreach (var w in status.Sources.Values.Cast<WorkerEntry>().Concat(status.Workers.Values).Concat(status.Sinks.Values))
        {
            var measured = w.HasFigures;
            table.AddRow(
                Markup.Escape(w.Name),
                w.Role,
                Markup.Escape(w.Health),
                Numbers.Format(w.Frames, "0"),
                Numbers.Format(w.ThroughputHz),
                measured ? Numbers.Format(w.AvgExecUs, "0.00") : "",
                measured ? Numbers.Format(w.JitterUsRms, "0.00") : "",
                measured && w.LatencyUs is { } l ? $"{Numbers.Format(l.P50)} / {Numbers.Format(l.P99)}" : "",
                cpuPercent?.Invoke(w) is { } cpu ? Numbers.Format(cpu) : measured ? Numbers.Format(w.CpuPercent) : "");
        }

        return table;
    }

    /// <summary>Writes one line per failure record, in red.</summary>
    public static void WriteFailures(PipelineStatus status)
    {
        foreach (var failure in status.Failures)
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(failure.ComponentType ?? "worker")} '{Markup.Escape(failure.Kernel)}' failed[/]: {Markup.Escape(failure.Error ?? "")}");
        }
    }
}
