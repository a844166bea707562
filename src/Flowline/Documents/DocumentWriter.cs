using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.SharedMemory;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Flowline.Documents;

/// <summary>
/// Turns a <see cref="PipelineSpec"/> back into a document: a JSON object with shmpipeline's keys
/// (what the control plane serves) or YAML text (what a file holds). Only fields the spec holds are
/// written, in the forms the document used (<c>input</c> or <c>inputs</c>, aliases as a list or a
/// mapping), so a document survives load and save unchanged in meaning.
/// </summary>
internal static class DocumentWriter
{
    public static JsonObject ToJson(PipelineSpec spec)
    {
        var o = new JsonObject();
        Put(o, "namespace", spec.Namespace);
        if (spec.Plugins.Length > 0)
        {
            o["plugins"] = new JsonArray([.. spec.Plugins.Select(p => (JsonNode)JsonValue.Create(p))]);
        }

        PutNumber(o, "spin_budget", spec.SpinBudget);

        o["shared_memory"] = new JsonArray([.. spec.Streams.Select(Stream)]);
        if (spec.Kernels.Length > 0)
        {
            o["kernels"] = new JsonArray([.. spec.Kernels.Select(Kernel)]);
        }

        if (spec.Sources.Length > 0)
        {
            o["sources"] = new JsonArray([.. spec.Sources.Select(Source)]);
        }

        if (spec.Sinks.Length > 0)
        {
            o["sinks"] = new JsonArray([.. spec.Sinks.Select(Sink)]);
        }

        return o;
    }

    public static string ToYaml(PipelineSpec spec)
    {
        var document = new YamlDocument(ToYamlNode(ToJson(spec)));
        using var writer = new StringWriter(CultureInfo.InvariantCulture);
        new YamlStream(document).Save(writer, assignAnchors: false);
        var text = writer.ToString();

        // YamlDotNet ends a saved stream with a document-end marker; a pipeline file is one plain document.
        text = text.TrimEnd();
        return (text.EndsWith("...", StringComparison.Ordinal) ? text[..^3].TrimEnd() : text) + "\n";
    }

    private static JsonObject Stream(StreamSpec s)
    {
        var o = new JsonObject
        {
            ["name"] = s.Name,
            ["shape"] = new JsonArray([.. s.Shape.Select(d => (JsonNode)JsonValue.Create(d))]),
            ["dtype"] = s.Dtype.ToName(),
        };
        Put(o, "storage", s.Storage);
        Put(o, "mode", s.Mode?.ToName());
        Put(o, "namespace", s.Namespace);
        Put(o, "notify", s.Notify);
        if (s.Initial is { } initial)
        {
            o["initial"] = Initial(initial, s.Shape.AsSpan());
        }

        Put(o, "depth", s.Depth);
        Put(o, "delivery", s.Delivery is { } d ? Name(d) : null);
        Put(o, "wait", s.Wait is { } w ? Name(w) : null);
        PutNumber(o, "spin_budget", s.SpinBudget);
        if (s.Remote is { } r)
        {
            var remote = new JsonObject { ["nats"] = r.Nats, ["subject"] = r.Subject };
            Put(remote, "delivery", r.Delivery is { } rd ? Name(rd) : null);
            Put(remote, "durable", r.Durable);
            Put(remote, "token_file", r.TokenFile);
            Put(remote, "token_env", r.TokenEnv);
            Put(remote, "user", r.User);
            Put(remote, "password_file", r.PasswordFile);
            Put(remote, "password_env", r.PasswordEnv);
            Put(remote, "creds", r.Creds);
            Put(remote, "nkey", r.NKey);
            Put(remote, "tls_ca", r.TlsCa);
            Put(remote, "tls_cert", r.TlsCert);
            Put(remote, "tls_key", r.TlsKey);
            Put(remote, "tls_required", r.TlsRequired);
            o["remote"] = remote;
        }

        return o;
    }

    private static JsonObject Initial(InitialSpec initial, ReadOnlySpan<int> shape)
    {
        var o = new JsonObject { ["pattern"] = initial.Pattern };
        switch (initial)
        {
            case ConstantInitial c:
                o["value"] = Number(c.Value);
                break;
            case NormalInitial n:
                Put(o, "seed", n.Seed);
                PutNumber(o, "mean", n.Mean);
                PutNumber(o, "std", n.Std);
                break;
            case ValuesInitial v:
                var index = 0;
                o["values"] = Nest(v.Values.AsSpan(), shape, ref index);
                break;
            case IdentityInitial i:
                PutNumber(o, "scale", i.Scale);
                break;
            default:
                break;
        }

        return o;
    }

    private static JsonNode Nest(ReadOnlySpan<double> values, ReadOnlySpan<int> shape, ref int index)
    {
        if (shape.Length == 0)
        {
            return Number(values[index++]);
        }

        var array = new JsonArray();
        for (var i = 0; i < shape[0]; i++)
        {
            array.Add(Nest(values, shape[1..], ref index));
        }

        return array;
    }

    private static JsonObject Kernel(KernelSpec k)
    {
        var o = Node(k);
        Many(o, k.InputsAsList ? "inputs" : "input", k.Inputs, k.InputsAsList);
        Many(o, k.OutputsAsList ? "outputs" : "output", k.Outputs, k.OutputsAsList);
        Auxiliary(o, k);
        Put(o, "operation", k.Operation);
        Parameters(o, k);
        PutNumber(o, "read_timeout", k.ReadTimeout);
        PutNumber(o, "pause_sleep", k.PauseSleep);
        PutNumber(o, "poll_interval", k.PollInterval);
        Put(o, "trigger_policy", k.TriggerPolicy switch { TriggerPolicy.AnyNew => "any_new", TriggerPolicy.AllNew => "all_new", _ => null });
        if (k.Synchronization is { } sync)
        {
            var so = new JsonObject();
            Put(so, "mode", sync.Mode switch { SynchronizationMode.Count => "count", SynchronizationMode.MatchingFrameId => "matching_frame_id", _ => null });
            Put(so, "on_skew", sync.OnSkew);
            Put(so, "max_skew_generations", sync.MaxSkewGenerations);
            PutNumber(so, sync.MaxWaitSpelledTimeout ? "timeout" : "max_wait_s", sync.MaxWaitS);
            o["synchronization"] = so;
        }

        Put(o, "propagate_frame_id", k.PropagateFrameId);
        PerInput(o, "delivery", k.Delivery, Name);
        PerInput(o, "wait", k.Wait, Name);
        Placement(o, k);
        return o;
    }

    private static JsonObject Source(SourceSpec s)
    {
        var o = Node(s);
        Many(o, s.StreamsAsList ? "streams" : "stream", s.Streams, s.StreamsAsList);
        Auxiliary(o, s);
        Parameters(o, s);
        PutNumber(o, "poll_interval", s.PollInterval);
        PutNumber(o, "read_timeout", s.ReadTimeout);
        Placement(o, s);
        return o;
    }

    private static JsonObject Sink(SinkSpec s)
    {
        var o = Node(s);
        o["stream"] = s.Stream;
        if (s.Outputs.Length > 0)
        {
            o["outputs"] = new JsonArray([.. s.Outputs.Select(x => (JsonNode)JsonValue.Create(x))]);
        }

        Auxiliary(o, s);
        Parameters(o, s);
        PutNumber(o, "read_timeout", s.ReadTimeout);
        PutNumber(o, "pause_sleep", s.PauseSleep);
        PutNumber(o, "consume_timeout", s.ConsumeTimeout);
        Put(o, "delivery", s.Delivery is { } d ? Name(d) : null);
        Put(o, "wait", s.Wait is { } w ? Name(w) : null);
        Placement(o, s);
        return o;
    }

    private static JsonObject Node(NodeSpec n) => new() { ["name"] = n.Name, ["kind"] = n.Kind };

    private static void Many(JsonObject o, string key, System.Collections.Immutable.ImmutableArray<string> values, bool asList) =>
        o[key] = asList ? new JsonArray([.. values.Select(v => (JsonNode)JsonValue.Create(v))]) : JsonValue.Create(values[0]);

    private static void Auxiliary(JsonObject o, NodeSpec n)
    {
        if (n.Auxiliary.Length == 0 && !n.AuxiliaryAsMapping)
        {
            return;
        }

        if (n.AuxiliaryAsMapping)
        {
            var map = new JsonObject();
            foreach (var b in n.Auxiliary)
            {
                map[b.Alias] = b.Stream;
            }

            o["auxiliary"] = map;
        }
        else
        {
            o["auxiliary"] = new JsonArray([.. n.Auxiliary.Select(b => (JsonNode)JsonValue.Create(b.Stream))]);
        }
    }

    private static void Parameters(JsonObject o, NodeSpec n)
    {
        if (n.Parameters.Count > 0)
        {
            o["parameters"] = n.Parameters.ToJsonObject();
        }
    }

    private static void Placement(JsonObject o, NodeSpec n)
    {
        Put(o, "placement", n.Placement switch { WorkerPlacement.Process => "process", WorkerPlacement.Thread => "thread", _ => null });
        Put(o, "cpu", n.Cpu);
    }

    private static void PerInput<T>(JsonObject o, string key, PerInput<T>? values, Func<T, string> name)
        where T : struct
    {
        if (values is null)
        {
            return;
        }

        if (values.All is { } all)
        {
            o[key] = name(all);
            return;
        }

        var map = new JsonObject();
        foreach (var (stream, value) in values.ByStream)
        {
            map[stream] = name(value);
        }

        o[key] = map;
    }

    internal static string Name(Delivery d) => d == Delivery.Lossless ? "lossless" : "latest";

    internal static string Name(WaitPolicy w) => w switch
    {
        WaitPolicy.Spin => "spin",
        WaitPolicy.Block => "block",
        WaitPolicy.Predictive => "predictive",
        _ => "hybrid",
    };

    private static void Put(JsonObject o, string key, string? value)
    {
        if (value is not null)
        {
            o[key] = value;
        }
    }

    private static void Put(JsonObject o, string key, bool? value)
    {
        if (value is { } v)
        {
            o[key] = v;
        }
    }

    private static void Put(JsonObject o, string key, long? value)
    {
        if (value is { } v)
        {
            o[key] = v;
        }
    }

    private static void PutNumber(JsonObject o, string key, double? value)
    {
        if (value is { } v)
        {
            o[key] = Number(v);
        }
    }

    private static JsonNode Number(double value) =>
        double.IsFinite(value) ? JsonValue.Create(value) : JsonValue.Create(double.IsNaN(value) ? ".nan" : value > 0 ? ".inf" : "-.inf");

    /// <summary>JSON to YAML nodes: short lists of scalars in flow style; strings that would read back as another type are quoted.</summary>
    private static YamlNode ToYamlNode(JsonNode? node)
    {
        switch (node)
        {
            case null:
                return new YamlScalarNode("null");
            case JsonObject o:
                var map = new YamlMappingNode();
                foreach (var (key, value) in o)
                {
                    map.Add(new YamlScalarNode(key), ToYamlNode(value));
                }

                return map;
            case JsonArray a:
                var seq = new YamlSequenceNode(a.Select(ToYamlNode));
                if (a.All(x => x is JsonValue) && a.Count <= 16)
                {
                    seq.Style = YamlDotNet.Core.Events.SequenceStyle.Flow;
                }

                return seq;
            case JsonValue v:
                return v.GetValueKind() switch
                {
                    JsonValueKind.String => StringScalar(v.GetValue<string>()),
                    JsonValueKind.True => new YamlScalarNode("true"),
                    JsonValueKind.False => new YamlScalarNode("false"),
                    JsonValueKind.Number => new YamlScalarNode(v.ToJsonString()),
                    _ => new YamlScalarNode("null"),
                };
            default:
                return new YamlScalarNode("null");
        }
    }

    private static YamlScalarNode StringScalar(string text)
    {
        // .nan and .inf are how numbers that JSON cannot hold are kept: they go back as YAML's own tokens.
        if (text is ".nan" or ".inf" or "-.inf")
        {
            return new YamlScalarNode(text);
        }

        var plain = new DocScalar(text, false, SourcePosition.None);
        var misread = plain.IsNull || plain.AsBool() is not null || plain.AsDouble() is not null || text.Length == 0;
        return misread ? new YamlScalarNode(text) { Style = ScalarStyle.DoubleQuoted } : new YamlScalarNode(text);
    }
}
