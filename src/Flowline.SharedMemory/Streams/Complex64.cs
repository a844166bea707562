using System.Globalization;
using System.Runtime.InteropServices;

namespace Flowline.SharedMemory;

/// <summary>A complex number of two 32-bit floats, laid out as NumPy's <c>complex64</c> (real, then imaginary).</summary>
/// <param name="Real">The real part.</param>
/// <param name="Imaginary">The imaginary part.</param>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct Complex64(float Real, float Imaginary)
{
    /// <inheritdoc/>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"({Real}{(Imaginary < 0 ? "-" : "+")}{MathF.Abs(Imaginary)}j)");
}
