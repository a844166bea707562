using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Flowline.SharedMemory.Diagnostics;

/// <summary>Single-thread <c>memcpy</c> bandwidth: the limit of any stream that copies frames.</summary>
internal static class MemoryBandwidth
{
    /// <summary>The best of five rounds of 200 copies of <paramref name="blockBytes"/>, in bytes per second.</summary>
    public static unsafe double MeasureCopy(int blockBytes)
    {
        var source = (byte*)NativeMemory.AlignedAlloc((nuint)blockBytes, 4096);
        var destination = (byte*)NativeMemory.AlignedAlloc((nuint)blockBytes, 4096);
        try
        {
            new Span<byte>(source, blockBytes).Fill(1);
            new Span<byte>(destination, blockBytes).Clear();
            for (var i = 0; i < 20; i++)
            {
                Buffer.MemoryCopy(source, destination, blockBytes, blockBytes);
            }

            var best = 0.0;
            for (var round = 0; round < 5; round++)
            {
                const int Copies = 200;
                var start = Stopwatch.GetTimestamp();
                for (var i = 0; i < Copies; i++)
                {
                    Buffer.MemoryCopy(source, destination, blockBytes, blockBytes);
                }

                best = Math.Max(best, (double)blockBytes * Copies / Stopwatch.GetElapsedTime(start).TotalSeconds);
            }

            return best;
        }
        finally
        {
            NativeMemory.AlignedFree(source);
            NativeMemory.AlignedFree(destination);
        }
    }
}
