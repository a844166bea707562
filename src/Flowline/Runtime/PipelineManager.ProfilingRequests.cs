using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// The routed profiling operations (decision 95): <c>profiling_snapshot</c>, <c>set_profiling_trace</c> and
/// <c>profiling_trace_batch</c> sent to one process are answered by the manager from that process's
/// profile block and the stream regions, the shared memory they live in, without a trip through the
/// worker's mailbox.
/// </summary>
public sealed partial class PipelineManager
{
    /// <summary>The routed operations the manager answers for a process from shared memory.</summary>
    public static IReadOnlyList<string> ProfilingOperations { get; } = ["profiling_snapshot", "profiling_trace_batch", "set_profiling_trace"];

    private static bool IsProfilingOp(string op) => ProfilingOperations.Contains(op, StringComparer.Ordinal);

    /// <summary>
    /// Sends a request to a worker: profiling operations are answered from shared memory, except a Python
    /// worker's <c>profiling_snapshot</c>, whose histograms the worker keeps itself (it has no profile block):
    /// its answer fills the readers' latency and the node's compute time of the counters read here.
    /// </summary>
    private Task<RequestReply> Route(WorkerSlot slot, string op, JsonObject? args, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!IsProfilingOp(op))
        {
            return SendAsync(slot, op, args, timeout, cancellationToken);
        }

        var local = ProfilingRequest(slot, op, args);
        return op == "profiling_snapshot" && PythonWorker.Runs(slot.Plan) ? WithPythonHistogramsAsync(slot, local, timeout, cancellationToken) : Task.FromResult(local);
    }

    private static async Task<RequestReply> WithPythonHistogramsAsync(WorkerSlot slot, RequestReply local, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var python = await SendAsync(slot, "profiling_snapshot", null, timeout, cancellationToken).ConfigureAwait(false);
        var merged = (JsonObject)local.Result!.DeepClone();
        MergePythonProfile(merged, python.Result as JsonObject, slot.Plan.Name);
        return local with { Result = merged, ElapsedUs = Math.Round(local.ElapsedUs + Stopwatch.GetElapsedTime(started).TotalMicroseconds, 1) };
    }

    /// <summary>
    /// Puts a Python worker's histograms (its <c>profiling_snapshot</c>: <c>streams[].readers[].latency</c> and
    /// <c>nodes[].compute</c>, each a <see cref="HistogramSummary"/> with <c>buckets</c>) into the snapshot of
    /// its process's counters: each of the process's readers of a stream gets that stream's latency.
    /// </summary>
    internal static void MergePythonProfile(JsonObject snapshot, JsonObject? python, string node)
    {
        if (python is null)
        {
            return;
        }

        foreach (var stream in (python["streams"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var latency = (stream["readers"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault()?["latency"];
            var local = (snapshot["streams"] as JsonArray ?? []).OfType<JsonObject>().FirstOrDefault(s => (string?)s["name"] == (string?)stream["name"]);
            foreach (var reader in (local?["readers"] as JsonArray ?? []).OfType<JsonObject>())
            {
                reader["node"] ??= node;
                reader["latency"] = latency?.DeepClone();
            }
        }

        var compute = (python["nodes"] as JsonArray ?? []).OfType<JsonObject>().FirstOrDefault(n => (string?)n["name"] == node)?["compute"];
        foreach (var entry in (snapshot["nodes"] as JsonArray ?? []).OfType<JsonObject>().Where(n => (string?)n["name"] == node))
        {
            entry["compute"] = compute?.DeepClone();
        }
    }

    /// <summary>Answers a profiling operation for the launch <paramref name="slot"/> (null: the manager's own process).</summary>
    private RequestReply ProfilingRequest(WorkerSlot? slot, string op, JsonObject? args)
    {
        var started = Stopwatch.GetTimestamp();
        if (slot is { HasExited: true })
        {
            throw new RequestException(RequestErrorCode.ProcessExited, $"{Describe(slot.Plan)} exited");
        }

        args ??= [];
        var processId = slot?.ProcessId.ToString() ?? ProcessId.ToString();
        JsonNode? result = op switch
        {
            "profiling_snapshot" => ProcessProfile(processId, args),
            "set_profiling_trace" => SetProcessTrace(slot, args),
            _ => ProcessTraceBatch(slot, args),
        };
        return new RequestReply
        {
            CorrelationId = MailboxClient.NextCorrelationId(),
            Op = op,
            Result = result,
            ElapsedUs = Math.Round(Stopwatch.GetElapsedTime(started).TotalMicroseconds, 1),
            ProcessId = processId,
            Node = slot?.Plan.Name ?? "",
        };
    }

    /// <summary><c>profiling_snapshot</c>: the streams the process writes or reads (with only its own readers) and its nodes.</summary>
    private JsonNode? ProcessProfile(string processId, JsonObject args)
    {
        if (args.Count > 0)
        {
            throw Invalid(args.First().Key, $"profiling_snapshot takes no arguments (got: {string.Join(", ", args.Select(a => a.Key))})");
        }

        var all = Profiling();
        var streams = all.Streams
            .Where(s => s.Writer.ProcessId == processId || s.Readers.Any(r => r.ProcessId == processId))
            .Select(s => s with { Readers = [.. s.Readers.Where(r => r.ProcessId == processId)] })
            .ToList();
        var snapshot = new ProfilingSnapshot(all.Time, streams, [.. all.Nodes.Where(n => n.ProcessId == processId)]) { Stale = all.Stale };
        return JsonNode.Parse(StatusJson.Serialize(snapshot));
    }

    /// <summary><c>set_profiling_trace</c>: switches the process's traces on (or off with <c>enabled: false</c>).</summary>
    private JsonNode? SetProcessTrace(WorkerSlot? slot, JsonObject args)
    {
        var kernel = TracedKernel(slot, "set_profiling_trace");
        Known(args, "set_profiling_trace", "enabled", "nodes", "streams", "every", "seconds");
        var enabled = args["enabled"] switch
        {
            null => true,
            JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
            var other => throw Invalid("enabled", $"'enabled' must be true or false, not {other.ToJsonString()}"),
        };
        var nodes = Strings(args, "nodes");
        var streams = Strings(args, "streams");
        var every = args["every"] switch
        {
            null => 1,
            JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out int n) && n >= 1 => n,
            var other => throw Invalid("every", $"'every' must be an integer of at least 1, not {other.ToJsonString()}"),
        };
        var seconds = args["seconds"] switch
        {
            null => 10.0,
            JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.GetValue<double>() is > 0 and <= 3600 => v.GetValue<double>(),
            var other => throw Invalid("seconds", $"'seconds' must be a number more than 0 and at most 3600, not {other.ToJsonString()}"),
        };
        foreach (var node in nodes ?? [])
        {
            if (node != slot!.Plan.Name)
            {
                throw Invalid("nodes", $"node '{node}' is not a node of this process (it runs '{slot.Plan.Name}')");
            }
        }

        foreach (var stream in streams ?? [])
        {
            if (!kernel.Inputs.Contains(stream))
            {
                throw Invalid("streams", $"stream '{stream}' is not an input of node '{kernel.Name}' (its inputs: {string.Join(", ", kernel.Inputs)})");
            }
        }

        lock (gate)
        {
            if (profiles[slot!.Plan.Index] is not { } block)
            {
                throw new RequestException(RequestErrorCode.NoHandler, $"{Describe(slot.Plan)} has no profile block (FLOWLINE_PROFILING=0)");
            }

            uint mask = 0;
            for (var i = 0; i < Math.Min(kernel.Inputs.Count, 32); i++)
            {
                if (streams is null || streams.Contains(kernel.Inputs[i]))
                {
                    mask |= 1u << i;
                }
            }

            if (enabled)
            {
                block.SetTrace(true, every, MonotonicClock.NowNs() + (long)(seconds * 1e9), mask);
            }
            else
            {
                block.SetTrace(false);
            }

            var state = enabled
                ? new TraceState(true, [kernel.Name], every, seconds)
                : new TraceState(false, [], 1, 0);
            var result = JsonNode.Parse(StatusJson.Serialize(state))!.AsObject();
            result["streams"] = new JsonArray([.. kernel.Inputs.Where((_, i) => (mask & (1u << i)) != 0).Select(s => JsonValue.Create(s))]);
            result["cursor"] = block.TraceCursor;
            return result;
        }
    }

    /// <summary><c>profiling_trace_batch</c>: the process's trace records after <c>cursor</c>, read without taking them.</summary>
    private JsonNode? ProcessTraceBatch(WorkerSlot? slot, JsonObject args)
    {
        var kernel = TracedKernel(slot, "profiling_trace_batch");
        Known(args, "profiling_trace_batch", "cursor");
        var cursor = args["cursor"] switch
        {
            null => 0L,
            JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out long n) && n >= 0 => n,
            var other => throw Invalid("cursor", $"'cursor' must be an integer of at least 0 (the 'cursor' of the previous batch), not {other.ToJsonString()}"),
        };
        var records = new List<TraceRecord>();
        long next, lost;
        lock (gate)
        {
            if (profiles[slot!.Plan.Index] is not { } block)
            {
                throw new RequestException(RequestErrorCode.NoHandler, $"{Describe(slot.Plan)} has no profile block (FLOWLINE_PROFILING=0)");
            }

            next = block.ReadTraces(cursor, records, out lost);
        }

        var samples = records.Select(r => new TraceSample(
            r.Input >= 0 && r.Input < kernel.Inputs.Count ? kernel.Inputs[r.Input] : "?", r.Sequence, r.FrameId, r.PublishNs, r.ReadNs, kernel.Name, r.ComputeNs)).ToList();
        return new JsonObject
        {
            ["cursor"] = next,
            ["lost"] = lost,
            ["samples"] = JsonNode.Parse(StatusJson.Serialize<IReadOnlyList<TraceSample>>(samples)),
        };
    }

    /// <summary>The node a trace operation is for and the inputs it traces: traces record kernels and sinks, so any other process has no handler.</summary>
    private static (string Name, IReadOnlyList<string> Inputs) TracedKernel(WorkerSlot? slot, string op) =>
        slot is not null && TracedInputs(slot.Plan.Node) is { } inputs ? (slot.Plan.Name, inputs) : throw new RequestException(
            RequestErrorCode.NoHandler,
            slot is null ? $"the manager has no handler for '{op}': traces record kernels and sinks, send it to one's process" : $"{Describe(slot.Plan)} has no handler for '{op}': traces record kernels and sinks");

    private static void Known(JsonObject args, string op, params string[] names)
    {
        foreach (var (name, _) in args)
        {
            if (!names.Contains(name, StringComparer.Ordinal))
            {
                throw Invalid(name, $"{op} has no argument '{name}' (it takes: {string.Join(", ", names)})");
            }
        }
    }

    private static List<string>? Strings(JsonObject args, string name)
    {
        switch (args[name])
        {
            case null:
                return null;
            case JsonArray array when array.All(e => e is JsonValue v && v.GetValueKind() == JsonValueKind.String):
                return array.Count == 0 ? null : [.. array.Select(e => e!.GetValue<string>())];
            case var other:
                throw Invalid(name, $"'{name}' must be an array of names, not {other.ToJsonString()}");
        }
    }

    private static RequestException Invalid(string field, string message) => new(RequestErrorCode.InvalidRequest, message, field);
}
