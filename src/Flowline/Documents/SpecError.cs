namespace Flowline.Documents;

/// <summary>One thing wrong with a document: where (path, file, line) and what would be valid.</summary>
/// <param name="Path">The path of the field, such as <c>kernels[2].input</c>; empty for the whole document.</param>
/// <param name="Message">What is wrong and what would be valid.</param>
/// <param name="File">The document's file, if it came from one.</param>
/// <param name="Position">The line and column in the file, if known.</param>
public sealed record SpecError(string Path, string Message, string? File, SourcePosition Position)
{
    /// <summary>Formats as <c>file:line:column: path: message</c>, leaving out what is unknown.</summary>
    public override string ToString()
    {
        var where = File is null ? "" : Position.IsKnown ? $"{File}:{Position.Line}:{Position.Column}: " : $"{File}: ";
        if (File is null && Position.IsKnown)
        {
            where = $"line {Position.Line}: ";
        }

        return Path.Length == 0 ? $"{where}{Message}" : $"{where}{Path}: {Message}";
    }
}

/// <summary>
/// A document is not valid; <see cref="Errors"/> holds every problem found, not only the first (at most
/// <see cref="DocumentLimits.MaxErrors"/> of them: <see cref="TotalErrors"/> counts them all).
/// </summary>
public class DocumentValidationException : Exception
{
    /// <summary>Creates the exception from the problems found.</summary>
    public DocumentValidationException(IReadOnlyList<SpecError> errors)
        : this(errors, errors.Count)
    {
    }

    /// <summary>Creates the exception from the first problems found, and how many were found in all.</summary>
    public DocumentValidationException(IReadOnlyList<SpecError> errors, int totalErrors)
        : base(Summarize(errors, Math.Max(totalErrors, errors.Count)))
    {
        Errors = errors;
        TotalErrors = Math.Max(totalErrors, errors.Count);
    }

    /// <summary>The problems found, in document order (the first <see cref="DocumentLimits.MaxErrors"/> when there are more).</summary>
    public IReadOnlyList<SpecError> Errors { get; }

    /// <summary>How many problems were found.</summary>
    public int TotalErrors { get; }

    private static string Summarize(IReadOnlyList<SpecError> errors, int total)
    {
        if (total == 1 && errors.Count == 1)
        {
            return $"the pipeline document is not valid: {errors[0]}";
        }

        var more = total > errors.Count ? $"{Environment.NewLine}  ... and {total - errors.Count:N0} more" : "";
        return $"the pipeline document is not valid ({total:N0} problems):{Environment.NewLine}" + string.Join(Environment.NewLine, errors.Select(e => "  " + e)) + more;
    }
}

/// <summary>The document is not well-formed YAML.</summary>
public sealed class DocumentSyntaxException(SpecError error) : DocumentValidationException([error]);
