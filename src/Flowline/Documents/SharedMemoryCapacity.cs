using System.Globalization;
using Flowline.Runtime;
using Flowline.SharedMemory;

namespace Flowline.Documents;

/// <summary>
/// Whether the streams of a document fit in <c>/dev/shm</c>: the bytes of every ring, sized as the
/// runtime sizes them (<see cref="PipelinePlan"/>'s options, <see cref="SharedStream.RegionBytes"/>), against
/// the free space of the file system that holds <see cref="SharedMemoryNamespace.Root"/>.
/// </summary>
internal static class SharedMemoryCapacity
{
    /// <summary>The directory whose file system holds the regions.</summary>
    public const string Directory = "/dev/shm";

    /// <summary>The bytes free for an unprivileged user on <see cref="Directory"/>'s file system (statvfs), or null when it cannot be read.</summary>
    public static long? AvailableBytes()
    {
        try
        {
            return new DriveInfo(Directory).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>
    /// The bytes of shared memory the streams of <paramref name="pipeline"/> would add: every ring it creates
    /// (not those it only attaches to), less the regions of the same names already there (a build reuses or
    /// replaces them). Saturates at <see cref="long.MaxValue"/>.
    /// </summary>
    public static long NeededBytes(ValidatedPipeline pipeline)
    {
        var plan = new PipelinePlan(pipeline);
        var needed = 0L;
        foreach (var stream in pipeline.Spec.Streams.Where(s => s.Mode != RegionMode.Attach))
        {
            var bytes = SharedStream.RegionBytes(stream.Format, plan.OptionsOf(stream.Name)) - ExistingBytes(stream.Namespace ?? plan.Namespace, stream.Name);
            needed = bytes > long.MaxValue - needed ? long.MaxValue : needed + Math.Max(0, bytes);
        }

        return needed;
    }

    /// <summary>The error when the streams need more than <paramref name="availableBytes"/>, or null when they fit.</summary>
    public static string? Problem(long neededBytes, long availableBytes) =>
        neededBytes <= availableBytes
            ? null
            : $"the streams need {Size(neededBytes)} of shared memory and {Directory} has {Size(availableBytes)} free; " +
              $"make the frames smaller or the rings shallower (depth), or make {Directory} larger";

    /// <summary>A size in bytes and in binary units: <c>1.5 GiB (1,610,612,736 bytes)</c>.</summary>
    public static string Size(long bytes)
    {
        string[] units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        var value = (double)bytes;
        var unit = -1;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        var exact = bytes.ToString("N0", CultureInfo.InvariantCulture);
        return unit < 0 ? $"{exact} bytes" : $"{value.ToString("0.0", CultureInfo.InvariantCulture)} {units[unit]} ({exact} bytes)";
    }

    private static long ExistingBytes(string @namespace, string stream)
    {
        if (SharedMemoryNamespace.Check(@namespace) is not null || SharedMemoryNamespace.Check(stream) is not null)
        {
            return 0;
        }

        try
        {
            var file = new FileInfo(SharedMemoryNamespace.PathOf(@namespace, stream));
            return file.Exists ? file.Length : 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }
}
