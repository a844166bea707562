using Flowline.Documents;
using Flowline.Kernels;

namespace Flowline.Runtime;

/// <summary>The frame a stream's <c>initial</c> block describes (shmpipeline's initializers), applied at every build.</summary>
internal static class InitialValues
{
    /// <summary>Fills <paramref name="destination"/> (a frame of <paramref name="stream"/>) with its initial values.</summary>
    public static void Fill(StreamSpec stream, InitialSpec initial, Span<byte> destination)
    {
        var values = new double[stream.ElementCount];
        switch (initial)
        {
            case ConstantInitial c:
                Array.Fill(values, c.Value);
                break;
            case NormalInitial n:
                var random = new Random(unchecked((int)(n.Seed ?? 0)));
                for (var i = 0; i < values.Length; i++)
                {
                    var u1 = 1.0 - random.NextDouble();
                    var u2 = random.NextDouble();
                    values[i] = (n.Mean ?? 0) + ((n.Std ?? 1) * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
                }

                break;
            case ValuesInitial v:
                v.Values.AsSpan().CopyTo(values);
                break;
            case IdentityInitial id:
                var rows = stream.Shape[0];
                var columns = stream.Shape[^1];
                for (var r = 0; r < Math.Min(rows, columns); r++)
                {
                    values[(r * columns) + r] = id.Scale ?? 1;
                }

                break;
            default:
                throw new NotSupportedException($"unknown initial pattern '{initial.Pattern}'");
        }

        Numeric.Store(values, stream.Dtype, destination);
    }
}
