using System.Globalization;
using Flowline.Status;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Flowline.Cli.Commands;

/// <summary>One worker's line of <c>flowline top</c>.</summary>
internal sealed record TopWorker(string Name, string Role, int? Pid, string Health, double CpuPercent, long RssBytes, double RateHz, long Frames, HistogramSummary? Compute);

/// <summary>One reader's line of <c>flowline top</c>: rates and ratios over the last interval.</summary>
internal sealed record TopReader(string Name, double RateHz, long Skipped, double WaitRatio, double Fill, HistogramSummary? Latency);

/// <summary>One stream's line of <c>flowline top</c>: rates and ratios over the last interval.</summary>
internal sealed record TopStream(string Name, string? Writer, double RateHz, double BytesPerSecond, double BlockedRatio, double Fill, IReadOnlyList<TopReader> Readers);

/// <summary>What one screen of <c>flowline top</c> shows, built from a status and two profiling snapshots.</summary>
internal sealed record TopModel(string Url, string State, string Namespace, DateTimeOffset Time, IReadOnlyList<TopWorker> Workers, IReadOnlyList<TopStream> Streams)
{
    /// <summary>
    /// The model of <paramref name="status"/> and <paramref name="profiling"/>; rates and ratios are taken
    /// over the interval since <paramref name="previous"/> (zero without one).
    /// </summary>
    public static TopModel From(string url, PipelineStatus status, ProfilingSnapshot profiling, ProfilingSnapshot? previous)
    {
        var compute = profiling.Nodes.ToDictionary(n => n.Name, n => n.Compute, StringComparer.Ordinal);
        var workers = status.AllWorkers()
            .Select(w => new TopWorker(w.Name, w.Role, w.Pid, w.Health, w.CpuPercent, w.RssBytes, w.ThroughputHz, w.Frames, compute.GetValueOrDefault(w.Name)))
            .ToList();
        var seconds = previous is null ? 0 : (profiling.Time - previous.Time).TotalSeconds;
        var before = previous?.Streams.ToDictionary(s => s.Name, StringComparer.Ordinal) ?? [];
        double Rate(double now, double then) => seconds > 0 ? Math.Max(0, now - then) / seconds : 0;
        var streams = profiling.Streams.Select(s =>
        {
            var old = before.GetValueOrDefault(s.Name);
            var readers = s.Readers.Select(r =>
            {
                var was = old?.Readers.FirstOrDefault(o => o.Index == r.Index && o.Pid == r.Pid);
                return new TopReader(
                    r.Node ?? $"pid {r.Pid}",
                    was is null ? 0 : Rate(r.Frames, was.Frames),
                    r.Skipped,
                    was is null ? 0 : Math.Min(1, Rate(r.WaitSeconds, was.WaitSeconds)),
                    r.Fill,
                    r.Latency);
            }).ToList();
            return new TopStream(
                s.Name,
                s.Writer.Node ?? (s.Writer.Pid is { } pid ? $"pid {pid}" : null),
                old is null ? 0 : Rate(s.Writer.Frames, old.Writer.Frames),
                old is null ? 0 : Rate(s.Writer.Bytes, old.Writer.Bytes),
                old is null ? 0 : Math.Min(1, Rate(s.Writer.BlockedSeconds, old.Writer.BlockedSeconds)),
                s.Fill,
                readers);
        }).ToList();
        return new TopModel(url, status.State, status.Namespace, profiling.Time, workers, streams);
    }
}

/// <summary>Draws a <see cref="TopModel"/> with Spectre.Console: a header, a table of workers, a table of streams and their readers.</summary>
internal static class TopView
{
    public static IRenderable Render(TopModel model)
    {
        var header = new Markup(
            $"[bold]flowline top[/]  {Markup.Escape(model.Url)}  state [bold]{Markup.Escape(model.State)}[/]  namespace {Markup.Escape(model.Namespace)}  " +
            $"{model.Time.ToUniversalTime().ToString("HH:mm:ss", CultureInfo.InvariantCulture)} UTC");

        var workers = new Table().Border(TableBorder.Simple).Title("workers");
        foreach (var column in new[] { "worker", "role", "pid", "health", "cpu %", "rss MiB", "rate Hz", "frames", "compute p50 µs", "p99 µs", "max µs" })
        {
            workers.AddColumn(new TableColumn(column) { Alignment = column is "worker" or "role" or "health" ? Justify.Left : Justify.Right });
        }

        foreach (var w in model.Workers)
        {
            workers.AddRow(
                Text(w.Name),
                Text(w.Role),
                Text(w.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-"),
                Text(w.Health),
                Text(Number(w.CpuPercent, 1)),
                Text(Number(w.RssBytes / 1048576.0, 1)),
                Text(Number(w.RateHz, 1)),
                Text(w.Frames.ToString(CultureInfo.InvariantCulture)),
                Text(Micro(w.Compute?.P50Us)),
                Text(Micro(w.Compute?.P99Us)),
                Text(Micro(w.Compute?.MaxUs)));
        }

        var streams = new Table().Border(TableBorder.Simple).Title("streams (rates over the last interval)");
        foreach (var column in new[] { "stream / reader", "writer", "rate Hz", "MB/s", "blocked %", "wait %", "fill %", "skipped", "latency p50 µs", "p99 µs", "max µs" })
        {
            streams.AddColumn(new TableColumn(column) { Alignment = column is "stream / reader" or "writer" ? Justify.Left : Justify.Right });
        }

        foreach (var s in model.Streams)
        {
            streams.AddRow(
                Text(s.Name),
                Text(s.Writer ?? "-"),
                Text(Number(s.RateHz, 1)),
                Text(Number(s.BytesPerSecond / 1e6, 2)),
                Text(Number(s.BlockedRatio * 100, 1)),
                Text(""),
                Text(Number(s.Fill * 100, 0)),
                Text(""),
                Text(""),
                Text(""),
                Text(""));
            foreach (var r in s.Readers)
            {
                streams.AddRow(
                    Text("  └ " + r.Name),
                    Text(""),
                    Text(Number(r.RateHz, 1)),
                    Text(""),
                    Text(""),
                    Text(Number(r.WaitRatio * 100, 1)),
                    Text(Number(r.Fill * 100, 0)),
                    Text(r.Skipped.ToString(CultureInfo.InvariantCulture)),
                    Text(Micro(r.Latency?.P50Us)),
                    Text(Micro(r.Latency?.P99Us)),
                    Text(Micro(r.Latency?.MaxUs)));
            }
        }

        return new Rows(header, workers, streams);
    }

    private static Text Text(string text) => new(text);

    private static string Number(double value, int decimals) => value.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    private static string Micro(double? value) => value is { } v ? Number(v, v < 100 ? 1 : 0) : "-";
}
