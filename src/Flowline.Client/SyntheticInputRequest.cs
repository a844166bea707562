namespace Flowline.Client;

/// <summary>
/// A synthetic input to start on a stream (<c>POST /synthetic/start</c>), with shmpipeline's defaults.
/// Sent with snake_case field names (<c>stream_name</c>, <c>rate_hz</c>, <c>impulse_interval</c>, ...).
/// </summary>
public sealed record SyntheticInputRequest
{
    /// <summary>The stream to write to.</summary>
    public required string StreamName { get; init; }

    /// <summary>The pattern: <c>constant</c>, <c>random</c>, <c>ramp</c>, <c>sine</c>, <c>impulse</c> or <c>checkerboard</c>. Default <c>random</c>.</summary>
    public string Pattern { get; init; } = "random";

    /// <summary>Frames per second; null (the default) writes as fast as the stream accepts.</summary>
    public double? RateHz { get; init; }

    /// <summary>The seed of the <c>random</c> pattern. Default 0.</summary>
    public long Seed { get; init; }

    /// <summary>The amplitude of the pattern. Default 1.0.</summary>
    public double Amplitude { get; init; } = 1.0;

    /// <summary>Added to every value. Default 0.0.</summary>
    public double Offset { get; init; }

    /// <summary>The period of <c>ramp</c> and <c>sine</c>, in frames, and the tile size of <c>checkerboard</c>. Default 64.0.</summary>
    public double Period { get; init; } = 64.0;

    /// <summary>The value of the <c>constant</c> pattern. Default 0.0.</summary>
    public double Constant { get; init; }

    /// <summary>Frames between impulses of the <c>impulse</c> pattern. Default 64.</summary>
    public int ImpulseInterval { get; init; } = 64;
}
