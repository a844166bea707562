using System.Collections.Immutable;

namespace Flowline.SharedMemory;

/// <summary>What every frame of a stream holds: an element type and a fixed shape of up to 8 dimensions.</summary>
public sealed record FrameFormat
{
    /// <summary>The most dimensions a shape may have.</summary>
    public const int MaxRank = 8;

    /// <summary>The largest frame, in bytes.</summary>
    public const long MaxFrameBytes = int.MaxValue;

    /// <summary>Creates a format; throws <see cref="ArgumentException"/> if the shape is invalid.</summary>
    public FrameFormat(ElementType elementType, params ReadOnlySpan<int> shape)
    {
        if (!Enum.IsDefined(elementType))
        {
            throw new ArgumentException($"unknown element type {(int)elementType}; valid types are {ElementTypes.ValidNames}.", nameof(elementType));
        }

        if (shape.Length > MaxRank)
        {
            throw new ArgumentException($"shape [{string.Join(", ", shape.ToArray())}] has {shape.Length} dimensions; the limit is {MaxRank}.", nameof(shape));
        }

        long elements = 1;
        foreach (var d in shape)
        {
            if (d < 1)
            {
                throw new ArgumentException($"shape [{string.Join(", ", shape.ToArray())}] has a dimension of {d}; every dimension must be at least 1.", nameof(shape));
            }

            elements *= d;
            if (elements * elementType.SizeOf() > MaxFrameBytes)
            {
                throw new ArgumentException($"shape [{string.Join(", ", shape.ToArray())}] of {elementType.ToName()} exceeds the largest frame ({MaxFrameBytes:N0} bytes).", nameof(shape));
            }
        }

        ElementType = elementType;
        Shape = [.. shape];
        ElementCount = (int)elements;
        FrameBytes = (int)(elements * elementType.SizeOf());
    }

    /// <summary>The element type.</summary>
    public ElementType ElementType { get; }

    /// <summary>The shape; empty for a scalar.</summary>
    public ImmutableArray<int> Shape { get; }

    /// <summary>The number of elements in a frame.</summary>
    public int ElementCount { get; }

    /// <summary>The size of a frame's payload in bytes.</summary>
    public int FrameBytes { get; }

    /// <inheritdoc/>
    public bool Equals(FrameFormat? other) =>
        other is not null && ElementType == other.ElementType && Shape.AsSpan().SequenceEqual(other.Shape.AsSpan());

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(ElementType);
        foreach (var d in Shape)
        {
            hash.Add(d);
        }

        return hash.ToHashCode();
    }

    /// <summary>Formats as <c>float32[120, 120]</c>.</summary>
    public override string ToString() => $"{ElementType.ToName()}[{string.Join(", ", Shape)}]";
}
