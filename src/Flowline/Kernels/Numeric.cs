using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Flowline.SharedMemory;

namespace Flowline.Kernels;

/// <summary>Element types kernels compute with, and conversions between them (vectorised).</summary>
internal static class Numeric
{
    /// <summary>The real number types: every integer type and both float types.</summary>
    public static readonly ElementType[] RealTypes =
    [
        ElementType.Float32, ElementType.Float64, ElementType.Int8, ElementType.Int16, ElementType.Int32, ElementType.Int64,
        ElementType.UInt8, ElementType.UInt16, ElementType.UInt32, ElementType.UInt64,
    ];

    /// <summary>The float types, which results are computed in.</summary>
    public static readonly ElementType[] FloatTypes = [ElementType.Float32, ElementType.Float64];

    /// <summary>Converts a frame of <paramref name="from"/> elements into <paramref name="destination"/> (same count).</summary>
    public static void ConvertInto<TOut>(ElementType from, ReadOnlySpan<byte> source, Span<TOut> destination)
        where TOut : unmanaged, INumber<TOut>
    {
        switch (from)
        {
            case ElementType.Float32: Convert(MemoryMarshal.Cast<byte, float>(source), destination); break;
            case ElementType.Float64: Convert(MemoryMarshal.Cast<byte, double>(source), destination); break;
            case ElementType.Int8: Convert(MemoryMarshal.Cast<byte, sbyte>(source), destination); break;
            case ElementType.Int16: Convert(MemoryMarshal.Cast<byte, short>(source), destination); break;
            case ElementType.Int32: Convert(MemoryMarshal.Cast<byte, int>(source), destination); break;
            case ElementType.Int64: Convert(MemoryMarshal.Cast<byte, long>(source), destination); break;
            case ElementType.UInt8: Convert(source, destination); break;
            case ElementType.UInt16: Convert(MemoryMarshal.Cast<byte, ushort>(source), destination); break;
            case ElementType.UInt32: Convert(MemoryMarshal.Cast<byte, uint>(source), destination); break;
            case ElementType.UInt64: Convert(MemoryMarshal.Cast<byte, ulong>(source), destination); break;
            default: throw new NotSupportedException($"cannot compute with {from.ToName()} elements");
        }
    }

    private static void Convert<TIn, TOut>(ReadOnlySpan<TIn> source, Span<TOut> destination)
        where TIn : unmanaged, INumber<TIn>
        where TOut : unmanaged, INumber<TOut>
    {
        if (typeof(TIn) == typeof(TOut))
        {
            MemoryMarshal.Cast<TIn, TOut>(source).CopyTo(destination);
        }
        else
        {
            TensorPrimitives.ConvertTruncating(source, destination);
        }
    }

    /// <summary>
    /// Gives <paramref name="frame"/> as <typeparamref name="T"/> elements: in place if it already holds
    /// them, otherwise converted into <paramref name="scratch"/>.
    /// </summary>
    public static ReadOnlySpan<T> As<T>(ElementType type, ReadOnlySpan<byte> frame, Span<T> scratch)
        where T : unmanaged, INumber<T>
    {
        if (type.ClrType() == typeof(T))
        {
            return MemoryMarshal.Cast<byte, T>(frame);
        }

        ConvertInto(type, frame, scratch);
        return scratch;
    }

    /// <summary>Stores <paramref name="values"/> as elements of <paramref name="type"/> (saturating; bool is value != 0; complex gets a zero imaginary part).</summary>
    public static void Store(ReadOnlySpan<double> values, ElementType type, Span<byte> destination)
    {
        switch (type)
        {
            case ElementType.Float32: Store<float>(values, destination); break;
            case ElementType.Float64: Store<double>(values, destination); break;
            case ElementType.Int8: Store<sbyte>(values, destination); break;
            case ElementType.Int16: Store<short>(values, destination); break;
            case ElementType.Int32: Store<int>(values, destination); break;
            case ElementType.Int64: Store<long>(values, destination); break;
            case ElementType.UInt8: Store<byte>(values, destination); break;
            case ElementType.UInt16: Store<ushort>(values, destination); break;
            case ElementType.UInt32: Store<uint>(values, destination); break;
            case ElementType.UInt64: Store<ulong>(values, destination); break;
            case ElementType.Bool:
                for (var i = 0; i < values.Length; i++)
                {
                    destination[i] = values[i] != 0 ? (byte)1 : (byte)0;
                }

                break;
            case ElementType.Complex64:
                var pairs = MemoryMarshal.Cast<byte, float>(destination);
                for (var i = 0; i < values.Length; i++)
                {
                    pairs[2 * i] = (float)values[i];
                    pairs[(2 * i) + 1] = 0;
                }

                break;
            case ElementType.Complex128:
                var wide = MemoryMarshal.Cast<byte, double>(destination);
                for (var i = 0; i < values.Length; i++)
                {
                    wide[2 * i] = values[i];
                    wide[(2 * i) + 1] = 0;
                }

                break;
            default:
                throw new NotSupportedException($"cannot store values as {type.ToName()} elements");
        }
    }

    private static void Store<T>(ReadOnlySpan<double> values, Span<byte> destination)
        where T : unmanaged, INumber<T>
    {
        var target = MemoryMarshal.Cast<byte, T>(destination);
        for (var i = 0; i < values.Length; i++)
        {
            target[i] = T.CreateSaturating(values[i]);
        }
    }
}
