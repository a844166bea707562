using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.Loader;
using Flowline.Kernels;

namespace Flowline.Plugins;

/// <summary>
/// Loads plugin assemblies: every public, non-abstract <see cref="KernelDefinition"/>,
/// <see cref="SourceDefinition"/> and <see cref="SinkDefinition"/> with a public parameterless
/// constructor becomes a kind. Each assembly gets its own load context that resolves its own
/// dependencies from its folder and shares Flowline's assemblies with the host, so the contract types
/// are the same on both sides. An assembly is loaded once per process.
/// </summary>
public static class PluginLoader
{
    private static readonly ConcurrentDictionary<string, Lazy<IReadOnlyList<KindDefinition>>> Loaded = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, Lazy<Assembly>> Assemblies = new(StringComparer.Ordinal);

    /// <summary>The kinds an assembly defines. Throws <see cref="PluginLoadException"/> with a clear message if it cannot be used.</summary>
    public static IReadOnlyList<KindDefinition> Load(string assemblyPath)
    {
        var path = Path.GetFullPath(assemblyPath);
        return Loaded.GetOrAdd(path, p => new Lazy<IReadOnlyList<KindDefinition>>(() => LoadFrom(p))).Value;
    }

    /// <summary>Loads <paramref name="paths"/> (relative to <paramref name="baseDirectory"/>) into a copy of <paramref name="registry"/>.</summary>
    public static KindRegistry Extend(KindRegistry registry, IEnumerable<string> paths, string? baseDirectory)
    {
        foreach (var relative in paths)
        {
            var full = Path.GetFullPath(Path.Combine(baseDirectory ?? Environment.CurrentDirectory, relative));
            registry = registry.With(Load(full), full);
        }

        return registry;
    }

    /// <summary>Loads an assembly (and its dependencies, from its deps.json) in a context of its own, once per path.</summary>
    public static Assembly LoadAssembly(string assemblyPath)
    {
        var path = Path.GetFullPath(assemblyPath);
        return Assemblies.GetOrAdd(path, p => new Lazy<Assembly>(() => LoadAssemblyFrom(p))).Value;
    }

    private static Assembly LoadAssemblyFrom(string path)
    {
        if (!File.Exists(path))
        {
            throw new PluginLoadException($"cannot find assembly '{path}'");
        }

        try
        {
            // An assembly the host already has (a task defined in the program that runs the pipeline) is not loaded twice.
            var name = AssemblyName.GetAssemblyName(path);
            if (AssemblyLoadContext.Default.Assemblies.FirstOrDefault(a => AssemblyName.ReferenceMatchesDefinition(a.GetName(), name)) is { } loaded)
            {
                return loaded;
            }

            return new PluginLoadContext(path).LoadFromAssemblyPath(path);
        }
        catch (BadImageFormatException)
        {
            throw new PluginLoadException($"'{path}' is not a .NET assembly");
        }
        catch (FileLoadException e)
        {
            throw new PluginLoadException($"cannot load assembly '{path}': {e.Message}");
        }
    }

    private static IReadOnlyList<KindDefinition> LoadFrom(string path)
    {
        if (!File.Exists(path))
        {
            throw new PluginLoadException($"cannot find plugin assembly '{path}'");
        }

        var assembly = LoadAssembly(path);

        Type[] types;
        try
        {
            types = assembly.GetExportedTypes();
        }
        catch (Exception e) when (e is ReflectionTypeLoadException or FileNotFoundException or TypeLoadException)
        {
            throw new PluginLoadException($"cannot read the types of plugin assembly '{path}': {e.Message} (is it built against this version of Flowline?)");
        }

        var definitions = new List<KindDefinition>();
        foreach (var type in types)
        {
            if (type.IsAbstract || !typeof(KindDefinition).IsAssignableFrom(type))
            {
                continue;
            }

            if (type.GetConstructor(Type.EmptyTypes) is null)
            {
                throw new PluginLoadException($"{type.FullName} in '{path}' needs a public parameterless constructor to be used as a kind");
            }

            try
            {
                definitions.Add((KindDefinition)Activator.CreateInstance(type)!);
            }
            catch (TargetInvocationException e)
            {
                throw new PluginLoadException($"creating {type.FullName} from '{path}' failed: {e.InnerException?.Message ?? e.Message}");
            }
        }

        if (definitions.Count == 0)
        {
            throw new PluginLoadException($"plugin assembly '{path}' defines no public kernel, source or sink definition");
        }

        return definitions;
    }

    private sealed class PluginLoadContext(string path) : AssemblyLoadContext($"flowline-plugin:{Path.GetFileName(path)}")
    {
        private readonly AssemblyDependencyResolver resolver = new(path);

        protected override Assembly? Load(AssemblyName assemblyName)
        {
            // Flowline's own assemblies (and anything else the host already has) come from the host.
            var shared = Default.Assemblies.FirstOrDefault(a => AssemblyName.ReferenceMatchesDefinition(a.GetName(), assemblyName));
            if (shared is not null || assemblyName.Name is "Flowline" or "Flowline.SharedMemory")
            {
                return null;
            }

            var resolved = resolver.ResolveAssemblyToPath(assemblyName);
            return resolved is null ? null : LoadFromAssemblyPath(resolved);
        }
    }
}

/// <summary>A plugin assembly cannot be used; the message says why.</summary>
public sealed class PluginLoadException(string message) : Exception(message);
