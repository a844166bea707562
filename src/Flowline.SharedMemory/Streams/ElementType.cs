using System.Numerics;

namespace Flowline.SharedMemory;

/// <summary>The element type of a frame. The names follow NumPy's (<c>float32</c>, <c>complex64</c>, ...).</summary>
public enum ElementType : byte
{
    /// <summary>32-bit IEEE float (<see cref="float"/>).</summary>
    Float32 = 1,

    /// <summary>64-bit IEEE float (<see cref="double"/>).</summary>
    Float64 = 2,

    /// <summary>Signed 8-bit integer (<see cref="sbyte"/>).</summary>
    Int8 = 3,

    /// <summary>Signed 16-bit integer (<see cref="short"/>).</summary>
    Int16 = 4,

    /// <summary>Signed 32-bit integer (<see cref="int"/>).</summary>
    Int32 = 5,

    /// <summary>Signed 64-bit integer (<see cref="long"/>).</summary>
    Int64 = 6,

    /// <summary>Unsigned 8-bit integer (<see cref="byte"/>).</summary>
    UInt8 = 7,

    /// <summary>Unsigned 16-bit integer (<see cref="ushort"/>).</summary>
    UInt16 = 8,

    /// <summary>Unsigned 32-bit integer (<see cref="uint"/>).</summary>
    UInt32 = 9,

    /// <summary>Unsigned 64-bit integer (<see cref="ulong"/>).</summary>
    UInt64 = 10,

    /// <summary>Boolean stored in one byte (<see cref="bool"/>).</summary>
    Bool = 11,

    /// <summary>Complex number of two 32-bit floats (<see cref="SharedMemory.Complex64"/>).</summary>
    Complex64 = 12,

    /// <summary>Complex number of two 64-bit floats (<see cref="Complex"/>).</summary>
    Complex128 = 13,
}

/// <summary>Sizes, names and CLR types of <see cref="ElementType"/>s.</summary>
public static class ElementTypes
{
    /// <summary>Every element type, in declaration order.</summary>
    public static IReadOnlyList<ElementType> All { get; } = Enum.GetValues<ElementType>();

    /// <summary>The size of one element in bytes.</summary>
    public static int SizeOf(this ElementType type) => type switch
    {
        ElementType.Int8 or ElementType.UInt8 or ElementType.Bool => 1,
        ElementType.Int16 or ElementType.UInt16 => 2,
        ElementType.Float32 or ElementType.Int32 or ElementType.UInt32 => 4,
        ElementType.Float64 or ElementType.Int64 or ElementType.UInt64 or ElementType.Complex64 => 8,
        ElementType.Complex128 => 16,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown element type"),
    };

    /// <summary>The NumPy name: <c>float32</c>, <c>uint8</c>, <c>complex128</c>, ...</summary>
    public static string ToName(this ElementType type) => type switch
    {
        ElementType.Float32 => "float32",
        ElementType.Float64 => "float64",
        ElementType.Int8 => "int8",
        ElementType.Int16 => "int16",
        ElementType.Int32 => "int32",
        ElementType.Int64 => "int64",
        ElementType.UInt8 => "uint8",
        ElementType.UInt16 => "uint16",
        ElementType.UInt32 => "uint32",
        ElementType.UInt64 => "uint64",
        ElementType.Bool => "bool",
        ElementType.Complex64 => "complex64",
        ElementType.Complex128 => "complex128",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown element type"),
    };

    /// <summary>The CLR type that holds one element.</summary>
    public static Type ClrType(this ElementType type) => type switch
    {
        ElementType.Float32 => typeof(float),
        ElementType.Float64 => typeof(double),
        ElementType.Int8 => typeof(sbyte),
        ElementType.Int16 => typeof(short),
        ElementType.Int32 => typeof(int),
        ElementType.Int64 => typeof(long),
        ElementType.UInt8 => typeof(byte),
        ElementType.UInt16 => typeof(ushort),
        ElementType.UInt32 => typeof(uint),
        ElementType.UInt64 => typeof(ulong),
        ElementType.Bool => typeof(bool),
        ElementType.Complex64 => typeof(Complex64),
        ElementType.Complex128 => typeof(Complex),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown element type"),
    };

    /// <summary>The element type held by <typeparamref name="T"/>, or null if none is.</summary>
    public static ElementType? Of<T>()
        where T : unmanaged
    {
        foreach (var type in All)
        {
            if (type.ClrType() == typeof(T))
            {
                return type;
            }
        }

        return null;
    }

    /// <summary>
    /// Parses a NumPy name (<c>float32</c>), a NumPy type code with or without byte order
    /// (<c>&lt;f4</c>, <c>f4</c>, <c>|u1</c>, <c>?</c>) or a C# alias (<c>float</c>, <c>double</c>, <c>byte</c>).
    /// </summary>
    public static bool TryParse(string? text, out ElementType type)
    {
        type = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var s = text.Trim().ToLowerInvariant();
        if (s.Length > 1 && s[0] is '<' or '=' or '|')
        {
            s = s[1..];
        }

        ElementType? parsed = s switch
        {
            "float32" or "f4" or "float" or "single" => ElementType.Float32,
            "float64" or "f8" or "double" => ElementType.Float64,
            "int8" or "i1" or "sbyte" => ElementType.Int8,
            "int16" or "i2" or "short" => ElementType.Int16,
            "int32" or "i4" or "int" => ElementType.Int32,
            "int64" or "i8" or "long" => ElementType.Int64,
            "uint8" or "u1" or "byte" => ElementType.UInt8,
            "uint16" or "u2" or "ushort" => ElementType.UInt16,
            "uint32" or "u4" or "uint" => ElementType.UInt32,
            "uint64" or "u8" or "ulong" => ElementType.UInt64,
            "bool" or "b1" or "?" or "boolean" => ElementType.Bool,
            "complex64" or "c8" => ElementType.Complex64,
            "complex128" or "c16" or "complex" => ElementType.Complex128,
            _ => null,
        };
        if (parsed is null)
        {
            return false;
        }

        type = parsed.Value;
        return true;
    }

    /// <summary>The names <see cref="TryParse"/> accepts, for error messages.</summary>
    public static string ValidNames => string.Join(", ", All.Select(t => t.ToName()));
}
