namespace Flowline.SharedMemory.Streams;

/// <summary>A lossless reader that may owe the stream a position store (decision 143).</summary>
internal interface IDeferredRelease
{
    /// <summary>Stores the position of every frame read so far, with the full fence and the writer's wake-up check.</summary>
    void FlushRelease();
}

/// <summary>
/// The lossless readers of this thread that have read frames without storing their position yet
/// (decision 143): every wait of a stream endpoint on this thread stores their positions first, so
/// that a frame read and not yet released never holds a writer back while its reader waits on
/// something else (another stream's frames, or space in a stream it writes).
/// </summary>
/// <remarks>The list holds weak references (one per reader, made once): a forgotten reader still leaves its stream when finalized.</remarks>
internal static class DeferredReleases
{
    [ThreadStatic]
    private static List<WeakReference<IDeferredRelease>>? pending;

    /// <summary>Lists a reader that has just deferred a release on this thread.</summary>
    public static void Add(WeakReference<IDeferredRelease> reader) => (pending ??= []).Add(reader);

    /// <summary>Takes a reader off this thread's list (when it is disposed).</summary>
    public static void Remove(WeakReference<IDeferredRelease> reader) => pending?.Remove(reader);

    /// <summary>Stores the positions every listed reader of this thread owes; called before every wait.</summary>
    public static void FlushAll()
    {
        var list = pending;
        if (list is null || list.Count == 0)
        {
            return;
        }

        // A flush can itself wake a writer but never waits, so nothing is listed meanwhile.
        foreach (var reference in list)
        {
            if (reference.TryGetTarget(out var reader))
            {
                reader.FlushRelease();
            }
        }

        list.Clear();
    }
}
