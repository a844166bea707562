namespace Flowline.SharedMemory.TestPeer;

/// <summary>Frame contents that a reader can check without knowing what the writer wrote.</summary>
public static class TestPayload
{
    /// <summary>Fills a frame for <paramref name="sequence"/>: element 0 is the sequence, the others mix it with their index.</summary>
    public static void Fill(long sequence, Span<ulong> frame)
    {
        frame[0] = (ulong)sequence;
        for (var i = 1; i < frame.Length; i++)
        {
            frame[i] = Mix((ulong)sequence, (ulong)i);
        }
    }

    /// <summary>True if <paramref name="frame"/> is exactly what <see cref="Fill"/> writes for <paramref name="sequence"/>.</summary>
    public static bool Verify(long sequence, ReadOnlySpan<ulong> frame)
    {
        if (frame[0] != (ulong)sequence)
        {
            return false;
        }

        for (var i = 1; i < frame.Length; i++)
        {
            if (frame[i] != Mix((ulong)sequence, (ulong)i))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Fills every element with the same value: a torn frame shows two values.</summary>
    public static void FillUniform(long sequence, Span<ulong> frame) => frame.Fill(Mix((ulong)sequence, 0));

    /// <summary>True if every element holds the value <see cref="FillUniform"/> writes for the frame's own sequence.</summary>
    public static bool VerifyUniform(long sequence, ReadOnlySpan<ulong> frame)
    {
        var expected = Mix((ulong)sequence, 0);
        foreach (var value in frame)
        {
            if (value != expected)
            {
                return false;
            }
        }

        return true;
    }

    private static ulong Mix(ulong a, ulong b)
    {
        var x = (a * 0x9E3779B97F4A7C15UL) ^ (b + 0x632BE59BD9B4E019UL);
        x ^= x >> 31;
        x *= 0xBF58476D1CE4E5B9UL;
        x ^= x >> 29;
        return x;
    }
}
