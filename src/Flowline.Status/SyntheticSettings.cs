namespace Flowline.Status;

/// <summary>
/// What a synthetic pattern generates: shmpipeline's <c>SyntheticInputConfig</c> fields (without the stream),
/// as <c>POST /synthetic/start</c> takes them.
/// </summary>
public record SyntheticSettings
{
    /// <summary>The patterns there are.</summary>
    public static readonly IReadOnlyList<string> Patterns = ["constant", "random", "ramp", "sine", "impulse", "checkerboard"];

    /// <summary><c>pattern</c> (default random).</summary>
    public string Pattern { get; init; } = "random";

    /// <summary><c>rate_hz</c>: frames per second; null writes as fast as possible.</summary>
    public double? RateHz { get; init; }

    /// <summary><c>seed</c> of the random pattern (default 0).</summary>
    public long Seed { get; init; }

    /// <summary><c>amplitude</c> (default 1).</summary>
    public double Amplitude { get; init; } = 1.0;

    /// <summary><c>offset</c> (default 0).</summary>
    public double Offset { get; init; }

    /// <summary><c>period</c> of ramp and sine, tile size of checkerboard (default 64).</summary>
    public double Period { get; init; } = 64.0;

    /// <summary><c>constant</c> value of the constant pattern (default 0).</summary>
    public double Constant { get; init; }

    /// <summary><c>impulse_interval</c> in frames (default 64).</summary>
    public long ImpulseInterval { get; init; } = 64;
}

/// <summary>
/// A synthetic input to start on a stream (<c>POST /synthetic/start</c>): the stream and the pattern's
/// settings, with shmpipeline's defaults; sent with snake_case field names.
/// </summary>
public sealed record SyntheticInputRequest : SyntheticSettings
{
    /// <summary>The stream to write to.</summary>
    [System.Text.Json.Serialization.JsonPropertyOrder(-1)]
    public required string StreamName { get; init; }
}
