using System.Threading.Channels;

namespace Flowline.Runtime;

/// <summary>
/// A log of events numbered 1, 2, 3... kept in a bounded window (the newest <see cref="Capacity"/>), read
/// <c>after_seq</c>, and pushed to subscribers. A subscriber that falls behind is not silently dropped:
/// its queue ends with a "lost" marker (how many events it missed are counted from the sequence numbers
/// when it resumes).
/// </summary>
/// <typeparam name="T">The event.</typeparam>
public sealed class SequencedLog<T>
    where T : class
{
    private readonly object gate = new();
    private readonly Queue<(long Seq, T Event)> window = new();
    private readonly List<Channel<(long Seq, T? Event)>> subscribers = [];
    private readonly int subscriberQueue;
    private long seq;

    /// <summary>Creates a log keeping <paramref name="capacity"/> events, each subscriber queueing at most <paramref name="subscriberQueue"/>.</summary>
    public SequencedLog(int capacity = 1024, int subscriberQueue = 256)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(subscriberQueue, 1);
        Capacity = capacity;
        this.subscriberQueue = subscriberQueue;
    }

    /// <summary>Events kept.</summary>
    public int Capacity { get; }

    /// <summary>The sequence number of the last event (0 before any).</summary>
    public long Seq
    {
        get
        {
            lock (gate)
            {
                return seq;
            }
        }
    }

    /// <summary>Appends the events <paramref name="make"/> builds from consecutive sequence numbers; returns the last one.</summary>
    public long Append(int count, Func<long, int, T> make)
    {
        ArgumentNullException.ThrowIfNull(make);
        lock (gate)
        {
            for (var i = 0; i < count; i++)
            {
                var e = make(++seq, i);
                window.Enqueue((seq, e));
                while (window.Count > Capacity)
                {
                    window.Dequeue();
                }

                foreach (var s in subscribers.ToList())
                {
                    if (!s.Writer.TryWrite((seq, e)))
                    {
                        // Full: tell it, and let it go (it resumes from its last id with a new request).
                        subscribers.Remove(s);
                        s.Writer.TryComplete(new SubscriberLaggedException());
                    }
                }
            }

            return seq;
        }
    }

    /// <summary>The events after <paramref name="afterSeq"/>, and whether some of them are no longer kept.</summary>
    public (IReadOnlyList<(long Seq, T Event)> Events, bool Lost, long MissedCount) After(long afterSeq)
    {
        lock (gate)
        {
            var first = window.Count == 0 ? seq + 1 : window.Peek().Seq;
            var missed = Math.Max(0, first - afterSeq - 1);
            return ([.. window.Where(e => e.Seq > afterSeq)], missed > 0 && afterSeq < seq, missed);
        }
    }

    /// <summary>Subscribes after <paramref name="afterSeq"/>: the kept events after it, then live ones.</summary>
    public (IReadOnlyList<(long Seq, T Event)> Replay, bool Lost, long Missed, ChannelReader<(long Seq, T? Event)> Live, Action Unsubscribe) Subscribe(long afterSeq)
    {
        var channel = Channel.CreateBounded<(long, T?)>(new BoundedChannelOptions(subscriberQueue) { FullMode = BoundedChannelFullMode.Wait, SingleReader = true });
        lock (gate)
        {
            var (events, lost, missed) = After(afterSeq);
            subscribers.Add(channel);
            return (events, lost, missed, channel.Reader, () =>
            {
                lock (gate)
                {
                    subscribers.Remove(channel);
                }

                channel.Writer.TryComplete();
            });
        }
    }
}

/// <summary>A subscriber's queue filled up: it lost events.</summary>
public sealed class SubscriberLaggedException : Exception
{
    /// <summary>Creates an exception.</summary>
    public SubscriberLaggedException()
        : base("the subscriber fell behind and lost events")
    {
    }

    /// <summary>Creates an exception.</summary>
    public SubscriberLaggedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception.</summary>
    public SubscriberLaggedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
