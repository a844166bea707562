using System.Collections.Concurrent;
using System.Diagnostics;
using Flowline.SharedMemory;

namespace Flowline.Cli.Bench;

/// <summary>
/// Readers that attach to the pipeline's streams and leave them, in a loop on threads of their own: each
/// session picks a stream, a delivery (lossless and latest in turn) and a length (0.3 to 2 s), reads
/// every frame it can, checks it, and disposes the reader. A lossless reader's sequences must follow each
/// other from the position it joined at to the last frame it read, across writers killed and restarted
/// (it waits through writer changes); a latest reader's must increase. Payloads are checked where
/// <see cref="SoakFrames"/> knows them.
/// </summary>
internal sealed class SoakReaders(string ns, IReadOnlyList<string> streams, SoakFrames frames, int count, int seed)
{
    private const int MaxProblems = 20;
    private static readonly TimeSpan ReadSlice = TimeSpan.FromMilliseconds(100);

    private readonly Tally lossless = new();
    private readonly Tally latest = new();
    private readonly ConcurrentQueue<string> problems = new();
    private readonly List<Thread> threads = [];
    private readonly CancellationTokenSource stop = new();

    /// <summary>Starts the reader threads.</summary>
    public void Start()
    {
        for (var i = 0; i < count; i++)
        {
            var index = i;
            var thread = new Thread(() => Loop(index)) { IsBackground = true, Name = $"soak-reader-{i}" };
            threads.Add(thread);
            thread.Start();
        }
    }

    /// <summary>Ends every session (each reader disposed) and waits for the threads.</summary>
    public void Stop()
    {
        stop.Cancel();
        foreach (var thread in threads)
        {
            thread.Join();
        }

        stop.Dispose();
    }

    /// <summary>The figures per delivery (once stopped).</summary>
    public IReadOnlyList<SoakReaderFigures> Figures() => [lossless.Figures("lossless"), latest.Figures("latest")];

    /// <summary>The first problems seen, described.</summary>
    public IReadOnlyCollection<string> Problems => problems;

    private void Loop(int index)
    {
        var random = new Random(seed + index);
        for (var session = 0; !stop.IsCancellationRequested; session++)
        {
            var stream = streams[random.Next(streams.Count)];
            var delivery = (session + index) % 2 == 0 ? Delivery.Lossless : Delivery.Latest;
            var length = TimeSpan.FromMilliseconds(random.Next(300, 2000));
            try
            {
                Session(stream, delivery, length);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                // The soak is over; the reader was disposed on the way out.
            }
            catch (Exception e) when (e is SharedMemoryException or InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                var tally = delivery == Delivery.Lossless ? lossless : latest;
                Interlocked.Increment(ref tally.Errors);
                Problem($"{Name(delivery)} reader of '{stream}': {e.GetType().Name}: {e.Message}");
            }
        }
    }

    private void Session(string name, Delivery delivery, TimeSpan length)
    {
        var tally = delivery == Delivery.Lossless ? lossless : latest;
        var check = frames.For(name);
        using var stream = SharedStream.Attach(ns, name);
        using var reader = stream.OpenReader<byte>(new ReaderOptions { Delivery = delivery, WaitThroughWriterChanges = true });
        Interlocked.Increment(ref tally.Sessions);
        var frame = new byte[reader.FrameLength];
        var expected = reader.Position;
        var last = -1L;
        long read = 0, verified = 0, lost = 0, disorder = 0, torn = 0;
        var until = Stopwatch.GetTimestamp() + (long)(length.TotalSeconds * Stopwatch.Frequency);
        try
        {
            while (Stopwatch.GetTimestamp() < until && !stop.IsCancellationRequested)
            {
                var status = reader.ReadInto(frame, out var header, ReadSlice, stop.Token);
                if (status == ReadStatus.Timeout)
                {
                    continue;
                }

                if (status != ReadStatus.Ok)
                {
                    Interlocked.Increment(ref tally.Errors);
                    Problem($"{Name(delivery)} reader of '{name}': {status} while the pipeline runs");
                    break;
                }

                read++;
                if (delivery == Delivery.Lossless && header.Sequence != expected)
                {
                    if (header.Sequence > expected)
                    {
                        lost += header.Sequence - expected;
                        Problem($"lossless reader of '{name}': sequence {header.Sequence} after {expected - 1}: {header.Sequence - expected} frames lost");
                    }
                    else
                    {
                        disorder++;
                        Problem($"lossless reader of '{name}': sequence {header.Sequence} after {expected - 1}");
                    }
                }
                else if (delivery == Delivery.Latest && header.Sequence <= last)
                {
                    disorder++;
                    Problem($"latest reader of '{name}': sequence {header.Sequence} after {last}");
                }

                expected = header.Sequence + 1;
                last = header.Sequence;
                if (check is not null)
                {
                    verified++;
                    if (check.Problem(frame, header) is { } problem)
                    {
                        torn++;
                        Problem($"{Name(delivery)} reader of '{name}' accepted a wrong frame: {problem}");
                    }
                }
            }
        }
        finally
        {
            Interlocked.Add(ref tally.Frames, read);
            Interlocked.Add(ref tally.FramesVerified, verified);
            Interlocked.Add(ref tally.FramesLost, lost + (delivery == Delivery.Lossless ? reader.FramesSkipped : 0));
            Interlocked.Add(ref tally.OutOfOrder, disorder);
            Interlocked.Add(ref tally.TornAccepted, torn);
            Interlocked.Add(ref tally.TornCopiesDiscarded, reader.TornCopies);
            Interlocked.Add(ref tally.FramesSkipped, delivery == Delivery.Latest ? reader.FramesSkipped : 0);
        }
    }

    private static string Name(Delivery delivery) => delivery.ToString().ToLowerInvariant();

    private void Problem(string text)
    {
        if (problems.Count < MaxProblems)
        {
            problems.Enqueue(text);
        }
    }

    /// <summary>Counters of one delivery, added to by every reader thread.</summary>
    private sealed class Tally
    {
        public long Sessions;
        public long Frames;
        public long FramesVerified;
        public long FramesLost;
        public long OutOfOrder;
        public long TornAccepted;
        public long TornCopiesDiscarded;
        public long FramesSkipped;
        public long Errors;

        public SoakReaderFigures Figures(string delivery) =>
            new(delivery, Sessions, Frames, FramesVerified, FramesLost, OutOfOrder, TornAccepted, TornCopiesDiscarded, FramesSkipped, Errors);
    }
}
