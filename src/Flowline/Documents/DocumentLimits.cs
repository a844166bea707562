namespace Flowline.Documents;

/// <summary>
/// The bounds of a pipeline document. Documents come from files and from HTTP bodies; these bounds keep
/// the time and memory one document can take small, whatever it holds. Each is checked before the
/// structures it protects are built, and a document beyond one is refused with an error that names it.
/// </summary>
public static class DocumentLimits
{
    /// <summary>The largest document text, in bytes of UTF-8: 4 MiB (a large pipeline is a few kilobytes).</summary>
    public const int MaxBytes = 4 * 1024 * 1024;

    /// <summary>The most streams (<c>shared_memory</c> entries) a document may declare.</summary>
    public const int MaxStreams = 4096;

    /// <summary>The most nodes (kernels, sources and sinks together) a document may declare.</summary>
    public const int MaxNodes = 4096;

    /// <summary>The most plugin assemblies a document may list.</summary>
    public const int MaxPlugins = 64;

    /// <summary>
    /// The most values (scalars, lists and mappings) a document may hold, each alias counted as the whole
    /// value it repeats, so that a few lines of aliases cannot stand for billions of values.
    /// </summary>
    public const int MaxValues = 1 << 20;

    /// <summary>
    /// The most characters of text (values and keys) a document may hold, each alias counted as all the
    /// text it repeats: four times <see cref="MaxBytes"/>.
    /// </summary>
    public const int MaxExpandedText = 4 * MaxBytes;

    /// <summary>How deeply lists and mappings may nest.</summary>
    public const int MaxDepth = 64;

    /// <summary>
    /// The longest text of one value or key, in characters: a name, a kind, a path, an <c>operation</c>
    /// expression. Errors quote such text, so its length bounds theirs.
    /// </summary>
    public const int MaxTextLength = 4096;

    /// <summary>
    /// The most errors a check returns: the first ones in document order. <see cref="DocumentCheck.TotalErrors"/>
    /// counts them all.
    /// </summary>
    public const int MaxErrors = 100;
}
