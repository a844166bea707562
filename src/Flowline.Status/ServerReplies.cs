using System.Text.Json.Nodes;

namespace Flowline.Status;

/// <summary><c>GET /health</c>: the server answers, the pipeline's state and the document's revision.</summary>
public sealed record HealthReply
{
    /// <summary>Always true in an answer (a server that cannot answer gives no reply at all).</summary>
    public bool Ok { get; init; }

    /// <summary>The pipeline's state (<c>initialized</c>, <c>built</c>, <c>running</c>, ...).</summary>
    public string State { get; init; } = "";

    /// <summary>The served document's revision, 1 for the first and one more for each replacement.</summary>
    public long DocumentRevision { get; init; }
}

/// <summary><c>GET /info</c>: what the server serves and what it can do.</summary>
public sealed record ServerInfo
{
    /// <summary>The served document's file, or null when it was given over HTTP or in code.</summary>
    public string? ConfigPath { get; init; }

    /// <summary>The directory the document's relative paths resolve against.</summary>
    public string ConfigBasePath { get; init; } = "";

    /// <summary>The pipeline's state.</summary>
    public string State { get; init; } = "";

    /// <summary>The commands the server takes (<c>build</c>, <c>start</c>, ...).</summary>
    public IReadOnlyList<string> Commands { get; init; } = [];

    /// <summary>The commands legal in the current state (from the manager's state machine).</summary>
    public IReadOnlyList<string> AllowedCommands { get; init; } = [];

    /// <summary>The kernel kinds the server knows.</summary>
    public IReadOnlyList<string> KernelKinds { get; init; } = [];

    /// <summary>The source kinds the server knows.</summary>
    public IReadOnlyList<string> SourceKinds { get; init; } = [];

    /// <summary>The sink kinds the server knows.</summary>
    public IReadOnlyList<string> SinkKinds { get; init; } = [];

    /// <summary>The patterns a synthetic input can play.</summary>
    public IReadOnlyList<string> SyntheticPatterns { get; init; } = [];

    /// <summary>The served document's revision.</summary>
    public long DocumentRevision { get; init; }

    /// <summary><c>flowline</c>.</summary>
    public string Server { get; init; } = "";

    /// <summary>The server's version (major.minor.patch).</summary>
    public string? Version { get; init; }

    /// <summary>The shared-memory namespace of the pipeline's streams.</summary>
    public string Namespace { get; init; } = "";
}

/// <summary><c>GET /document</c>: the served document (shmpipeline's mapping) with its revision and paths.</summary>
public record DocumentReply
{
    /// <summary>The document's file, or null when it was given over HTTP or in code.</summary>
    public string? ConfigPath { get; init; }

    /// <summary>The directory the document's relative paths resolve against.</summary>
    public string ConfigBasePath { get; init; } = "";

    /// <summary>The document's revision.</summary>
    public long Revision { get; init; }

    /// <summary>The document itself, as JSON (the same mapping as its YAML).</summary>
    public JsonObject Document { get; init; } = [];
}

/// <summary>
/// <c>POST /document/validate</c>: whether a document is valid, its first errors (each cut to a bounded
/// length), how many errors there are in all, and its graph when it could be built.
/// </summary>
public sealed record ValidationReply
{
    /// <summary>True when the document has no error.</summary>
    public bool Valid { get; init; }

    /// <summary>The first errors, each naming the field (and the line, for YAML).</summary>
    public IReadOnlyList<string> Errors { get; init; } = [];

    /// <summary>How many errors there are, including those not listed.</summary>
    public int ErrorCount { get; init; }

    /// <summary>The document's graph (<c>GET /graph</c>'s form), or null when it could not be built.</summary>
    public JsonObject? Graph { get; init; }
}

/// <summary>
/// <c>PUT /document</c> and <c>POST /document/load</c>: the document now served (as <see cref="DocumentReply"/>)
/// and the check of the one that was sent.
/// </summary>
public sealed record DocumentChangeReply : DocumentReply
{
    /// <summary>True when the document was valid, and so is now served.</summary>
    public bool Valid { get; init; }

    /// <summary>The first errors of the document that was sent.</summary>
    public IReadOnlyList<string> Errors { get; init; } = [];

    /// <summary>How many errors there are, including those not listed.</summary>
    public int ErrorCount { get; init; }

    /// <summary>The graph of the served document.</summary>
    public JsonObject? Graph { get; init; }
}
