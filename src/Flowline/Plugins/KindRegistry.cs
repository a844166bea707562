using System.Collections.Immutable;
using Flowline.Kernels;
using Flowline.Kernels.BuiltIn;

namespace Flowline.Plugins;

/// <summary>
/// The kinds a pipeline can use: Flowline's built-in kernels, sources and sinks, plus those of the
/// plugin assemblies a document lists. Immutable; <see cref="With"/> makes an extended copy.
/// </summary>
public sealed class KindRegistry
{
    private KindRegistry(
        ImmutableDictionary<string, KernelDefinition> kernels,
        ImmutableDictionary<string, SourceDefinition> sources,
        ImmutableDictionary<string, SinkDefinition> sinks,
        ImmutableDictionary<string, string> origins)
    {
        Kernels = kernels;
        Sources = sources;
        Sinks = sinks;
        Origins = origins;
    }

    /// <summary>The origin of the built-in kinds.</summary>
    public const string BuiltInOrigin = "built-in";

    /// <summary>The built-in kinds.</summary>
    public static KindRegistry BuiltIn { get; } = Create();

    /// <summary>Kernel kinds by name.</summary>
    public ImmutableDictionary<string, KernelDefinition> Kernels { get; }

    /// <summary>Source kinds by name.</summary>
    public ImmutableDictionary<string, SourceDefinition> Sources { get; }

    /// <summary>Sink kinds by name.</summary>
    public ImmutableDictionary<string, SinkDefinition> Sinks { get; }

    /// <summary>Where each kind comes from: "built-in" or the plugin assembly's path.</summary>
    public ImmutableDictionary<string, string> Origins { get; }

    /// <summary>
    /// A registry with <paramref name="definitions"/> added, from <paramref name="origin"/>. A kind that
    /// already exists is an error: built-in kinds cannot be replaced, and two plugins cannot share a kind
    /// (adding the same assembly's kinds again changes nothing).
    /// </summary>
    public KindRegistry With(IEnumerable<KindDefinition> definitions, string origin)
    {
        var kernels = Kernels.ToBuilder();
        var sources = Sources.ToBuilder();
        var sinks = Sinks.ToBuilder();
        var origins = Origins.ToBuilder();
        foreach (var definition in definitions)
        {
            if (origins.TryGetValue(definition.Kind, out var existing))
            {
                KindDefinition? same = kernels.GetValueOrDefault(definition.Kind) ?? (KindDefinition?)sources.GetValueOrDefault(definition.Kind) ?? sinks.GetValueOrDefault(definition.Kind);
                if (existing == origin && origin != BuiltInOrigin && same?.GetType() == definition.GetType())
                {
                    continue; // the same assembly added again (a document validated twice): nothing changes
                }

                throw new InvalidOperationException($"kind '{definition.Kind}' from {origin} is already defined by {existing}; give it another name");
            }

            switch (definition)
            {
                case KernelDefinition k: kernels[k.Kind] = k; break;
                case SourceDefinition s: sources[s.Kind] = s; break;
                case SinkDefinition s: sinks[s.Kind] = s; break;
                default: throw new InvalidOperationException($"{definition.GetType().Name} is not a kernel, source or sink definition");
            }

            origins[definition.Kind] = origin;
        }

        return new KindRegistry(kernels.ToImmutable(), sources.ToImmutable(), sinks.ToImmutable(), origins.ToImmutable());
    }

    /// <summary>Every kind name, sorted.</summary>
    public IEnumerable<string> AllKinds => Origins.Keys.Order(StringComparer.Ordinal);

    private static KindRegistry Create()
    {
        var empty = new KindRegistry(
            ImmutableDictionary<string, KernelDefinition>.Empty,
            ImmutableDictionary<string, SourceDefinition>.Empty,
            ImmutableDictionary<string, SinkDefinition>.Empty,
            ImmutableDictionary<string, string>.Empty);
        KindDefinition[] builtIn =
        [
            new CopyDefinition(),
            new GateDefinition(),
            new ScalarOperationDefinition("cpu.scale", '*', "factor", "the factor"),
            new ScalarOperationDefinition("cpu.add_constant", '+', "constant", "the value added"),
            new ScaleOffsetDefinition(),
            new ElementwiseOperationDefinition("add", "+"),
            new ElementwiseOperationDefinition("subtract", "-"),
            new ElementwiseOperationDefinition("multiply", "*"),
            new ElementwiseOperationDefinition("divide", "/"),
            new FlattenDefinition(),
            new ConcatenateDefinition(),
            new AffineTransformDefinition(),
            new LeakyIntegratorDefinition(),
            new SpotCentroidDefinition(),
            new ShackHartmannCentroidDefinition(),
            new ShackHartmannCentroidDefinition("cpu.centroid"),
            new TipTiltControllerDefinition(),
            new TomographicControllerDefinition(),
            new ReduceDefinition(),
            new CustomOperationDefinition(),
            new RaiseErrorDefinition(),
            new SyntheticArrayDefinition(),
            new SyntheticFrameSetDefinition(),
            new NullSinkDefinition(),
            new Python.PythonKernelDefinition(),
            new Python.PythonSourceDefinition(),
            new Python.PythonSinkDefinition(),
        ];
        return empty.With(builtIn, BuiltInOrigin);
    }
}
