using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.Runtime;

namespace Flowline.ControlPlane;

/// <summary>
/// <c>GET /metrics</c>: the status in Prometheus' text exposition format (version 0.0.4). Every series
/// is labelled with the pipeline's namespace; worker series with the worker's name and role.
/// </summary>
internal static class PrometheusText
{
    private static readonly (string Field, string Metric, string Type, string Help)[] WorkerFields =
    [
        ("frames_processed", "flowline_worker_frames_total", "counter", "Frames a worker processed (kernels), wrote (sources) or consumed (sinks)."),
        ("throughput_hz", "flowline_worker_throughput_hz", "gauge", "Rolling frames per second of a worker."),
        ("avg_exec_us", "flowline_worker_exec_avg_microseconds", "gauge", "Mean execution time over the metrics window."),
        ("last_exec_us", "flowline_worker_exec_last_microseconds", "gauge", "Execution time of the last frame."),
        ("jitter_us_rms", "flowline_worker_jitter_microseconds", "gauge", "Population standard deviation of the execution time over the metrics window."),
        ("idle_s", "flowline_worker_idle_seconds", "gauge", "Seconds since the worker last produced a frame."),
        ("cpu_percent", "flowline_worker_cpu_percent", "gauge", "CPU use of the worker, percent of one core."),
        ("rss_bytes", "flowline_worker_resident_bytes", "gauge", "Resident memory of the worker's process."),
        ("torn_frames", "flowline_worker_torn_frames_total", "counter", "Latest-delivery copies the worker discarded because the writer overwrote them."),
        ("auxiliary_torn_copies", "flowline_worker_auxiliary_torn_copies_total", "counter", "Auxiliary-input copies the worker discarded because the writer overwrote them (it kept the last intact copy)."),
        ("frame_sync_skew_events", "flowline_worker_frame_sync_skew_events_total", "counter", "Times matching_frame_id inputs disagreed."),
        ("missed_writes", "flowline_worker_missed_writes_total", "counter", "Source periods missed, or frames a sink skipped."),
    ];

    public static string Of(ControlService service)
    {
        var status = service.Status();
        var ns = service.Manager.Namespace;
        var text = new StringBuilder();
        Header(text, "flowline_pipeline_state", "gauge", "1 for the pipeline's current state, 0 for the others.");
        var state = (string?)status["state"];
        foreach (var name in Enum.GetValues<PipelineState>().Select(s => s.ToName()))
        {
            Sample(text, "flowline_pipeline_state", [("namespace", ns), ("state", name)], name == state ? 1 : 0);
        }

        Header(text, "flowline_document_revision", "gauge", "Revision of the served document.");
        Sample(text, "flowline_document_revision", [("namespace", ns)], service.Revision);
        Header(text, "flowline_failures", "gauge", "Failure records of the pipeline.");
        Sample(text, "flowline_failures", [("namespace", ns)], status["failures"] is JsonArray f ? f.Count : 0);

        var workers = Workers(status).ToList();
        foreach (var (field, metric, type, help) in WorkerFields)
        {
            var rows = workers.Where(w => Number(w.Data[field]) is not null).ToList();
            if (rows.Count == 0)
            {
                continue;
            }

            Header(text, metric, type, help);
            foreach (var (role, name, data) in rows)
            {
                Sample(text, metric, [("namespace", ns), ("role", role), ("worker", name)], Number(data[field])!.Value);
            }
        }

        Header(text, "flowline_worker_latency_microseconds", "gauge", "End-to-end latency from the frame's origin, by quantile (max as quantile 1).");
        foreach (var (role, name, data) in workers)
        {
            if (data["latency_us"] is not JsonObject latency)
            {
                continue;
            }

            foreach (var (key, quantile) in new[] { ("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99"), ("max", "1") })
            {
                if (Number(latency[key]) is { } value)
                {
                    Sample(text, "flowline_worker_latency_microseconds", [("namespace", ns), ("role", role), ("worker", name), ("quantile", quantile)], value);
                }
            }
        }

        if (status["streams"] is JsonObject streams)
        {
            Header(text, "flowline_stream_fill_ratio", "gauge", "Fill of a stream's ring (0 to 1).");
            foreach (var (name, node) in streams)
            {
                if (Number(node?["fill"]) is { } fill)
                {
                    Sample(text, "flowline_stream_fill_ratio", [("namespace", ns), ("stream", name)], fill);
                }
            }

            Header(text, "flowline_stream_frames_published_total", "counter", "Frames published into a stream.");
            foreach (var (name, node) in streams)
            {
                if (Number(node?["frames_published"]) is { } published)
                {
                    Sample(text, "flowline_stream_frames_published_total", [("namespace", ns), ("stream", name)], published);
                }
            }
        }

        return text.ToString();
    }

    private static IEnumerable<(string Role, string Name, JsonObject Data)> Workers(JsonObject status)
    {
        foreach (var (group, role) in new[] { ("workers", "kernel"), ("sources", "source"), ("sinks", "sink") })
        {
            if (status[group] is not JsonObject members)
            {
                continue;
            }

            foreach (var (name, node) in members)
            {
                if (node is JsonObject data)
                {
                    yield return (data["task"] is JsonValue t && t.GetValueKind() == JsonValueKind.True ? "task" : role, name, data);
                }
            }
        }
    }

    /// <summary>A number of the status, whether it was stored as an integer or a float.</summary>
    private static double? Number(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture) : null;

    private static void Header(StringBuilder text, string metric, string type, string help) =>
        text.Append("# HELP ").Append(metric).Append(' ').Append(help).Append('\n')
            .Append("# TYPE ").Append(metric).Append(' ').Append(type).Append('\n');

    private static void Sample(StringBuilder text, string metric, (string Name, string Value)[] labels, double value)
    {
        text.Append(metric).Append('{');
        for (var i = 0; i < labels.Length; i++)
        {
            text.Append(i == 0 ? "" : ",").Append(labels[i].Name).Append("=\"").Append(Escape(labels[i].Value)).Append('"');
        }

        text.Append("} ").Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
}
