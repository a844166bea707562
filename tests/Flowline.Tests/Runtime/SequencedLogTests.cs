using Flowline.Runtime;

namespace Flowline.Tests.Runtime;

/// <summary>
/// A subscriber of the settings and topology logs that falls behind (decision 147): told that it lost events
/// and how many, with where to resume, never left with a silent gap. Tested on the log itself: a subscriber
/// that does not drain its queue, without sockets whose buffers would absorb the backlog.
/// </summary>
public sealed class SequencedLogTests
{
    private sealed record Event(long Seq);

    private static long Append(SequencedLog<Event> log, int count) => log.Append(count, (seq, _) => new Event(seq));

    [Fact]
    public async Task ASubscriberThatDoesNotDrain_GetsEverythingUpToItsBound_ThenALostNotice_AndResumesWithNothingMissing()
    {
        var log = new SequencedLog<Event>(capacity: 100, subscriberQueue: 8);
        Append(log, 3);
        var (replay, lost, missed, live, unsubscribe) = log.Subscribe(afterSeq: 1);
        Assert.Equal([2L, 3L], replay.Select(e => e.Seq));
        Assert.False(lost);
        Assert.Equal(0, missed);

        // A fast subscriber alongside gets every event, whatever the slow one does.
        var (_, _, _, fast, unsubscribeFast) = log.Subscribe(afterSeq: 3);
        var fastSeen = new List<long>();

        // 20 events while the slow subscriber reads nothing: its queue holds 8.
        for (var i = 0; i < 20; i++)
        {
            Append(log, 1);
            while (fast.TryRead(out var e))
            {
                fastSeen.Add(e.Seq);
            }
        }

        Assert.Equal(Enumerable.Range(4, 20).Select(i => (long)i), fastSeen);

        // The slow one reads what it has queued, in order, then is told it fell behind (not just a closed queue).
        var slowSeen = new List<long>();
        var lagged = await Assert.ThrowsAsync<SubscriberLaggedException>(async () =>
        {
            var timeout = TestContext.Current.CancellationToken;
            while (await live.WaitToReadAsync(timeout))
            {
                while (live.TryRead(out var e))
                {
                    slowSeen.Add(e.Seq);
                }
            }
        });
        Assert.NotNull(lagged);
        Assert.Equal(Enumerable.Range(4, 8).Select(i => (long)i), slowSeen);

        // What it missed is counted from where it stopped (as /…/events sends in event: lost), and the log still
        // has it: resuming after the last seq it saw gives exactly the rest, without a gap.
        var last = slowSeen[^1];
        Assert.Equal(12, log.Seq - last);
        var resumed = log.Subscribe(last);
        Assert.False(resumed.Lost);
        Assert.Equal(Enumerable.Range(12, 12).Select(i => (long)i), resumed.Replay.Select(e => e.Seq));

        // Events after the lag do not go to the dropped queue.
        Append(log, 1);
        Assert.False(live.TryRead(out _));
        Assert.True(resumed.Live.TryRead(out var next));
        Assert.Equal(24, next.Seq);
        unsubscribe();
        unsubscribeFast();
        resumed.Unsubscribe();
    }

    [Fact]
    public void AResumeFromBeyondTheWindow_IsToldHowManyEventsAreGone()
    {
        var log = new SequencedLog<Event>(capacity: 10, subscriberQueue: 4);
        Append(log, 25);
        var (replay, lost, missed, _, unsubscribe) = log.Subscribe(afterSeq: 5);
        Assert.True(lost);
        Assert.Equal(10, missed); // 6 to 15 are no longer kept
        Assert.Equal(Enumerable.Range(16, 10).Select(i => (long)i), replay.Select(e => e.Seq));
        unsubscribe();

        var (_, lostNow, missedNow, _, unsubscribeNow) = log.Subscribe(afterSeq: 25);
        Assert.False(lostNow);
        Assert.Equal(0, missedNow);
        unsubscribeNow();
    }
}
