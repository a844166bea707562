using System.Numerics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Flowline.Runtime;
using Flowline.SharedMemory;
using Flowline.Status;

namespace Flowline.ControlPlane;

/// <summary>
/// <c>GET /streams/{name}/latest</c>: the newest frame of a stream as JSON, so that a remote viewer needs
/// no shared memory. Each stream is read at most once per <see cref="ControlApiOptions.PreviewInterval"/>
/// (requests in between get the same answer), and without holding the writer back: the frame is peeked
/// and copied, and the copy is checked against the writer's cursor afterwards.
/// </summary>
internal sealed class StreamPreview(ControlService service, ControlApiOptions options)
{
    private readonly Lock gate = new();
    private readonly Dictionary<string, (long At, PipelineManager Manager, byte[] Body)> cache = [];

    /// <summary>The answer's JSON text (UTF-8), serialized once per read of the stream: requests in between get the same bytes.</summary>
    public byte[] Latest(string name)
    {
        var manager = service.Manager;
        _ = manager.Pipeline.Spec.FindStream(name) ?? throw new KeyNotFoundException(
            $"the pipeline has no stream '{name}'; streams are: {string.Join(", ", manager.Pipeline.Spec.Streams.Select(s => s.Name))}");
        lock (gate)
        {
            if (manager.State is PipelineState.Initialized or PipelineState.Stopped)
            {
                throw new ControlException(409, $"stream '{name}' does not exist while the pipeline is {manager.State.ToName()}; build it first");
            }

            var now = Environment.TickCount64;
            if (cache.TryGetValue(name, out var hit) && hit.Manager == manager && now - hit.At < options.PreviewInterval.TotalMilliseconds)
            {
                return hit.Body;
            }

            JsonObject body;
            try
            {
                body = Read(manager.Namespace, name);
            }
            catch (SharedMemoryException e)
            {
                throw new ControlException(409, $"stream '{name}' cannot be read now (the pipeline is {service.Manager.State.ToName()}): {e.Message}");
            }

            if (service.Manager != manager)
            {
                throw new ControlException(409, $"the document was replaced while stream '{name}' was read; ask again");
            }

            var bytes = System.Text.Encoding.UTF8.GetBytes(body.ToJsonString(ControlJson.Options));
            cache[name] = (now, manager, bytes);
            return bytes;
        }
    }

    private JsonObject Read(string @namespace, string name)
    {
        using var stream = SharedStream.Attach(@namespace, name);
        var shape = stream.Format.Shape;
        var type = stream.Format.ElementType; // what the stream holds, whatever the document now says
        using var reader = stream.OpenReader<byte>(new ReaderOptions { Delivery = Delivery.Latest });
        var copy = new byte[stream.Format.FrameBytes];
        FrameHeader header = default;
        var found = false;
        for (var attempt = 0; attempt < 16 && !found; attempt++)
        {
            if (!reader.PeekNewest(out var frame, out header))
            {
                break;
            }

            frame.Span.CopyTo(copy);
            found = reader.IsStillIntact(header.Sequence);
        }

        var body = new JsonObject
        {
            ["stream"] = name,
            ["shape"] = new JsonArray([.. shape.Select(d => (JsonNode)JsonValue.Create(d))]),
            ["dtype"] = type.ToName(),
            ["available"] = found,
        };
        if (!found)
        {
            return body;
        }

        var values = Values(copy, type, options.PreviewMaxElements, out var truncated);
        return body
            .With("sequence", header.Sequence)
            .With("frame_id", header.FrameId)
            .With("publish_ns", header.PublishTimestampNs)
            .With("origin_ns", header.OriginTimestampNs)
            .With("age_s", Math.Round((MonotonicClock.NowNs() - header.PublishTimestampNs) / 1e9, 6))
            .With("truncated", truncated)
            .With("data", values);
    }

    /// <summary>The frame's values, flattened in row-major order (complex values as [re, im] pairs).</summary>
    private static JsonArray Values(byte[] frame, ElementType type, int max, out bool truncated)
    {
        var count = frame.Length / type.SizeOf();
        truncated = count > max;
        var n = Math.Min(count, max);
        var array = new JsonArray();
        for (var i = 0; i < n; i++)
        {
            array.Add(Element(frame, type, i));
        }

        return array;
    }

    private static JsonNode? Element(byte[] frame, ElementType type, int i) => type switch
    {
        ElementType.Float32 => Finite(MemoryMarshal.Cast<byte, float>(frame)[i]),
        ElementType.Float64 => Finite(MemoryMarshal.Cast<byte, double>(frame)[i]),
        ElementType.Int8 => JsonValue.Create((sbyte)frame[i]),
        ElementType.UInt8 => JsonValue.Create(frame[i]),
        ElementType.Int16 => JsonValue.Create(MemoryMarshal.Cast<byte, short>(frame)[i]),
        ElementType.UInt16 => JsonValue.Create(MemoryMarshal.Cast<byte, ushort>(frame)[i]),
        ElementType.Int32 => JsonValue.Create(MemoryMarshal.Cast<byte, int>(frame)[i]),
        ElementType.UInt32 => JsonValue.Create(MemoryMarshal.Cast<byte, uint>(frame)[i]),
        ElementType.Int64 => JsonValue.Create(MemoryMarshal.Cast<byte, long>(frame)[i]),
        ElementType.UInt64 => JsonValue.Create(MemoryMarshal.Cast<byte, ulong>(frame)[i]),
        ElementType.Bool => JsonValue.Create(frame[i] != 0),
        ElementType.Complex64 => Pair(MemoryMarshal.Cast<byte, float>(frame)[2 * i], MemoryMarshal.Cast<byte, float>(frame)[(2 * i) + 1]),
        ElementType.Complex128 => Pair(MemoryMarshal.Cast<byte, Complex>(frame)[i].Real, MemoryMarshal.Cast<byte, Complex>(frame)[i].Imaginary),
        _ => null,
    };

    private static JsonArray Pair(double re, double im) => [Finite(re), Finite(im)];

    /// <summary>JSON has no NaN or infinity: those are sent as the strings "NaN", "Infinity", "-Infinity".</summary>
    private static JsonNode? Finite(double value) => double.IsFinite(value) ? JsonValue.Create(value) : JsonValue.Create(value.ToString(System.Globalization.CultureInfo.InvariantCulture));
}
