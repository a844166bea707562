namespace Flowline.SharedMemory;

/// <summary>How to open a region (shmpipeline's stream <c>mode</c>).</summary>
public enum RegionMode
{
    /// <summary>Attach if the region exists and matches; create it if missing; recreate it if its owner died.</summary>
    CreateOrAttach,

    /// <summary>Create the region; fail if it exists.</summary>
    Create,

    /// <summary>Attach to an existing region; fail if it is missing, does not match, or its owner died.</summary>
    Attach,

    /// <summary>Create the region, replacing any region of that name (processes still mapping the old one keep it).</summary>
    Replace,
}

/// <summary>Parsing and printing of <see cref="RegionMode"/> with shmpipeline's names.</summary>
public static class RegionModes
{
    /// <summary>The names used in documents: create_or_attach, create, attach, replace.</summary>
    public static string ToName(this RegionMode mode) => mode switch
    {
        RegionMode.CreateOrAttach => "create_or_attach",
        RegionMode.Create => "create",
        RegionMode.Attach => "attach",
        RegionMode.Replace => "replace",
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, null),
    };

    /// <summary>Parses a document name such as <c>create_or_attach</c>.</summary>
    public static bool TryParse(string? name, out RegionMode mode)
    {
        switch (name)
        {
            case "create_or_attach": mode = RegionMode.CreateOrAttach; return true;
            case "create": mode = RegionMode.Create; return true;
            case "attach": mode = RegionMode.Attach; return true;
            case "replace": mode = RegionMode.Replace; return true;
            default: mode = default; return false;
        }
    }
}
