namespace Flowline.Documents;

/// <summary>
/// The errors of one check of a document. Keeps the first <see cref="DocumentLimits.MaxErrors"/> in
/// document order (line, column, then the order found; errors without a line last) and counts them all,
/// so that a document with a million mistakes takes no more memory to report than one with a hundred.
/// </summary>
internal sealed class ErrorCollector
{
    private const int MaxSuggestionLength = 64;
    private const int MaxListedNames = 10;
    private const int MaxQuotedLength = 60;

    private readonly int capacity;

    // Invariant: holds the `capacity` earliest errors added; its head is the latest of them (a max-heap by key).
    private readonly PriorityQueue<SpecError, (int Line, int Column, long Order)> kept;
    private long order;

    public ErrorCollector(int capacity = DocumentLimits.MaxErrors)
    {
        this.capacity = capacity;
        kept = new PriorityQueue<SpecError, (int, int, long)>(Comparer<(int Line, int Column, long Order)>.Create((a, b) => b.CompareTo(a)));
    }

    /// <summary>How many errors were added, kept or not.</summary>
    public int Count { get; private set; }

    /// <summary>
    /// True while few errors were found: only then are the costly parts of a message worth computing
    /// (suggestions of valid names). Beyond it, errors are counted and kept only if earlier in the document.
    /// </summary>
    public bool WantsDetail => Count < capacity;

    /// <summary>Adds an error.</summary>
    public void Add(SpecError error)
    {
        Count++;
        var key = (error.Position.IsKnown ? error.Position.Line : int.MaxValue, error.Position.IsKnown ? error.Position.Column : int.MaxValue, order++);
        if (kept.Count < capacity)
        {
            kept.Enqueue(error, key);
        }
        else
        {
            kept.EnqueueDequeue(error, key);
        }
    }

    /// <summary>The errors kept, in document order.</summary>
    public List<SpecError> InOrder()
    {
        var items = kept.UnorderedItems.ToList();
        items.Sort((a, b) => a.Priority.CompareTo(b.Priority));
        return [.. items.Select(i => i.Element)];
    }

    /// <summary>" (did you mean 'x'?)" when a valid name is within two edits of <paramref name="text"/>; nothing once errors are many.</summary>
    public string Suggest(string text, IEnumerable<string> valid)
    {
        if (!WantsDetail || text.Length > MaxSuggestionLength)
        {
            return "";
        }

        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var name in valid)
        {
            if (Math.Abs(name.Length - text.Length) > 2 || name.Length > MaxSuggestionLength)
            {
                continue;
            }

            var distance = Distance(text, name);
            if (distance < bestDistance)
            {
                (best, bestDistance) = (name, distance);
            }
        }

        return best is not null && bestDistance <= 2 && bestDistance < text.Length ? $" (did you mean '{best}'?)" : "";
    }

    /// <summary>Names for a message: all of them when few, else the first ten and how many more.</summary>
    public static string List(IReadOnlyCollection<string> names, string none = "(none)")
    {
        var shown = string.Join(", ", names.Take(MaxListedNames));
        return names.Count == 0 ? none : names.Count <= MaxListedNames ? shown : $"{shown} and {names.Count - MaxListedNames:N0} more";
    }

    /// <summary>Text from the document for a message: as it is when short, else its start and its length.</summary>
    public static string Quote(string text) =>
        text.Length <= MaxQuotedLength ? text : $"{text[..MaxQuotedLength]}... ({text.Length:N0} characters)";

    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
